//! The KBS protocol's messages as the guest writes and reads them: the
//! auth request, the challenge, the attestation request with "sample"
//! evidence bound to the nonce and the TEE key, and the token answer; plus
//! the constants both doubles share. Parsers take untrusted bytes and
//! never panic.

use serde_json::{Value, json};
use std::fmt;

use crate::evidence::{EvidenceError, runtime_data_digest, sample_evidence};
use crate::http1::Headers;

/// The only KBS protocol version Trustee (and the double) accepts.
pub const PROTOCOL_VERSION: &str = "0.4.0";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kbs-session-id";

/// A KBS answer the guest cannot use.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// `POST /kbs/v0/auth` body for the sample TEE.
pub fn auth_request() -> Value {
    json!({"version": PROTOCOL_VERSION, "tee": "sample", "extra-params": {}})
}

/// The nonce of a challenge `{"nonce":..,"extra-params":..}`.
pub fn parse_challenge(body: &[u8]) -> Result<String, ProtocolError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ProtocolError("KBS challenge is not JSON".into()))?;
    value
        .get("nonce")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProtocolError("KBS challenge has no string `nonce`".into()))
}

/// `POST /kbs/v0/attest` body: runtime data, sample evidence bound to it,
/// and the init-data TOML when the guest has one.
pub fn attestation_request(
    nonce: &str,
    tee_pubkey: &Value,
    initdata_toml: Option<&str>,
) -> Result<Value, EvidenceError> {
    let digest = runtime_data_digest(nonce, tee_pubkey, "")?;
    let mut body = json!({
        "runtime-data": {"nonce": nonce, "tee-pubkey": tee_pubkey},
        "tee-evidence": {"primary_evidence": sample_evidence(&digest), "additional_evidence": ""},
    });
    if let (Some(toml), Some(map)) = (initdata_toml, body.as_object_mut()) {
        map.insert("init-data".into(), json!({"format": "toml", "body": toml}));
    }
    Ok(body)
}

/// The token of an attestation answer `{"token":"<JWT>"}`.
pub fn parse_attestation_response(body: &[u8]) -> Result<String, ProtocolError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| ProtocolError("KBS attestation answer is not JSON".into()))?;
    value
        .get("token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProtocolError("KBS attestation answer has no string `token`".into()))
}

/// The session id from the `Set-Cookie` headers of an auth answer.
pub fn session_from_set_cookie(headers: &Headers) -> Option<String> {
    headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .filter_map(|(_, value)| value.split(';').next())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The session id from the `Cookie` headers of a request.
pub fn session_from_cookie(headers: &Headers) -> Option<&str> {
    headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::verify_sample_evidence;

    fn headers(list: &[(&str, &str)]) -> Headers {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_attestation_request_binds_nonce_and_key_in_sample_evidence() {
        let key = json!({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"});
        let body = attestation_request("N", &key, Some("version = \"0.1.0\"")).unwrap();
        let digest = runtime_data_digest("N", &key, "").unwrap();
        assert_eq!(
            verify_sample_evidence(&body["tee-evidence"]["primary_evidence"], &digest),
            Ok(())
        );
        assert_eq!(body["runtime-data"]["nonce"], "N");
        assert_eq!(body["init-data"]["format"], "toml");
        assert!(
            attestation_request("N", &key, None)
                .unwrap()
                .get("init-data")
                .is_none()
        );
    }

    #[test]
    fn cookies_are_found_among_other_cookies() {
        let set = headers(&[
            ("set-cookie", "other=1"),
            ("set-cookie", "kbs-session-id=abc; Max-Age=300"),
        ]);
        assert_eq!(session_from_set_cookie(&set), Some("abc".into()));
        let sent = headers(&[("cookie", "a=b; kbs-session-id=abc")]);
        assert_eq!(session_from_cookie(&sent), Some("abc"));
        assert_eq!(
            session_from_cookie(&headers(&[("cookie", "garbage")])),
            None
        );
    }

    #[test]
    fn garbage_answers_are_refused() {
        for garbage in [
            &b""[..],
            b"[]",
            b"{\"nonce\":1}",
            b"\xff",
            b"{\"token\":null}",
        ] {
            assert!(parse_challenge(garbage).is_err());
            assert!(parse_attestation_response(garbage).is_err());
        }
        assert_eq!(
            parse_challenge(br#"{"nonce":"n","extra-params":""}"#),
            Ok("n".into())
        );
    }
}
