//! The bearer token for Trustee's admin API: a JWT signed with EdDSA by the
//! Ed25519 admin key whose public half Trustee is configured with.
//!
//! Contract: [`AdminTokenSigner::token`] returns `header.claims.signature`
//! (base64url without padding), header `{"alg":"EdDSA","typ":"JWT"}`,
//! claims `role` (always), `iat` and `exp` (always, `exp = iat + lifetime`),
//! `iss` and `aud` when configured. Trustee rejects tokens without `role`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use serde::Serialize;
use std::time::Duration;

/// The role claim Trustee expects for its admin API by default.
pub const DEFAULT_ADMIN_ROLE: &str = "admin";
/// How long a token is valid when nothing else is configured.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The JWT header for an Ed25519 key, as Trustee requires it.
const HEADER_JSON: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

/// What goes into the claims besides the times.
#[derive(Clone, Debug)]
pub struct AdminClaims {
    pub role: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub lifetime: Duration,
}

impl Default for AdminClaims {
    fn default() -> Self {
        Self {
            role: DEFAULT_ADMIN_ROLE.to_owned(),
            issuer: None,
            audience: None,
            lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

use crate::admin_key::AdminKey;

/// Signs admin tokens with the admin key (re-read when it is rotated, see
/// [`AdminKey`]) and one set of claims.
pub struct AdminTokenSigner {
    key: AdminKey,
    claims: AdminClaims,
}

#[derive(Serialize)]
struct ClaimsJson<'a> {
    role: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl AdminTokenSigner {
    pub fn new(key: impl Into<AdminKey>, claims: AdminClaims) -> Self {
        Self {
            key: key.into(),
            claims,
        }
    }

    /// A token issued at `now_unix` (seconds since the Unix epoch).
    pub fn token_at(&self, now_unix: u64) -> String {
        let claims = ClaimsJson {
            role: &self.claims.role,
            iat: now_unix,
            exp: now_unix.saturating_add(self.claims.lifetime.as_secs()),
            iss: self.claims.issuer.as_deref(),
            aud: self.claims.audience.as_deref(),
        };
        // Serializing a struct of strings and integers cannot fail.
        let claims_json = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER_JSON),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signature = self.key.current().sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// A token issued now.
    pub fn token(&self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        self.token_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, SigningKey, Verifier as _};

    fn decode_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_token_has_the_eddsa_header_role_and_expiry_and_a_valid_signature() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signer = AdminTokenSigner::new(key.clone(), AdminClaims::default());
        let token = signer.token_at(1_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_json(parts[0]),
            serde_json::json!({"alg": "EdDSA", "typ": "JWT"})
        );
        assert_eq!(
            decode_json(parts[1]),
            serde_json::json!({"role": "admin", "iat": 1000, "exp": 1300})
        );
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        key.verifying_key()
            .verify(signed.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn issuer_and_audience_appear_only_when_configured() {
        let claims = AdminClaims {
            role: "operator".into(),
            issuer: Some("wn".into()),
            audience: Some("trustee".into()),
            lifetime: Duration::from_secs(60),
        };
        let token = AdminTokenSigner::new(SigningKey::from_bytes(&[1; 32]), claims).token_at(10);
        let claims_part = token.split('.').nth(1).unwrap();
        assert_eq!(
            decode_json(claims_part),
            serde_json::json!({"role": "operator", "iat": 10, "exp": 70, "iss": "wn", "aud": "trustee"})
        );
    }

    #[test]
    fn a_token_signed_by_another_key_does_not_verify() {
        let token = AdminTokenSigner::new(SigningKey::from_bytes(&[2; 32]), AdminClaims::default())
            .token_at(5);
        let parts: Vec<&str> = token.split('.').collect();
        let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key();
        assert!(
            other
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
                .is_err()
        );
    }
}
