//! The SEV-SNP launch digest (the report's MEASUREMENT) of a guest started
//! by QEMU with measured direct boot: firmware pages, metadata pages
//! (including the kernel hashes page QEMU fills from -kernel/-initrd/
//! -append), and one VMSA per vCPU.
//!
//! The digest itself is computed by the `sev` crate
//! (`snp_calc_launch_digest`). Its firmware parser indexes bytes without
//! bounds checks, so every input is first validated here
//! ([`SevMetadata::parse`]); only inputs that pass reach the engine.

use std::path::PathBuf;

use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType};
use sev::parser::Decoder;

use crate::error::{MeasureError, Result, bad_input, read_file};
use crate::ovmf::sev_metadata::SevMetadata;

/// The QEMU `-cpu` models the engine knows VMSA contents for.
pub const VCPU_TYPES: &[&str] = &[
    "EPYC",
    "EPYC-v1",
    "EPYC-v2",
    "EPYC-IBPB",
    "EPYC-v3",
    "EPYC-v4",
    "EPYC-Rome",
    "EPYC-Rome-v1",
    "EPYC-Rome-v2",
    "EPYC-Rome-v3",
    "EPYC-Milan",
    "EPYC-Milan-v1",
    "EPYC-Milan-v2",
    "EPYC-Genoa",
    "EPYC-Genoa-v1",
    "EPYC-Turin",
    "EPYC-Turin-v1",
    "EPYC-Turin-v2",
];
pub const MAX_VCPUS: u32 = 512;

/// What determines an SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpLaunch {
    pub firmware: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    pub vcpus: u32,
    /// A QEMU `-cpu` model from [`VCPU_TYPES`], case-insensitive.
    pub vcpu_type: String,
    /// SEV_FEATURES of the VMSA (QEMU's default is 0x1, SNPActive).
    pub guest_features: u64,
    /// Only `qemu`: for `ec2` the sev crate 8.0.0 and sev-snp-measure
    /// 0.0.13 disagree on the VMSA (RDX), so no value could be trusted.
    pub vmm: String,
}

