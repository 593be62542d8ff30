//! The forwarder's state in guest memory: the phase record, which in the
//! Kubernetes phase also holds the PP host key and the WN public key, so
//! keys and phase are always one atomic write.
//!
//! Files under the state directory (default `/run/pp-forwarder`, a tmpfs,
//! i.e. encrypted VM memory under SNP/TDX), all mode 0600, directory 0700,
//! every write atomic (temporary file, fsync, rename, fsync directory):
//! `phase.record` (see `pp_forwarder_core::record`) and `failed.spare`, a
//! `Failed` record of this boot written at start. When the directory is
//! full and the real `Failed` record cannot be written, the spare is renamed
//! over `phase.record` (a rename needs no space), so `Failed` always sticks.
//! Temporary files a killed process left behind are removed at start.
//!
//! Contract: `load` never panics on what it finds; anything it cannot trust
//! is an `Err` naming the file, and the caller fails closed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::warn;
use pp_forwarder_core::record::{BootId, PhaseRecord, RecordedPhase, parse_boot_id};

const RECORD_FILE: &str = "phase.record";
const FAILED_SPARE_FILE: &str = "failed.spare";
const TMP_SUFFIX: &str = ".tmp";
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// The reason the spare `Failed` record gives; the real one is in the log.
const SPARE_REASON: &str =
    "failed closed while the state directory was full; the log has the reason";

pub struct Store {
    dir: PathBuf,
    boot_id: BootId,
}

