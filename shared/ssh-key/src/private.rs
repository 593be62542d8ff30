//! Unencrypted Ed25519 private keys in the OpenSSH format
//! (`-----BEGIN OPENSSH PRIVATE KEY-----`, PROTOCOL.key in OpenSSH's sources).
//!
//! Layout of the base64 body: `"openssh-key-v1\0"`, `string cipher` ("none"),
//! `string kdf` ("none"), `string kdf options` (empty), `uint32 count` (1),
//! `string public key blob`, `string private section`. The private section:
//! `uint32 checkint` twice (equal), `string "ssh-ed25519"`, `string public key`,
//! `string seed || public key` (64 bytes), `string comment`, then padding
//! bytes 1, 2, 3, ... up to a multiple of 8 bytes.

use super::wire::{Reader, put_string, put_u32};
use super::{ED25519_KEY_TYPE, KeyError, PublicKey};
use alloc::string::String;
use alloc::vec::Vec;
use base64ct::{Base64, Encoding};
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";
const NONE: &[u8] = b"none";
/// The cipher block size that the padding aligns to when the cipher is "none".
const BLOCK: usize = 8;
/// The width of the base64 lines `ssh-keygen` writes.
const LINE_WIDTH: usize = 70;

/// An Ed25519 private key: the 32-byte seed, its public key, and the
/// comment the key file carries. The seed is zeroized on drop.
#[derive(Clone)]
pub struct PrivateKey {
    seed: [u8; 32],
    public: PublicKey,
    comment: String,
}

impl PrivateKey {
    /// The key for a 32-byte seed (e.g. from the driver's RNG), no comment.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = PublicKey::from_verifying_key(&signing.verifying_key());
        Self {
            seed,
            public,
            comment: String::new(),
        }
    }

    /// The same key with `comment` (written into the key file by `emit`).
    pub fn with_comment(mut self, comment: &str) -> Self {
        self.comment = String::from(comment);
        self
    }

    /// The 32-byte secret seed, for building a library's own key type.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The comment stored with the key (empty when there is none).
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Parses an unencrypted OpenSSH Ed25519 private key file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let binary = decode_armour(text)?;
        let mut reader = Reader::new(&binary);
        if reader.bytes(MAGIC.len(), "format marker").ok() != Some(MAGIC) {
            return Err(KeyError::NotOpenSshPrivateKey);
        }
        let cipher = reader.string("cipher name")?;
        let kdf = reader.string("key derivation name")?;
        let kdf_options = reader.string("key derivation options")?;
        if cipher != NONE {
            return Err(KeyError::Encrypted {
                cipher: String::from_utf8_lossy(cipher).into(),
            });
        }
        if kdf != NONE || !kdf_options.is_empty() {
            return Err(KeyError::Malformed {
                what: "a key derivation is set although the key is not encrypted",
            });
        }
        let count = reader.u32("key count")?;
        if count != 1 {
            return Err(KeyError::KeyCount { count });
        }
        let outer_public = PublicKey::from_wire_blob(reader.string("public key")?)?;
        let section = reader.string("private section")?;
        if !reader.rest().is_empty() {
            return Err(KeyError::Malformed {
                what: "extra bytes after the private section",
            });
        }
        let key = parse_private_section(section)?;
        if key.public != outer_public {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(key)
    }

    /// Writes the key as an OpenSSH private key file (70-column base64
    /// lines, trailing newline) that `ssh-keygen -y -f` accepts. `checkint`
    /// is the random check integer OpenSSH puts in the file; the core has
    /// no RNG, so the caller supplies it.
    pub fn emit(&self, checkint: u32) -> Zeroizing<String> {
        let section = self.private_section(checkint);
        let public_blob = self.public.wire_blob();
        let mut binary = Zeroizing::new(Vec::with_capacity(
            const { MAGIC.len() + 4 * 5 + NONE.len() * 2 }
                .saturating_add(public_blob.len())
                .saturating_add(section.len()),
        ));
        binary.extend_from_slice(MAGIC);
        put_string(&mut binary, NONE);
        put_string(&mut binary, NONE);
        put_string(&mut binary, b"");
        put_u32(&mut binary, 1);
        put_string(&mut binary, &public_blob);
        put_string(&mut binary, &section);
        let body = Zeroizing::new(Base64::encode_string(&binary));

        let lines = body.len().div_ceil(LINE_WIDTH);
        let mut text = Zeroizing::new(String::with_capacity(
            const { BEGIN.len() + END.len() + 2 }
                .saturating_add(body.len())
                .saturating_add(lines),
        ));
        text.push_str(BEGIN);
        text.push('\n');
        for line in body.as_bytes().chunks(LINE_WIDTH) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            text.push_str(core::str::from_utf8(line).unwrap_or_default());
            text.push('\n');
        }
        text.push_str(END);
        text.push('\n');
        text
    }

    fn private_section(&self, checkint: u32) -> Zeroizing<Vec<u8>> {
        let fixed = const { 4 + 4 + (4 + ED25519_KEY_TYPE.len()) + (4 + 32) + (4 + 64) + 4 };
        let unpadded = self.comment.len().saturating_add(fixed);
        let mut section = Zeroizing::new(Vec::with_capacity(unpadded.saturating_add(BLOCK)));
        put_u32(&mut section, checkint);
        put_u32(&mut section, checkint);
        put_string(&mut section, ED25519_KEY_TYPE.as_bytes());
        put_string(&mut section, self.public.as_bytes());
        let mut keypair = Zeroizing::new([0u8; 64]);
        let (seed_half, public_half) = keypair.split_at_mut(32);
        seed_half.copy_from_slice(self.seed.as_slice());
        public_half.copy_from_slice(self.public.as_bytes());
        put_string(&mut section, keypair.as_slice());
        put_string(&mut section, self.comment.as_bytes());
        let mut pad = 1u8;
        while !section.len().is_multiple_of(BLOCK) {
            section.push(pad);
            // At most BLOCK - 1 padding bytes, far below 255.
            pad = pad.wrapping_add(1);
        }
        section
    }
}

