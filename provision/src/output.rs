//! Writing the provisioned files into the output directory.
//!
//! Contract: the directory is created with mode 0700 if missing and must be
//! a real directory (not a symlink); every file is written to a fresh
//! temporary name (O_EXCL, O_NOFOLLOW, mode 0600) and renamed into place,
//! so a reader sees either the old file or the whole new one, and a
//! planted symlink is never followed. Only names from a fixed allowlist are
//! ever written.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// init-data as delivered (the forwarder's `--initdata` default reads it).
pub const INITDATA_FILE: &str = "initdata";
/// init-data decoded: the TOML bytes the digest is computed over.
pub const INITDATA_TOML_FILE: &str = "initdata.toml";
/// The digest in lowercase hex, as cloud-api-adaptor's process-user-data
/// wrote it (no newline).
pub const INITDATA_DIGEST_FILE: &str = "initdata.digest";
/// `[data]` entries of init-data written as they are, as files of the same
/// name (`aa.toml` and `cdh.toml` are written through `guest_components`).
pub const DATA_FILES: [&str; 2] = ["policy.rego", "forwarder.toml"];

/// Why an output file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output directory {path}: {reason}")]
    Directory { path: PathBuf, reason: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Create (0700) or check the output directory.
pub fn prepare_dir(dir: &Path) -> Result<(), OutputError> {
    let fail = |reason: String| OutputError::Directory {
        path: dir.to_owned(),
        reason,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail(e.to_string()))?;
    let metadata = std::fs::symlink_metadata(dir).map_err(|e| fail(e.to_string()))?;
    if !metadata.is_dir() {
        return Err(fail("is not a directory (a symlink?)".to_owned()));
    }
    Ok(())
}

/// Write `contents` to `dir/name` atomically with mode 0600.
pub fn write_file(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf, OutputError> {
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        OutputError::Write {
            path: target.clone(),
            source,
        }
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_written_0600_into_a_0700_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare_dir(&dir).unwrap();
        let path = write_file(&dir, "aa.toml", b"x = 1").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x = 1");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_existing_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "initdata", b"old and long").unwrap();
        write_file(dir.path(), "initdata", b"new").unwrap();
        assert_eq!(std::fs::read(dir.path().join("initdata")).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlinked_output_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(prepare_dir(&link).is_err());
    }
}
