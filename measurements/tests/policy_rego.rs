//! The generated policies evaluated by regorus (the Rego engine Trustee
//! uses) on the input shapes Trustee gives them: the attestation policy
//! with `query_reference_value` answering from our RVPS payload, the
//! resource policy with an EAR token's claims and `data.plugin`.

use pp_measure::initdata::InitDataBinding;
use pp_measure::policy::{attestation_policy, resource_policy};
use pp_measure::reference::{ReferenceValues, SnpValue, UkiValues};
use pp_measure::uki::PhaseValue;
use regorus::{Engine, Value};
use serde_json::{Map, json};

const INIT_DATA: &[u8] =
    b"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"aa.toml\" = \"x\"\n";
const MEASUREMENT: &str = "5c0b6b1f1e3c4a0d2b4d9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f";

const PCR11: &str = "11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa";

fn rvps_payload() -> Map<String, serde_json::Value> {
    let values = ReferenceValues {
        uki: Some(UkiValues {
            stub_version: 254,
            authenticode_sha256: "00".repeat(32),
            authenticode_sha384: "00".repeat(48),
            pcr11: vec![PhaseValue {
                phase: "enter-initrd".into(),
                pcr11: PCR11.into(),
            }],
        }),
        snp: vec![SnpValue {
            vcpus: 1,
            vcpu_type: "EPYC-Milan".into(),
            guest_features: "0x1".into(),
            vmm: "qemu".into(),
            launch_measurement: MEASUREMENT.into(),
        }],
        ..Default::default()
    };
    let platform = json!({
        "snp_bootloader": [10], "snp_microcode": [84], "snp_snp_svn": [23], "snp_tee_svn": [0],
        "snp_smt_enabled": true, "snp_tsme_enabled": false, "snp_guest_abi_major": 0,
        "snp_guest_abi_minor": 31, "snp_single_socket": false, "snp_smt_allowed": true
    });
    values.rvps_payload(platform.as_object().unwrap())
}

fn snp_claims(init_data: &str) -> serde_json::Value {
    json!({
        "init_data": init_data,
        "snp": {
            "measurement": MEASUREMENT,
            "reported_tcb_bootloader": 10, "reported_tcb_microcode": 84,
            "reported_tcb_snp": 23, "reported_tcb_tee": 0,
            "policy_debug_allowed": false, "policy_migrate_ma": false,
            "platform_smt_enabled": true, "platform_tsme_enabled": false,
            "policy_abi_major": 0, "policy_abi_minor": 31,
            "policy_single_socket": false, "policy_smt_allowed": true
        }
    })
}

fn trust_claims(claims: serde_json::Value) -> serde_json::Value {
    let binding = InitDataBinding::from_toml(INIT_DATA).unwrap();
    let mut engine = Engine::new();
    engine
        .add_policy(
            "attestation.rego".into(),
            attestation_policy(&binding.claim_values()),
        )
        .unwrap();
    let payload = rvps_payload();
    engine
        .add_extension(
            "query_reference_value".into(),
            1,
            Box::new(move |params: Vec<Value>| {
                let name = params[0].as_string()?.to_string();
                let value = payload
                    .get(&name)
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                Value::from_json_str(&value.to_string())
            }),
        )
        .unwrap();
    engine.set_input(Value::from_json_str(&claims.to_string()).unwrap());
    let result = engine.eval_rule("data.policy.trust_claims".into()).unwrap();
    serde_json::from_str(&result.to_json_str().unwrap()).unwrap()
}

#[test]
fn the_attestation_policy_affirms_this_image_with_this_init_data() {
    let host_data = InitDataBinding::from_toml(INIT_DATA).unwrap().host_data;
    assert_eq!(
        trust_claims(snp_claims(&host_data)),
        json!({"executables": 3, "hardware": 2, "configuration": 2})
    );
}

#[test]
fn the_attestation_policy_does_not_recognise_executables_with_other_init_data() {
    let claims = trust_claims(snp_claims(&"00".repeat(32)));
    assert_eq!(claims["executables"], 33);
}

#[test]
fn the_attestation_policy_does_not_recognise_another_launch_measurement() {
    let host_data = InitDataBinding::from_toml(INIT_DATA).unwrap().host_data;
    let mut claims = snp_claims(&host_data);
    claims["snp"]["measurement"] = json!("ff".repeat(48));
    assert_eq!(trust_claims(claims)["executables"], 33);
}

fn resource_allowed(status: &str, init_data: &str, plugin: &str) -> bool {
    let binding = InitDataBinding::from_toml(INIT_DATA).unwrap();
    let mut engine = Engine::new();
    engine
        .add_policy(
            "resource.rego".into(),
            resource_policy(&binding.claim_values()),
        )
        .unwrap();
    let data = json!({"plugin": plugin, "resource-path": ["default", "sshclient", "publicKey"], "query": {}});
    engine
        .add_data(Value::from_json_str(&data.to_string()).unwrap())
        .unwrap();
    let token_claims = json!({
        "submods": {"cpu0": {
            "ear.status": status,
            "ear.veraison.annotated-evidence": {"init_data": init_data, "snp": {"measurement": MEASUREMENT}}
        }}
    });
    engine.set_input(Value::from_json_str(&token_claims.to_string()).unwrap());
    engine.eval_rule("data.policy.allow".into()).unwrap() == Value::from(true)
}

#[test]
fn the_resource_policy_releases_only_to_affirming_tokens_with_this_init_data() {
    let binding = InitDataBinding::from_toml(INIT_DATA).unwrap();
    assert!(resource_allowed(
        "affirming",
        &binding.host_data,
        "resource"
    ));
    assert!(resource_allowed(
        "affirming",
        &binding.mrconfigid,
        "resource"
    ));
    assert!(!resource_allowed("warning", &binding.host_data, "resource"));
    assert!(!resource_allowed("affirming", &"00".repeat(32), "resource"));
    assert!(!resource_allowed(
        "affirming",
        &binding.host_data,
        "other-plugin"
    ));
}

#[test]
fn on_vtpm_platforms_executables_need_pcr_11_and_nothing_in_pcr_12() {
    let init_data = InitDataBinding::from_toml(INIT_DATA)
        .unwrap()
        .claim_values()[0]
        .clone();
    for platform in ["az-snp-vtpm", "az-tdx-vtpm"] {
        let claims = |pcr11: &str, pcr12: &str| {
            let mut claims = json!({"init_data": init_data});
            claims[platform] = json!({"tpm": {"pcr11": pcr11, "pcr12": pcr12}});
            trust_claims(claims)["executables"].clone()
        };
        assert_eq!(claims(PCR11, &"0".repeat(64)), 3, "{platform}");
        // Something appended to the sealed command line (SMBIOS, Secure Boot off).
        assert_eq!(claims(PCR11, &"12".repeat(32)), 33, "{platform}");
        assert_eq!(claims(&"ff".repeat(32), &"0".repeat(64)), 33, "{platform}");
    }
}
