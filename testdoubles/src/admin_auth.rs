//! Verification of the KBS admin token: `Authorization: Bearer <JWT>`
//! signed EdDSA (Ed25519) by the admin key, with `role` (non-empty string)
//! and `exp` (seconds since the epoch, in the future) required, and `iss` /
//! `aud` checked when the double is configured with them (`aud` a string or
//! a list). As in Trustee, every token that fails these checks is answered
//! with the same `Cannot verify token with any of the issuers`; the specific
//! reason goes to the double's log line only. The admin public
//! key is read from PEM SPKI (`-----BEGIN PUBLIC KEY-----`) or OpenSSH
//! (`ssh-ed25519 AAAA... comment`) text. Signing admin tokens is the real
//! client's job (the adaptor); this module only verifies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde_json::Value;
use std::fmt;

use crate::jws::parse_compact;

/// Admin public key text that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminKeyError(pub String);

impl fmt::Display for AdminKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "admin public key: {} (expected an Ed25519 key as PEM `-----BEGIN PUBLIC KEY-----` or OpenSSH `ssh-ed25519 AAAA...`)",
            self.0
        )
    }
}

impl std::error::Error for AdminKeyError {}

/// Reads an Ed25519 public key from PEM SPKI or OpenSSH text.
pub fn parse_admin_public_key(text: &str) -> Result<VerifyingKey, AdminKeyError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN PUBLIC KEY-----") {
        return VerifyingKey::from_public_key_pem(text).map_err(|e| {
            AdminKeyError(format!("PEM is not an Ed25519 SubjectPublicKeyInfo: {e}"))
        });
    }
    let mut fields = text.split_whitespace();
    let (Some("ssh-ed25519"), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(AdminKeyError("unrecognised format".into()));
    };
    let blob = STANDARD
        .decode(blob)
        .map_err(|_| AdminKeyError("OpenSSH key blob is not base64".into()))?;
    // The blob is string("ssh-ed25519") || string(32-byte key), each
    // string a 4-byte big-endian length and the bytes.
    let mut expected = Vec::with_capacity(51);
    expected.extend_from_slice(&11u32.to_be_bytes());
    expected.extend_from_slice(b"ssh-ed25519");
    expected.extend_from_slice(&32u32.to_be_bytes());
    let key: [u8; 32] = blob
        .strip_prefix(expected.as_slice())
        .and_then(|rest| rest.try_into().ok())
        .ok_or_else(|| AdminKeyError("OpenSSH blob is not an ssh-ed25519 key".into()))?;
    VerifyingKey::from_bytes(&key).map_err(|_| AdminKeyError("not a valid Ed25519 point".into()))
}

/// What Trustee answers for any admin token it cannot verify.
pub const ISSUERS_REFUSAL: &str = "Cannot verify token with any of the issuers";

/// Why an admin request was refused (always 401).
#[derive(Debug, PartialEq, Eq)]
pub struct AdminAuthError {
    /// What the client is told (Trustee's wording).
    pub detail: String,
    /// The specific reason, for the double's log line.
    pub reason: String,
}

impl AdminAuthError {
    /// A header that is missing or not `Bearer`: the client is told why.
    fn header(reason: &str) -> Self {
        Self {
            detail: reason.to_string(),
            reason: reason.to_string(),
        }
    }

    /// A token that fails verification: the client gets Trustee's message.
    fn token(reason: String) -> Self {
        Self {
            detail: ISSUERS_REFUSAL.to_string(),
            reason,
        }
    }
}

impl fmt::Display for AdminAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason)
    }
}

impl std::error::Error for AdminAuthError {}

