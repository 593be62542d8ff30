//! The KBS double's attestation tokens: an EdDSA JWT signed with a key the
//! double generates at start, carrying the attested `tee-pubkey` and an
//! `exp` five minutes ahead. The real Trustee's tokens come from its
//! attestation service; only the double ever reads these, to answer
//! `GET /kbs/v0/resource/..` with `Authorization: Bearer <token>`.

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use crate::jws::{parse_compact, sign_eddsa};
use crate::random::{RandomError, random_bytes};

/// How long a token is valid, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 300;

/// Issues and checks the double's attestation tokens.
pub struct TokenIssuer {
    key: SigningKey,
}

impl TokenIssuer {
    /// An issuer with a fresh random key.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self {
            key: SigningKey::from_bytes(&random_bytes::<32>()?),
        })
    }

    /// A token for an attested TEE key, issued at `now` (Unix seconds).
    pub fn issue(&self, tee_pubkey: &Value, now: u64) -> String {
        let claims = json!({
            "iss": "kbs-double (TEST DOUBLE)",
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "tee-pubkey": tee_pubkey,
        });
        sign_eddsa(&self.key, &claims)
    }

    /// The `tee-pubkey` of a valid, unexpired token of this issuer.
    pub fn check(&self, token: &str, now: u64) -> Result<Value, String> {
        let jws = parse_compact(token).map_err(|e| e.to_string())?;
        jws.verify_eddsa(&self.key.verifying_key())
            .map_err(|e| format!("attestation token: {e}"))?;
        match jws.claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now => {}
            _ => return Err("attestation token expired".into()),
        }
        jws.claims
            .get("tee-pubkey")
            .cloned()
            .ok_or_else(|| "attestation token has no tee-pubkey".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_gives_back_its_key_until_it_expires() {
        let issuer = TokenIssuer::generate().unwrap();
        let token = issuer.issue(&json!({"kty": "EC"}), 1000);
        assert_eq!(issuer.check(&token, 1000), Ok(json!({"kty": "EC"})));
        assert!(issuer.check(&token, 1000 + TOKEN_LIFETIME_SECS).is_err());
    }

    #[test]
    fn another_issuers_token_is_refused() {
        let token = TokenIssuer::generate().unwrap().issue(&json!({}), 1000);
        assert!(
            TokenIssuer::generate()
                .unwrap()
                .check(&token, 1000)
                .is_err()
        );
    }
}
