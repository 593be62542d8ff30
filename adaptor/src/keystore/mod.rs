//! The adaptor's key store: the WN key pair shared by all PPs and one key
//! pair per PP, in the OpenSSH formats of `pp_ssh_key`, behind one
//! interface ([`KeyStore`]) with two backends: a local directory
//! ([`directory`]) and Secrets in one Kubernetes namespace
//! ([`kubernetes`]), so every worker node's adaptor shares the WN key.
//!
//! Contract (both backends): the private key is the source of truth; its
//! public half is always derived from it, and a stored public key that
//! disagrees is an error. A key is stored whole or not at all. Making a key
//! that is missing is create-if-absent: when two adaptors race, one key
//! wins and the loser loads the winner's. New keys come from the OS RNG.
//! Keys made by `ssh-keygen -t ed25519` (unencrypted) are accepted as they
//! are. Removing a PP's key that is already gone is not an error.

pub mod directory;
pub mod kubernetes;
pub mod private_file;

use pp_ssh_key::{KeyError, PrivateKey, PublicKey};
use std::path::PathBuf;
use zeroize::Zeroizing;

use crate::sid::Sid;
use directory::DirectoryKeys;
use kubernetes::{SecretKeys, SecretsConfig};

/// Comment written into the WN public key line.
pub(crate) const WN_KEY_COMMENT: &str = "peerpod-wn";

/// Where the keys are kept (`key_dir` or `[kubernetes_secrets]` in the
/// configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStoreConfig {
    Directory(PathBuf),
    Kubernetes(SecretsConfig),
}

/// What went wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is not a usable key: {source}")]
    BadKey { what: String, source: KeyError },
    #[error(
        "{public} does not belong to the private key {private}: remove the stale public key or restore the pair"
    )]
    PairMismatch { private: String, public: String },
    #[error("the OS random number generator failed: {reason}")]
    Random { reason: String },
    #[error("no key pair for pp {sid} in {location}: run `pp-adaptor pp create --sid {sid}` first")]
    MissingPpKey { sid: Sid, location: String },
    #[error(transparent)]
    Unprotected(#[from] private_file::UnprotectedFile),
    /// Boxed: the API server's messages make it the largest variant.
    #[error(transparent)]
    Kubernetes(Box<kubernetes::SecretsError>),
}

impl From<kubernetes::SecretsError> for KeyStoreError {
    fn from(error: kubernetes::SecretsError) -> Self {
        Self::Kubernetes(Box::new(error))
    }
}

/// The key store of one adaptor: cheap to clone.
#[derive(Clone)]
pub struct KeyStore(Backend);

#[derive(Clone)]
enum Backend {
    Directory(DirectoryKeys),
    Kubernetes(Box<SecretKeys>),
}

impl From<DirectoryKeys> for KeyStore {
    fn from(keys: DirectoryKeys) -> Self {
        Self(Backend::Directory(keys))
    }
}

impl KeyStore {
    /// Opens the configured backend (the Kubernetes one reads its
    /// credentials; nothing is fetched yet).
    pub async fn open(config: &KeyStoreConfig) -> Result<Self, KeyStoreError> {
        Ok(match config {
            KeyStoreConfig::Directory(dir) => DirectoryKeys::open(dir)?.into(),
            KeyStoreConfig::Kubernetes(secrets) => Self(Backend::Kubernetes(Box::new(
                SecretKeys::connect(secrets).await?,
            ))),
        })
    }

    /// Where the keys are, for messages.
    pub fn location(&self) -> String {
        match &self.0 {
            Backend::Directory(keys) => keys.dir().display().to_string(),
            Backend::Kubernetes(keys) => keys.location(),
        }
    }

    /// The WN key pair, made on first use.
    pub async fn load_or_create_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.load_or_create_wn(),
            Backend::Kubernetes(keys) => keys.load_or_create_wn().await,
        }
    }

    /// The WN key pair; an error when it was never made.
    pub async fn load_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.load_wn(),
            Backend::Kubernetes(keys) => keys.load_wn().await,
        }
    }

    /// The key pair of PP `sid`, made on first use (so `pp create` can be
    /// repeated and re-registers the same key).
    pub async fn load_or_create_pp(&self, sid: &Sid) -> Result<PrivateKey, KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.load_or_create_pp(sid),
            Backend::Kubernetes(keys) => keys.load_or_create_pp(sid).await,
        }
    }

    /// The public key PP `sid` must show in the Kubernetes phase.
    pub async fn pp_public_key(&self, sid: &Sid) -> Result<PublicKey, KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.pp_public_key(sid),
            Backend::Kubernetes(keys) => keys.pp_public_key(sid).await,
        }
    }

    /// The text of PP `sid`'s private key (OpenSSH form), as it goes to
    /// Trustee.
    pub async fn pp_private_key_file(&self, sid: &Sid) -> Result<Zeroizing<String>, KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.pp_private_key_file(sid),
            Backend::Kubernetes(keys) => keys.pp_private_key_file(sid).await,
        }
    }

    /// Removes PP `sid`'s key pair; a missing one is not an error.
    pub async fn remove_pp(&self, sid: &Sid) -> Result<(), KeyStoreError> {
        match &self.0 {
            Backend::Directory(keys) => keys.remove_pp(sid),
            Backend::Kubernetes(keys) => keys.remove_pp(sid).await,
        }
    }
}

/// A freshly made key pair in its stored forms.
pub(crate) struct NewPair {
    pub key: PrivateKey,
    pub private_text: Zeroizing<String>,
    pub public_line: String,
}

/// Makes a key pair from the OS RNG.
pub(crate) fn new_pair(comment: &str) -> Result<NewPair, KeyStoreError> {
    let random_error = |error: getrandom::Error| KeyStoreError::Random {
        reason: error.to_string(),
    };
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(random_error)?;
    let key = PrivateKey::from_seed(*seed).with_comment(comment);
    let checkint = getrandom::u32().map_err(random_error)?;
    Ok(NewPair {
        private_text: key.emit(checkint),
        public_line: public_line(&key),
        key,
    })
}

/// Parses a stored pair; `public_text` (when stored) must be the private
/// key's public half. `private_name`/`public_name` name them in errors.
pub(crate) fn parse_pair(
    private_text: &str,
    public_text: Option<&str>,
    private_name: &str,
    public_name: &str,
) -> Result<PrivateKey, KeyStoreError> {
    let key = PrivateKey::parse(private_text).map_err(|source| KeyStoreError::BadKey {
        what: private_name.to_owned(),
        source,
    })?;
    if let Some(line) = public_text {
        let public = PublicKey::parse(line).map_err(|source| KeyStoreError::BadKey {
            what: public_name.to_owned(),
            source,
        })?;
        if public != key.public() {
            return Err(KeyStoreError::PairMismatch {
                private: private_name.to_owned(),
                public: public_name.to_owned(),
            });
        }
    }
    Ok(key)
}

/// The authorized_keys line of `key`'s public half, with a trailing newline.
pub fn public_line(key: &PrivateKey) -> String {
    let comment = Some(key.comment()).filter(|comment| !comment.is_empty());
    format!("{}\n", key.public().emit(comment))
}
