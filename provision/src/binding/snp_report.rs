//! The AMD SEV-SNP attestation report (SEV-SNP ABI spec, table "ATTESTATION_REPORT
//! structure"): just enough to take HOST_DATA out of it.
//!
//! Contract: [`host_data`] takes untrusted bytes (from `/dev/sev-guest`,
//! configfs-tsm or a simulation directory) and never panics. It checks the
//! length (at least the 1184-byte report), the version (2 to 5) and the
//! signature algorithm (1, ECDSA P-384 with SHA-384) so that a truncated or
//! garbage blob is refused instead of read as HOST_DATA. The signature is
//! NOT verified here: the value only matters to the relying party (Trustee),
//! which verifies the report; this check stops a PP from using init-data
//! that its launch did not commit to.

/// Size of the report structure (the kernel hands out exactly this).
pub const REPORT_BYTES: usize = 0x4A0;
/// HOST_DATA: 32 bytes supplied by the host at launch.
pub const HOST_DATA_OFFSET: usize = 0xC0;
pub const HOST_DATA_BYTES: usize = 32;
const SIGNATURE_ALGO_OFFSET: usize = 0x34;
const SIGNATURE_ALGO_ECDSA_P384_SHA384: u32 = 1;
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;

/// Why a blob is not a usable SNP report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnpReportError {
    #[error(
        "SNP report is {0} bytes, shorter than the {REPORT_BYTES}-byte report structure (truncated?)"
    )]
    Truncated(usize),
    #[error(
        "SNP report version {0} is not supported (expected 2 to 5); is this really an SNP report?"
    )]
    UnsupportedVersion(u32),
    #[error(
        "SNP report signature algorithm {0} is not ECDSA P-384 (1); is this really an SNP report?"
    )]
    UnexpectedSignatureAlgorithm(u32),
}

/// HOST_DATA from a raw SNP attestation report.
pub fn host_data(report: &[u8]) -> Result<[u8; HOST_DATA_BYTES], SnpReportError> {
    let report = report
        .get(..REPORT_BYTES)
        .ok_or(SnpReportError::Truncated(report.len()))?;
    let le_u32 = |offset: usize| {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(&report[offset..offset + 4]);
        u32::from_le_bytes(bytes)
    };
    let version = le_u32(0);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(SnpReportError::UnsupportedVersion(version));
    }
    let algorithm = le_u32(SIGNATURE_ALGO_OFFSET);
    if algorithm != SIGNATURE_ALGO_ECDSA_P384_SHA384 {
        return Err(SnpReportError::UnexpectedSignatureAlgorithm(algorithm));
    }
    let mut host_data = [0u8; HOST_DATA_BYTES];
    host_data.copy_from_slice(&report[HOST_DATA_OFFSET..HOST_DATA_OFFSET + HOST_DATA_BYTES]);
    Ok(host_data)
}

/// Build a report with the given HOST_DATA (tests and the simulated TEE
/// fixtures): version 3, ECDSA P-384, everything else zero.
pub fn synthetic_report(host_data: &[u8; HOST_DATA_BYTES]) -> Vec<u8> {
    let mut report = vec![0u8; REPORT_BYTES];
    report[0..4].copy_from_slice(&3u32.to_le_bytes());
    report[SIGNATURE_ALGO_OFFSET..SIGNATURE_ALGO_OFFSET + 4]
        .copy_from_slice(&SIGNATURE_ALGO_ECDSA_P384_SHA384.to_le_bytes());
    report[HOST_DATA_OFFSET..HOST_DATA_OFFSET + HOST_DATA_BYTES].copy_from_slice(host_data);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_data_is_read_from_offset_0xc0() {
        let report = synthetic_report(&[0xAB; 32]);
        assert_eq!(host_data(&report).unwrap(), [0xAB; 32]);
    }

    #[test]
    fn a_truncated_report_is_refused() {
        let report = synthetic_report(&[1; 32]);
        assert_eq!(
            host_data(&report[..REPORT_BYTES - 1]),
            Err(SnpReportError::Truncated(REPORT_BYTES - 1))
        );
        assert_eq!(host_data(&[]), Err(SnpReportError::Truncated(0)));
    }

    #[test]
    fn garbage_is_refused_by_its_version_or_algorithm() {
        assert_eq!(
            host_data(&[0xFF; REPORT_BYTES]),
            Err(SnpReportError::UnsupportedVersion(u32::MAX))
        );
        let mut report = synthetic_report(&[1; 32]);
        report[SIGNATURE_ALGO_OFFSET] = 7;
        assert_eq!(
            host_data(&report),
            Err(SnpReportError::UnexpectedSignatureAlgorithm(7))
        );
    }
}
