//! Ed25519 public keys as one `authorized_keys` line
//! (`ssh-ed25519 AAAA... [comment]`) and their `ssh-keygen -l` fingerprint.

use super::wire::{Reader, put_string};
use super::{ED25519_KEY_TYPE, KeyError};
use alloc::string::String;
use alloc::vec::Vec;
use base64ct::{Base64, Base64Unpadded, Encoding};
use core::fmt;
use sha2::{Digest, Sha256};

/// A valid Ed25519 public key (the 32-byte compressed point).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 key bytes, checking that they are a point on the curve.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(|_| Self(bytes))
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    /// The public half of an ed25519-dalek key, which is valid by construction.
    pub(super) fn from_verifying_key(key: &ed25519_dalek::VerifyingKey) -> Self {
        Self(key.to_bytes())
    }

    /// The 32 key bytes, as SSH and ed25519-dalek use them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses one `authorized_keys` line, ignoring its comment.
    pub fn parse(line: &str) -> Result<Self, KeyError> {
        Self::parse_with_comment(line).map(|(key, _)| key)
    }

    /// Parses one `authorized_keys` line: `ssh-ed25519 BASE64 [comment]`.
    /// Leading and trailing whitespace is ignored; the comment (everything
    /// after the key data, trimmed) is returned when there is one. Options
    /// before the key type are not supported.
    pub fn parse_with_comment(line: &str) -> Result<(Self, Option<&str>), KeyError> {
        let line = line.trim();
        let (key_type, rest) = split_word(line);
        if key_type.is_empty() {
            return Err(KeyError::MissingKeyData);
        }
        if key_type != ED25519_KEY_TYPE {
            return Err(KeyError::NotEd25519 {
                found: shorten(key_type),
            });
        }
        let (data, comment) = split_word(rest);
        if data.is_empty() {
            return Err(KeyError::MissingKeyData);
        }
        let blob = Base64::decode_vec(data).map_err(|_| KeyError::BadBase64 {
            what: "public key data",
        })?;
        let key = Self::from_wire_blob(&blob)?;
        let comment = Some(comment).filter(|c| !c.is_empty());
        Ok((key, comment))
    }

    /// Parses the SSH wire form (`string "ssh-ed25519"`, `string key`),
    /// which must be complete with nothing after it.
    pub(super) fn from_wire_blob(blob: &[u8]) -> Result<Self, KeyError> {
        let mut reader = Reader::new(blob);
        let key = Self::read_wire(&mut reader)?;
        if !reader.rest().is_empty() {
            return Err(KeyError::Malformed {
                what: "extra bytes after the public key",
            });
        }
        Ok(key)
    }

    /// Reads the two wire fields of a public key from `reader`.
    pub(super) fn read_wire(reader: &mut Reader<'_>) -> Result<Self, KeyError> {
        let key_type = reader.string("public key type")?;
        if key_type != ED25519_KEY_TYPE.as_bytes() {
            return Err(KeyError::NotEd25519 {
                found: shorten(&String::from_utf8_lossy(key_type)),
            });
        }
        let bytes = reader.string32("public key")?;
        Self::from_bytes(bytes)
    }

    /// The SSH wire form: `string "ssh-ed25519"`, `string key`.
    pub fn wire_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(51);
        put_string(&mut out, ED25519_KEY_TYPE.as_bytes());
        put_string(&mut out, &self.0);
        out
    }

    /// The `authorized_keys` line, with `comment` after the key when given
    /// (control characters in it become spaces so the line stays one line).
    /// No trailing newline.
    pub fn emit(&self, comment: Option<&str>) -> String {
        let mut line = String::from(ED25519_KEY_TYPE);
        line.push(' ');
        line.push_str(&Base64::encode_string(&self.wire_blob()));
        let comment: String = comment
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let comment = comment.trim();
        if !comment.is_empty() {
            line.push(' ');
            line.push_str(comment);
        }
        line
    }

    /// The fingerprint exactly as `ssh-keygen -l` prints it:
    /// `SHA256:` and the unpadded base64 of SHA-256 over the wire blob.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.wire_blob());
        let mut text = String::from("SHA256:");
        text.push_str(&Base64Unpadded::encode_string(&digest));
        text
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// Displays as the `authorized_keys` line without a comment.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.emit(None))
    }
}

