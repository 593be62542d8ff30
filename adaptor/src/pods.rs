//! [`Pods`]: the set of pods a running `pp-adaptor serve` holds, as the
//! control API changes it: create (keys + Trustee), attach (connect and
//! listen), status and waiting for a phase change, delete; and restoring
//! every known pod when the daemon starts again.
//!
//! Contract: one request per pod at a time (a second one gets
//! [`PodsError::Busy`]); requests for different pods never wait on each
//! other, and nothing done to one pod touches another's connection or
//! listeners. What a request changes is saved in the state directory
//! ([`crate::pod_spec`]) before it is reported done, so after a crash the
//! daemon restores every pod it had reported: attached pods are served
//! again with the same local addresses and, having reached the Kubernetes
//! phase, without a new attestation (the PP record says so). A refused
//! request changes nothing.

use crate::adaptor::{Adaptor, AdaptorError, BoundPp, PpHandle};
use crate::config::{DEFAULT_FORWARDER_PORT, PpConfig, parse_local_tunnels, parse_wn_targets};
use crate::metrics::{Histogram, MetricsSnapshot, PodMetrics};
use crate::pod_spec::{AttachSpec, PodSpec, PodSpecStore};
use crate::pp_status::PpStatus;
use crate::relay_check::RelayCheck;
use crate::sid::Sid;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where a pod is, as the control API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodPhase {
    /// Keys made and registered; not attached yet.
    Created,
    Connecting,
    Attestation,
    Upgrading,
    Kubernetes,
    /// The adaptor gave up on it (see `last_error`); delete it.
    Failed,
}

impl PodPhase {
    pub const ALL: [Self; 6] = [
        Self::Created,
        Self::Connecting,
        Self::Attestation,
        Self::Upgrading,
        Self::Kubernetes,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Connecting => "connecting",
            Self::Attestation => "attestation",
            Self::Upgrading => "upgrading",
            Self::Kubernetes => "kubernetes",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|phase| phase.as_str() == text)
    }

    fn of(status: &PpStatus) -> Self {
        match status {
            PpStatus::Connecting => Self::Connecting,
            PpStatus::Attestation { .. } => Self::Attestation,
            PpStatus::Upgrading => Self::Upgrading,
            PpStatus::Kubernetes { .. } => Self::Kubernetes,
            PpStatus::Failed { .. } | PpStatus::Stopped | PpStatus::TornDown => Self::Failed,
        }
    }
}

/// One pod as the control API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodView {
    pub sid: String,
    pub phase: PodPhase,
    /// When the pod entered `phase` (milliseconds since the Unix epoch).
    pub since_unix_ms: u64,
    pub last_error: Option<String>,
    /// Established connections lost since the daemon started serving it.
    pub reconnects: u64,
    /// Tunnel name → local address (`IP:PORT` or `unix:PATH`).
    pub tunnels: BTreeMap<String, String>,
}

/// The metrics' `tunnel` label of a WN-side target (its name may also be
/// one of the pod's local tunnels, in the other direction).
pub const TARGET_LABEL_PREFIX: &str = "target:";

/// What `attach` needs.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// `IP` or `IP:PORT` of the PP's forwarder (port 2222 when omitted).
    pub forwarder: String,
    /// Local tunnel tags, e.g. `KUBERNETES_PHASE:KATAAGENT:127.0.0.1:0`.
    pub tunnels: Vec<String>,
    /// WN-side targets of the PP's inbound tunnels, e.g.
    /// `KUBERNETES_PHASE:DNS:udp:10.96.0.10:53` (see
    /// [`crate::config::parse_wn_targets`]).
    pub targets: Vec<String>,
    /// Whether the PP's init-data carries the WN public key.
    pub init_data_has_wn_key: bool,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("pod {sid} does not exist; create it first (POST /v1/pods)")]
    NotCreated { sid: Sid },
    #[error("pod {sid} already exists; attach it, or delete it before creating it again")]
    AlreadyCreated { sid: Sid },
    #[error("pod {sid} is already attached; delete it before attaching it again")]
    AlreadyAttached { sid: Sid },
    #[error("another request for pod {sid} is in progress; retry when it has finished")]
    Busy { sid: Sid },
    #[error("bad tunnels: {reason}")]
    BadTunnels { reason: String },
    #[error(
        "bad forwarder address {found:?}: give the PP's IP address, with or without :PORT (default {DEFAULT_FORWARDER_PORT})"
    )]
    BadForwarder { found: String },
    #[error("pod {sid}: {source}")]
    Adaptor { sid: Sid, source: Box<AdaptorError> },
}

