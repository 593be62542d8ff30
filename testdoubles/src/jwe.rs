//! The KBS resource envelope: a JSON-serialised JWE
//! `{"protected","encrypted_key","iv","ciphertext","tag"}` (base64url, no
//! padding) with `alg` ECDH-ES+A256KW on P-256 and `enc` A256GCM, as
//! Trustee writes it and guest-components reads it.
//!
//! KEK = Concat-KDF(SHA-256, Z = ECDH(epk, tee key), AlgorithmID
//! "ECDH-ES+A256KW", empty PartyUInfo/PartyVInfo, 256 bits); the random CEK
//! is AES-key-wrapped with the KEK; the payload is AES-256-GCM with AAD =
//! the ASCII `protected` string. `decrypt` takes untrusted input and never
//! panics; it succeeds only with the recipient's secret key.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use aes_kw::KwAes256;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::random::random_bytes;
use crate::tee_key::{
    ECDH_ES_A256KW, generate_secret_key, jwk_from_public_key, public_key_from_jwk,
};

/// The content encryption algorithm.
pub const A256GCM: &str = "A256GCM";

/// A JWE in the KBS protocol's flattened JSON form (all members base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwe {
    pub protected: String,
    pub encrypted_key: String,
    pub iv: String,
    pub ciphertext: String,
    pub tag: String,
}

/// Why a JWE could not be made or opened.
#[derive(Debug, PartialEq, Eq)]
pub struct JweError(pub String);

impl fmt::Display for JweError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JWE: {}", self.0)
    }
}

impl std::error::Error for JweError {}

fn error(why: impl Into<String>) -> JweError {
    JweError(why.into())
}

/// Concat KDF (NIST SP 800-56A, RFC 7518 §4.6.2) for a 256-bit key with
/// AlgorithmID "ECDH-ES+A256KW" and empty apu/apv: one SHA-256 round.
fn concat_kdf_kek(shared_secret: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(1u32.to_be_bytes());
    hasher.update(shared_secret);
    hasher.update((ECDH_ES_A256KW.len() as u32).to_be_bytes());
    hasher.update(ECDH_ES_A256KW.as_bytes());
    hasher.update(0u32.to_be_bytes());
    hasher.update(0u32.to_be_bytes());
    hasher.update(256u32.to_be_bytes());
    hasher.finalize().into()
}

fn key_wrapping_cipher(secret: &SecretKey, peer: &PublicKey) -> Result<KwAes256, JweError> {
    let shared = secret.diffie_hellman(peer);
    let kek = concat_kdf_kek(shared.raw_secret_bytes().as_slice());
    KwAes256::new_from_slice(&kek).map_err(|_| error("key-encryption key has a wrong length"))
}

/// Encrypts `plaintext` to the recipient's P-256 public key.
pub fn encrypt(recipient: &PublicKey, plaintext: &[u8]) -> Result<Jwe, JweError> {
    let ephemeral = generate_secret_key().map_err(|e| error(e.to_string()))?;
    let header = json!({
        "alg": ECDH_ES_A256KW,
        "enc": A256GCM,
        "epk": jwk_from_public_key(&ephemeral.public_key(), false),
    });
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());

    let cek = random_bytes::<32>().map_err(|e| error(e.to_string()))?;
    let mut wrapped = [0u8; 40];
    key_wrapping_cipher(&ephemeral, recipient)?
        .wrap_key(&cek, &mut wrapped)
        .map_err(|_| error("AES key wrap failed"))?;

    let iv = random_bytes::<12>().map_err(|e| error(e.to_string()))?;
    let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|_| error("bad CEK length"))?;
    let mut ciphertext = plaintext.to_vec();
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from(iv),
            protected.as_bytes(),
            ciphertext.as_mut_slice().into(),
        )
        .map_err(|_| error("AES-256-GCM encryption failed"))?;

    Ok(Jwe {
        protected,
        encrypted_key: URL_SAFE_NO_PAD.encode(wrapped),
        iv: URL_SAFE_NO_PAD.encode(iv),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
        tag: URL_SAFE_NO_PAD.encode(tag),
    })
}

/// Parses a JWE from untrusted JSON bytes (unknown members are ignored, as
/// Trustee may add e.g. `aad`).
pub fn parse_jwe(bytes: &[u8]) -> Result<Jwe, JweError> {
    serde_json::from_slice(bytes).map_err(|e| error(format!("not a KBS JWE JSON object: {e}")))
}

fn decode_member<const N: usize>(name: &str, text: &str) -> Result<[u8; N], JweError> {
    let bytes = decode_vec(name, text)?;
    bytes
        .try_into()
        .map_err(|_| error(format!("`{name}` must decode to {N} bytes")))
}

fn decode_vec(name: &str, text: &str) -> Result<Vec<u8>, JweError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| error(format!("`{name}` is not base64url without padding")))
}