impl Store {
    /// Opens (creating) the state directory and reads this boot's id.
    pub fn open(dir: &Path) -> Result<Self, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict state directory {}: {e}", dir.display()))?;
        if !is_tmpfs(dir) {
            warn!(
                "state directory {} is not a tmpfs: keys would outlive the boot; \
                 use a directory under /run in production",
                dir.display()
            );
        }
        let text = fs::read_to_string(BOOT_ID_PATH)
            .map_err(|e| format!("cannot read {BOOT_ID_PATH}: {e}"))?;
        let boot_id = parse_boot_id(&text).map_err(|e| e.to_string())?;
        Self::at(dir, boot_id)
    }

    /// The store of boot `boot_id` in the existing directory `dir`: removes
    /// leftover temporary files and writes the spare `Failed` record.
    fn at(dir: &Path, boot_id: BootId) -> Result<Self, String> {
        let store = Self {
            dir: dir.to_owned(),
            boot_id,
        };
        store.remove_leftover_temporaries()?;
        if store.spare_is_in_place() {
            return Ok(store);
        }
        let spare = PhaseRecord {
            boot_id,
            phase: RecordedPhase::Failed {
                reason: SPARE_REASON.into(),
            },
        };
        store
            .write_atomic(FAILED_SPARE_FILE, &spare.emit())
            .map_err(|e| {
                format!("cannot reserve space for the Failed record, so refusing to serve: {e}")
            })?;
        Ok(store)
    }

    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    /// This boot's recorded phase; `None` when there is none (or only a
    /// record of an earlier boot).
    pub fn load(&self) -> Result<Option<RecordedPhase>, String> {
        let path = self.dir.join(RECORD_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let record = PhaseRecord::parse(&bytes, &self.boot_id)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if record.is_none() {
            warn!("{}: record of an earlier boot, ignored", path.display());
        }
        Ok(record.map(|record| record.phase))
    }

    /// Writes `record` atomically. A `Failed` record that cannot be written
    /// falls back to the spare written at start.
    pub fn save(&self, record: &PhaseRecord) -> Result<(), String> {
        let written = self.write_atomic(RECORD_FILE, &record.emit());
        match (written, &record.phase) {
            (Err(e), RecordedPhase::Failed { .. }) => {
                warn!("{e}; recording Failed with the spare record");
                fs::rename(self.dir.join(FAILED_SPARE_FILE), self.dir.join(RECORD_FILE))
                    .and_then(|()| File::open(&self.dir)?.sync_all())
                    .map_err(|e| format!("cannot record Failed with the spare record: {e}"))
            }
            (written, _) => written,
        }
    }

    /// Whether an intact spare of this boot is there already (a restart
    /// needs no new space then).
    fn spare_is_in_place(&self) -> bool {
        fs::read(self.dir.join(FAILED_SPARE_FILE)).is_ok_and(|bytes| {
            matches!(
                PhaseRecord::parse(&bytes, &self.boot_id),
                Ok(Some(PhaseRecord {
                    phase: RecordedPhase::Failed { .. },
                    ..
                }))
            )
        })
    }

    fn remove_leftover_temporaries(&self) -> Result<(), String> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(TMP_SUFFIX) {
                warn!(
                    "removing {}, left by an interrupted write",
                    entry.path().display()
                );
                fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}{TMP_SUFFIX}"));
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as u64 == TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_forwarder_core::record::KeyBytes;
    use pp_test_support::tmpfs::SmallTmpfs;

    const BOOT: BootId = [3; 16];

    fn record(phase: RecordedPhase) -> PhaseRecord {
        PhaseRecord {
            boot_id: BOOT,
            phase,
        }
    }

    fn claimed() -> RecordedPhase {
        RecordedPhase::AttestationClaimed {
            conn: 1,
            peer: "192.0.2.1:4000".parse().unwrap(),
            attestation_host_key_fingerprint: "SHA256:x".into(),
        }
    }

    fn failed(reason: &str) -> RecordedPhase {
        RecordedPhase::Failed {
            reason: reason.into(),
        }
    }

    /// A tmpfs of `size` mounted on a fresh directory.
    fn small_tmpfs(size: &str) -> SmallTmpfs {
        let dir = std::env::temp_dir().join(format!(
            "pp-store-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        SmallTmpfs::mount(&dir, size)
    }

    fn rand_suffix() -> u64 {
        let mut bytes = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
        u64::from_ne_bytes(bytes)
    }

    #[test]
    fn failed_sticks_when_the_state_directory_is_full() {
        let tmpfs = small_tmpfs("64k");
        let store = Store::at(tmpfs.path(), BOOT).unwrap();
        store.save(&record(claimed())).unwrap();
        tmpfs.fill();
        assert!(
            store.save(&record(claimed())).is_err(),
            "the file system is full"
        );
        store
            .save(&record(failed("deadline passed")))
            .expect("Failed is always recorded");
        // A restart (same boot) stays failed, even with the disk still full.
        let restarted = Store::at(tmpfs.path(), BOOT).unwrap();
        assert!(matches!(
            restarted.load(),
            Ok(Some(RecordedPhase::Failed { .. }))
        ));
        // And once space is freed, too.
        fs::remove_file(tmpfs.filler()).unwrap();
        let restarted = Store::at(tmpfs.path(), BOOT).unwrap();
        assert!(matches!(
            restarted.load(),
            Ok(Some(RecordedPhase::Failed { .. }))
        ));
    }

    #[test]
    fn keys_and_phase_are_one_record_and_leftover_temporaries_go() {
        let tmpfs = small_tmpfs("1m");
        let store = Store::at(tmpfs.path(), BOOT).unwrap();
        store.save(&record(claimed())).unwrap();
        // A kill in the middle of writing the Kubernetes record leaves its
        // temporary file; the claim is what the restart sees, never keys
        // without their phase.
        fs::write(tmpfs.path().join(".phase.record.tmp"), b"half a rec").unwrap();
        let restarted = Store::at(tmpfs.path(), BOOT).unwrap();
        assert!(!tmpfs.path().join(".phase.record.tmp").exists());
        assert_eq!(restarted.load(), Ok(Some(claimed())));

        let kubernetes = RecordedPhase::Kubernetes {
            attestation_host_key_fingerprint: "SHA256:x".into(),
            attestation_peer: "192.0.2.1:4000".parse().unwrap(),
            keys: KeyBytes {
                host_key_seed: [4; 32],
                wn_key: [5; 32],
            },
        };
        restarted.save(&record(kubernetes.clone())).unwrap();
        let names: Vec<String> = fs::read_dir(tmpfs.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|name| name == RECORD_FILE || name == FAILED_SPARE_FILE),
            "{names:?}"
        );
        assert_eq!(
            Store::at(tmpfs.path(), BOOT).unwrap().load(),
            Ok(Some(kubernetes))
        );
    }
}
