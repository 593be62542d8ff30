//! Strict shape checks for the KBS admin messages the measurements helper
//! publishes: resource policy `{"policy":"<base64url rego>"}`, attestation
//! policy `{"type":"rego","policy_id":"<id>","policy":"<base64url rego>"}`
//! and the RVPS message `{"version":"0.1.0","type":"sample",
//! "payload":"<std base64 of a JSON object name -> value>"}`. Unknown
//! members are refused; base64url is accepted with or without padding (the
//! alphabet is checked). Every parser takes untrusted bytes, never panics
//! and says which member is wrong.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

use crate::resource_path::is_valid_segment;

/// A message whose shape is wrong (answered with 400).
#[derive(Debug, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

fn shape(why: impl Into<String>) -> ShapeError {
    ShapeError(why.into())
}

/// An attestation policy upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    pub policy_id: String,
    pub rego: String,
}

fn object_with_members(
    body: &[u8],
    what: &str,
    members: &[&str],
) -> Result<Map<String, Value>, ShapeError> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(shape(format!("{what} must be a JSON object")));
    };
    if let Some(unknown) = map.keys().find(|k| !members.contains(&k.as_str())) {
        return Err(shape(format!("{what} has an unknown member `{unknown}`")));
    }
    if let Some(missing) = members.iter().find(|m| !map.contains_key(**m)) {
        return Err(shape(format!("{what} lacks the member `{missing}`")));
    }
    Ok(map)
}

fn string_member<'a>(
    map: &'a Map<String, Value>,
    what: &str,
    name: &str,
) -> Result<&'a str, ShapeError> {
    map.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| shape(format!("{what} member `{name}` must be a string")))
}

fn rego_member(map: &Map<String, Value>, what: &str) -> Result<String, ShapeError> {
    let text = string_member(map, what, "policy")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| shape(format!("{what} member `policy` is not base64url")))?;
    let rego =
        String::from_utf8(bytes).map_err(|_| shape(format!("{what} policy is not UTF-8 text")))?;
    if !rego.contains("package ") {
        return Err(shape(format!(
            "{what} policy is not Rego (no `package` line)"
        )));
    }
    Ok(rego)
}

/// Parses `POST /kbs/v0/resource-policy`; returns the Rego text.
pub fn parse_resource_policy(body: &[u8]) -> Result<String, ShapeError> {
    let what = "resource policy";
    rego_member(&object_with_members(body, what, &["policy"])?, what)
}

/// Parses `POST /kbs/v0/attestation-policy`.
pub fn parse_attestation_policy(body: &[u8]) -> Result<AttestationPolicy, ShapeError> {
    let what = "attestation policy";
    let map = object_with_members(body, what, &["type", "policy_id", "policy"])?;
    if string_member(&map, what, "type")? != "rego" {
        return Err(shape("attestation policy `type` must be \"rego\""));
    }
    let policy_id = string_member(&map, what, "policy_id")?;
    if !is_valid_segment(policy_id) {
        return Err(shape(
            "attestation policy `policy_id` must match [A-Za-z0-9_-][A-Za-z0-9_.-]*",
        ));
    }
    Ok(AttestationPolicy {
        policy_id: policy_id.to_string(),
        rego: rego_member(&map, what)?,
    })
}

