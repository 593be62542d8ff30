//! The binding check: is the init-data we were handed the init-data this
//! TEE was launched with?
//!
//! SNP: the host sets HOST_DATA (32 bytes) at launch; TDX: MRCONFIGID (48
//! bytes). Both hold the init-data digest (computed with the init-data's own
//! algorithm) zero-padded or truncated to the register's size. vTPM
//! platforms have no such register: the digest is extended into PCR 8 and
//! the verifier checks it there ([`tpm`]).
//!
//! Contract: [`detect`] only looks at which device files exist;
//! [`read_launch_value`] fails (never guesses) on unreadable, truncated or
//! garbage evidence; [`check`] compares in full and on mismatch returns both
//! values so the caller can log them.

pub mod configfs_tsm;
pub mod snp_report;
pub mod tdx_quote;
pub mod tpm;

use std::path::{Path, PathBuf};

use crate::bounded_read::read_bounded;
use configfs_tsm::{Provider, TsmReport};
use pp_initdata as initdata;

/// The launch register a TEE binds init-data to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    SnpHostData,
    TdxMrConfigId,
}

impl Register {
    pub fn name(self) -> &'static str {
        match self {
            Register::SnpHostData => "SNP HOST_DATA",
            Register::TdxMrConfigId => "TDX MRCONFIGID",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Register::SnpHostData => snp_report::HOST_DATA_BYTES,
            Register::TdxMrConfigId => tdx_quote::MR_CONFIG_ID_BYTES,
        }
    }
}

/// The value a launch register holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchValue {
    pub register: Register,
    pub value: Vec<u8>,
}

/// Where the launch register's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchSource {
    /// `/dev/sev-guest`: SNP_GET_REPORT through the `sev` crate.
    SevGuestDevice,
    /// `/sys/devices/virtual/misc/tdx_guest/measurements/mrconfigid`
    /// (Linux ≥ 6.16): the 48 raw bytes.
    TdxSysfs(PathBuf),
    /// A configfs-tsm report directory; the provider says SNP or TDX.
    ConfigfsTsm(PathBuf),
    /// A hand-made configfs-tsm report entry (`--tee sim:DIR`).
    Simulated(PathBuf),
}

/// What kind of binding this machine offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    Launch(LaunchSource),
    Vtpm(PathBuf),
    NoTee,
}

/// Where [`detect`] looks; [`SystemPaths::default`] is the real system.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    pub sev_guest: PathBuf,
    pub tdx_mr_config_id: PathBuf,
    pub tsm_report: PathBuf,
    pub tpm: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        SystemPaths {
            sev_guest: PathBuf::from("/dev/sev-guest"),
            tdx_mr_config_id: PathBuf::from(
                "/sys/devices/virtual/misc/tdx_guest/measurements/mrconfigid",
            ),
            tsm_report: PathBuf::from("/sys/kernel/config/tsm/report"),
            tpm: PathBuf::from("/dev/tpmrm0"),
        }
    }
}

/// Pick the binding this machine offers, preferring a launch register
/// (TDX sysfs, then `/dev/sev-guest`, then configfs-tsm) over a vTPM.
pub fn detect(paths: &SystemPaths) -> Platform {
    if paths.tdx_mr_config_id.exists() {
        Platform::Launch(LaunchSource::TdxSysfs(paths.tdx_mr_config_id.clone()))
    } else if paths.sev_guest.exists() {
        Platform::Launch(LaunchSource::SevGuestDevice)
    } else if paths.tsm_report.is_dir() {
        Platform::Launch(LaunchSource::ConfigfsTsm(paths.tsm_report.clone()))
    } else if paths.tpm.exists() {
        Platform::Vtpm(paths.tpm.clone())
    } else {
        Platform::NoTee
    }
}

