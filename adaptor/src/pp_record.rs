//! What the adaptor must remember about one PP across its own restarts:
//! whether the upgrade was seen, and what it saw of the attestation
//! connection (host key fingerprint and its own TCP address), so that the
//! relay check after the Kubernetes phase still works after a restart.
//!
//! Contract: the record lives in `<state dir>/pp-<SID>.json`, written whole
//! with mode 0600 (temporary file + rename). A missing file is a fresh PP.
//! A damaged file is an error (the adaptor refuses to guess, since guessing
//! "not upgraded" would re-open the attestation phase).

use crate::keystore::private_file::write_private;
use crate::sid::Sid;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// What the adaptor saw on the attestation connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationSighting {
    /// `SHA256:...` of the ephemeral host key.
    pub hostkey_fingerprint: String,
    /// The adaptor's own address of that TCP connection (what the PP should
    /// have seen as its peer).
    pub local_addr: SocketAddr,
}

/// The persisted state of one PP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PpRecord {
    /// The PP sent an acceptable `UPGRADE`: only its own key is accepted now.
    pub upgraded: bool,
    /// The attestation connection the adaptor itself made, once known.
    pub attestation: Option<AttestationSighting>,
    /// A Kubernetes-phase connection was made: the attestation deadline no
    /// longer applies.
    #[serde(default)]
    pub kubernetes_reached: bool,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot {action} the PP state file {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the PP state file {path} is damaged ({reason}); inspect it, or delete the PP and create it again"
    )]
    Damaged { path: PathBuf, reason: String },
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    /// Opens `dir`, creating it (mode 0700) when missing.
    pub fn open(dir: &Path) -> Result<Self, RecordError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| RecordError::Io {
                action: "create the directory of",
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, sid: &Sid) -> PathBuf {
        self.dir.join(format!("{}.json", sid.pp_name()))
    }

    /// The record of `sid`; the default (fresh) one when there is none.
    pub fn load(&self, sid: &Sid) -> Result<PpRecord, RecordError> {
        let path = self.path(sid);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| RecordError::Damaged {
                path,
                reason: error.to_string(),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(PpRecord::default()),
            Err(source) => Err(RecordError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Replaces the record of `sid`.
    pub fn save(&self, sid: &Sid, record: &PpRecord) -> Result<(), RecordError> {
        // A record of plain strings, bools and addresses always serializes.
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        write_whole(&self.path(sid), &bytes)
    }

    /// Forgets `sid` (PP teardown); a missing record is not an error.
    pub fn remove(&self, sid: &Sid) -> Result<(), RecordError> {
        remove_if_present(&self.path(sid))
    }
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a
/// rename, so a crash leaves the old or the new content, never a mix.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    write_private(path, bytes, true).map_err(|error| {
        let (action, path, source) = error.into_io_parts();
        RecordError::Io {
            action,
            path,
            source,
        }
    })
}

/// Removes `path`; a missing file is not an error.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), RecordError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RecordError::Io {
            action: "remove",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_survives_a_reload_and_removal_makes_it_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path()).unwrap();
        let sid = Sid::parse("s1").unwrap();
        assert_eq!(store.load(&sid).unwrap(), PpRecord::default());
        let record = PpRecord {
            upgraded: true,
            kubernetes_reached: true,
            attestation: Some(AttestationSighting {
                hostkey_fingerprint: "SHA256:abc".into(),
                local_addr: "127.0.0.1:40000".parse().unwrap(),
            }),
        };
        store.save(&sid, &record).unwrap();
        assert_eq!(
            RecordStore::open(dir.path()).unwrap().load(&sid).unwrap(),
            record
        );
        store.remove(&sid).unwrap();
        assert_eq!(store.load(&sid).unwrap(), PpRecord::default());
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_fresh_pp() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open(dir.path()).unwrap();
        let sid = Sid::parse("s1").unwrap();
        std::fs::write(dir.path().join("pp-s1.json"), b"{not json").unwrap();
        assert!(matches!(store.load(&sid), Err(RecordError::Damaged { .. })));
    }
}