/// Parses `POST /kbs/v0/reference-value`; returns the reference values by
/// name.
pub fn parse_reference_value_message(body: &[u8]) -> Result<BTreeMap<String, Value>, ShapeError> {
    let what = "RVPS message";
    let map = object_with_members(body, what, &["version", "type", "payload"])?;
    if string_member(&map, what, "version")? != "0.1.0" {
        return Err(shape("RVPS message `version` must be \"0.1.0\""));
    }
    if string_member(&map, what, "type")? != "sample" {
        return Err(shape("RVPS message `type` must be \"sample\""));
    }
    let payload = STANDARD
        .decode(string_member(&map, what, "payload")?)
        .map_err(|_| shape("RVPS message `payload` is not standard base64"))?;
    let Ok(Value::Object(values)) = serde_json::from_slice::<Value>(&payload) else {
        return Err(shape(
            "RVPS `payload` must decode to a JSON object name -> value",
        ));
    };
    if values.is_empty() {
        return Err(shape("RVPS `payload` holds no reference value"));
    }
    if let Some(bad) = values.keys().find(|k| !is_valid_segment(k)) {
        return Err(shape(format!(
            "reference value name {bad:?} must match [A-Za-z0-9_-][A-Za-z0-9_.-]*"
        )));
    }
    Ok(values.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64url(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    const REGO: &str = "package policy\ndefault allow = true\n";

    #[test]
    fn a_resource_policy_yields_its_rego() {
        let body = json!({"policy": b64url(REGO)}).to_string();
        assert_eq!(parse_resource_policy(body.as_bytes()), Ok(REGO.to_string()));
    }

    #[test]
    fn an_attestation_policy_yields_its_id_and_rego() {
        let body =
            json!({"type": "rego", "policy_id": "default_cpu", "policy": b64url(REGO)}).to_string();
        assert_eq!(
            parse_attestation_policy(body.as_bytes()),
            Ok(AttestationPolicy {
                policy_id: "default_cpu".into(),
                rego: REGO.into()
            })
        );
    }

    #[test]
    fn an_rvps_message_yields_each_reference_value() {
        let payload = STANDARD
            .encode(json!({"snp_launch_measurement": ["ab"], "snp_smt_enabled": true}).to_string());
        let body = json!({"version": "0.1.0", "type": "sample", "payload": payload}).to_string();
        let values = parse_reference_value_message(body.as_bytes()).unwrap();
        assert_eq!(values["snp_launch_measurement"], json!(["ab"]));
        assert_eq!(values["snp_smt_enabled"], json!(true));
    }

    #[test]
    fn wrong_shapes_are_refused_with_the_member_named() {
        let good_payload = STANDARD.encode(r#"{"a":1}"#);
        type Parser = fn(&[u8]) -> Result<(), ShapeError>;
        let cases: Vec<(Parser, Value)> = vec![
            (
                |b| parse_resource_policy(b).map(drop),
                json!({"policy": b64url(REGO), "extra": 1}),
            ),
            (
                |b| parse_resource_policy(b).map(drop),
                json!({"policy": "***"}),
            ),
            (
                |b| parse_resource_policy(b).map(drop),
                json!({"policy": b64url("no rego")}),
            ),
            (|b| parse_resource_policy(b).map(drop), json!({"policy": 5})),
            (
                |b| parse_attestation_policy(b).map(drop),
                json!({"type": "opa", "policy_id": "x", "policy": b64url(REGO)}),
            ),
            (
                |b| parse_attestation_policy(b).map(drop),
                json!({"type": "rego", "policy_id": "../x", "policy": b64url(REGO)}),
            ),
            (
                |b| parse_attestation_policy(b).map(drop),
                json!({"type": "rego", "policy": b64url(REGO)}),
            ),
            (
                |b| parse_reference_value_message(b).map(drop),
                json!({"version": "0.2.0", "type": "sample", "payload": good_payload}),
            ),
            (
                |b| parse_reference_value_message(b).map(drop),
                json!({"version": "0.1.0", "type": "other", "payload": good_payload}),
            ),
            (
                |b| parse_reference_value_message(b).map(drop),
                json!({"version": "0.1.0", "type": "sample", "payload": "%%"}),
            ),
            (
                |b| parse_reference_value_message(b).map(drop),
                json!({"version": "0.1.0", "type": "sample", "payload": STANDARD.encode("[1]")}),
            ),
            (
                |b| parse_reference_value_message(b).map(drop),
                json!({"version": "0.1.0", "type": "sample", "payload": STANDARD.encode("{}")}),
            ),
        ];
        for (parse, body) in cases {
            assert!(
                parse(body.to_string().as_bytes()).is_err(),
                "accepted {body}"
            );
        }
        for garbage in [&b""[..], b"[]", b"\xff", b"null"] {
            assert!(parse_resource_policy(garbage).is_err());
            assert!(parse_attestation_policy(garbage).is_err());
            assert!(parse_reference_value_message(garbage).is_err());
        }
    }
}