/// The checks the double applies to admin tokens.
#[derive(Debug, Clone)]
pub struct AdminVerifier {
    pub key: VerifyingKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl AdminVerifier {
    /// Checks the `Authorization` header value at time `now` (Unix
    /// seconds) and returns the token's role.
    pub fn check(&self, authorization: Option<&str>, now: u64) -> Result<String, AdminAuthError> {
        let refuse = |why: String| Err(AdminAuthError::token(why));
        let Some(value) = authorization else {
            return Err(AdminAuthError::header(
                "no `Authorization: Bearer <admin JWT>` header",
            ));
        };
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(AdminAuthError::header(
                "the Authorization header is not `Bearer <admin JWT>`",
            ));
        };
        let jws = parse_compact(token.trim()).map_err(|e| AdminAuthError::token(e.to_string()))?;
        jws.verify_eddsa(&self.key)
            .map_err(|e| AdminAuthError::token(e.to_string()))?;
        let claims = &jws.claims;
        let role = match claims.get("role").and_then(Value::as_str) {
            Some(role) if !role.is_empty() => role.to_string(),
            _ => return refuse("admin JWT has no `role` claim (required)".into()),
        };
        match claims.get("exp").and_then(Value::as_u64) {
            None => return refuse("admin JWT has no numeric `exp` claim (required)".into()),
            Some(exp) if exp <= now => {
                return refuse(format!("admin JWT expired at {exp} (now {now})"));
            }
            Some(_) => {}
        }
        if let Some(issuer) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            let got = claims.get("iss").and_then(Value::as_str).unwrap_or("");
            return refuse(format!(
                "token issuer mismatch: expected {issuer}, got {got}."
            ));
        }
        if let Some(audience) = &self.audience {
            let matches = match claims.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !matches {
                return refuse(format!("admin JWT `aud` does not contain {audience:?}"));
            }
        }
        Ok(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::sign_eddsa;
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn verifier(issuer: Option<&str>, audience: Option<&str>) -> AdminVerifier {
        AdminVerifier {
            key: signing_key().verifying_key(),
            issuer: issuer.map(str::to_string),
            audience: audience.map(str::to_string),
        }
    }

    fn bearer(claims: serde_json::Value) -> String {
        format!("Bearer {}", sign_eddsa(&signing_key(), &claims))
    }

    #[test]
    fn a_token_with_role_and_future_exp_is_accepted() {
        let header = bearer(json!({"role": "admin", "exp": NOW + 60}));
        assert_eq!(
            verifier(None, None).check(Some(&header), NOW),
            Ok("admin".into())
        );
    }

    #[test]
    fn missing_role_or_exp_and_expired_tokens_are_refused() {
        for claims in [
            json!({"exp": NOW + 60}),
            json!({"role": "", "exp": NOW + 60}),
            json!({"role": "admin"}),
            json!({"role": "admin", "exp": "soon"}),
            json!({"role": "admin", "exp": NOW}),
        ] {
            let header = bearer(claims.clone());
            assert!(
                verifier(None, None).check(Some(&header), NOW).is_err(),
                "accepted {claims}"
            );
        }
    }

    #[test]
    fn issuer_and_audience_are_checked_only_when_configured() {
        let header = bearer(json!({"role": "a", "exp": NOW + 1, "iss": "wn", "aud": ["x", "kbs"]}));
        assert!(
            verifier(Some("wn"), Some("kbs"))
                .check(Some(&header), NOW)
                .is_ok()
        );
        assert!(
            verifier(Some("other"), None)
                .check(Some(&header), NOW)
                .is_err()
        );
        assert!(
            verifier(None, Some("nope"))
                .check(Some(&header), NOW)
                .is_err()
        );
        let plain = bearer(json!({"role": "a", "exp": NOW + 1}));
        let refused = verifier(Some("wn"), None)
            .check(Some(&plain), NOW)
            .unwrap_err();
        assert_eq!(refused.detail, ISSUERS_REFUSAL);
        assert_eq!(refused.reason, "token issuer mismatch: expected wn, got .");
        let string_aud = bearer(json!({"role": "a", "exp": NOW + 1, "iss": "wn", "aud": "kbs"}));
        assert!(
            verifier(Some("wn"), Some("kbs"))
                .check(Some(&string_aud), NOW)
                .is_ok()
        );
    }

    #[test]
    fn every_token_failure_gets_trustees_message_and_a_missing_header_its_own() {
        let no_role = bearer(json!({"exp": NOW + 60}));
        let error = verifier(None, None).check(Some(&no_role), NOW).unwrap_err();
        assert_eq!(error.detail, ISSUERS_REFUSAL);
        assert!(error.reason.contains("role"), "{}", error.reason);
        let error = verifier(None, None).check(None, NOW).unwrap_err();
        assert!(error.detail.contains("Authorization"), "{}", error.detail);
    }

    #[test]
    fn a_token_signed_by_another_key_or_no_header_is_refused() {
        let other = SigningKey::from_bytes(&[8; 32]);
        let header = format!(
            "Bearer {}",
            sign_eddsa(&other, &json!({"role": "a", "exp": NOW + 1}))
        );
        assert!(verifier(None, None).check(Some(&header), NOW).is_err());
        assert!(verifier(None, None).check(None, NOW).is_err());
        assert!(verifier(None, None).check(Some("Basic abc"), NOW).is_err());
    }

    #[test]
    fn pem_and_openssh_forms_give_the_same_key() {
        let key = signing_key().verifying_key();
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(key.as_bytes());
        let openssh = format!("ssh-ed25519 {} admin@wn\n", STANDARD.encode(&blob));
        assert_eq!(parse_admin_public_key(&pem), Ok(key));
        assert_eq!(parse_admin_public_key(&openssh), Ok(key));
    }

    #[test]
    fn garbage_key_texts_are_refused() {
        for garbage in [
            "",
            "ssh-rsa AAAA",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        ] {
            assert!(
                parse_admin_public_key(garbage).is_err(),
                "accepted {garbage:?}"
            );
        }
    }
}