/// Why the launch register could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("/dev/sev-guest: {0}")]
    SevGuest(String),
    #[error("configfs-tsm provider {0:?} is not sev_guest or tdx_guest")]
    UnknownProvider(String),
    #[error(transparent)]
    Snp(#[from] snp_report::SnpReportError),
    #[error(transparent)]
    Tdx(#[from] tdx_quote::TdxQuoteError),
    #[error("{path} holds {got} bytes, expected the 48-byte MRCONFIGID")]
    BadMrConfigIdLength { path: PathBuf, got: usize },
}

/// Read the launch register's value.
pub fn read_launch_value(source: &LaunchSource) -> Result<LaunchValue, EvidenceError> {
    match source {
        LaunchSource::SevGuestDevice => snp_launch_value(&sev_guest_report()?),
        LaunchSource::TdxSysfs(path) => tdx_sysfs_value(path),
        LaunchSource::ConfigfsTsm(dir) => tsm_launch_value(configfs_tsm::request_report(dir)?),
        LaunchSource::Simulated(dir) => tsm_launch_value(configfs_tsm::read_report_entry(dir)?),
    }
}

fn tsm_launch_value(report: TsmReport) -> Result<LaunchValue, EvidenceError> {
    match report.provider {
        Provider::SevGuest => snp_launch_value(&report.outblob),
        Provider::TdxGuest => Ok(LaunchValue {
            register: Register::TdxMrConfigId,
            value: tdx_quote::mr_config_id(&report.outblob)?.to_vec(),
        }),
    }
}

fn snp_launch_value(report: &[u8]) -> Result<LaunchValue, EvidenceError> {
    Ok(LaunchValue {
        register: Register::SnpHostData,
        value: snp_report::host_data(report)?.to_vec(),
    })
}

/// SNP_GET_REPORT through the `sev` crate (which owns the ioctl, so this
/// crate stays free of unsafe code). Report data: zeros.
fn sev_guest_report() -> Result<Vec<u8>, EvidenceError> {
    let mut firmware = sev::firmware::guest::Firmware::open()
        .map_err(|e| EvidenceError::SevGuest(format!("open: {e}")))?;
    firmware
        .get_report(None, Some([0u8; 64]), None)
        .map_err(|e| EvidenceError::SevGuest(format!("SNP_GET_REPORT: {e:?}")))
}

fn tdx_sysfs_value(path: &Path) -> Result<LaunchValue, EvidenceError> {
    let limit = tdx_quote::MR_CONFIG_ID_BYTES;
    let value = read_bounded(path, limit).map_err(|source| EvidenceError::Io {
        path: path.to_owned(),
        source,
    })?;
    if value.len() != limit {
        return Err(EvidenceError::BadMrConfigIdLength {
            path: path.to_owned(),
            got: value.len(),
        });
    }
    Ok(LaunchValue {
        register: Register::TdxMrConfigId,
        value,
    })
}

/// The launch register does not hold this init-data's digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "init-data binding mismatch: {register} is {found_hex} but the init-data {algorithm} digest, sized to {size} bytes, is {expected_hex}"
)]
pub struct BindingMismatch {
    pub register: &'static str,
    pub size: usize,
    pub algorithm: String,
    pub found_hex: String,
    pub expected_hex: String,
}

/// Compare the launch register with `digest` sized to the register by the
/// zero-pad/truncate rule.
pub fn check(launch: &LaunchValue, digest: &[u8], algorithm: &str) -> Result<(), BindingMismatch> {
    let size = launch.register.size();
    let expected = match launch.register {
        Register::SnpHostData => initdata::host_data(digest).to_vec(),
        Register::TdxMrConfigId => initdata::mrconfigid(digest).to_vec(),
    };
    if expected == launch.value {
        Ok(())
    } else {
        Err(BindingMismatch {
            register: launch.register.name(),
            size,
            algorithm: algorithm.to_owned(),
            found_hex: hex::encode(&launch.value),
            expected_hex: hex::encode(&expected),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> SystemPaths {
        SystemPaths {
            sev_guest: root.join("sev-guest"),
            tdx_mr_config_id: root.join("mrconfigid"),
            tsm_report: root.join("tsm"),
            tpm: root.join("tpmrm0"),
        }
    }

    #[test]
    fn detection_prefers_a_launch_register_over_a_vtpm() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert_eq!(detect(&p), Platform::NoTee);
        std::fs::write(&p.tpm, b"").unwrap();
        assert_eq!(detect(&p), Platform::Vtpm(p.tpm.clone()));
        std::fs::create_dir(&p.tsm_report).unwrap();
        assert_eq!(
            detect(&p),
            Platform::Launch(LaunchSource::ConfigfsTsm(p.tsm_report.clone()))
        );
        std::fs::write(&p.sev_guest, b"").unwrap();
        assert_eq!(detect(&p), Platform::Launch(LaunchSource::SevGuestDevice));
        std::fs::write(&p.tdx_mr_config_id, b"").unwrap();
        assert_eq!(
            detect(&p),
            Platform::Launch(LaunchSource::TdxSysfs(p.tdx_mr_config_id.clone()))
        );
    }

    #[test]
    fn a_tdx_sysfs_value_of_the_wrong_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mrconfigid");
        std::fs::write(&path, [0u8; 47]).unwrap();
        assert!(matches!(
            tdx_sysfs_value(&path),
            Err(EvidenceError::BadMrConfigIdLength { got: 47, .. })
        ));
        std::fs::write(&path, [7u8; 48]).unwrap();
        assert_eq!(tdx_sysfs_value(&path).unwrap().value, [7u8; 48]);
    }

    #[test]
    fn a_sha384_digest_matches_host_data_holding_its_first_32_bytes() {
        let digest: Vec<u8> = (0..48).collect();
        let launch = LaunchValue {
            register: Register::SnpHostData,
            value: digest[..32].to_vec(),
        };
        check(&launch, &digest, "sha384").unwrap();
    }

    #[test]
    fn a_sha256_digest_matches_mrconfigid_holding_it_zero_padded() {
        let digest = [9u8; 32];
        let mut value = digest.to_vec();
        value.resize(48, 0);
        let launch = LaunchValue {
            register: Register::TdxMrConfigId,
            value,
        };
        check(&launch, &digest, "sha256").unwrap();
    }

    #[test]
    fn a_mismatch_carries_both_values_in_hex() {
        let launch = LaunchValue {
            register: Register::SnpHostData,
            value: vec![0u8; 32],
        };
        let err = check(&launch, &[0xFF; 32], "sha256").unwrap_err();
        assert_eq!(err.found_hex, "00".repeat(32));
        assert_eq!(err.expected_hex, "ff".repeat(32));
        let line = err.to_string();
        assert!(line.contains("SNP HOST_DATA") && line.contains(&"ff".repeat(32)));
    }
}