/// The pods of one daemon; cheap to clone.
#[derive(Clone)]
pub struct Pods {
    inner: Arc<Inner>,
}

struct Inner {
    adaptor: Adaptor,
    specs: PodSpecStore,
    pods: Mutex<HashMap<Sid, Pod>>,
    busy: Mutex<HashSet<Sid>>,
    attach_latency: Mutex<Histogram>,
    status_lines: bool,
}

struct Pod {
    phase: watch::Sender<(PodPhase, SystemTime)>,
    served: Option<Served>,
    /// Why the pod could not be served (restore only).
    not_served: Option<String>,
}

struct Served {
    handle: PpHandle,
    follower: JoinHandle<()>,
}

impl Pod {
    fn new(phase: PodPhase) -> Self {
        Self {
            phase: watch::channel((phase, SystemTime::now())).0,
            served: None,
            not_served: None,
        }
    }
}

/// Marks a pod busy for one request; unmarks it when dropped.
struct BusyGuard<'a> {
    pods: &'a Pods,
    sid: Sid,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        lock(&self.pods.inner.busy).remove(&self.sid);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pods {
    /// The pods of `adaptor`, remembered in `state_dir`. With
    /// `status_lines`, every status change is printed to stdout as
    /// `pp SID: <status>` (for scripts).
    pub fn new(adaptor: Adaptor, state_dir: &Path, status_lines: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                adaptor,
                specs: PodSpecStore::new(state_dir),
                pods: Mutex::new(HashMap::new()),
                busy: Mutex::new(HashSet::new()),
                attach_latency: Mutex::new(Histogram::default()),
                status_lines,
            }),
        }
    }

    pub fn adaptor(&self) -> &Adaptor {
        &self.inner.adaptor
    }

    fn claim(&self, sid: &Sid) -> Result<BusyGuard<'_>, PodsError> {
        if !lock(&self.inner.busy).insert(sid.clone()) {
            return Err(PodsError::Busy { sid: sid.clone() });
        }
        Ok(BusyGuard {
            pods: self,
            sid: sid.clone(),
        })
    }

    fn adaptor_error(sid: &Sid) -> impl FnOnce(AdaptorError) -> PodsError {
        let sid = sid.clone();
        move |source| PodsError::Adaptor {
            sid,
            source: Box::new(source),
        }
    }

    /// Serves every pod known at start: the configuration's `pps` first,
    /// then every pod of the state directory. All listeners are bound
    /// before any pod connects, so no pod's outgoing connection can take
    /// another's port. A pod that cannot be served is kept as `failed`
    /// with the reason (delete it, or fix and restart).
    pub async fn restore(&self, configured: &[PpConfig]) {
        let (specs, errors) = self.inner.specs.list();
        for error in errors {
            tracing::error!("a pod of the state directory is not served: {error}");
        }
        let mut to_bind: Vec<PpConfig> = configured.to_vec();
        for (sid, spec) in specs {
            if configured.iter().any(|pp| pp.sid == sid) {
                tracing::warn!(
                    "pod {sid}: in the configuration and the state directory; the configuration wins"
                );
                continue;
            }
            match spec.attach {
                None => {
                    lock(&self.inner.pods).insert(sid, Pod::new(PodPhase::Created));
                }
                Some(attach) => match pp_config(&sid, &attach, self.inner.adaptor.relay_check()) {
                    Ok(pp) => to_bind.push(pp),
                    Err(error) => self.keep_failed(&sid, &error.to_string()),
                },
            }
        }
        let mut bound = Vec::with_capacity(to_bind.len());
        for pp in to_bind {
            let sid = pp.sid.clone();
            match self.inner.adaptor.bind_pp(pp).await {
                Ok(pp) => bound.push((sid, pp)),
                Err(error) => self.keep_failed(&sid, &format!("not served: {error}")),
            }
        }
        for (sid, pp) in bound {
            if let Err(error) = self.start(&sid, pp) {
                self.keep_failed(&sid, &format!("not served: {error}"));
            }
        }
    }

    fn keep_failed(&self, sid: &Sid, reason: &str) {
        tracing::error!("pod {sid}: {reason}");
        let mut pod = Pod::new(PodPhase::Failed);
        pod.not_served = Some(reason.to_owned());
        lock(&self.inner.pods).insert(sid.clone(), pod);
    }

    /// Makes and registers the pod's keys; returns the WN public key line
    /// for its init-data.
    pub async fn create(&self, sid: &Sid) -> Result<String, PodsError> {
        let _busy = self.claim(sid)?;
        if lock(&self.inner.pods).contains_key(sid) {
            return Err(PodsError::AlreadyCreated { sid: sid.clone() });
        }
        let adaptor = &self.inner.adaptor;
        adaptor
            .create_pp(sid)
            .await
            .map_err(Self::adaptor_error(sid))?;
        self.inner
            .specs
            .save(sid, &PodSpec::default())
            .map_err(|error| Self::adaptor_error(sid)(error.into()))?;
        lock(&self.inner.pods).insert(sid.clone(), Pod::new(PodPhase::Created));
        Ok(adaptor.wn_public_key_line())
    }

    /// Starts serving a created pod; returns its view with the bound tunnel
    /// addresses. A pod made by `pp-adaptor pp create` without a daemon
    /// (keys only) can be attached too.
    pub async fn attach(&self, sid: &Sid, request: AttachRequest) -> Result<PodView, PodsError> {
        let _busy = self.claim(sid)?;
        let known = match lock(&self.inner.pods).get(sid) {
            Some(pod) if pod.served.is_some() => {
                return Err(PodsError::AlreadyAttached { sid: sid.clone() });
            }
            Some(_) => true,
            None => false,
        };
        if !known && !self.inner.adaptor.has_pp_keys(sid).await {
            return Err(PodsError::NotCreated { sid: sid.clone() });
        }
        let forwarder = parse_forwarder(&request.forwarder)?;
        let mut pp = PpConfig::new(
            sid.clone(),
            &forwarder.to_string(),
            request.init_data_has_wn_key,
        );
        pp.relay_check = self.inner.adaptor.relay_check();
        pp.tunnels = parse_local_tunnels(&request.tunnels)
            .map_err(|reason| PodsError::BadTunnels { reason })?;
        pp.targets = parse_wn_targets(&request.targets)
            .map_err(|reason| PodsError::BadTunnels { reason })?;
        let bound = self
            .inner
            .adaptor
            .bind_pp(pp.clone())
            .await
            .map_err(Self::adaptor_error(sid))?;
        let spec = PodSpec {
            attach: Some(AttachSpec {
                forwarder: pp.forwarder.clone(),
                init_data_has_wn_key: pp.init_data_has_wn_key,
                tunnels: bound.resolved_tags(),
                targets: request.targets,
            }),
        };
        self.inner
            .specs
            .save(sid, &spec)
            .map_err(|error| Self::adaptor_error(sid)(error.into()))?;
        self.start(sid, bound)?;
        self.status(sid)
    }

    fn start(&self, sid: &Sid, bound: BoundPp) -> Result<(), PodsError> {
        let handle = self
            .inner
            .adaptor
            .start_pp(bound)
            .map_err(Self::adaptor_error(sid))?;
        let mut pods = lock(&self.inner.pods);
        let pod = pods
            .entry(sid.clone())
            .or_insert_with(|| Pod::new(PodPhase::Connecting));
        let follower = tokio::spawn(follow(
            handle.clone(),
            pod.phase.clone(),
            self.inner.clone(),
        ));
        pod.not_served = None;
        pod.served = Some(Served { handle, follower });
        Ok(())
    }

    /// The pod's view.
    pub fn status(&self, sid: &Sid) -> Result<PodView, PodsError> {
        let pods = lock(&self.inner.pods);
        let pod = pods
            .get(sid)
            .ok_or_else(|| PodsError::NotCreated { sid: sid.clone() })?;
        Ok(view(sid, pod))
    }

    /// Every pod's view, by SID.
    pub fn list(&self) -> Vec<PodView> {
        let pods = lock(&self.inner.pods);
        let mut views: Vec<PodView> = pods.iter().map(|(sid, pod)| view(sid, pod)).collect();
        views.sort_by(|a, b| a.sid.cmp(&b.sid));
        views
    }

    /// Waits up to `timeout` until the pod's phase is no longer `from` (its
    /// phase now when `None`); returns its view and whether it changed. A
    /// pod deleted meanwhile is [`PodsError::NotCreated`].
    pub async fn wait_change(
        &self,
        sid: &Sid,
        from: Option<PodPhase>,
        timeout: Duration,
    ) -> Result<(PodView, bool), PodsError> {
        let mut phase = {
            let pods = lock(&self.inner.pods);
            let pod = pods
                .get(sid)
                .ok_or_else(|| PodsError::NotCreated { sid: sid.clone() })?;
            pod.phase.subscribe()
        };
        let from = from.unwrap_or_else(|| phase.borrow().0);
        let changed = matches!(
            tokio::time::timeout(timeout, phase.wait_for(|(now, _)| *now != from)).await,
            Ok(Ok(_))
        );
        Ok((self.status(sid)?, changed))
    }

    /// Stops serving the pod, deletes its key at Trustee, its local keys,
    /// record and spec. Deleting an unknown pod is not an error (it may
    /// have been deleted before, or made by the CLI alone): Trustee and the
    /// local files are cleaned all the same.
    pub async fn delete(&self, sid: &Sid) -> Result<(), PodsError> {
        let _busy = self.claim(sid)?;
        let removed = lock(&self.inner.pods).remove(sid);
        if let Some(Served { follower, .. }) = removed.and_then(|pod| pod.served) {
            follower.abort();
        }
        self.inner
            .adaptor
            .teardown(sid)
            .await
            .map_err(Self::adaptor_error(sid))?;
        self.inner
            .specs
            .remove(sid)
            .map_err(|error| Self::adaptor_error(sid)(error.into()))
    }

    /// Stops serving every pod (their keys, records and specs stay), for a
    /// daemon that is shutting down.
    pub async fn stop_all(&self) {
        let sids: Vec<Sid> = lock(&self.inner.pods).keys().cloned().collect();
        for sid in sids {
            self.inner.adaptor.stop_pp(&sid).await;
        }
    }

    /// What the metrics endpoint shows.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut pods_by_phase: BTreeMap<&'static str, u64> = PodPhase::ALL
            .iter()
            .map(|phase| (phase.as_str(), 0))
            .collect();
        let mut pods_metrics = Vec::new();
        for (sid, pod) in lock(&self.inner.pods).iter() {
            *pods_by_phase
                .entry(pod.phase.borrow().0.as_str())
                .or_default() += 1;
            if let Some(served) = &pod.served {
                pods_metrics.push(PodMetrics {
                    sid: sid.to_string(),
                    reconnects: served.handle.activity().connections_lost(),
                    tunnels: served
                        .handle
                        .tunnels()
                        .iter()
                        .map(|tunnel| (tunnel.name.clone(), tunnel.stats.counts()))
                        .chain(served.handle.targets().iter().map(|(name, stats)| {
                            (format!("{TARGET_LABEL_PREFIX}{name}"), stats.counts())
                        }))
                        .collect(),
                });
            }
        }
        pods_metrics.sort_by(|a, b| a.sid.cmp(&b.sid));
        MetricsSnapshot {
            pods_by_phase,
            pods: pods_metrics,
            attach_latency: lock(&self.inner.attach_latency).clone(),
            trustee_errors: self.inner.adaptor.trustee_errors(),
        }
    }
}

