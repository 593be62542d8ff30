//! The forwarder's state in guest memory: the phase record and, once the
//! Kubernetes phase is on, the PP host key and the WN public key.
//!
//! Files under the state directory (default `/run/pp-forwarder`, a tmpfs,
//! i.e. encrypted VM memory under SNP/TDX), all mode 0600, directory 0700,
//! every write atomic (temporary file, fsync, rename, fsync directory):
//! `phase.record` (see `pp_forwarder_core::record`), `pp-host-key` (OpenSSH
//! private key), `wn.pub` (authorized_keys line). The keys are written
//! before the record that says they exist.
//!
//! Contract: `load` never panics on what it finds; anything it cannot trust
//! is an `Err` naming the file, and the caller fails closed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use log::warn;
use pp_forwarder_core::record::{BootId, PhaseRecord, RecordedPhase, parse_boot_id};
use pp_ssh_key::{PrivateKey, PublicKey};

const RECORD_FILE: &str = "phase.record";
const HOST_KEY_FILE: &str = "pp-host-key";
const WN_KEY_FILE: &str = "wn.pub";
const DEADLINE_START_FILE: &str = "attestation-start";
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Key files are small; refuse to read anything bigger.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// The Kubernetes-phase keys.
pub struct PpKeys {
    pub host: PrivateKey,
    pub wn: PublicKey,
}

/// What the state directory says about this boot.
pub enum Loaded {
    /// Nothing recorded for this boot: the attestation phase is open.
    Fresh,
    /// The attestation connection was admitted before a restart.
    Claimed(RecordedPhase),
    /// The Kubernetes phase, with its keys.
    Kubernetes(RecordedPhase, PpKeys),
    /// This boot already failed closed.
    Failed(String),
}

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
        Ok(Self {
            dir: dir.to_owned(),
            boot_id,
        })
    }

    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    pub fn load(&self) -> Result<Loaded, String> {
        let path = self.dir.join(RECORD_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Fresh),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let record = PhaseRecord::parse(&bytes, &self.boot_id)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(record) = record else {
            warn!("{}: record of an earlier boot, ignored", path.display());
            return Ok(Loaded::Fresh);
        };
        Ok(match record.phase {
            RecordedPhase::Failed { reason } => Loaded::Failed(reason),
            phase @ RecordedPhase::AttestationClaimed { .. } => Loaded::Claimed(phase),
            phase @ RecordedPhase::Kubernetes { .. } => {
                let host = read_small(&self.dir.join(HOST_KEY_FILE)).and_then(|t| {
                    PrivateKey::parse(&t).map_err(|e| format!("{HOST_KEY_FILE}: {e}"))
                })?;
                let wn = read_small(&self.dir.join(WN_KEY_FILE)).and_then(|t| {
                    PublicKey::parse(&t).map_err(|e| format!("{WN_KEY_FILE}: {e}"))
                })?;
                Loaded::Kubernetes(phase, PpKeys { host, wn })
            }
        })
    }

    /// When this boot's attestation phase began, in seconds of
    /// CLOCK_BOOTTIME: recorded by the first forwarder process of the boot,
    /// so that restarts (even a crash loop) never stretch the deadline.
    pub fn attestation_start(&self, now: u64) -> Result<u64, String> {
        let path = self.dir.join(DEADLINE_START_FILE);
        let this_boot = hex(&self.boot_id);
        if let Ok(text) = fs::read_to_string(&path) {
            let mut fields = text.split_whitespace();
            if fields.next() == Some(this_boot.as_str()) {
                return fields
                    .next()
                    .and_then(|secs| secs.parse::<u64>().ok())
                    .filter(|secs| *secs <= now)
                    .ok_or_else(|| format!("{} is damaged", path.display()));
            }
        }
        self.write_atomic(
            DEADLINE_START_FILE,
            format!("{this_boot} {now}\n").as_bytes(),
        )?;
        Ok(now)
    }

    pub fn save_phase(&self, phase: RecordedPhase) -> Result<(), String> {
        let record = PhaseRecord {
            boot_id: self.boot_id,
            phase,
        };
        self.write_atomic(RECORD_FILE, &record.emit())
    }

    pub fn save_keys(&self, keys: &PpKeys, checkint: u32) -> Result<(), String> {
        self.write_atomic(HOST_KEY_FILE, keys.host.emit(checkint).as_bytes())?;
        self.write_atomic(WN_KEY_FILE, keys.wn.emit(None).as_bytes())
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_small(path: &Path) -> Result<String, String> {
    let len = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > MAX_KEY_FILE {
        return Err(format!("{} is {len} bytes: not a key file", path.display()));
    }
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as u64 == TMPFS_MAGIC)
}
