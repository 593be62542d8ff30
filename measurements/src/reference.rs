//! The reference values of one image (reference-values.json) and the
//! Trustee RVPS message that publishes them under the names Trustee's
//! default CPU attestation policy looks up.
//!
//! RVPS "sample" message: `{"version":"0.1.0","type":"sample","payload":
//! "<std base64 of {name: value, ...}>"}`; each key becomes one reference
//! value. Names used: `snp_launch_measurement`, `mr_td`, `rtmr_1`, `rtmr_2`
//! (lists), `tdvfkernel`, `tdvfkernelparams` (scalars), `snp_pcr11`,
//! `tdx_pcr11` (lists); platform values (`snp_bootloader`, `xfam`, ...) are
//! merged in from the operator's file, since they describe hosts, not the
//! image.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::initdata::InitDataBinding;
use crate::uki::PhaseValue;

#[derive(Debug, Clone, Serialize)]
pub struct SnpValue {
    pub vcpus: u32,
    pub vcpu_type: String,
    pub guest_features: String,
    pub vmm: String,
    pub launch_measurement: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MrtdValue {
    pub page_add_order: &'static str,
    pub mr_td: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TdxBootValues {
    pub rtmr_1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmr_2: Option<String>,
    pub tdvfkernel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdvfkernelparams: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UkiValues {
    pub stub_version: u32,
    /// What UEFI firmware extends PCR 4 with (an
    /// EV_EFI_BOOT_SERVICES_APPLICATION event) when it starts the UKI from
    /// the disk image's `\EFI\BOOT\BOOTX64.EFI`: the vTPM clouds' boot
    /// loader reference value, next to PCR 11.
    pub authenticode_sha256: String,
    pub authenticode_sha384: String,
    pub pcr11: Vec<PhaseValue>,
}

/// Digests of the files the values were computed from, so anybody can
/// check they recompute the same thing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputRecord {
    pub files: Map<String, Value>,
    pub cmdline: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferenceValues {
    pub inputs: InputRecord,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snp: Vec<SnpValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tdx_mr_td: Vec<MrtdValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdx_direct_boot: Option<TdxBootValues>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdx_uki_boot: Option<TdxBootValues>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_authenticode_sha384: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uki: Option<UkiValues>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_data: Option<InitDataBinding>,
}

impl ReferenceValues {
    /// The flat name → value map the RVPS stores, platform values first so
    /// the image's own values win on a name clash.
    pub fn rvps_payload(&self, platform: &Map<String, Value>) -> Map<String, Value> {
        let mut payload = platform.clone();
        let mut put = |name: &str, value: Value| {
            payload.insert(name.to_string(), value);
        };
        if !self.snp.is_empty() {
            put(
                "snp_launch_measurement",
                json!(
                    self.snp
                        .iter()
                        .map(|v| &v.launch_measurement)
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !self.tdx_mr_td.is_empty() {
            put(
                "mr_td",
                json!(self.tdx_mr_td.iter().map(|v| &v.mr_td).collect::<Vec<_>>()),
            );
        }
        let boots: Vec<&TdxBootValues> = self
            .tdx_direct_boot
            .iter()
            .chain(self.tdx_uki_boot.iter())
            .collect();
        if !boots.is_empty() {
            put(
                "rtmr_1",
                json!(boots.iter().map(|b| &b.rtmr_1).collect::<Vec<_>>()),
            );
            let rtmr_2: Vec<&String> = boots.iter().filter_map(|b| b.rtmr_2.as_ref()).collect();
            if !rtmr_2.is_empty() {
                put("rtmr_2", json!(rtmr_2));
            }
        }
        if let Some(direct) = &self.tdx_direct_boot {
            put("tdvfkernel", json!(direct.tdvfkernel));
            if let Some(params) = &direct.tdvfkernelparams {
                put("tdvfkernelparams", json!(params));
            }
        }
        if let Some(uki) = &self.uki {
            let values: Vec<&String> = uki.pcr11.iter().map(|v| &v.pcr11).collect();
            put("snp_pcr11", json!(values));
            put("tdx_pcr11", json!(values));
        }
        payload
    }
}

/// The RVPS message body for `POST /kbs/v0/reference-value`.
pub fn rvps_message(payload: &Map<String, Value>) -> Value {
    let payload_json = Value::Object(payload.clone()).to_string();
    json!({
        "version": "0.1.0",
        "type": "sample",
        "payload": base64::engine::general_purpose::STANDARD.encode(payload_json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rvps_message_carries_the_payload_as_standard_base64_json() {
        let values = ReferenceValues {
            snp: vec![SnpValue {
                vcpus: 1,
                vcpu_type: "EPYC-v4".into(),
                guest_features: "0x1".into(),
                vmm: "qemu".into(),
                launch_measurement: "ab".repeat(48),
            }],
            ..Default::default()
        };
        let mut platform = Map::new();
        platform.insert("snp_bootloader".into(), json!([3]));
        let message = rvps_message(&values.rvps_payload(&platform));
        assert_eq!(message["version"], "0.1.0");
        assert_eq!(message["type"], "sample");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(message["payload"].as_str().unwrap())
            .unwrap();
        let payload: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(payload["snp_launch_measurement"], json!(["ab".repeat(48)]));
        assert_eq!(payload["snp_bootloader"], json!([3]));
    }

    #[test]
    fn the_image_value_wins_over_a_platform_value_of_the_same_name() {
        let values = ReferenceValues {
            tdx_mr_td: vec![MrtdValue {
                page_add_order: "interleaved",
                mr_td: "11".into(),
            }],
            ..Default::default()
        };
        let mut platform = Map::new();
        platform.insert("mr_td".into(), json!(["00"]));
        assert_eq!(values.rvps_payload(&platform)["mr_td"], json!(["11"]));
    }
}