fn view(sid: &Sid, pod: &Pod) -> PodView {
    let (phase, since) = *pod.phase.borrow();
    let since_unix_ms = since.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    });
    let (last_error, reconnects, tunnels) = match &pod.served {
        Some(served) => (
            served.handle.activity().last_error(),
            served.handle.activity().connections_lost(),
            served
                .handle
                .tunnels()
                .iter()
                .map(|tunnel| (tunnel.name.clone(), tunnel.address.to_string()))
                .collect(),
        ),
        None => (pod.not_served.clone(), 0, BTreeMap::new()),
    };
    PodView {
        sid: sid.to_string(),
        phase,
        since_unix_ms,
        last_error,
        reconnects,
        tunnels,
    }
}

/// `IP` or `IP:PORT` (no names: the CAA knows the VM's IP).
fn parse_forwarder(text: &str) -> Result<SocketAddr, PodsError> {
    let text = text.trim();
    let bad = || PodsError::BadForwarder {
        found: text.to_owned(),
    };
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_FORWARDER_PORT))
        .map_err(|_| bad())
}

/// The PP configuration a saved attach spec describes, with the adaptor's
/// relay check.
fn pp_config(
    sid: &Sid,
    attach: &AttachSpec,
    relay_check: RelayCheck,
) -> Result<PpConfig, PodsError> {
    let mut pp = PpConfig::new(sid.clone(), &attach.forwarder, attach.init_data_has_wn_key);
    pp.relay_check = relay_check;
    pp.tunnels =
        parse_local_tunnels(&attach.tunnels).map_err(|reason| PodsError::BadTunnels { reason })?;
    pp.targets =
        parse_wn_targets(&attach.targets).map_err(|reason| PodsError::BadTunnels { reason })?;
    Ok(pp)
}

