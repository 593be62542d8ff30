//! Compact JWS (the JWT form) with EdDSA/Ed25519: `parse_compact` splits and
//! decodes an untrusted token (never panics), `verify_eddsa` checks its
//! signature, and `sign_eddsa` (crate-private: the KBS double signs its own
//! attestation tokens with it) writes one. Admin-token *signing* belongs to
//! the adaptor, the real client; this crate only verifies admin tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use std::fmt;

/// A token that is not a valid compact JWS.
#[derive(Debug, PartialEq, Eq)]
pub struct JwsError(pub String);

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JWT: {}", self.0)
    }
}

impl std::error::Error for JwsError {}

/// A decoded, not yet verified, compact JWS.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactJws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn decode_object(name: &str, part: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError(format!("{name} is not base64url without padding")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwsError(format!("{name} is not a JSON object"))),
    }
}

/// Splits and decodes `header.claims.signature`.
pub fn parse_compact(token: &str) -> Result<CompactJws, JwsError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError("expected three dot-separated parts".into()));
    };
    Ok(CompactJws {
        header: decode_object("header", header)?,
        claims: decode_object("claims", claims)?,
        signing_input: format!("{header}.{claims}"),
        signature: URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError("signature is not base64url without padding".into()))?,
    })
}

impl CompactJws {
    /// Checks that the header says EdDSA and the signature is `key`'s.
    pub fn verify_eddsa(&self, key: &VerifyingKey) -> Result<(), JwsError> {
        if self.header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return Err(JwsError("header `alg` must be \"EdDSA\"".into()));
        }
        let signature = Signature::from_slice(&self.signature)
            .map_err(|_| JwsError("signature is not 64 bytes".into()))?;
        key.verify_strict(self.signing_input.as_bytes(), &signature)
            .map_err(|_| JwsError("signature does not verify with the configured key".into()))
    }
}

/// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","typ":"JWT"}`.
pub(crate) fn sign_eddsa(key: &SigningKey, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT"}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = key.sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_token_parses_and_verifies_with_its_key_only() {
        let token = sign_eddsa(&key(1), &json!({"role": "admin"}));
        let parsed = parse_compact(&token).unwrap();
        assert_eq!(parsed.claims["role"], "admin");
        assert_eq!(parsed.verify_eddsa(&key(1).verifying_key()), Ok(()));
        assert!(parsed.verify_eddsa(&key(2).verifying_key()).is_err());
    }

    #[test]
    fn a_token_with_a_changed_claim_does_not_verify() {
        let token = sign_eddsa(&key(1), &json!({"role": "admin"}));
        let forged_claims = URL_SAFE_NO_PAD.encode(json!({"role": "root"}).to_string());
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_claims;
        let parsed = parse_compact(&parts.join(".")).unwrap();
        assert!(parsed.verify_eddsa(&key(1).verifying_key()).is_err());
    }

    #[test]
    fn a_token_claiming_another_algorithm_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode("{}");
        let parsed = parse_compact(&format!("{header}.{claims}.")).unwrap();
        assert!(parsed.verify_eddsa(&key(1).verifying_key()).is_err());
    }

    #[test]
    fn garbage_tokens_are_refused_without_panicking() {
        for garbage in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!.!.!",
            "e30.e30.!",
            "W10.e30.",
            "e30.IiI.",
            "\u{0}..",
        ] {
            assert!(parse_compact(garbage).is_err(), "accepted {garbage:?}");
        }
    }
}
