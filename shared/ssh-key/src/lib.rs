//! Ed25519 keys in the OpenSSH text formats: `authorized_keys` lines for
//! public keys and `-----BEGIN OPENSSH PRIVATE KEY-----` files for private
//! keys, so that `ssh-keygen -t ed25519` output works everywhere.
//!
//! Contract:
//! * `PublicKey::parse` and `PrivateKey::parse` never panic, whatever the
//!   input; they either return a key that is a valid Ed25519 key or a
//!   [`KeyError`] that says what is wrong and what to check.
//! * A parsed value cannot be invalid: a `PublicKey` is always a valid
//!   curve point, a `PrivateKey`'s public half always matches its seed.
//! * `emit` writes the same formats; what it writes parses back to the same
//!   key, and `ssh-keygen` accepts it.
//! * Secrets are zeroized on drop and never printed by `Debug`.
//! * Only unencrypted Ed25519 keys are supported: the forwarder cannot ask
//!   anyone for a passphrase, and the protocol uses Ed25519 only.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

mod error;
mod private;
mod public;
mod wire;

pub use error::KeyError;
pub use private::PrivateKey;
pub use public::PublicKey;

/// The SSH name of the only key type we accept.
pub const ED25519_KEY_TYPE: &str = "ssh-ed25519";
