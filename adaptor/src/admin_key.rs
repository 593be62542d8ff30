//! Loading the Ed25519 admin key that signs Trustee admin tokens.
//!
//! Contract: [`load_admin_key`] accepts the two forms operators have: PKCS#8
//! PEM (`-----BEGIN PRIVATE KEY-----`, what Trustee's docs make with
//! `openssl genpkey -algorithm ed25519`) and the OpenSSH private key form
//! (`ssh-keygen -t ed25519`, parsed by `pp_ssh_key`). Anything
//! else is an error naming the file and the expected forms.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use pp_ssh_key::PrivateKey;
use std::path::{Path, PathBuf};

const PKCS8_PEM_LABEL: &str = "-----BEGIN PRIVATE KEY-----";
const OPENSSH_LABEL: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// Why the admin key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    #[error("cannot read the Trustee admin key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Trustee admin key {path} is not a PKCS#8 Ed25519 key ({reason}); make one with \
         `openssl genpkey -algorithm ed25519`"
    )]
    Pkcs8 { path: PathBuf, reason: String },
    #[error("the Trustee admin key {path} is not a usable OpenSSH Ed25519 key: {source}")]
    OpenSsh {
        path: PathBuf,
        source: pp_ssh_key::KeyError,
    },
    #[error(
        "the Trustee admin key {path} is neither PKCS#8 PEM (`{PKCS8_PEM_LABEL}`) nor an OpenSSH \
         private key (`{OPENSSH_LABEL}`)"
    )]
    UnknownForm { path: PathBuf },
}

/// Parses an admin key from its text; `path` only names it in errors.
pub fn parse_admin_key(text: &str, path: &Path) -> Result<SigningKey, AdminKeyError> {
    if text.contains(PKCS8_PEM_LABEL) {
        SigningKey::from_pkcs8_pem(text).map_err(|error| AdminKeyError::Pkcs8 {
            path: path.to_owned(),
            reason: error.to_string(),
        })
    } else if text.contains(OPENSSH_LABEL) {
        let key = PrivateKey::parse(text).map_err(|source| AdminKeyError::OpenSsh {
            path: path.to_owned(),
            source,
        })?;
        Ok(SigningKey::from_bytes(key.seed()))
    } else {
        Err(AdminKeyError::UnknownForm {
            path: path.to_owned(),
        })
    }
}

/// Reads and parses the admin key file at `path`.
pub fn load_admin_key(path: &Path) -> Result<SigningKey, AdminKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| AdminKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_admin_key(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

    #[test]
    fn a_pkcs8_pem_key_is_accepted() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pem = key.to_pkcs8_pem(Default::default()).unwrap();
        let parsed = parse_admin_key(&pem, Path::new("admin.pem")).unwrap();
        assert_eq!(parsed.to_bytes(), key.to_bytes());
    }

    #[test]
    fn an_openssh_key_is_accepted() {
        let key = PrivateKey::from_seed([4; 32]);
        let parsed = parse_admin_key(&key.emit(7), Path::new("admin")).unwrap();
        assert_eq!(&parsed.to_bytes(), key.seed());
    }

    #[test]
    fn other_text_names_the_file_and_both_forms() {
        let error = parse_admin_key("hello", Path::new("/etc/admin.key"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/etc/admin.key")
                && error.contains("PKCS#8")
                && error.contains("OpenSSH"),
            "{error}"
        );
    }
}