/// Finds the BEGIN/END armour and decodes the base64 between them.
fn decode_armour(text: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let text = text.trim();
    let Some(body) = text.strip_prefix(BEGIN) else {
        return Err(KeyError::NotOpenSshPrivateKey);
    };
    let Some(body) = body.strip_suffix(END) else {
        return Err(KeyError::Truncated {
            what: "key file (no END line)",
        });
    };
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    Base64::decode_vec(&compact)
        .map(Zeroizing::new)
        .map_err(|_| KeyError::BadBase64 {
            what: "private key body",
        })
}

fn parse_private_section(section: &[u8]) -> Result<PrivateKey, KeyError> {
    if !section.len().is_multiple_of(BLOCK) {
        return Err(KeyError::Malformed {
            what: "the private section is not a multiple of the 8-byte block",
        });
    }
    let mut reader = Reader::new(section);
    let check1 = reader.u32("check integers")?;
    let check2 = reader.u32("check integers")?;
    if check1 != check2 {
        return Err(KeyError::CheckintMismatch);
    }
    let public = PublicKey::read_wire(&mut reader)?;
    let keypair = reader.string("private key")?;
    let Some((seed, public_copy)) = keypair.split_first_chunk::<32>() else {
        return Err(KeyError::Malformed {
            what: "an Ed25519 private key must be 64 bytes",
        });
    };
    if public_copy.len() != 32 {
        return Err(KeyError::Malformed {
            what: "an Ed25519 private key must be 64 bytes",
        });
    }
    if public_copy != public.as_bytes() {
        return Err(KeyError::PublicKeyMismatch);
    }
    let comment = reader.string("comment")?;
    let comment = core::str::from_utf8(comment).map_err(|_| KeyError::Malformed {
        what: "the comment is not UTF-8",
    })?;
    let padding = reader.rest();
    let padding_is_1_2_3 = padding
        .iter()
        .zip(1u8..)
        .all(|(&byte, expected)| byte == expected);
    if padding.len() >= BLOCK || !padding_is_1_2_3 {
        return Err(KeyError::Malformed {
            what: "the padding is not 1, 2, 3, ... up to the block size",
        });
    }
    let key = PrivateKey::from_seed(*seed).with_comment(comment);
    if key.public != public {
        return Err(KeyError::PublicKeyMismatch);
    }
    Ok(key)
}

/// Compares the seeds without an early exit (the comment is not part of the key).
impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        let difference = self
            .seed
            .iter()
            .zip(&other.seed)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }
}