/// Follows one served pod's status: keeps its phase and since-when, times
/// attach → Kubernetes phase, prints status lines when asked.
async fn follow(handle: PpHandle, phase: watch::Sender<(PodPhase, SystemTime)>, inner: Arc<Inner>) {
    let attached_at = Instant::now();
    let mut status = handle.watch();
    let mut timed = false;
    loop {
        let current = status.borrow_and_update().clone();
        let now = PodPhase::of(&current);
        phase.send_if_modified(|(was, since)| {
            let changed = *was != now;
            if changed {
                *was = now;
                *since = SystemTime::now();
            }
            changed
        });
        if now == PodPhase::Kubernetes && !timed {
            timed = true;
            lock(&inner.attach_latency).observe(attached_at.elapsed());
        }
        if inner.status_lines {
            println!("pp {}: {current}", handle.sid());
        }
        if current.is_final() || status.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarder_addresses_are_ip_literals_with_port_2222_by_default() {
        assert_eq!(
            parse_forwarder("192.0.2.7").unwrap(),
            "192.0.2.7:2222".parse().unwrap()
        );
        assert_eq!(
            parse_forwarder("192.0.2.7:22").unwrap(),
            "192.0.2.7:22".parse().unwrap()
        );
        assert_eq!(
            parse_forwarder("[2001:db8::1]").unwrap(),
            "[2001:db8::1]:2222".parse().unwrap()
        );
        for bad in ["pp.example", "", "192.0.2.7:x", "1.2.3.4:70000"] {
            assert!(
                matches!(parse_forwarder(bad), Err(PodsError::BadForwarder { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn phases_parse_from_their_names() {
        for phase in PodPhase::ALL {
            assert_eq!(PodPhase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(PodPhase::parse("Kubernetes"), None);
    }
}
