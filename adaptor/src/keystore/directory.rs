//! The local-directory backend of the key store: the WN key pair (`wn`,
//! `wn.pub`) and one key pair per PP (`pp-<SID>`, `pp-<SID>.pub`).
//!
//! Contract: the directory is created with mode 0700 and every file this
//! module writes has mode 0600 and is written whole (temporary file, then
//! rename or link), so a crash never leaves half a key; two processes
//! making the same missing key end with one (the second loads the first's).
//! A private key file that group or others can read is refused (chmod 600
//! it). A missing `.pub` file is written from the private key.

use pp_ssh_key::{PrivateKey, PublicKey};
use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

use super::private_file::{ReadPrivateError, WritePrivateError, read_private, write_private};
use super::{KeyStoreError, WN_KEY_COMMENT, new_pair, parse_pair, public_line};
use crate::sid::Sid;

/// File name of the WN private key (its public half is `wn.pub`).
pub const WN_KEY_NAME: &str = "wn";

/// The key directory.
#[derive(Clone, Debug)]
pub struct DirectoryKeys {
    dir: PathBuf,
}

impl DirectoryKeys {
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

    /// The key pair of PP `sid`, made on first use.
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
                location: self.dir.display().to_string(),
            });
        }
        Ok(self.load_pair(&name)?.public())
    }

    /// The text of PP `sid`'s private key file, as it goes to Trustee.
    pub fn pp_private_key_file(&self, sid: &Sid) -> Result<Zeroizing<String>, KeyStoreError> {
        read_key_file(&self.path(&sid.pp_name())).map(Zeroizing::new)
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
        let pair = new_pair(comment)?;
        match write_private(&self.path(name), pair.private_text.as_bytes(), false) {
            Ok(()) => {}
            // Another process made it meanwhile: its key wins.
            Err(WritePrivateError::Exists { .. }) => return self.load_pair(name),
            Err(error) => return Err(write_error(error)),
        }
        write_private(&self.public_path(name), pair.public_line.as_bytes(), true)
            .map_err(write_error)?;
        Ok(pair.key)
    }

    /// Reads `name`, checks `name.pub` against it when present and writes
    /// `name.pub` when missing.
    fn load_pair(&self, name: &str) -> Result<PrivateKey, KeyStoreError> {
        let private_path = self.path(name);
        let public_path = self.public_path(name);
        let text = read_key_file(&private_path)?;
        let public_text = match fs::read_to_string(&public_path) {
            Ok(line) => Some(line),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(KeyStoreError::Io {
                    action: "read",
                    path: public_path,
                    source,
                });
            }
        };
        let key = parse_pair(
            &text,
            public_text.as_deref(),
            &private_path.display().to_string(),
            &public_path.display().to_string(),
        )?;
        if public_text.is_none() {
            write_private(&public_path, public_line(&key).as_bytes(), true).map_err(write_error)?;
        }
        Ok(key)
    }
}

fn read_key_file(path: &Path) -> Result<String, KeyStoreError> {
    read_private(path).map_err(|error| match error {
        ReadPrivateError::Io { path, source } => KeyStoreError::Io {
            action: "read",
            path,
            source,
        },
        ReadPrivateError::Unprotected(unprotected) => unprotected.into(),
    })
}

fn write_error(error: WritePrivateError) -> KeyStoreError {
    let (action, path, source) = error.into_io_parts();
    KeyStoreError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_wn_key_pair_is_made_once_with_0600_files_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryKeys::open(&dir.path().join("keys")).unwrap();
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
        let store = DirectoryKeys::open(dir.path()).unwrap();
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
    fn a_private_key_file_others_can_read_is_refused_with_the_fix_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryKeys::open(dir.path()).unwrap();
        store.load_or_create_wn().unwrap();
        fs::set_permissions(store.path("wn"), fs::Permissions::from_mode(0o644)).unwrap();
        let error = store.load_wn().unwrap_err().to_string();
        assert!(
            error.contains("0644") && error.contains("chmod 600"),
            "{error}"
        );
    }

    #[test]
    fn two_stores_racing_to_make_the_wn_key_end_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    DirectoryKeys::open(&dir)
                        .unwrap()
                        .load_or_create_wn()
                        .unwrap()
                        .public()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        assert!(keys.iter().all(|key| *key == keys[0]));
        let stored = DirectoryKeys::open(dir.path()).unwrap().load_wn().unwrap();
        assert_eq!(stored.public(), keys[0]);
    }

    #[test]
    fn a_public_key_file_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryKeys::open(dir.path()).unwrap();
        store.load_or_create_wn().unwrap();
        let other = PrivateKey::from_seed([1; 32]);
        fs::write(store.public_path("wn"), public_line(&other)).unwrap();
        assert!(matches!(
            store.load_wn(),
            Err(KeyStoreError::PairMismatch { .. })
        ));
    }
}
