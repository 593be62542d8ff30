//! The adaptor's key directory: the WN key pair shared by all PPs (`wn`,
//! `wn.pub`) and one key pair per PP (`pp-<SID>`, `pp-<SID>.pub`), all in
//! the OpenSSH formats of `pp_ssh_key`.
//!
//! Contract: the directory is created with mode 0700 and every file this
//! module writes has mode 0600 and is written whole (temporary file, then
//! rename), so a crash never leaves half a key. Keys made by
//! `ssh-keygen -t ed25519` (unencrypted) are accepted as they are. New keys
//! come from the OS RNG. The private key file is the source of truth: a
//! public key is always derived from it, and a `.pub` file that disagrees
//! is an error.

use pp_ssh_key::{KeyError, PrivateKey, PublicKey};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::sid::Sid;

/// File name of the WN private key (its public half is `wn.pub`).
pub const WN_KEY_NAME: &str = "wn";
/// Comment written into the WN public key line.
const WN_KEY_COMMENT: &str = "peerpod-wn";

/// What went wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable key: {source}")]
    BadKey { path: PathBuf, source: KeyError },
    #[error(
        "{public} does not belong to the private key {private}: remove the stale .pub file or restore the pair"
    )]
    PairMismatch { private: PathBuf, public: PathBuf },
    #[error("the OS random number generator failed: {reason}")]
    Random { reason: String },
    #[error("no key pair for pp {sid} in {dir}: run `pp-adaptor pp create --sid {sid}` first")]
    MissingPpKey { sid: Sid, dir: PathBuf },
}

/// The key directory.
#[derive(Clone, Debug)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Opens `dir`, creating it (mode 0700) when missing.
    pub fn open(dir: &Path) -> Result<Self, KeyStoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KeyStoreError::Io {
                action: "create the key directory",
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The WN key pair, made on first use.
    pub fn load_or_create_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        self.load_or_create(WN_KEY_NAME, WN_KEY_COMMENT)
    }

    /// The WN key pair; an error when it was never made.
    pub fn load_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        self.load_pair(WN_KEY_NAME)
    }

    /// The key pair of PP `sid`, made on first use (so `pp create` can be
    /// repeated and re-registers the same key).
    pub fn load_or_create_pp(&self, sid: &Sid) -> Result<PrivateKey, KeyStoreError> {
        let name = sid.pp_name();
        self.load_or_create(&name, &name)
    }

    /// The public key PP `sid` must show in the Kubernetes phase.
    pub fn pp_public_key(&self, sid: &Sid) -> Result<PublicKey, KeyStoreError> {
        let name = sid.pp_name();
        if !self.path(&name).exists() {
            return Err(KeyStoreError::MissingPpKey {
                sid: sid.clone(),
                dir: self.dir.clone(),
            });
        }
        Ok(self.load_pair(&name)?.public())
    }

    /// The text of PP `sid`'s private key file, as it goes to Trustee.
    pub fn pp_private_key_file(
        &self,
        sid: &Sid,
    ) -> Result<zeroize::Zeroizing<String>, KeyStoreError> {
        read(&self.path(&sid.pp_name())).map(zeroize::Zeroizing::new)
    }

    /// Removes PP `sid`'s key pair; missing files are not an error.
    pub fn remove_pp(&self, sid: &Sid) -> Result<(), KeyStoreError> {
        let name = sid.pp_name();
        for path in [self.path(&name), self.public_path(&name)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(KeyStoreError::Io {
                        action: "remove",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn public_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pub"))
    }

    fn load_or_create(&self, name: &str, comment: &str) -> Result<PrivateKey, KeyStoreError> {
        if self.path(name).exists() {
            return self.load_pair(name);
        }
        let key = generate(comment)?;
        let checkint = getrandom::u32().map_err(|error| KeyStoreError::Random {
            reason: error.to_string(),
        })?;
        write_private_file(&self.path(name), key.emit(checkint).as_bytes())?;
        write_private_file(&self.public_path(name), public_line(&key).as_bytes())?;
        Ok(key)
    }

    /// Reads `name`, checks `name.pub` against it when present and writes
    /// `name.pub` when missing.
    fn load_pair(&self, name: &str) -> Result<PrivateKey, KeyStoreError> {
        let private_path = self.path(name);
        let text = read(&private_path)?;
        let key = PrivateKey::parse(&text).map_err(|source| KeyStoreError::BadKey {
            path: private_path.clone(),
            source,
        })?;
        warn_when_readable_by_others(&private_path);
        let public_path = self.public_path(name);
        if public_path.exists() {
            let line = read(&public_path)?;
            let public = PublicKey::parse(&line).map_err(|source| KeyStoreError::BadKey {
                path: public_path.clone(),
                source,
            })?;
            if public != key.public() {
                return Err(KeyStoreError::PairMismatch {
                    private: private_path,
                    public: public_path,
                });
            }
        } else {
            write_private_file(&public_path, public_line(&key).as_bytes())?;
        }
        Ok(key)
    }
}

/// The authorized_keys line of `key`'s public half, with a trailing newline.
pub fn public_line(key: &PrivateKey) -> String {
    let comment = Some(key.comment()).filter(|comment| !comment.is_empty());
    format!("{}\n", key.public().emit(comment))
}

fn generate(comment: &str) -> Result<PrivateKey, KeyStoreError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|error| KeyStoreError::Random {
        reason: error.to_string(),
    })?;
    Ok(PrivateKey::from_seed(*seed).with_comment(comment))
}

