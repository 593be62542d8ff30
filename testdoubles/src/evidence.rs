//! The "sample" TEE evidence of the KBS protocol and its binding to the
//! attestation's runtime data. The guest hashes (SHA-384) the RFC 8785
//! canonical JSON of `{"additional-evidence":A,"nonce":N,"tee-pubkey":K}` and
//! puts the digest, standard base64, into `report_data` of
//! `{"svn":"1","report_data":..}`. The verifier recomputes the digest from
//! the runtime data it received and compares. Verification never panics.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use std::fmt;

use crate::canonical_json::{CanonicalJsonError, to_canonical_json};

/// The `svn` the sample attester reports.
pub const SAMPLE_SVN: &str = "1";

/// Why sample evidence did not verify.
#[derive(Debug, PartialEq, Eq)]
pub enum EvidenceError {
    /// The runtime data could not be canonicalised.
    Canonical(CanonicalJsonError),
    /// The evidence is not `{"svn":"1","report_data":"<base64>"}`.
    Shape(String),
    /// `report_data` does not hold the digest of the runtime data.
    BindingMismatch,
}

impl fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Canonical(e) => write!(f, "runtime data: {e}"),
            Self::Shape(why) => write!(f, "sample evidence malformed: {why}"),
            Self::BindingMismatch => write!(
                f,
                "sample evidence report_data is not SHA-384 of the canonical runtime data (nonce, tee-pubkey)"
            ),
        }
    }
}

impl std::error::Error for EvidenceError {}

/// SHA-384 of the canonical JSON of the runtime data that the evidence binds.
pub fn runtime_data_digest(
    nonce: &str,
    tee_pubkey: &Value,
    additional_evidence: &str,
) -> Result<[u8; 48], EvidenceError> {
    let runtime_data = json!({
        "additional-evidence": additional_evidence,
        "nonce": nonce,
        "tee-pubkey": tee_pubkey,
    });
    let canonical = to_canonical_json(&runtime_data).map_err(EvidenceError::Canonical)?;
    Ok(Sha384::digest(canonical.as_bytes()).into())
}

/// The sample attester's evidence for a runtime-data digest.
pub fn sample_evidence(digest: &[u8; 48]) -> Value {
    json!({"svn": SAMPLE_SVN, "report_data": STANDARD.encode(digest)})
}

/// Checks untrusted sample evidence against the expected digest.
pub fn verify_sample_evidence(evidence: &Value, expected: &[u8; 48]) -> Result<(), EvidenceError> {
    let svn = evidence
        .get("svn")
        .and_then(Value::as_str)
        .ok_or_else(|| EvidenceError::Shape("`svn` missing or not a string".into()))?;
    if svn != SAMPLE_SVN {
        return Err(EvidenceError::Shape(format!(
            "`svn` is {svn:?}, expected \"1\""
        )));
    }
    let report_data = evidence
        .get("report_data")
        .and_then(Value::as_str)
        .ok_or_else(|| EvidenceError::Shape("`report_data` missing or not a string".into()))?;
    let bytes = STANDARD
        .decode(report_data)
        .map_err(|_| EvidenceError::Shape("`report_data` is not standard base64".into()))?;
    if bytes.as_slice() == expected.as_slice() {
        Ok(())
    } else {
        Err(EvidenceError::BindingMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Value {
        json!({"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": "AA", "y": "BB"})
    }

    #[test]
    fn the_digest_is_sha384_of_the_sorted_compact_runtime_data() {
        let expected = Sha384::digest(
            br#"{"additional-evidence":"","nonce":"abc","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"AA","y":"BB"}}"#,
        );
        assert_eq!(
            runtime_data_digest("abc", &key(), "").unwrap().as_slice(),
            expected.as_slice()
        );
    }

    #[test]
    fn evidence_for_the_same_runtime_data_verifies() {
        let digest = runtime_data_digest("abc", &key(), "").unwrap();
        assert_eq!(
            verify_sample_evidence(&sample_evidence(&digest), &digest),
            Ok(())
        );
    }

    #[test]
    fn evidence_for_another_nonce_is_a_binding_mismatch() {
        let digest = runtime_data_digest("abc", &key(), "").unwrap();
        let other = runtime_data_digest("abd", &key(), "").unwrap();
        assert_eq!(
            verify_sample_evidence(&sample_evidence(&other), &digest),
            Err(EvidenceError::BindingMismatch)
        );
    }

    #[test]
    fn malformed_evidence_is_refused() {
        let digest = [0u8; 48];
        for bad in [
            json!(null),
            json!({"svn": 1, "report_data": ""}),
            json!({"svn": "2", "report_data": ""}),
            json!({"svn": "1"}),
            json!({"svn": "1", "report_data": "%%%"}),
        ] {
            assert!(matches!(
                verify_sample_evidence(&bad, &digest),
                Err(EvidenceError::Shape(_))
            ));
        }
    }
}
