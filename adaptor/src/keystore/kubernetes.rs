//! The Kubernetes backend of the key store: one Secret per key pair in one
//! namespace, through the API server (the `kube` client; in-cluster
//! service account, or a kubeconfig file).
//!
//! Contract:
//! - The WN key pair is the Secret `pp-adaptor-wn`, shared by the adaptor
//!   of every worker node; PP `SID`'s is `pp-adaptor-pp-SID`, made by
//!   `pp create` and deleted with the pod. Both are `Opaque` with the
//!   private key (OpenSSH form) under `ssh-privatekey` and the public line
//!   under `ssh-publickey`, labelled `app.kubernetes.io/managed-by:
//!   pp-adaptor`, [`KIND_LABEL`] (`wn`/`pp`) and, for a PP, [`SID_LABEL`]
//!   (the SID, cut to the 63 characters a label value may have; the whole
//!   SID is the [`SID_ANNOTATION`]).
//! - A missing key is made with create-if-absent: `POST`; on 409
//!   `AlreadyExists` another adaptor won the race, and its key is read and
//!   used. A stored Secret without `ssh-publickey` gets it added by a `PUT`
//!   carrying the `resourceVersion` read (optimistic concurrency); on 409
//!   `Conflict` it is read again. Both retry a bounded number of times.
//! - Removal of a missing Secret (404) is not an error.
//! - Errors name the Secret, the API's code, reason and message, and what
//!   to do (403: the Role; 401: the credentials).
//! - The SID must then be lowercase letters, digits and `-` (sandbox ids
//!   are hex), since it is part of a Secret name.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use pp_ssh_key::{PrivateKey, PublicKey};
use std::collections::BTreeMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

use super::{KeyStoreError, WN_KEY_COMMENT, new_pair, parse_pair, public_line};
use crate::sid::Sid;

/// Name of the Secret holding the WN key pair.
pub const WN_SECRET: &str = "pp-adaptor-wn";
/// Prefix of the Secret names of PP key pairs (then the SID).
pub const PP_SECRET_PREFIX: &str = "pp-adaptor-pp-";
/// Data key of the private key (as in `kubernetes.io/ssh-auth` Secrets).
pub const PRIVATE_KEY_DATA: &str = "ssh-privatekey";
/// Data key of the public key line.
pub const PUBLIC_KEY_DATA: &str = "ssh-publickey";
/// Label saying which key a Secret holds: `wn` or `pp`.
pub const KIND_LABEL: &str = "peerpod.confidentialcontainers.org/key";
/// Label naming the PP's SID (at most 63 characters of it).
pub const SID_LABEL: &str = "peerpod.confidentialcontainers.org/sid";
/// Annotation holding the PP's whole SID.
pub const SID_ANNOTATION: &str = "peerpod.confidentialcontainers.org/sid";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
const MANAGED_BY: &str = "pp-adaptor";
/// How often a create or update is retried after losing a race.
const RACE_RETRIES: usize = 5;

/// `[kubernetes_secrets]` of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsConfig {
    /// The namespace the Secrets live in (the Role's namespace).
    pub namespace: String,
    /// A kubeconfig file; None: the in-cluster service account, else
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
}

/// What went wrong talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "cannot set up the Kubernetes client for the key store ({source_of}): {reason}; run inside a pod with a service account, or set kubeconfig in [kubernetes_secrets]"
    )]
    Client { source_of: String, reason: String },
    /// `secret` is `NAMESPACE/NAME`, `status` the API's `REASON: MESSAGE`.
    #[error("{verb} Secret {secret}: {code} {status}{hint}")]
    Api {
        verb: &'static str,
        secret: String,
        code: u16,
        status: String,
        hint: &'static str,
    },
    #[error("{verb} Secret {secret}: the Kubernetes API could not be reached: {reason}")]
    Transport {
        verb: &'static str,
        secret: String,
        reason: String,
    },
    #[error("Secret {secret} has no {key} (or it is not UTF-8): restore it or delete the Secret")]
    MissingData { secret: String, key: &'static str },
    #[error("no WN key Secret {namespace}/{WN_SECRET}: run `pp-adaptor keys init` first")]
    MissingWn { namespace: String },
    #[error(
        "pp {sid}: the Kubernetes key store names Secrets after the SID, which must then be lowercase letters, digits and '-' (at most 200)"
    )]
    UnusableSid { sid: Sid },
    #[error(
        "Secret {namespace}/{name} kept changing under the adaptor ({RACE_RETRIES} tries): another writer is busy; try again"
    )]
    Contention { namespace: String, name: String },
}

