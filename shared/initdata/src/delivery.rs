//! The delivered form of init-data: peer pods write base64(gzip(TOML)) to
//! `/run/peerpod/initdata`; plain TOML (and raw gzip) are accepted too.
//! Which one it is follows from the first bytes: `H4sI` is what base64 of
//! the gzip magic always starts with, `1f 8b` is raw gzip, anything else is
//! taken as TOML.

use super::gzip::{self, MAGIC};
use super::{InitDataError, MAX_DELIVERED_LEN, MAX_TOML_LEN};
use alloc::string::String;
use alloc::vec::Vec;
use base64ct::{Base64, Encoding};

/// How base64 of a gzip stream begins (`1f 8b 08` encodes as `H4sI`).
const BASE64_GZIP_PREFIX: &[u8] = b"H4sI";

/// Returns the TOML bytes of a delivery, exactly as they are to be hashed.
pub fn decode_delivery(bytes: &[u8]) -> Result<Vec<u8>, InitDataError> {
    if bytes.len() > MAX_DELIVERED_LEN {
        return Err(InitDataError::TooLarge {
            limit: MAX_DELIVERED_LEN,
        });
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.starts_with(BASE64_GZIP_PREFIX) {
        let compact: Vec<u8> = trimmed
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let gzip = Base64::decode_vec(
            core::str::from_utf8(&compact).map_err(|_| InitDataError::BadBase64)?,
        )
        .map_err(|_| InitDataError::BadBase64)?;
        gzip::decompress(&gzip, MAX_TOML_LEN)
    } else if bytes.starts_with(&MAGIC) {
        gzip::decompress(bytes, MAX_TOML_LEN)
    } else {
        Ok(bytes.to_vec())
    }
}

/// The peer-pod delivery form of `toml`: base64(gzip(TOML)), one line.
pub fn emit_delivery(toml: &[u8]) -> String {
    Base64::encode_string(&gzip::compress(toml))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &[u8] = b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n";

    #[test]
    fn base64_gzip_raw_gzip_and_plain_toml_all_decode_to_the_same_bytes() {
        let delivered = emit_delivery(TOML);
        assert!(delivered.starts_with("H4sI"));
        assert_eq!(decode_delivery(delivered.as_bytes()).unwrap(), TOML);
        let wrapped = alloc::format!("{}\n{}\n", &delivered[..20], &delivered[20..]);
        assert_eq!(decode_delivery(wrapped.as_bytes()).unwrap(), TOML);
        assert_eq!(decode_delivery(&gzip::compress(TOML)).unwrap(), TOML);
        assert_eq!(decode_delivery(TOML).unwrap(), TOML);
    }

    #[test]
    fn plain_toml_is_kept_byte_for_byte_for_the_digest() {
        let with_space = b"\n version = \"0.1.0\"\n";
        assert_eq!(decode_delivery(with_space).unwrap(), with_space);
    }

    #[test]
    fn oversized_deliveries_and_bad_base64_are_refused() {
        let big = alloc::vec![b'#'; MAX_DELIVERED_LEN + 1];
        assert_eq!(
            decode_delivery(&big),
            Err(InitDataError::TooLarge {
                limit: MAX_DELIVERED_LEN
            })
        );
        assert_eq!(decode_delivery(b"H4sI!!!!"), Err(InitDataError::BadBase64));
    }

    #[test]
    fn a_base64_gzip_bomb_stops_at_the_toml_limit() {
        let bomb = emit_delivery(&alloc::vec![b' '; 4 * MAX_TOML_LEN]);
        assert!(bomb.len() <= MAX_DELIVERED_LEN);
        assert_eq!(
            decode_delivery(bomb.as_bytes()),
            Err(InitDataError::InflatesTooLarge {
                limit: MAX_TOML_LEN
            })
        );
    }

    #[test]
    fn decoding_and_parsing_never_panic_on_mutated_deliveries() {
        let toml = pp_test_support::SAMPLE_INIT_DATA.as_bytes();
        let delivered = emit_delivery(toml);
        let gzip = gzip::compress(toml);
        pp_test_support::feed_mutations(&[toml, delivered.as_bytes(), &gzip], 3000, |input| {
            if let Ok(decoded) = decode_delivery(input) {
                let _ = super::super::InitData::parse(&decoded);
            }
        });
    }
}
