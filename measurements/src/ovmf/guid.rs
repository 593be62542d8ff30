//! EFI GUIDs as they are stored in firmware (first three fields little
//! endian), and the ones OVMF/TDVF metadata uses.

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The stored form of the GUID `d1-d2-d3-d4[0..2]-d4[2..8]`.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// 96b582de-1fb2-45f7-baea-a366c55a082d: the footer that ends the table.
pub const OVMF_TABLE_FOOTER: Guid = Guid::new(
    0x96b582de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// dc886566-984a-4798-a75e-5585a7bf67cc: offset of the SEV metadata.
pub const OVMF_SEV_METADATA: Guid = Guid::new(
    0xdc886566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// 00f771de-1a7e-4fcb-890e-68c77e2fb44e: SEV-ES AP reset EIP.
pub const SEV_ES_RESET_BLOCK: Guid = Guid::new(
    0x00f771de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// 7255371f-3a3b-4b04-927b-1da6efa8d454: where QEMU puts the kernel hashes.
pub const SEV_HASH_TABLE_RV: Guid = Guid::new(
    0x7255371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// e47a6535-984a-4798-865e-4685a7bf8ec2: offset of the TDVF metadata.
pub const TDX_METADATA_OFFSET: Guid = Guid::new(
    0xe47a6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_in_their_registry_form_and_store_little_endian() {
        assert_eq!(
            TDX_METADATA_OFFSET.to_string(),
            "e47a6535-984a-4798-865e-4685a7bf8ec2"
        );
        assert_eq!(TDX_METADATA_OFFSET.0[..4], [0x35, 0x65, 0x7a, 0xe4]);
    }
}
