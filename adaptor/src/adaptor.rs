//! [`Adaptor`]: one process serving many PPs, each in its own task with its
//! own state; the library API the CLI and the end-to-end tests drive.
//!
//! Contract: [`Adaptor::open`] opens the key store (a directory or
//! Kubernetes Secrets) and the state directory, makes or loads the WN key
//! pair and loads the Trustee admin key (followed for rotation), failing
//! with a message naming what to fix; [`Adaptor::new`] does the same
//! without `async` for a key directory. [`Adaptor::create_pp`] makes (or reuses) a
//! PP's key pair and registers it and the WN public key at Trustee.
//! [`Adaptor::serve_pp`] binds the PP's local tunnel listeners and starts
//! its task, returning a [`PpHandle`] to follow its [`PpStatus`]. A PP's
//! task never waits on another's. [`Adaptor::teardown`] stops the task and
//! deletes the PP's key at Trustee and locally.

use crate::admin_jwt::AdminTokenSigner;
use crate::admin_key::{AdminKey, AdminKeyError};
use crate::config::{AdaptorConfig, PpConfig, Timing};
use crate::egress_proxy::EgressProxy;
use crate::kbs_proxy::KbsProxy;
use crate::keystore::directory::DirectoryKeys;
use crate::keystore::{KeyStore, KeyStoreConfig, KeyStoreError, public_line};
use crate::local_tunnels::{BindError, LocalAddress, LocalTunnels, TunnelInfo};
use crate::pp_driver::PpDriver;
use crate::pp_record::{RecordError, RecordStore};
use crate::pp_status::{PpActivity, PpStatus};
use crate::relay_check::RelayCheck;
use crate::sid::Sid;
use crate::ssh_connect::AuthPlan;
use crate::teardown::Teardown;
use crate::trustee_admin::{TrusteeAdmin, TrusteeError};
use crate::tunnel_stats::TargetStats;
use crate::upstream::{TrustError, Upstream};
use pp_ssh_key::{PrivateKey, PublicKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why an adaptor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdaptorError {
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error(transparent)]
    AdminKey(#[from] AdminKeyError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Trustee(#[from] TrusteeError),
    #[error(transparent)]
    TrusteeTls(#[from] TrustError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("the Kubernetes key store is opened with Adaptor::open (async), not Adaptor::new")]
    NeedsOpen,
    #[error("pp {sid} is already being served")]
    AlreadyServed { sid: Sid },
    #[error("teardown of pp {sid} failed: {reason}")]
    Teardown { sid: Sid, reason: String },
}

/// The adaptor: cheap to clone, all clones serve the same PPs.
#[derive(Clone)]
pub struct Adaptor {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeyStore,
    wn_key: PrivateKey,
    upstream: Upstream,
    egress: EgressProxy,
    relay_check: RelayCheck,
    teardown: Arc<Teardown>,
    timing: Timing,
    running: Mutex<HashMap<Sid, Running>>,
}

struct Running {
    task: JoinHandle<()>,
    status: watch::Sender<PpStatus>,
}

/// A PP whose key pair was found and whose local listeners are bound,
/// ready for [`Adaptor::start_pp`].
pub struct BoundPp {
    pp: PpConfig,
    pp_key: PublicKey,
    tunnels: LocalTunnels,
}

impl BoundPp {
    /// The PP's tunnel tags with the local addresses actually bound (port 0
    /// replaced by the port it got), so binding them again gives the same
    /// addresses.
    pub fn resolved_tags(&self) -> Vec<String> {
        self.pp
            .tunnels
            .iter()
            .zip(self.tunnels.addresses())
            .map(|(tag, (_, address))| format!("{}:{}:{address}", tag.phase().as_str(), tag.name()))
            .collect()
    }
}

/// Follows one served PP.
#[derive(Clone, Debug)]
pub struct PpHandle {
    sid: Sid,
    status: watch::Receiver<PpStatus>,
    tunnels: Vec<TunnelInfo>,
    targets: TargetStats,
    activity: Arc<PpActivity>,
}

impl PpHandle {
    pub fn sid(&self) -> &Sid {
        &self.sid
    }

    /// The current status.
    pub fn status(&self) -> PpStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<PpStatus> {
        self.status.clone()
    }

    /// Waits up to `timeout` for a status for which `accept` is true and
    /// returns it; on timeout, or when the PP reached a final status that
    /// `accept` refuses, returns `Err` with the last status seen.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut accept: impl FnMut(&PpStatus) -> bool,
    ) -> Result<PpStatus, PpStatus> {
        let mut status = self.status.clone();
        let reached = matches!(
            tokio::time::timeout(
                timeout,
                status.wait_for(|current| accept(current) || current.is_final())
            )
            .await,
            Ok(Ok(_))
        );
        let last = status.borrow().clone();
        if reached && accept(&last) {
            Ok(last)
        } else {
            Err(last)
        }
    }

    /// Where the local listener of tunnel `name` is bound.
    pub fn tunnel_address(&self, name: &str) -> Option<&LocalAddress> {
        self.tunnels
            .iter()
            .find(|tunnel| tunnel.name == name)
            .map(|tunnel| &tunnel.address)
    }

    /// Every local tunnel listener with its counters.
    pub fn tunnels(&self) -> &[TunnelInfo] {
        &self.tunnels
    }

    /// Every WN-side target of the PP's inbound tunnels with its counters
    /// (bytes and datagrams "to the PP" are what the target sent).
    pub fn targets(&self) -> &TargetStats {
        &self.targets
    }

    /// Lost connections and the last error of the PP's task.
    pub fn activity(&self) -> &PpActivity {
        &self.activity
    }
}

impl Adaptor {
    /// Opens the key store, the state directory, the WN key pair (made
    /// when missing) and the admin key of `config`; `config.pps` is not
    /// used here (see [`Adaptor::serve_pp`]).
    pub async fn open(config: &AdaptorConfig) -> Result<Self, AdaptorError> {
        let keys = KeyStore::open(&config.key_store).await?;
        let wn_key = keys.load_or_create_wn().await?;
        Self::with_keys(config, keys, wn_key)
    }

    /// [`Adaptor::open`] for a key directory (`key_dir`), without `async`;
    /// Kubernetes Secrets need [`Adaptor::open`].
    pub fn new(config: &AdaptorConfig) -> Result<Self, AdaptorError> {
        let KeyStoreConfig::Directory(dir) = &config.key_store else {
            return Err(AdaptorError::NeedsOpen);
        };
        let keys = DirectoryKeys::open(dir)?;
        let wn_key = keys.load_or_create_wn()?;
        Self::with_keys(config, keys.into(), wn_key)
    }

    fn with_keys(
        config: &AdaptorConfig,
        keys: KeyStore,
        wn_key: PrivateKey,
    ) -> Result<Self, AdaptorError> {
        let records = RecordStore::open(&config.state_dir)?;
        let signer = AdminTokenSigner::new(
            AdminKey::watch_file(&config.admin_key_path)?,
            config.admin_claims.clone(),
        );
        if !config.trustee_url.is_https() && !config.trustee_url.is_loopback() {
            tracing::warn!(
                "trustee_url {} is plain http to another host: the PP private keys registered there cross the network unencrypted; use https (and trustee_ca)",
                config.trustee_url
            );
        }
        let upstream = Upstream::new(config.trustee_url.clone(), config.trustee_ca.as_deref())?;
        let trustee = TrusteeAdmin::new(upstream.clone(), signer);
        let teardown = Arc::new(Teardown {
            trustee,
            keys: keys.clone(),
            records,
        });
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                wn_key,
                upstream,
                egress: EgressProxy::new(config.egress.clone()),
                relay_check: config.relay_check,
                teardown,
                timing: config.timing.clone(),
                running: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The WN public key, shared by all PPs.
    pub fn wn_public_key(&self) -> PublicKey {
        self.inner.wn_key.public()
    }

    /// The WN public key as one authorized_keys line (with its comment), as
    /// it goes into init-data and to Trustee.
    pub fn wn_public_key_line(&self) -> String {
        public_line(&self.inner.wn_key).trim_end().to_owned()
    }

    /// How many Trustee admin calls failed since start.
    pub fn trustee_errors(&self) -> u64 {
        self.inner.teardown.trustee.errors()
    }

    /// Whether PP `sid` has a key pair (made by [`Adaptor::create_pp`]).
    pub async fn has_pp_keys(&self, sid: &Sid) -> bool {
        self.inner.keys.pp_public_key(sid).await.is_ok()
    }

    /// The relay check of pods attached without one of their own (the
    /// configuration's top-level `relay_check`).
    pub fn relay_check(&self) -> RelayCheck {
        self.inner.relay_check
    }

    /// Stores the WN public key at Trustee (`default/sshclient/publicKey`).
    pub async fn register_wn_key(&self) -> Result<(), AdaptorError> {
        self.inner
            .teardown
            .trustee
            .set_wn_public_key(&self.wn_public_key_line())
            .await?;
        tracing::info!(
            "registered the WN public key {} at Trustee",
            self.wn_public_key().fingerprint()
        );
        Ok(())
    }

    /// Makes (or reuses) PP `sid`'s key pair and registers its private key
    /// and the WN public key at Trustee; returns the PP's public key.
    pub async fn create_pp(&self, sid: &Sid) -> Result<PublicKey, AdaptorError> {
        let key = self.inner.keys.load_or_create_pp(sid).await?;
        self.register_wn_key().await?;
        let key_file = self.inner.keys.pp_private_key_file(sid).await?;
        self.inner
            .teardown
            .trustee
            .set_pp_private_key(sid, key_file.as_bytes())
            .await?;
        tracing::info!(
            "pp {sid}: registered its private key at Trustee (host key {})",
            key.public().fingerprint()
        );
        Ok(key.public())
    }

    /// Starts serving `pp` in its own task: [`Adaptor::bind_pp`] then
    /// [`Adaptor::start_pp`].
    pub async fn serve_pp(&self, pp: PpConfig) -> Result<PpHandle, AdaptorError> {
        let bound = self.bind_pp(pp).await?;
        self.start_pp(bound)
    }

    /// Checks that `pp` has a key pair and binds its local tunnel listeners,
    /// without connecting yet. Binding every PP before starting any keeps
    /// the PPs' own outgoing connections from taking a configured port.
    pub async fn bind_pp(&self, pp: PpConfig) -> Result<BoundPp, AdaptorError> {
        if self.is_running(&pp.sid) {
            return Err(AdaptorError::AlreadyServed { sid: pp.sid });
        }
        let pp_key = self.inner.keys.pp_public_key(&pp.sid).await?;
        let tunnels = LocalTunnels::bind(&pp.sid, &pp.tunnels).await?;
        Ok(BoundPp {
            pp,
            pp_key,
            tunnels,
        })
    }

    /// Starts the task of a PP bound by [`Adaptor::bind_pp`].
    pub fn start_pp(&self, bound: BoundPp) -> Result<PpHandle, AdaptorError> {
        let BoundPp {
            pp,
            pp_key,
            tunnels,
        } = bound;
        let sid = pp.sid.clone();
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if running
            .get(&sid)
            .is_some_and(|running| !running.task.is_finished())
        {
            return Err(AdaptorError::AlreadyServed { sid });
        }
        let infos = tunnels.infos();
        let targets = TargetStats::new(&pp.targets);
        let activity = Arc::new(PpActivity::default());
        let (status_tx, status_rx) = watch::channel(PpStatus::Connecting);
        let (slot_tx, slot_rx) = watch::channel(None);
        let driver = PpDriver {
            auth: AuthPlan::new(&self.inner.wn_key, pp.init_data_has_wn_key),
            proxy: KbsProxy::new(self.inner.upstream.clone(), sid.clone()),
            egress: self.inner.egress.clone(),
            records: self.inner.teardown.records.clone(),
            teardown: self.inner.teardown.clone(),
            timing: self.inner.timing.clone(),
            status: status_tx.clone(),
            slot: slot_tx,
            activity: activity.clone(),
            targets: targets.clone(),
            pp_key,
            pp,
        };
        tracing::info!(
            "pp {sid}: serving (PP host key must become {})",
            pp_key.fingerprint()
        );
        let tunnel_wait = self.inner.timing.tunnel_wait;
        let udp_idle = self.inner.timing.udp_idle;
        let task = tokio::spawn(async move {
            tokio::select! {
                () = driver.run() => {}
                () = tunnels.run(slot_rx, tunnel_wait, udp_idle) => {}
            }
        });
        running.insert(
            sid.clone(),
            Running {
                task,
                status: status_tx,
            },
        );
        Ok(PpHandle {
            sid,
            status: status_rx,
            tunnels: infos,
            targets,
            activity,
        })
    }

    /// Stops serving PP `sid` (its connection and local listeners close);
    /// its keys and record stay, so serving it again resumes where it was.
    /// Returns whether it was being served.
    pub async fn stop_pp(&self, sid: &Sid) -> bool {
        self.stop_task(sid, PpStatus::Stopped).await
    }

    /// Stops serving PP `sid` (if served) and deletes its private key at
    /// Trustee, its local key pair and its record.
    pub async fn teardown(&self, sid: &Sid) -> Result<(), AdaptorError> {
        self.stop_task(sid, PpStatus::TornDown).await;
        self.inner
            .teardown
            .run(sid)
            .await
            .map_err(|reason| AdaptorError::Teardown {
                sid: sid.clone(),
                reason,
            })
    }

    async fn stop_task(&self, sid: &Sid, final_status: PpStatus) -> bool {
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(sid);
        let Some(running) = running else { return false };
        running.task.abort();
        let _ = running.task.await;
        running.status.send_replace(final_status);
        true
    }

    fn is_running(&self, sid: &Sid) -> bool {
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running
            .get(sid)
            .is_some_and(|running| !running.task.is_finished())
    }
}
