//! Private key files on disk: refusing ones that others can read, and
//! writing them whole with mode 0600.
//!
//! Contract: [`read_private`] reads a file only when its mode (after
//! following symlinks, as kubelet's `..data` links are) gives no access to
//! group or others, as OpenSSH demands of private keys; otherwise it fails
//! with a message naming the file, its mode and the fix.
//! [`write_private`] writes through a temporary file and a rename (or, with
//! `replace: false`, a hard link that fails when the name exists), so
//! readers never see a partial file and a concurrent writer never
//! overwrites a key another process made.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A private key file group or others may access.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} has mode {mode:04o}: a private key must not be accessible by group or others; \
     run `chmod 600 {path}` (for a Kubernetes Secret volume set defaultMode: 0400)"
)]
pub struct UnprotectedFile {
    pub path: PathBuf,
    pub mode: u32,
}

/// Why a private file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadPrivateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Unprotected(#[from] UnprotectedFile),
}

/// Reads `path` after checking that only its owner can access it.
pub fn read_private(path: &Path) -> Result<String, ReadPrivateError> {
    let io_error = |source| ReadPrivateError::Io {
        path: path.to_owned(),
        source,
    };
    let mode = fs::metadata(path).map_err(io_error)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(UnprotectedFile {
            path: path.to_owned(),
            mode,
        }
        .into());
    }
    fs::read_to_string(path).map_err(io_error)
}

/// Why a private file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WritePrivateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `replace: false` and the name exists.
    #[error("{path} exists already")]
    Exists { path: PathBuf },
}

impl WritePrivateError {
    /// The failed step, the file and the OS error, for callers whose own
    /// error type has one IO variant (`Exists` is `create` + `AlreadyExists`).
    pub fn into_io_parts(self) -> (&'static str, PathBuf, std::io::Error) {
        match self {
            Self::Io {
                action,
                path,
                source,
            } => (action, path, source),
            Self::Exists { path } => ("create", path, std::io::ErrorKind::AlreadyExists.into()),
        }
    }
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file; with
/// `replace` false an existing `path` is left alone ([`WritePrivateError::Exists`]).
pub fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<(), WritePrivateError> {
    // One temporary name per writer (process and call), so concurrent
    // writers never share one.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = PathBuf::from(name);
    let io_error = |action, source| WritePrivateError::Io {
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
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error("write", source))
        .and_then(|()| {
            if replace {
                fs::rename(&temporary, path).map_err(|source| io_error("rename into place", source))
            } else {
                match fs::hard_link(&temporary, path) {
                    Ok(()) => Ok(()),
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(WritePrivateError::Exists {
                            path: path.to_owned(),
                        })
                    }
                    Err(source) => Err(io_error("link into place", source)),
                }
            }
        });
    let _ = fs::remove_file(&temporary);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_or_world_readable_file_is_refused_with_the_fix_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, "secret").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = read_private(&path).unwrap_err().to_string();
            assert!(
                error.contains(&format!("{mode:04o}")) && error.contains("chmod 600"),
                "{error}"
            );
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private(&path).unwrap(), "secret");
        }
    }

    #[test]
    fn writing_without_replace_keeps_the_first_key_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wn");
        write_private(&path, b"first", false).unwrap();
        assert!(matches!(
            write_private(&path, b"second", false),
            Err(WritePrivateError::Exists { .. })
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        write_private(&path, b"third", true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "third");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
