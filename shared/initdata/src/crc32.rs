//! CRC-32 (IEEE 802.3, the gzip trailer's checksum) with one 1 KiB table
//! built at compile time. Init-data is a few KiB, so the byte-at-a-time
//! loop is plenty fast, and the binary stays small (crc32fast carries a
//! 16 KiB slice-by-16 table).

/// The reflected polynomial of CRC-32/ISO-HDLC.
const POLY: u32 = 0xedb8_8320;

#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "evaluated at compile time: an overflow or a bad index fails the build"
)]
const TABLE: [u32; 256] = {
    // A const table: every index and addition here is checked by the
    // compiler at build time, so nothing can go wrong at run time.
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32 of `data`, as gzip stores it (little-endian in the trailer).
pub(super) fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| {
        // A u8 index into a 256-entry table is always in bounds.
        #[allow(clippy::indexing_slicing, reason = "a u8 index into 256 entries")]
        let entry = TABLE[usize::from((crc as u8) ^ byte)];
        entry ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn matches_the_standard_check_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
    }
}
