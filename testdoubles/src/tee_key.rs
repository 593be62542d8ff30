//! The TEE key: an ephemeral P-256 key pair the guest generates per
//! attestation, and its JWK form (`{"kty":"EC","crv":"P-256",
//! "alg":"ECDH-ES+A256KW","x":..,"y":..}`, coordinates base64url without
//! padding, 32 bytes each). `public_key_from_jwk` validates untrusted JWKs
//! and never panics.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::{PublicKey, SecretKey};
use serde_json::{Value, json};
use std::fmt;

use crate::random::{RandomError, random_bytes};

/// The JWE key management algorithm the TEE key is used with.
pub const ECDH_ES_A256KW: &str = "ECDH-ES+A256KW";

/// A JWK that is not a usable P-256 public key.
#[derive(Debug, PartialEq, Eq)]
pub struct JwkError(pub String);

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid P-256 JWK: {}", self.0)
    }
}

impl std::error::Error for JwkError {}

/// Generates a fresh P-256 secret key from OS randomness.
pub fn generate_secret_key() -> Result<SecretKey, RandomError> {
    loop {
        // A 32-byte string is a valid scalar except with probability ~2^-32.
        if let Ok(key) = SecretKey::from_slice(&random_bytes::<32>()?) {
            return Ok(key);
        }
    }
}

/// The public key as a JWK. With `with_alg` the `alg` member names
/// ECDH-ES+A256KW (the form of the KBS protocol's `tee-pubkey`); without it
/// the JWK is the bare form used for a JWE `epk`.
pub fn jwk_from_public_key(key: &PublicKey, with_alg: bool) -> Value {
    let point = key.to_sec1_point(false);
    let bytes = point.as_bytes();
    // An uncompressed SEC1 point is 0x04 || x (32) || y (32).
    let x = URL_SAFE_NO_PAD.encode(bytes.get(1..33).unwrap_or_default());
    let y = URL_SAFE_NO_PAD.encode(bytes.get(33..65).unwrap_or_default());
    if with_alg {
        json!({"kty": "EC", "crv": "P-256", "alg": ECDH_ES_A256KW, "x": x, "y": y})
    } else {
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
    }
}

/// Parses an untrusted JWK into a P-256 public key: `kty` must be `EC`,
/// `crv` `P-256`, `alg` (when present) ECDH-ES+A256KW, and `x`/`y` 32-byte
/// base64url coordinates of a point on the curve.
pub fn public_key_from_jwk(jwk: &Value) -> Result<PublicKey, JwkError> {
    let member = |name: &str| -> Result<&str, JwkError> {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| JwkError(format!("member `{name}` missing or not a string")))
    };
    if member("kty")? != "EC" {
        return Err(JwkError("`kty` must be \"EC\"".into()));
    }
    if member("crv")? != "P-256" {
        return Err(JwkError("`crv` must be \"P-256\"".into()));
    }
    if jwk.get("alg").is_some() && member("alg")? != ECDH_ES_A256KW {
        return Err(JwkError(format!("`alg` must be \"{ECDH_ES_A256KW}\"")));
    }
    let coordinate = |name: &str| -> Result<Vec<u8>, JwkError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(member(name)?)
            .map_err(|_| JwkError(format!("`{name}` is not base64url without padding")))?;
        if bytes.len() != 32 {
            return Err(JwkError(format!("`{name}` must decode to 32 bytes")));
        }
        Ok(bytes)
    };
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(&coordinate("x")?);
    sec1.extend_from_slice(&coordinate("y")?);
    PublicKey::from_sec1_bytes(&sec1).map_err(|_| JwkError("the point is not on P-256".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_its_jwk() {
        let secret = generate_secret_key().unwrap();
        let jwk = jwk_from_public_key(&secret.public_key(), true);
        assert_eq!(jwk["alg"], ECDH_ES_A256KW);
        assert_eq!(public_key_from_jwk(&jwk).unwrap(), secret.public_key());
        let bare = jwk_from_public_key(&secret.public_key(), false);
        assert!(bare.get("alg").is_none());
        assert_eq!(public_key_from_jwk(&bare).unwrap(), secret.public_key());
    }

    #[test]
    fn garbage_jwks_are_refused_with_a_reason() {
        let good = jwk_from_public_key(&generate_secret_key().unwrap().public_key(), true);
        let mut cases = vec![json!(null), json!("EC"), json!({}), json!([1, 2])];
        for (key, bad) in [
            ("kty", json!("RSA")),
            ("crv", json!("P-521")),
            ("alg", json!("RSA1_5")),
            ("x", json!("!!")),
            ("x", json!("AAAA")),
            ("y", json!(7)),
            ("y", json!(URL_SAFE_NO_PAD.encode([0u8; 32]))),
        ] {
            let mut case = good.clone();
            case[key] = bad;
            cases.push(case);
        }
        for case in cases {
            assert!(public_key_from_jwk(&case).is_err(), "accepted {case}");
        }
    }
}
