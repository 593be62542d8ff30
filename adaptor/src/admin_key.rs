//! Loading the Ed25519 admin key that signs Trustee admin tokens.
//!
//! Contract: [`load_admin_key`] accepts the two forms operators have: PKCS#8
//! PEM (`-----BEGIN PRIVATE KEY-----`, what Trustee's docs make with
//! `openssl genpkey -algorithm ed25519`) and the OpenSSH private key form
//! (`ssh-keygen -t ed25519`, parsed by `pp_ssh_key`). Anything
//! else is an error naming the file and the expected forms. A file that
//! group or others can access is refused (chmod 600; `defaultMode: 0400`
//! on a Secret volume).
//!
//! [`AdminKey::watch_file`] keeps following the file: each
//! [`AdminKey::current`] looks at it again (following symlinks, so a
//! mounted Kubernetes Secret whose `..data` link kubelet swaps on update
//! counts as changed) and loads it when its inode, size or modification
//! time changed, so a rotated admin key is used from the next admin call
//! on, without a restart. A changed file that cannot be used is logged
//! (once per change) and the last good key stays in use.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use pp_ssh_key::PrivateKey;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::keystore::private_file::{ReadPrivateError, UnprotectedFile, read_private};

const PKCS8_PEM_LABEL: &str = "-----BEGIN PRIVATE KEY-----";
const OPENSSH_LABEL: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// Why the admin key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    #[error("cannot read the Trustee admin key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Trustee admin key {path} is not a PKCS#8 Ed25519 key ({reason}); make one with \
         `openssl genpkey -algorithm ed25519`"
    )]
    Pkcs8 { path: PathBuf, reason: String },
    #[error("the Trustee admin key {path} is not a usable OpenSSH Ed25519 key: {source}")]
    OpenSsh {
        path: PathBuf,
        source: pp_ssh_key::KeyError,
    },
    #[error("the Trustee admin key: {0}")]
    Unprotected(UnprotectedFile),
    #[error(
        "the Trustee admin key {path} is neither PKCS#8 PEM (`{PKCS8_PEM_LABEL}`) nor an OpenSSH \
         private key (`{OPENSSH_LABEL}`)"
    )]
    UnknownForm { path: PathBuf },
}

/// Parses an admin key from its text; `path` only names it in errors.
pub fn parse_admin_key(text: &str, path: &Path) -> Result<SigningKey, AdminKeyError> {
    if text.contains(PKCS8_PEM_LABEL) {
        SigningKey::from_pkcs8_pem(text).map_err(|error| AdminKeyError::Pkcs8 {
            path: path.to_owned(),
            reason: error.to_string(),
        })
    } else if text.contains(OPENSSH_LABEL) {
        let key = PrivateKey::parse(text).map_err(|source| AdminKeyError::OpenSsh {
            path: path.to_owned(),
            source,
        })?;
        Ok(SigningKey::from_bytes(key.seed()))
    } else {
        Err(AdminKeyError::UnknownForm {
            path: path.to_owned(),
        })
    }
}

/// Reads and parses the admin key file at `path`.
pub fn load_admin_key(path: &Path) -> Result<SigningKey, AdminKeyError> {
    let text = read_private(path).map_err(|error| match error {
        ReadPrivateError::Io { path, source } => AdminKeyError::Read { path, source },
        ReadPrivateError::Unprotected(unprotected) => AdminKeyError::Unprotected(unprotected),
    })?;
    parse_admin_key(&text, path)
}

/// The admin key the token signer uses: fixed, or a file followed for
/// rotation.
pub struct AdminKey(Source);

enum Source {
    Fixed(SigningKey),
    File {
        path: PathBuf,
        loaded: Mutex<Loaded>,
    },
}

struct Loaded {
    key: SigningKey,
    /// The file as the key was loaded from it (or as last refused).
    seen: Option<FileStamp>,
}

/// What says that a file changed: kubelet's atomic update swaps in a new
/// file (new inode), an editor rewrites it (new size or time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
}

fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|metadata| FileStamp {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.len(),
        modified: (metadata.mtime(), metadata.mtime_nsec()),
    })
}

impl From<SigningKey> for AdminKey {
    fn from(key: SigningKey) -> Self {
        Self(Source::Fixed(key))
    }
}

impl AdminKey {
    /// Loads the key at `path` now (an error when it is not usable) and
    /// follows the file from then on.
    pub fn watch_file(path: &Path) -> Result<Self, AdminKeyError> {
        let seen = stamp(path);
        let key = load_admin_key(path)?;
        Ok(Self(Source::File {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded { key, seen }),
        }))
    }

    /// The key to sign with now: the file's current key when it changed
    /// and is usable, else the last good one.
    pub fn current(&self) -> SigningKey {
        let (path, loaded) = match &self.0 {
            Source::Fixed(key) => return key.clone(),
            Source::File { path, loaded } => (path, loaded),
        };
        let mut loaded = loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = stamp(path);
        if now != loaded.seen {
            loaded.seen = now;
            match load_admin_key(path) {
                Ok(key) if key.verifying_key() == loaded.key.verifying_key() => {}
                Ok(key) => {
                    tracing::info!(
                        "the Trustee admin key {} changed: signing admin tokens with the new key from now on",
                        path.display()
                    );
                    loaded.key = key;
                }
                Err(error) => tracing::error!(
                    "{error}; still signing admin tokens with the previous admin key"
                ),
            }
        }
        loaded.key.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

    #[test]
    fn a_pkcs8_pem_key_is_accepted() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let parsed = parse_admin_key(&pem, Path::new("admin.pem")).unwrap();
        assert_eq!(parsed.to_bytes(), key.to_bytes());
    }

    #[test]
    fn an_openssh_key_is_accepted() {
        let key = PrivateKey::from_seed([4; 32]);
        let parsed = parse_admin_key(&key.emit(7), Path::new("admin")).unwrap();
        assert_eq!(&parsed.to_bytes(), key.seed());
    }

    fn pem(seed: u8) -> String {
        let key = SigningKey::from_bytes(&[seed; 32]);
        key.to_pkcs8_pem(Default::default()).unwrap().to_string()
    }

    #[test]
    fn an_admin_key_others_can_read_is_refused_at_start_with_the_fix_named() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.pem");
        std::fs::write(&path, pem(3)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = AdminKey::watch_file(&path).err().unwrap().to_string();
        assert!(
            error.contains("admin key") && error.contains("0644") && error.contains("defaultMode"),
            "{error}"
        );
    }

    #[test]
    fn other_text_names_the_file_and_both_forms() {
        let error = parse_admin_key("hello", Path::new("/etc/admin.key"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/etc/admin.key")
                && error.contains("PKCS#8")
                && error.contains("OpenSSH"),
            "{error}"
        );
    }
}
