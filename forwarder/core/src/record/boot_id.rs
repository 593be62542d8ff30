//! The boot id: the UUID the kernel prints in
//! `/proc/sys/kernel/random/boot_id`, which changes on every boot.

use alloc::string::String;
use core::fmt;

/// The 16 bytes of the boot UUID.
pub type BootId = [u8; 16];

/// The text did not hold a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootIdError {
    /// What the store found.
    pub found: String,
}

impl fmt::Display for BootIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boot id `{}` is not a UUID like 0d9f0a5e-3b1c-4a8e-9e64-2c7b1f3d5a10 \
             (read /proc/sys/kernel/random/boot_id)",
            self.found
        )
    }
}

impl core::error::Error for BootIdError {}

/// Parses the text of `/proc/sys/kernel/random/boot_id` (a hyphenated
/// UUID, surrounding whitespace ignored, either case).
pub fn parse_boot_id(text: &str) -> Result<BootId, BootIdError> {
    let text = text.trim();
    let error = || BootIdError {
        found: text.chars().take(64).collect(),
    };
    let groups: [usize; 5] = [8, 4, 4, 4, 12];
    let mut parts = text.split('-');
    let mut hex = [0u8; 32];
    let mut filled = 0;
    for len in groups {
        let part = parts.next().ok_or_else(error)?;
        if part.len() != len {
            return Err(error());
        }
        for byte in part.bytes() {
            let slot = hex.get_mut(filled).ok_or_else(error)?;
            *slot = hex_value(byte).ok_or_else(error)?;
            filled = filled.saturating_add(1);
        }
    }
    if parts.next().is_some() {
        return Err(error());
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
        if let [high, low] = pair {
            *byte = (high << 4) | low;
        }
    }
    Ok(id)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_text_parses_with_its_newline() {
        let id = parse_boot_id("0d9f0a5e-3b1c-4a8e-9e64-2c7b1f3d5a10\n").unwrap();
        assert_eq!(id[0], 0x0d);
        assert_eq!(id[15], 0x10);
        assert_eq!(
            parse_boot_id("0D9F0A5E-3B1C-4A8E-9E64-2C7B1F3D5A10"),
            Ok(id)
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for text in [
            "",
            "0d9f0a5e3b1c4a8e9e642c7b1f3d5a10",
            "0d9f0a5e-3b1c-4a8e-9e64-2c7b1f3d5a1",
            "0d9f0a5e-3b1c-4a8e-9e64-2c7b1f3d5a10-00",
            "0d9f0a5g-3b1c-4a8e-9e64-2c7b1f3d5a10",
            "+d9f0a5e-3b1c-4a8e-9e64-2c7b1f3d5a10",
        ] {
            assert!(parse_boot_id(text).is_err(), "{text}");
        }
    }
}