/// Decrypts an untrusted JWE with the recipient's secret key.
pub fn decrypt(recipient: &SecretKey, jwe: &Jwe) -> Result<Vec<u8>, JweError> {
    let header: Value = serde_json::from_slice(&decode_vec("protected", &jwe.protected)?)
        .map_err(|_| error("protected header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some(ECDH_ES_A256KW) {
        return Err(error(format!("header `alg` must be {ECDH_ES_A256KW}")));
    }
    if header.get("enc").and_then(Value::as_str) != Some(A256GCM) {
        return Err(error(format!("header `enc` must be {A256GCM}")));
    }
    let epk = header
        .get("epk")
        .ok_or_else(|| error("header has no `epk`"))
        .and_then(|jwk| public_key_from_jwk(jwk).map_err(|e| error(format!("`epk`: {e}"))))?;

    let wrapped: [u8; 40] = decode_member("encrypted_key", &jwe.encrypted_key)?;
    let mut cek = [0u8; 32];
    key_wrapping_cipher(recipient, &epk)?
        .unwrap_key(&wrapped, &mut cek)
        .map_err(|_| error("key unwrap failed (the JWE was encrypted to another key)"))?;

    let iv: [u8; 12] = decode_member("iv", &jwe.iv)?;
    let tag: [u8; 16] = decode_member("tag", &jwe.tag)?;
    let mut plaintext = decode_vec("ciphertext", &jwe.ciphertext)?;
    let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|_| error("bad CEK length"))?;
    cipher
        .decrypt_inout_detached(
            &Nonce::from(iv),
            jwe.protected.as_bytes(),
            plaintext.as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| error("AES-256-GCM authentication failed"))?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwe_decrypts_with_the_recipient_key() {
        let recipient = generate_secret_key().unwrap();
        let jwe = encrypt(&recipient.public_key(), b"the host key").unwrap();
        assert_eq!(decrypt(&recipient, &jwe).unwrap(), b"the host key");
    }

    #[test]
    fn a_jwe_does_not_decrypt_with_another_key() {
        let recipient = generate_secret_key().unwrap();
        let jwe = encrypt(&recipient.public_key(), b"secret").unwrap();
        assert!(decrypt(&generate_secret_key().unwrap(), &jwe).is_err());
    }

    #[test]
    fn the_protected_header_names_the_algorithms_and_the_ephemeral_key() {
        let recipient = generate_secret_key().unwrap();
        let jwe = encrypt(&recipient.public_key(), b"").unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&jwe.protected).unwrap()).unwrap();
        assert_eq!(header["alg"], "ECDH-ES+A256KW");
        assert_eq!(header["enc"], "A256GCM");
        assert_eq!(header["epk"]["crv"], "P-256");
        assert_eq!(header["epk"]["kty"], "EC");
    }

    #[test]
    fn the_kdf_matches_an_independent_computation() {
        // SHA-256(00000001 || Z || 0000000e "ECDH-ES+A256KW" || 0 || 0 || 00000100)
        let z = [7u8; 32];
        let mut input = vec![0, 0, 0, 1];
        input.extend_from_slice(&z);
        input.extend_from_slice(&[0, 0, 0, 14]);
        input.extend_from_slice(b"ECDH-ES+A256KW");
        input.extend_from_slice(&[0; 8]);
        input.extend_from_slice(&[0, 0, 1, 0]);
        assert_eq!(
            concat_kdf_kek(&z).as_slice(),
            Sha256::digest(&input).as_slice()
        );
    }

    #[test]
    fn tampering_with_any_member_is_detected() {
        let recipient = generate_secret_key().unwrap();
        let jwe = encrypt(&recipient.public_key(), b"payload bytes").unwrap();
        let flip = |s: &str| {
            let mut bytes = URL_SAFE_NO_PAD.decode(s).unwrap();
            if let Some(first) = bytes.first_mut() {
                *first ^= 1;
            }
            URL_SAFE_NO_PAD.encode(bytes)
        };
        let mut cases = Vec::new();
        for member in 0..5 {
            let mut bad = jwe.clone();
            let field = match member {
                0 => &mut bad.protected,
                1 => &mut bad.encrypted_key,
                2 => &mut bad.iv,
                3 => &mut bad.ciphertext,
                _ => &mut bad.tag,
            };
            *field = flip(field);
            cases.push(bad);
        }
        for bad in cases {
            assert!(decrypt(&recipient, &bad).is_err());
        }
    }

    #[test]
    fn garbage_jwes_are_refused_without_panicking() {
        let recipient = generate_secret_key().unwrap();
        for bytes in [
            &b""[..],
            b"{}",
            b"[]",
            b"{\"protected\":\"\",\"encrypted_key\":\"\",\"iv\":\"\",\"ciphertext\":\"\",\"tag\":\"\"}",
            b"{\"protected\":\"e30\",\"encrypted_key\":\"AA\",\"iv\":\"AA\",\"ciphertext\":\"\",\"tag\":\"AA\"}",
            b"\xff\xfe",
        ] {
            let result = parse_jwe(bytes).and_then(|jwe| decrypt(&recipient, &jwe));
            assert!(result.is_err());
        }
    }
}
