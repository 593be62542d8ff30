//! The Trustee policies that pin one image and one init-data document, and
//! the admin API request bodies that install them.
//!
//! The rego texts live beside this file (`attestation.rego`,
//! `resource.rego`); the only generated part is the set of init-data claim
//! values, written as a rego set of JSON strings. Input paths relied on
//! (Trustee 78962cd4): `input.init_data`, `input.snp.*`, `input.tdx.*`,
//! `input["az-snp-vtpm"].*`, `input["az-tdx-vtpm"].*` in the attestation
//! policy; `input.submods.cpu0["ear.status"]`,
//! `input.submods.cpu0["ear.veraison.annotated-evidence"].init_data` and
//! `data.plugin` in the resource policy.

use base64::Engine as _;
use serde_json::{Value, json};

const ATTESTATION_TEMPLATE: &str = include_str!("attestation.rego");
const RESOURCE_TEMPLATE: &str = include_str!("resource.rego");
const PLACEHOLDER: &str = "{{PINNED_INIT_DATA}}";
/// The policy id Trustee's EAR broker uses for CPU evidence.
pub const ATTESTATION_POLICY_ID: &str = "default_cpu";

fn rego_set(values: &[String]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|value| Value::String(value.clone()).to_string())
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The attestation policy pinning `init_data_claims` (lowercase hex).
pub fn attestation_policy(init_data_claims: &[String]) -> String {
    ATTESTATION_TEMPLATE.replace(PLACEHOLDER, &rego_set(init_data_claims))
}

/// The resource policy pinning `init_data_claims` (lowercase hex).
pub fn resource_policy(init_data_claims: &[String]) -> String {
    RESOURCE_TEMPLATE.replace(PLACEHOLDER, &rego_set(init_data_claims))
}

fn base64url(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Body of `POST /kbs/v0/attestation-policy`.
pub fn attestation_policy_request(policy: &str) -> Value {
    json!({"type": "rego", "policy_id": ATTESTATION_POLICY_ID, "policy": base64url(policy)})
}

/// Body of `POST /kbs/v0/resource-policy`.
pub fn resource_policy_request(policy: &str) -> Value {
    json!({"policy": base64url(policy)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_policies_pin_every_init_data_claim_value() {
        let claims = vec!["aa".repeat(32), "bb".repeat(48)];
        for policy in [attestation_policy(&claims), resource_policy(&claims)] {
            assert!(!policy.contains(PLACEHOLDER));
            assert!(policy.contains(&format!(
                "pinned_init_data := {{\"{}\", \"{}\"}}",
                claims[0], claims[1]
            )));
        }
    }

    #[test]
    fn vtpm_executables_need_pcr_11_and_an_unextended_pcr_12() {
        let policy = attestation_policy(&["aa".repeat(32)]);
        for platform in ["az-snp-vtpm", "az-tdx-vtpm"] {
            assert!(policy.contains(&format!(
                "input[\"{platform}\"].tpm.pcr12 == unextended_pcr"
            )));
        }
        assert!(policy.contains(&format!("unextended_pcr := \"{}\"", "0".repeat(64))));
    }

    #[test]
    fn request_bodies_carry_the_policy_as_unpadded_base64url() {
        let body = attestation_policy_request("package policy\n");
        assert_eq!(body["policy_id"], "default_cpu");
        assert_eq!(body["type"], "rego");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body["policy"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, b"package policy\n");
        assert!(resource_policy_request("x")["policy"].as_str().is_some());
    }
}