fn read(path: &Path) -> Result<String, KeyStoreError> {
    fs::read_to_string(path).map_err(|source| KeyStoreError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

fn warn_when_readable_by_others(path: &Path) {
    if let Ok(metadata) = fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "private key file is readable by group or others; chmod 600 it");
    }
}

/// Writes `bytes` to `path` with mode 0600, through a temporary file and a
/// rename so that readers never see a partial file.
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let temporary = path.with_extension("tmp");
    let io_error = |action, source| KeyStoreError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|source| io_error("create", source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error("write", source))?;
    fs::rename(&temporary, path).map_err(|source| io_error("rename into place", source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_wn_key_pair_is_made_once_with_0600_files_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(&dir.path().join("keys")).unwrap();
        let first = store.load_or_create_wn().unwrap();
        assert_eq!(mode(&store.path("wn")), 0o600);
        assert_eq!(mode(&store.path("wn.pub")), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        let second = store.load_or_create_wn().unwrap();
        assert_eq!(first.public(), second.public());
        let line = fs::read_to_string(store.path("wn.pub")).unwrap();
        assert_eq!(PublicKey::parse(&line).unwrap(), first.public());
    }

    #[test]
    fn each_pp_gets_its_own_key_pair_named_after_its_sid_and_removal_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let (a, b) = (Sid::parse("a").unwrap(), Sid::parse("b").unwrap());
        let key_a = store.load_or_create_pp(&a).unwrap();
        let key_b = store.load_or_create_pp(&b).unwrap();
        assert_ne!(key_a.public(), key_b.public());
        assert_eq!(store.pp_public_key(&a).unwrap(), key_a.public());
        assert_eq!(mode(&dir.path().join("pp-a")), 0o600);
        store.remove_pp(&a).unwrap();
        assert!(!dir.path().join("pp-a").exists() && !dir.path().join("pp-a.pub").exists());
        assert!(matches!(
            store.pp_public_key(&a),
            Err(KeyStoreError::MissingPpKey { .. })
        ));
        store.remove_pp(&a).unwrap();
    }

    #[test]
    fn a_public_key_file_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        store.load_or_create_wn().unwrap();
        let other = PrivateKey::from_seed([1; 32]);
        fs::write(store.public_path("wn"), public_line(&other)).unwrap();
        assert!(matches!(
            store.load_wn(),
            Err(KeyStoreError::PairMismatch { .. })
        ));
    }
}
