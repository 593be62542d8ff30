//! Content encodings: cloud-init's `write_files` `encoding` values, and the
//! base64 Azure wraps user-data in.
//!
//! Contract: never panics on input; base64 is standard padded base64 with
//! ASCII whitespace ignored (YAML block scalars wrap it), anything else in
//! it is an error; gzip output is bounded by the core's init-data limit
//! (a gzip bomb stops there).

use base64ct::{Base64, Encoding};
use pp_initdata::{self as initdata, InitDataError};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why content could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    #[error("is not valid padded standard base64")]
    BadBase64,
    #[error(
        "encoding {0:?} is not one cloud-init defines (b64, base64, gz+b64, gz+base64, gzip+b64, gzip+base64, text/plain)"
    )]
    UnknownEncoding(String),
    #[error("encoding {0:?} means binary content, which a YAML string cannot carry; use gz+b64")]
    BinaryNotSupported(String),
    #[error("is base64 of something that is not gzip (no 1f 8b magic)")]
    NotGzip,
    #[error("{0}")]
    Gzip(InitDataError),
}

/// Decode base64 after dropping ASCII whitespace.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, EncodingError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact).map_err(|_| EncodingError::BadBase64)
}

/// The bytes cloud-init would write for a `write_files` entry with this
/// `encoding` and `content`.
pub fn decode_write_files_content(
    encoding: Option<&str>,
    content: &str,
) -> Result<Vec<u8>, EncodingError> {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("text/plain") => Ok(content.as_bytes().to_vec()),
        Some("b64" | "base64") => decode_base64(content),
        Some("gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64") => {
            gunzip(&decode_base64(content)?)
        }
        Some("gz" | "gzip") => Err(EncodingError::BinaryNotSupported(
            encoding.unwrap_or_default().to_owned(),
        )),
        Some(_) => Err(EncodingError::UnknownEncoding(
            encoding.unwrap_or_default().to_owned(),
        )),
    }
}

/// Inflate one gzip member with the core's bounded decoder (its delivery
/// decoder inflates raw gzip and nothing else once the magic is checked).
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, EncodingError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Err(EncodingError::NotGzip);
    }
    initdata::decode_delivery(bytes).map_err(EncodingError::Gzip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_wrapped_over_lines_decodes() {
        assert_eq!(decode_base64("aGVs\n  bG8=\n").unwrap(), b"hello");
        assert!(matches!(
            decode_base64("aGVsbG8"),
            Err(EncodingError::BadBase64)
        ));
        assert!(matches!(
            decode_base64("aGV*bG8="),
            Err(EncodingError::BadBase64)
        ));
    }

    #[test]
    fn gz_b64_content_is_inflated() {
        let delivered = initdata::emit_delivery(b"x = 1\n");
        for name in ["gz+b64", "GZIP+BASE64"] {
            assert_eq!(
                decode_write_files_content(Some(name), &delivered).unwrap(),
                b"x = 1\n"
            );
        }
    }

    #[test]
    fn gz_b64_of_non_gzip_bytes_is_refused() {
        assert!(matches!(
            decode_write_files_content(Some("gz+b64"), "aGVsbG8="),
            Err(EncodingError::NotGzip)
        ));
    }

    #[test]
    fn plain_content_is_kept_as_is() {
        assert_eq!(
            decode_write_files_content(None, "H4sIabc").unwrap(),
            b"H4sIabc"
        );
        assert_eq!(
            decode_write_files_content(Some("text/plain"), "a").unwrap(),
            b"a"
        );
    }

    #[test]
    fn binary_and_unknown_encodings_are_refused() {
        assert!(matches!(
            decode_write_files_content(Some("gzip"), "x"),
            Err(EncodingError::BinaryNotSupported(_))
        ));
        assert!(matches!(
            decode_write_files_content(Some("zstd"), "x"),
            Err(EncodingError::UnknownEncoding(_))
        ));
    }
}
