//! The one error type of the `key` module: each variant says what is wrong
//! with the key text and what the operator can do about it.

use alloc::string::String;
use core::fmt;

/// Why a key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key is of another type than Ed25519.
    NotEd25519 {
        /// The text found.
        found: String,
    },
    /// The text is empty or has no base64 data after the key type.
    MissingKeyData,
    /// Part of the key is not valid standard (padded) base64.
    BadBase64 {
        /// What is wrong.
        what: &'static str,
    },
    /// A length field points past the end of the data.
    Truncated {
        /// What is wrong.
        what: &'static str,
    },
    /// A structural rule of the format is broken; `what` explains which.
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// The 32 public key bytes are not a point on the Ed25519 curve.
    InvalidPublicKey,
    /// The text is not an `-----BEGIN OPENSSH PRIVATE KEY-----` block.
    NotOpenSshPrivateKey,
    /// The private key file is protected with a passphrase.
    Encrypted {
        /// The cipher the file names.
        cipher: String,
    },
    /// The private key file does not hold exactly one key.
    KeyCount {
        /// The number of keys the file holds.
        count: u32,
    },
    /// The two check integers of the private section differ.
    CheckintMismatch,
    /// The public key stored in the private key file is not the one that
    /// belongs to the private key.
    PublicKeyMismatch,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEd25519 { found } => write!(
                f,
                "key type `{found}` is not supported: an Ed25519 key (`ssh-ed25519`) is required; \
                 make one with `ssh-keygen -t ed25519`"
            ),
            Self::MissingKeyData => f.write_str(
                "no key data: expected `ssh-ed25519 AAAA... [comment]` on one line",
            ),
            Self::BadBase64 { what } => {
                write!(f, "the {what} is not valid base64: is the key complete and unmodified?")
            }
            Self::Truncated { what } => {
                write!(f, "the key ends inside the {what}: is the key truncated?")
            }
            Self::Malformed { what } => write!(f, "malformed key: {what}"),
            Self::InvalidPublicKey => f.write_str(
                "the 32 bytes of the Ed25519 public key are not a valid curve point: the key is damaged",
            ),
            Self::NotOpenSshPrivateKey => f.write_str(
                "not an OpenSSH private key: expected a `-----BEGIN OPENSSH PRIVATE KEY-----` block \
                 as written by `ssh-keygen -t ed25519`",
            ),
            Self::Encrypted { cipher } => write!(
                f,
                "the private key is encrypted (cipher `{cipher}`) and nobody can type its passphrase here; \
                 remove the passphrase with `ssh-keygen -p -N '' -f FILE`"
            ),
            Self::KeyCount { count } => {
                write!(f, "the private key file holds {count} keys; exactly one is required")
            }
            Self::CheckintMismatch => f.write_str(
                "the two check integers of the private key differ: the key file is damaged",
            ),
            Self::PublicKeyMismatch => f.write_str(
                "the public key stored in the private key file does not belong to its private key: \
                 the key file is damaged",
            ),
        }
    }
}

impl core::error::Error for KeyError {}