/// The Secrets of one namespace.
#[derive(Clone)]
pub struct SecretKeys {
    api: Api<Secret>,
    namespace: String,
}

/// Which key a Secret holds.
enum KeyOwner<'a> {
    Wn,
    Pp(&'a Sid),
}

impl SecretKeys {
    /// A client from `config` (reads the kubeconfig or the service
    /// account; no request is made yet).
    pub async fn connect(config: &SecretsConfig) -> Result<Self, SecretsError> {
        let client_error = |source_of: &str, reason: String| SecretsError::Client {
            source_of: source_of.to_owned(),
            reason,
        };
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let source_of = format!("kubeconfig {}", path.display());
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .map_err(|error| client_error(&source_of, error.to_string()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|error| client_error(&source_of, error.to_string()))?
            }
            None => kube::Config::infer().await.map_err(|error| {
                client_error(
                    "in-cluster service account or default kubeconfig",
                    error.to_string(),
                )
            })?,
        };
        let client = kube::Client::try_from(kube_config)
            .map_err(|error| client_error("client", error.to_string()))?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            namespace: config.namespace.clone(),
        })
    }

    /// For messages: where the keys are.
    pub fn location(&self) -> String {
        format!("Kubernetes Secrets in namespace {}", self.namespace)
    }

    pub async fn load_or_create_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        self.load_or_create(WN_SECRET, KeyOwner::Wn).await
    }

    pub async fn load_wn(&self) -> Result<PrivateKey, KeyStoreError> {
        match self.load(WN_SECRET).await? {
            Some(key) => Ok(key),
            None => Err(SecretsError::MissingWn {
                namespace: self.namespace.clone(),
            }
            .into()),
        }
    }

    pub async fn load_or_create_pp(&self, sid: &Sid) -> Result<PrivateKey, KeyStoreError> {
        self.load_or_create(&pp_secret_name(sid)?, KeyOwner::Pp(sid))
            .await
    }

    pub async fn pp_public_key(&self, sid: &Sid) -> Result<PublicKey, KeyStoreError> {
        Ok(self.load_pp(sid).await?.public())
    }

    pub async fn pp_private_key_file(&self, sid: &Sid) -> Result<Zeroizing<String>, KeyStoreError> {
        let name = pp_secret_name(sid)?;
        let secret = self
            .get(&name)
            .await?
            .ok_or_else(|| missing_pp(sid, self))?;
        let text = self.data(&secret, &name, PRIVATE_KEY_DATA)?;
        // Parsed to refuse a damaged key before it goes to Trustee.
        parse_pair(&text, None, &self.describe(&name, PRIVATE_KEY_DATA), "")?;
        Ok(text)
    }

    pub async fn remove_pp(&self, sid: &Sid) -> Result<(), KeyStoreError> {
        let name = pp_secret_name(sid)?;
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(self.api_error("delete", &name, error).into()),
        }
    }

    async fn load_pp(&self, sid: &Sid) -> Result<PrivateKey, KeyStoreError> {
        let name = pp_secret_name(sid)?;
        self.load(&name).await?.ok_or_else(|| missing_pp(sid, self))
    }

    /// The key pair in Secret `name`, None when there is no such Secret.
    async fn load(&self, name: &str) -> Result<Option<PrivateKey>, KeyStoreError> {
        for _ in 0..RACE_RETRIES {
            let Some(secret) = self.get(name).await? else {
                return Ok(None);
            };
            if let Some(key) = self.complete(name, secret).await? {
                return Ok(Some(key));
            }
        }
        Err(self.contention(name))
    }

    async fn load_or_create(
        &self,
        name: &str,
        owner: KeyOwner<'_>,
    ) -> Result<PrivateKey, KeyStoreError> {
        for _ in 0..RACE_RETRIES {
            if let Some(secret) = self.get(name).await? {
                if let Some(key) = self.complete(name, secret).await? {
                    return Ok(key);
                }
                continue;
            }
            let comment = match owner {
                KeyOwner::Wn => WN_KEY_COMMENT.to_owned(),
                KeyOwner::Pp(sid) => sid.pp_name(),
            };
            let pair = new_pair(&comment)?;
            let secret = new_secret(name, &owner, &pair.private_text, &pair.public_line);
            match self.api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    tracing::info!(
                        "made the key pair {} in Secret {}/{name}",
                        pair.key.public().fingerprint(),
                        self.namespace
                    );
                    return Ok(pair.key);
                }
                // Another adaptor made it first: read and use its key.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    tracing::info!(
                        "Secret {}/{name} was made by another adaptor meanwhile; using its key",
                        self.namespace
                    );
                }
                Err(error) => return Err(self.api_error("create", name, error).into()),
            }
        }
        Err(self.contention(name))
    }

    /// Parses `secret`; adds a missing public key with an update that
    /// carries the version read. None: the update lost a race, read again.
    async fn complete(
        &self,
        name: &str,
        mut secret: Secret,
    ) -> Result<Option<PrivateKey>, KeyStoreError> {
        let private_text = self.data(&secret, name, PRIVATE_KEY_DATA)?;
        let public_text = secret
            .data
            .as_ref()
            .and_then(|data| data.get(PUBLIC_KEY_DATA))
            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned());
        let key = parse_pair(
            &private_text,
            public_text.as_deref(),
            &self.describe(name, PRIVATE_KEY_DATA),
            &self.describe(name, PUBLIC_KEY_DATA),
        )?;
        if public_text.is_some() {
            return Ok(Some(key));
        }
        secret.data.get_or_insert_with(BTreeMap::new).insert(
            PUBLIC_KEY_DATA.to_owned(),
            ByteString(public_line(&key).into_bytes()),
        );
        match self
            .api
            .replace(name, &PostParams::default(), &secret)
            .await
        {
            Ok(_) => Ok(Some(key)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(error) => Err(self.api_error("update", name, error).into()),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Secret>, SecretsError> {
        self.api
            .get_opt(name)
            .await
            .map_err(|error| self.api_error("get", name, error))
    }

    fn data(
        &self,
        secret: &Secret,
        name: &str,
        key: &'static str,
    ) -> Result<Zeroizing<String>, SecretsError> {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| SecretsError::MissingData {
                secret: format!("{}/{name}", self.namespace),
                key,
            })
    }

    fn describe(&self, name: &str, key: &str) -> String {
        format!("Secret {}/{name} ({key})", self.namespace)
    }

    fn contention(&self, name: &str) -> KeyStoreError {
        SecretsError::Contention {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
        }
        .into()
    }

    fn api_error(&self, verb: &'static str, name: &str, error: kube::Error) -> SecretsError {
        match error {
            kube::Error::Api(status) => {
                let hint = match status.code {
                    401 => {
                        "; the API server refused the credentials (service account token or kubeconfig user)"
                    }
                    403 => {
                        "; the service account needs get, create, update and delete on secrets in this namespace (deploy/rbac.yaml)"
                    }
                    _ => "",
                };
                SecretsError::Api {
                    verb,
                    secret: format!("{}/{name}", self.namespace),
                    code: status.code,
                    status: format!("{}: {}", status.reason, status.message),
                    hint,
                }
            }
            other => SecretsError::Transport {
                verb,
                secret: format!("{}/{name}", self.namespace),
                reason: other.to_string(),
            },
        }
    }
}