impl Eq for PrivateKey {}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// Shows the public half only; the seed is never printed.
impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public)
            .field("comment", &self.comment)
            .field("seed", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use pp_test_support::keys as fixtures;

    #[test]
    fn ssh_keygen_private_key_parses_and_matches_its_public_file() {
        let key = PrivateKey::parse(fixtures::ED25519_PRIVATE).unwrap();
        let (public, comment) = PublicKey::parse_with_comment(fixtures::ED25519_PUB).unwrap();
        assert_eq!(key.public(), public);
        assert_eq!(Some(key.comment()), comment);
    }

    #[test]
    fn emit_with_the_original_checkint_reproduces_ssh_keygen_output() {
        let key = PrivateKey::parse(fixtures::ED25519_PRIVATE).unwrap();
        let binary = decode_armour(fixtures::ED25519_PRIVATE).unwrap();
        let checkint_at = binary.len() - key_section_tail_len(&key);
        let checkint = u32::from_be_bytes(binary[checkint_at..checkint_at + 4].try_into().unwrap());
        assert_eq!(key.emit(checkint).as_str(), fixtures::ED25519_PRIVATE);
    }

    /// Bytes from the first check integer to the end of the file.
    fn key_section_tail_len(key: &PrivateKey) -> usize {
        key.private_section(0).len()
    }

    #[test]
    fn emitted_keys_parse_back_for_every_comment_length() {
        let mut comment = String::new();
        for length in 0..20 {
            let key = PrivateKey::from_seed([length as u8; 32]).with_comment(&comment);
            let text = key.emit(0xdead_beef ^ length);
            assert!(
                text.lines()
                    .all(|line| line.len() <= LINE_WIDTH || line.starts_with("-----"))
            );
            let back = PrivateKey::parse(&text).unwrap();
            assert_eq!(back.seed(), key.seed());
            assert_eq!(back.public(), key.public());
            assert_eq!(back.comment(), comment);
            comment.push('x');
        }
    }

    #[test]
    fn encrypted_keys_are_refused_with_advice_to_remove_the_passphrase() {
        let error = PrivateKey::parse(fixtures::ED25519_ENCRYPTED).unwrap_err();
        assert_eq!(
            error,
            KeyError::Encrypted {
                cipher: "aes256-ctr".into()
            }
        );
        assert!(format!("{error}").contains("ssh-keygen -p"));
    }

    #[test]
    fn rsa_private_keys_are_refused_naming_the_type() {
        let error = PrivateKey::parse(fixtures::RSA_PRIVATE).unwrap_err();
        assert_eq!(
            error,
            KeyError::NotEd25519 {
                found: "ssh-rsa".into()
            }
        );
    }

    #[test]
    fn a_truncated_key_file_is_refused() {
        let text = fixtures::ED25519_PRIVATE;
        let cut = &text[..text.len() / 2];
        assert_eq!(
            PrivateKey::parse(cut).unwrap_err(),
            KeyError::Truncated {
                what: "key file (no END line)"
            }
        );
        let key = PrivateKey::from_seed([7; 32]);
        let binary = decode_armour(&key.emit(1)).unwrap();
        let short = Base64::encode_string(&binary[..binary.len() - 20]);
        assert!(matches!(
            PrivateKey::parse(&format!("{BEGIN}\n{short}\n{END}\n")),
            Err(KeyError::Truncated { .. })
        ));
    }

    #[test]
    fn differing_checkints_are_refused() {
        let key = PrivateKey::from_seed([9; 32]);
        let mut binary = decode_armour(&key.emit(5)).unwrap();
        let at = binary.len() - key.private_section(0).len();
        binary[at] ^= 1;
        let text = format!("{BEGIN}\n{}\n{END}\n", Base64::encode_string(&binary));
        assert_eq!(
            PrivateKey::parse(&text).unwrap_err(),
            KeyError::CheckintMismatch
        );
    }

    #[test]
    fn a_seed_that_does_not_match_the_stored_public_key_is_refused() {
        let key = PrivateKey::from_seed([3; 32]);
        let mut binary = decode_armour(&key.emit(5)).unwrap();
        // The seed sits right after the 4-byte length of the 64-byte key string.
        let seed_at = binary.len() - key.private_section(0).len() + 8 + 15 + 36 + 4;
        binary[seed_at] ^= 1;
        let text = format!("{BEGIN}\n{}\n{END}\n", Base64::encode_string(&binary));
        assert_eq!(
            PrivateKey::parse(&text).unwrap_err(),
            KeyError::PublicKeyMismatch
        );
    }

    #[test]
    fn other_text_is_not_an_openssh_private_key() {
        let pem =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            PrivateKey::parse(pem).unwrap_err(),
            KeyError::NotOpenSshPrivateKey
        );
    }

    #[test]
    fn debug_output_does_not_contain_the_seed() {
        let key = PrivateKey::from_seed([0xab; 32]);
        let debug = format!("{key:?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains("171") && !debug.contains("ab, ") && !debug.contains("0xab"));
    }

    #[test]
    fn parse_never_panics_on_mutated_text_or_mutated_binary() {
        let text = fixtures::ED25519_PRIVATE.as_bytes();
        pp_test_support::feed_mutations(&[text, fixtures::RSA_PRIVATE.as_bytes()], 2000, |input| {
            let _ = PrivateKey::parse(&String::from_utf8_lossy(input));
        });
        let binary = decode_armour(fixtures::ED25519_PRIVATE).unwrap();
        pp_test_support::feed_mutations(&[&binary], 2000, |input| {
            let armoured = format!("{BEGIN}\n{}\n{END}\n", Base64::encode_string(input));
            let _ = PrivateKey::parse(&armoured);
        });
    }
}
