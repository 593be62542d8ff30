//! The launch-time bindings of an init-data document: its digest and the
//! exact values a VMM must set (SNP HOST_DATA, TDX MRCONFIGID) or a vTPM
//! shows (PCR 8), as Trustee's verifiers compare them.
//!
//! Parsing, the digest and the pad/truncate rule are the core crate's
//! (`pp_initdata`); this module only collects the values.

use pp_initdata::{self as initdata, InitData};
use sha2::{Digest, Sha256};

use crate::error::{Result, bad_input};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitDataBinding {
    pub algorithm: String,
    /// The digest over the exact TOML bytes, lowercase hex.
    pub digest: String,
    /// SNP HOST_DATA (32 bytes): what `-object sev-snp-guest,host-data=`
    /// takes (base64) and Trustee's `init_data` claim shows (hex).
    pub host_data: String,
    pub host_data_base64: String,
    /// TDX MRCONFIGID (48 bytes): QEMU `-object tdx-guest,mrconfigid=`
    /// takes it base64 encoded.
    pub mrconfigid: String,
    pub mrconfigid_base64: String,
    /// PCR 8 on Azure vTPM (SHA-256 of 32 zero bytes and the digest); only
    /// for `sha256` init-data, the only size the verifier accepts there.
    pub vtpm_pcr8: Option<String>,
}

impl InitDataBinding {
    pub fn from_toml(toml: &[u8]) -> Result<Self> {
        let document =
            InitData::parse(toml).map_err(|error| bad_input("init-data", error.to_string()))?;
        let algorithm = document.algorithm();
        let digest = initdata::digest(toml, algorithm);
        let host_data = initdata::host_data(&digest);
        let mrconfigid = initdata::mrconfigid(&digest);
        let vtpm_pcr8 = (digest.len() == 32).then(|| {
            let mut hasher = Sha256::new();
            hasher.update([0u8; 32]);
            hasher.update(&digest);
            hex::encode(hasher.finalize())
        });
        use base64::Engine as _;
        let standard = base64::engine::general_purpose::STANDARD;
        Ok(Self {
            algorithm: algorithm.as_str().to_string(),
            digest: hex::encode(&digest),
            host_data: hex::encode(host_data),
            host_data_base64: standard.encode(host_data),
            mrconfigid: hex::encode(mrconfigid),
            mrconfigid_base64: standard.encode(mrconfigid),
            vtpm_pcr8,
        })
    }

    /// Every value Trustee's `init_data` claim may show for this document
    /// (SNP, TDX, vTPM), lowercase hex.
    pub fn claim_values(&self) -> Vec<String> {
        let mut values = vec![self.host_data.clone(), self.mrconfigid.clone()];
        values.extend(self.vtpm_pcr8.clone());
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA384_DOC: &[u8] =
        b"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"aa.toml\" = \"x\"\n";

    #[test]
    fn a_sha384_digest_is_truncated_for_host_data_and_fills_mrconfigid() {
        let binding = InitDataBinding::from_toml(SHA384_DOC).unwrap();
        assert_eq!(binding.digest.len(), 96);
        assert_eq!(binding.host_data, binding.digest[..64]);
        assert_eq!(binding.mrconfigid, binding.digest);
        assert_eq!(binding.vtpm_pcr8, None);
    }

    #[test]
    fn a_sha256_digest_is_zero_padded_for_mrconfigid_and_gets_a_pcr8() {
        let toml = b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n";
        let binding = InitDataBinding::from_toml(toml).unwrap();
        assert_eq!(binding.host_data, binding.digest);
        assert_eq!(
            binding.mrconfigid,
            format!("{}{}", binding.digest, "0".repeat(32))
        );
        assert!(binding.vtpm_pcr8.is_some());
        assert_eq!(binding.claim_values().len(), 3);
    }

    #[test]
    fn a_document_with_an_unknown_algorithm_is_refused_naming_init_data() {
        let error =
            InitDataBinding::from_toml(b"version = \"0.1.0\"\nalgorithm = \"md5\"\n").unwrap_err();
        assert!(error.to_string().starts_with("init-data"), "{error}");
    }
}
