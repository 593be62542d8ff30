//! The SSH wire encoding pieces the key formats use (RFC 4251 `uint32` and
//! `string`): a reader over untrusted bytes that never panics and a writer.

use super::KeyError;
use alloc::vec::Vec;

/// Reads SSH wire values from the front of a byte slice.
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Reads a big-endian `uint32`; `what` names the field for the error.
    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, KeyError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(KeyError::Truncated { what })?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*head))
    }

    /// Reads exactly `len` raw bytes.
    pub(super) fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], KeyError> {
        let (head, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(KeyError::Truncated { what })?;
        self.rest = rest;
        Ok(head)
    }

    /// Reads a length-prefixed `string`.
    pub(super) fn string(&mut self, what: &'static str) -> Result<&'a [u8], KeyError> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| KeyError::Truncated { what })?;
        self.bytes(len, what)
    }

    /// Reads a `string` that must be exactly 32 bytes long.
    pub(super) fn string32(&mut self, what: &'static str) -> Result<[u8; 32], KeyError> {
        let bytes = self.string(what)?;
        bytes.try_into().map_err(|_| KeyError::Malformed {
            what: "an Ed25519 public key must be 32 bytes",
        })
    }

    /// What has not been read yet.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Appends a `uint32`.
pub(super) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a length-prefixed `string`. Our strings are short (key types,
/// keys, comments); a longer one would be a bug in the caller.
pub(super) fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    put_u32(out, len);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_instead_of_panicking() {
        let mut reader = Reader::new(&[0, 0, 0, 9, b'a']);
        assert_eq!(
            reader.string("thing"),
            Err(KeyError::Truncated { what: "thing" })
        );
        let mut reader = Reader::new(&[0, 0]);
        assert_eq!(reader.u32("n"), Err(KeyError::Truncated { what: "n" }));
    }

    #[test]
    fn written_strings_read_back() {
        let mut out = Vec::new();
        put_string(&mut out, b"ssh-ed25519");
        put_u32(&mut out, 7);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.string("type"), Ok(&b"ssh-ed25519"[..]));
        assert_eq!(reader.u32("n"), Ok(7));
        assert!(reader.rest().is_empty());
    }
}