/// Splits off the first whitespace-separated word; returns it and the rest
/// with leading whitespace removed.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Keeps error messages short when the "type" is in fact a long blob.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut short: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().nth(MAX_CHARS).is_some() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_test_support::keys as fixtures;

    #[test]
    fn ssh_keygen_public_key_parses_with_its_comment() {
        let (key, comment) = PublicKey::parse_with_comment(fixtures::ED25519_PUB).unwrap();
        assert_eq!(comment, Some("core-fixture@peerpod"));
        assert_eq!(key.emit(comment), fixtures::ED25519_PUB.trim());
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        let key = PublicKey::parse(fixtures::ED25519_PUB).unwrap();
        let expected = fixtures::ED25519_FINGERPRINT
            .split_whitespace()
            .nth(1)
            .unwrap();
        assert_eq!(key.fingerprint(), expected);
    }

    #[test]
    fn other_key_types_are_refused_naming_the_type_found() {
        for (line, found) in [
            (fixtures::RSA_PUB, "ssh-rsa"),
            (fixtures::ECDSA_PUB, "ecdsa-sha2-nistp256"),
        ] {
            let error = PublicKey::parse(line).unwrap_err();
            assert_eq!(
                error,
                KeyError::NotEd25519 {
                    found: found.into()
                }
            );
            let message = alloc::format!("{error}");
            assert!(
                message.contains(found) && message.contains("Ed25519"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_blob_of_another_type_behind_an_ed25519_label_is_refused() {
        let rsa_blob = fixtures::RSA_PUB.split_whitespace().nth(1).unwrap();
        let line = alloc::format!("ssh-ed25519 {rsa_blob}");
        assert_eq!(
            PublicKey::parse(&line),
            Err(KeyError::NotEd25519 {
                found: "ssh-rsa".into()
            })
        );
    }

    #[test]
    fn empty_and_keyless_lines_say_key_data_is_missing() {
        assert_eq!(PublicKey::parse("   "), Err(KeyError::MissingKeyData));
        assert_eq!(
            PublicKey::parse("ssh-ed25519"),
            Err(KeyError::MissingKeyData)
        );
    }

    #[test]
    fn truncated_key_data_is_refused() {
        let data = fixtures::ED25519_PUB.split_whitespace().nth(1).unwrap();
        let cut = &data[..data.len() - 8];
        assert!(PublicKey::parse(&alloc::format!("ssh-ed25519 {cut}")).is_err());
    }

    #[test]
    fn emit_without_comment_round_trips_and_strips_control_characters() {
        let key = PublicKey::parse(fixtures::ED25519_PUB).unwrap();
        assert_eq!(PublicKey::parse(&key.emit(None)).unwrap(), key);
        let line = key.emit(Some("two\nlines"));
        assert!(line.ends_with(" two lines"), "{line}");
    }

    #[test]
    fn bytes_that_are_not_a_curve_point_are_refused() {
        // y = 2 is not the y coordinate of any Ed25519 point.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(
            PublicKey::from_bytes(bytes),
            Err(KeyError::InvalidPublicKey)
        );
    }

    #[test]
    fn parse_never_panics_and_what_parses_round_trips() {
        let rsa = fixtures::RSA_PUB.as_bytes();
        pp_test_support::feed_mutations(&[fixtures::ED25519_PUB.as_bytes(), rsa], 3000, |input| {
            if let Ok((key, comment)) =
                PublicKey::parse_with_comment(&String::from_utf8_lossy(input))
            {
                assert_eq!(PublicKey::parse(&key.emit(comment)), Ok(key));
            }
        });
    }
}