impl SnpLaunch {
    /// Validates the inputs and computes the 48-byte launch digest.
    pub fn launch_digest(&self) -> Result<[u8; 48]> {
        let vcpu_type = CpuType::try_from(self.vcpu_type.as_str()).map_err(|_| {
            bad_input(
                "--vcpu-type",
                format!(
                    "unknown vCPU type {:?}; known: {}",
                    self.vcpu_type,
                    VCPU_TYPES.join(", ")
                ),
            )
        })?;
        if !self.vmm.eq_ignore_ascii_case("qemu") {
            return Err(bad_input(
                "--vmm",
                format!(
                    "{:?} is not supported: only qemu digests are cross-checked (for ec2 the sev crate and sev-snp-measure disagree on the initial VMSA)",
                    self.vmm
                ),
            ));
        }
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(bad_input(
                "--vcpus",
                format!("{} is not between 1 and {MAX_VCPUS}", self.vcpus),
            ));
        }
        if self.guest_features & 1 == 0 {
            return Err(bad_input(
                "--guest-features",
                "bit 0 (SNPActive) must be set for an SNP guest",
            ));
        }
        if let Some(cmdline) = &self.cmdline
            && cmdline.trim() != cmdline
        {
            return Err(bad_input(
                "--cmdline",
                "has leading or trailing whitespace; QEMU hashes the command line as given but the engine trims it, so the digest would be wrong; remove the whitespace here and in the VMM configuration",
            ));
        }
        if self.kernel.is_none() && (self.initrd.is_some() || self.cmdline.is_some()) {
            return Err(bad_input(
                "--initrd/--cmdline",
                "only measured together with --kernel",
            ));
        }
        let metadata = SevMetadata::parse(&read_file("firmware", &self.firmware)?)?;
        if let Some(kernel) = &self.kernel {
            metadata.require_kernel_hashes()?;
            for (role, path) in [("kernel", Some(kernel)), ("initrd", self.initrd.as_ref())] {
                if let Some(path) = path {
                    std::fs::metadata(path).map_err(|source| MeasureError::Read {
                        role: role.to_string(),
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
        let guest_features =
            GuestFeatures::decode(&mut self.guest_features.to_le_bytes().as_slice(), ())
                .map_err(|error| MeasureError::SnpEngine(error.to_string()))?;
        let digest = snp_calc_launch_digest(SnpMeasurementArgs {
            vcpus: self.vcpus,
            vcpu_type,
            ovmf_file: self.firmware.clone(),
            guest_features,
            kernel_file: self.kernel.clone(),
            initrd_file: self.initrd.clone(),
            append: self.cmdline.as_deref(),
            ovmf_hash_str: None,
            vmm_type: Some(VMMType::QEMU),
        })
        .map_err(|error| MeasureError::SnpEngine(error.to_string()))?;
        let bytes: Vec<u8> = digest
            .try_into()
            .map_err(|error: sev::error::MeasurementError| {
                MeasureError::SnpEngine(error.to_string())
            })?;
        bytes
            .try_into()
            .map_err(|_| MeasureError::SnpEngine("the launch digest is not 48 bytes".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::firmware::FirmwareBuilder;

    fn launch(dir: &tempfile::TempDir, builder: FirmwareBuilder) -> SnpLaunch {
        let firmware = dir.path().join("OVMF.fd");
        std::fs::write(&firmware, builder.build()).unwrap();
        SnpLaunch {
            firmware,
            kernel: None,
            initrd: None,
            cmdline: None,
            vcpus: 1,
            vcpu_type: "EPYC-v4".into(),
            guest_features: 1,
            vmm: "qemu".into(),
        }
    }

    #[test]
    fn the_digest_changes_with_the_vcpu_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = launch(&dir, FirmwareBuilder::snp_with_kernel_hashes());
        let one = inputs.launch_digest().unwrap();
        inputs.vcpus = 2;
        assert_ne!(one, inputs.launch_digest().unwrap());
    }

    #[test]
    fn an_unknown_vcpu_type_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = launch(&dir, FirmwareBuilder::snp_with_kernel_hashes());
        inputs.vcpu_type = "EPYC-Zen9".into();
        let error = inputs.launch_digest().unwrap_err().to_string();
        assert!(
            error.contains("unknown vCPU type") && error.contains("EPYC-Milan"),
            "{error}"
        );
    }

    #[test]
    fn a_kernel_with_a_firmware_lacking_kernel_hashes_names_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = launch(&dir, FirmwareBuilder::snp_without_kernel_hashes());
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"kernel").unwrap();
        inputs.kernel = Some(kernel);
        let error = inputs.launch_digest().unwrap_err().to_string();
        assert!(error.contains("SNP_KERNEL_HASHES"), "{error}");
    }

    #[test]
    fn a_firmware_without_metadata_is_refused_before_the_engine_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = launch(&dir, FirmwareBuilder::tdx_only());
        let error = inputs.launch_digest().unwrap_err().to_string();
        assert!(error.contains("no SEV metadata"), "{error}");
    }

    #[test]
    fn a_vmm_other_than_qemu_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = launch(&dir, FirmwareBuilder::snp_with_kernel_hashes());
        inputs.vmm = "ec2".into();
        assert!(
            inputs
                .launch_digest()
                .unwrap_err()
                .to_string()
                .contains("only qemu")
        );
    }

    #[test]
    fn a_cmdline_with_surrounding_whitespace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = launch(&dir, FirmwareBuilder::snp_with_kernel_hashes());
        inputs.kernel = Some(dir.path().join("OVMF.fd"));
        inputs.cmdline = Some("console=ttyS0 ".into());
        assert!(
            inputs
                .launch_digest()
                .unwrap_err()
                .to_string()
                .contains("whitespace")
        );
    }
}
