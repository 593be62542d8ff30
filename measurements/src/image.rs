//! `pp-measure image`: every reference value of one built image, written
//! next to it as reference-values.json, rvps-message.json and (with
//! init-data) the two policies and their admin API request bodies.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384};

use crate::error::{Result, bad_input, read_file, write_file};
use crate::initdata::InitDataBinding;
use crate::ovmf::tdvf::{PageAddOrder, TdvfMetadata};
use crate::pe::PeImage;
use crate::reference::{
    MrtdValue, ReferenceValues, SnpValue, TdxBootValues, UkiValues, rvps_message,
};
use crate::snp::SnpLaunch;
use crate::{policy, tdx, uki};

/// The SNP guest shape measured when none is given: one `EPYC-v4` vCPU.
pub const DEFAULT_VCPU_TYPE: &str = "EPYC-v4";

/// One SNP guest shape to measure (vCPU count and QEMU `-cpu` model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpShape {
    pub vcpus: u32,
    pub vcpu_type: String,
}

impl std::str::FromStr for SnpShape {
    type Err = String;

    /// `COUNTxTYPE`, e.g. `2xEPYC-Milan`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (count, vcpu_type) = text
            .split_once('x')
            .ok_or_else(|| format!("{text:?} is not COUNTxTYPE (e.g. 2xEPYC-Milan)"))?;
        let vcpus = count
            .parse()
            .map_err(|_| format!("{count:?} is not a vCPU count"))?;
        Ok(Self {
            vcpus,
            vcpu_type: vcpu_type.to_string(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ImageInputs {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub uki: Option<PathBuf>,
    pub snp_firmware: Option<PathBuf>,
    pub snp_shapes: Vec<SnpShape>,
    pub guest_features: u64,
    pub vmm: String,
    pub tdx_firmware: Option<PathBuf>,
    pub init_data: Option<PathBuf>,
    pub platform_values: Option<PathBuf>,
}

fn authenticode(role: &str, bytes: &[u8]) -> Result<([u8; 48], [u8; 32])> {
    let pe = PeImage::parse(role, bytes)?;
    let sha384: [u8; 48] = pe.authenticode::<Sha384>().into();
    let sha256: [u8; 32] = pe.authenticode::<Sha256>().into();
    Ok((sha384, sha256))
}

impl ImageInputs {
    /// Computes every value the inputs allow.
    pub fn measure(&self) -> Result<ReferenceValues> {
        let mut values = ReferenceValues::default();
        let mut record = |role: &str, path: &Path, bytes: &[u8]| {
            values.inputs.files.insert(
                role.to_string(),
                json!({"path": path.display().to_string(), "sha256": hex::encode(Sha256::digest(bytes)), "size": bytes.len()}),
            );
        };
        let kernel = self
            .kernel
            .as_ref()
            .map(|p| read_file("kernel", p).map(|b| (p, b)))
            .transpose()?;
        let initrd = self
            .initrd
            .as_ref()
            .map(|p| read_file("initrd", p).map(|b| (p, b)))
            .transpose()?;
        let uki_file = self
            .uki
            .as_ref()
            .map(|p| read_file("UKI", p).map(|b| (p, b)))
            .transpose()?;
        for (role, file) in [("kernel", &kernel), ("initrd", &initrd), ("uki", &uki_file)] {
            if let Some((path, bytes)) = file {
                record(role, path, bytes);
            }
        }
        let kernel_authenticode = kernel
            .as_ref()
            .map(|(_, bytes)| authenticode("kernel", bytes))
            .transpose()?;
        values.inputs.cmdline = kernel.as_ref().map(|_| self.cmdline.clone());
        values.kernel_authenticode_sha384 =
            kernel_authenticode.map(|(sha384, _)| hex::encode(sha384));

        if let Some(firmware) = &self.snp_firmware {
            if self.snp_shapes.is_empty() {
                return Err(bad_input(
                    "--snp-vcpus",
                    "give at least one COUNTxTYPE with --snp-firmware",
                ));
            }
            for shape in &self.snp_shapes {
                let launch = SnpLaunch {
                    firmware: firmware.clone(),
                    kernel: self.kernel.clone(),
                    initrd: self.initrd.clone(),
                    cmdline: self.kernel.as_ref().map(|_| self.cmdline.clone()),
                    vcpus: shape.vcpus,
                    vcpu_type: shape.vcpu_type.clone(),
                    guest_features: self.guest_features,
                    vmm: self.vmm.clone(),
                };
                values.snp.push(SnpValue {
                    vcpus: shape.vcpus,
                    vcpu_type: shape.vcpu_type.clone(),
                    guest_features: format!("{:#x}", self.guest_features),
                    vmm: self.vmm.clone(),
                    launch_measurement: hex::encode(launch.launch_digest()?),
                });
            }
        }

        if let Some(firmware) = &self.tdx_firmware {
            let image = read_file("TDX firmware", firmware)?;
            let metadata = TdvfMetadata::parse(&image)?;
            values.tdx_mr_td = PageAddOrder::ALL
                .iter()
                .map(|order| MrtdValue {
                    page_add_order: order.label(),
                    mr_td: hex::encode(metadata.mrtd(*order)),
                })
                .collect();
            if let Some((kernel_sha384, _)) = kernel_authenticode {
                let boot = tdx::DirectBoot::new(
                    kernel_sha384,
                    &self.cmdline,
                    initrd.as_ref().map(|(_, bytes)| bytes.as_slice()),
                );
                values.tdx_direct_boot = Some(TdxBootValues {
                    rtmr_1: hex::encode(boot.rtmr1),
                    rtmr_2: Some(hex::encode(boot.rtmr2)),
                    tdvfkernel: hex::encode(boot.kernel_event),
                    tdvfkernelparams: Some(hex::encode(boot.kernel_params_event)),
                });
            }
        }

        if let Some((_, bytes)) = &uki_file {
            let pe = PeImage::parse("UKI", bytes)?;
            let (uki_sha384, uki_sha256) = authenticode("UKI", bytes)?;
            let stub_version = uki::stub_version(&pe)?;
            values.uki = Some(UkiValues {
                stub_version,
                authenticode_sha256: hex::encode(uki_sha256),
                authenticode_sha384: hex::encode(uki_sha384),
                pcr11: uki::pcr11(&pe)?,
            });
            if self.tdx_firmware.is_some() {
                let embedded = pe
                    .section(b".linux")
                    .map(|section| pe.section_in_memory(section))
                    .ok_or_else(|| bad_input("UKI", "no .linux section"))?;
                let (embedded_sha384, _) =
                    authenticode("kernel in the UKI's .linux section", &embedded)?;
                values.tdx_uki_boot = Some(TdxBootValues {
                    rtmr_1: hex::encode(tdx::rtmr1(&[uki_sha384, embedded_sha384])),
                    rtmr_2: None,
                    tdvfkernel: hex::encode(uki_sha384),
                    tdvfkernelparams: None,
                });
            }
        }

        if let Some(path) = &self.init_data {
            let toml = read_file("init-data", path)?;
            values.init_data = Some(InitDataBinding::from_toml(&toml)?);
        }
        Ok(values)
    }

    /// Measures and writes the output files into `out`; returns their paths.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>> {
        let values = self.measure()?;
        let platform = match &self.platform_values {
            Some(path) => platform_values(path)?,
            None => Map::new(),
        };
        std::fs::create_dir_all(out).map_err(|source| crate::error::MeasureError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        let mut emit = |name: &str, contents: String| -> Result<()> {
            let path = out.join(name);
            write_file(&path, contents.as_bytes())?;
            written.push(path);
            Ok(())
        };
        emit(
            "reference-values.json",
            pretty(&serde_json::to_value(&values).unwrap_or_default()),
        )?;
        emit(
            "rvps-message.json",
            pretty(&rvps_message(&values.rvps_payload(&platform))),
        )?;
        if let Some(binding) = &values.init_data {
            let claims = binding.claim_values();
            let attestation = policy::attestation_policy(&claims);
            let resource = policy::resource_policy(&claims);
            emit(
                "attestation-policy.json",
                pretty(&policy::attestation_policy_request(&attestation)),
            )?;
            emit(
                "resource-policy.json",
                pretty(&policy::resource_policy_request(&resource)),
            )?;
            emit("attestation-policy.rego", attestation)?;
            emit("resource-policy.rego", resource)?;
        }
        Ok(written)
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The operator's platform reference values: a JSON object of RVPS names.
pub fn platform_values(path: &Path) -> Result<Map<String, Value>> {
    let bytes = read_file("platform values", path)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_input(
            "platform values",
            "must be a JSON object of reference value names",
        )),
        Err(error) => Err(bad_input("platform values", format!("not JSON: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_count_x_type() {
        assert_eq!(
            "2xEPYC-Milan".parse(),
            Ok(SnpShape {
                vcpus: 2,
                vcpu_type: "EPYC-Milan".into()
            })
        );
        assert!("EPYC".parse::<SnpShape>().is_err());
    }
}