/// `pp-adaptor-pp-SID`, when the SID can be part of a Secret name.
pub fn pp_secret_name(sid: &Sid) -> Result<String, SecretsError> {
    let text = sid.as_str();
    let usable = text.len() <= 200
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.ends_with('-');
    if usable {
        Ok(format!("{PP_SECRET_PREFIX}{text}"))
    } else {
        Err(SecretsError::UnusableSid { sid: sid.clone() })
    }
}

fn missing_pp(sid: &Sid, keys: &SecretKeys) -> KeyStoreError {
    KeyStoreError::MissingPpKey {
        sid: sid.clone(),
        location: keys.location(),
    }
}

fn new_secret(name: &str, owner: &KeyOwner<'_>, private_text: &str, public_line: &str) -> Secret {
    let mut labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
    let mut annotations = BTreeMap::new();
    match owner {
        KeyOwner::Wn => {
            labels.insert(KIND_LABEL.to_owned(), "wn".to_owned());
        }
        KeyOwner::Pp(sid) => {
            labels.insert(KIND_LABEL.to_owned(), "pp".to_owned());
            labels.insert(SID_LABEL.to_owned(), sid_label_value(sid));
            annotations.insert(SID_ANNOTATION.to_owned(), sid.as_str().to_owned());
        }
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations).filter(|map| !map.is_empty()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                PRIVATE_KEY_DATA.to_owned(),
                ByteString(private_text.as_bytes().to_vec()),
            ),
            (
                PUBLIC_KEY_DATA.to_owned(),
                ByteString(public_line.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

/// The SID as a label value: at most 63 characters, ending alphanumeric.
fn sid_label_value(sid: &Sid) -> String {
    let cut: String = sid.as_str().chars().take(63).collect();
    cut.trim_end_matches(['-', '.', '_']).to_owned()
}
