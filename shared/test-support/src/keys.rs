//! Keys made with OpenSSH's `ssh-keygen` for the tests (throwaway keys,
//! generated for this purpose only; see testdata/keys).

pub const ED25519_PRIVATE: &str = include_str!("../testdata/keys/ed25519");
pub const ED25519_PUB: &str = include_str!("../testdata/keys/ed25519.pub");
/// `ssh-keygen -lf ed25519.pub` output.
pub const ED25519_FINGERPRINT: &str = include_str!("../testdata/keys/ed25519.fingerprint");
/// Passphrase `secret`.
pub const ED25519_ENCRYPTED: &str = include_str!("../testdata/keys/ed25519-encrypted");
pub const RSA_PRIVATE: &str = include_str!("../testdata/keys/rsa");
pub const RSA_PUB: &str = include_str!("../testdata/keys/rsa.pub");
pub const ECDSA_PUB: &str = include_str!("../testdata/keys/ecdsa.pub");
