//! configfs-tsm (`/sys/kernel/config/tsm/report`), the kernel's common
//! interface for TEE reports (SNP and TDX alike), and the simulated TEE
//! that mimics one report entry of it.
//!
//! A report entry is a directory holding `provider` (`sev_guest` or
//! `tdx_guest`) and `outblob` (the raw SNP report, or the TDX quote). On a
//! real system [`request_report`] creates an entry, writes 64 bytes of
//! `inblob` (report data: zeros, only HOST_DATA/MRCONFIGID matter here),
//! reads it with [`read_report_entry`] and removes the entry again. A
//! simulated TEE (`--tee sim:DIR`) is such an entry made by hand, read with
//! the same [`read_report_entry`].
//!
//! Contract: reads are bounded by `MAX_EVIDENCE_BYTES`; the entry created
//! by [`request_report`] is removed on every path.

use std::path::{Path, PathBuf};

use super::EvidenceError;
use crate::bounded_read::read_bounded;
use crate::limits::MAX_EVIDENCE_BYTES;

const REPORT_DATA_BYTES: usize = 64;
const MAX_PROVIDER_BYTES: usize = 64;

/// Which TEE produced the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    SevGuest,
    TdxGuest,
}

/// One report as configfs-tsm hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsmReport {
    pub provider: Provider,
    pub outblob: Vec<u8>,
}

/// Read `provider` and `outblob` from a report entry directory.
pub fn read_report_entry(entry: &Path) -> Result<TsmReport, EvidenceError> {
    let read = |name: &str, limit| {
        let path = entry.join(name);
        read_bounded(&path, limit).map_err(|source| EvidenceError::Io { path, source })
    };
    let provider_bytes = read("provider", MAX_PROVIDER_BYTES)?;
    let provider_text = String::from_utf8_lossy(&provider_bytes);
    let provider = match provider_text.trim() {
        "sev_guest" => Provider::SevGuest,
        "tdx_guest" => Provider::TdxGuest,
        other => return Err(EvidenceError::UnknownProvider(other.to_owned())),
    };
    let outblob = read("outblob", MAX_EVIDENCE_BYTES)?;
    Ok(TsmReport { provider, outblob })
}

/// Ask the kernel for a fresh report through the configfs-tsm directory
/// `report_dir` (normally `/sys/kernel/config/tsm/report`).
pub fn request_report(report_dir: &Path) -> Result<TsmReport, EvidenceError> {
    let entry = report_dir.join(format!("pp-provision-{}", std::process::id()));
    std::fs::create_dir(&entry).map_err(|source| EvidenceError::Io {
        path: entry.clone(),
        source,
    })?;
    let entry_guard = RemoveOnDrop(entry.clone());
    let inblob = entry.join("inblob");
    std::fs::write(&inblob, [0u8; REPORT_DATA_BYTES]).map_err(|source| EvidenceError::Io {
        path: inblob,
        source,
    })?;
    let report = read_report_entry(&entry);
    drop(entry_guard);
    report
}

/// configfs entries are removed with rmdir, whatever files they show.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir(&self.0) {
            eprintln!(
                "pp-provision: could not remove configfs-tsm entry {}: {err}",
                self.0.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_entry_yields_its_provider_and_blob() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("provider"), "tdx_guest\n").unwrap();
        std::fs::write(dir.path().join("outblob"), [1, 2, 3]).unwrap();
        let report = read_report_entry(dir.path()).unwrap();
        assert_eq!(report.provider, Provider::TdxGuest);
        assert_eq!(report.outblob, [1, 2, 3]);
    }

    #[test]
    fn an_unknown_provider_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("provider"), "arm_cca_guest").unwrap();
        std::fs::write(dir.path().join("outblob"), [0]).unwrap();
        let err = read_report_entry(dir.path()).unwrap_err().to_string();
        assert!(err.contains("arm_cca_guest"), "{err}");
    }

    #[test]
    fn a_missing_outblob_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("provider"), "sev_guest").unwrap();
        let err = read_report_entry(dir.path()).unwrap_err().to_string();
        assert!(err.contains("outblob"), "{err}");
    }
}
