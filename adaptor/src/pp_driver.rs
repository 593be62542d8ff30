//! The task that serves one PP for its whole life: connect, attestation
//! phase, upgrade, Kubernetes phase, reconnects, deadlines.
//!
//! Contract: [`run_pp`] publishes every step in the PP's [`PpStatus`] watch
//! channel and logs one line per decision. It reconnects with capped
//! exponential backoff after any drop or failed attempt. Until a
//! Kubernetes-phase connection has been made (ever, per the PP record) the
//! attestation deadline applies to the whole run; when it passes, the
//! status becomes `Failed`. An `UPGRADE` with the wrong key, an
//! unverifiable or relayed attestation phase, or an unreadable record also
//! end in `Failed`; a relayed one also tears the PP down (Trustee key and
//! local key pair deleted). The record (`upgraded`, the attestation
//! sighting) is saved as soon as it changes, so an adaptor restart resumes
//! correctly. Nothing here blocks other PPs: all waiting is async and
//! bounded.

use crate::backoff::Backoff;
use crate::config::{PpConfig, Timing};
use crate::egress_proxy::EgressProxy;
use crate::host_key_policy::{Expectation, HostKeyVerdict};
use crate::kbs_proxy::KbsProxy;
use crate::local_tunnels::ActiveMux;
use crate::mux_connection::{ConnectionContext, ConnectionEnd, serve_connection};
use crate::pp_record::{AttestationSighting, PpRecord, RecordStore};
use crate::pp_status::{PpActivity, PpStatus};
use crate::ssh_connect::{AuthPlan, connect_mux};
use crate::teardown::Teardown;
use crate::tunnel_stats::TargetStats;
use pp_ssh_key::PublicKey;
use pp_tag::ConnectionPhase;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// Why a connection attempt or attestation connection was cut short.
const DEADLINE_CUT: &str = "the attestation deadline cut the connection short";

/// Everything the PP's task owns.
pub struct PpDriver {
    pub pp: PpConfig,
    pub pp_key: PublicKey,
    pub auth: AuthPlan,
    pub proxy: KbsProxy,
    pub egress: EgressProxy,
    pub records: RecordStore,
    pub teardown: Arc<Teardown>,
    pub timing: Timing,
    pub status: watch::Sender<PpStatus>,
    pub slot: watch::Sender<Option<ActiveMux>>,
    pub activity: Arc<PpActivity>,
    /// Counters of the PP's WN-side targets.
    pub targets: TargetStats,
}

impl PpDriver {
    /// Serves the PP until it fails; the final status is `Failed`.
    pub async fn run(self) {
        let Err(reason) = self.serve().await;
        tracing::error!("pp {}: giving up: {reason}", self.pp.sid);
        self.activity.set_last_error(&reason);
        self.slot.send_replace(None);
        self.status.send_replace(PpStatus::Failed { reason });
    }

    /// Serves until a reason to give up; returns that reason.
    async fn serve(&self) -> Result<std::convert::Infallible, String> {
        let sid = &self.pp.sid;
        let mut record = self.records.load(sid).map_err(|error| error.to_string())?;
        let attestation_deadline = Instant::now() + self.timing.attestation_deadline;
        let mut backoff = Backoff::new(self.timing.backoff_initial, self.timing.backoff_max);
        loop {
            let deadline = (!record.kubernetes_reached).then_some(attestation_deadline);
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(format!(
                    "the attestation deadline ({} s) passed without reaching the Kubernetes phase",
                    self.timing.attestation_deadline.as_secs()
                ));
            }
            self.status.send_if_modified(|status| {
                let change = !matches!(status, PpStatus::Connecting | PpStatus::Upgrading);
                if change {
                    *status = PpStatus::Connecting;
                }
                change
            });
            match self.connect_and_serve(&mut record, deadline).await {
                Ok(ConnectionEnd::Upgraded) => {
                    backoff.reset();
                    continue;
                }
                Ok(ConnectionEnd::Dropped { reason }) => {
                    // The connection worked: start the backoff over.
                    backoff.reset();
                    tracing::info!("pp {sid}: connection lost: {reason}");
                    self.activity.connection_lost(&reason);
                }
                Ok(ConnectionEnd::Stop { reason }) => return Err(reason),
                Ok(ConnectionEnd::Relayed { reason }) => {
                    let reason = format!("attestation phase relayed: {reason}");
                    tracing::error!("pp {sid}: {reason}; tearing the PP down");
                    let outcome = match self.teardown.run(sid).await {
                        Ok(()) => "PP key deleted at Trustee and locally".to_owned(),
                        Err(error) => format!("teardown incomplete: {error}"),
                    };
                    return Err(format!("{reason} ({outcome})"));
                }
                Err(reason) => {
                    tracing::info!("pp {sid}: {reason}");
                    self.activity.set_last_error(&reason);
                }
            }
            let delay = backoff.next_delay();
            tracing::info!("pp {sid}: reconnecting in {} ms", delay.as_millis());
            within(deadline, tokio::time::sleep(delay)).await;
        }
    }

    /// One connection: connect, record what was seen, serve it. `deadline`
    /// (the attestation deadline, while it applies) bounds connecting and
    /// an attestation-phase connection, never a Kubernetes-phase one.
    async fn connect_and_serve(
        &self,
        record: &mut PpRecord,
        deadline: Option<Instant>,
    ) -> Result<ConnectionEnd, String> {
        let sid = &self.pp.sid;
        let expectation = if record.upgraded {
            Expectation::KubernetesOnly
        } else {
            Expectation::AttestationOrKubernetes
        };
        let connecting = connect_mux(
            &self.pp.forwarder,
            self.pp_key,
            expectation,
            &self.auth,
            &self.timing.ssh,
        );
        let connection = within(deadline, connecting)
            .await
            .ok_or(DEADLINE_CUT)?
            .map_err(|error| format!("connecting to {} failed: {error}", self.pp.forwarder))?;
        let phase = match &connection.verdict {
            HostKeyVerdict::Attestation { fingerprint } => {
                tracing::info!(
                    "pp {sid}: attestation phase: connected to {} from {}, host key {fingerprint} (not provable yet)",
                    self.pp.forwarder,
                    connection.local_addr
                );
                record.attestation = Some(AttestationSighting {
                    hostkey_fingerprint: fingerprint.clone(),
                    local_addr: connection.local_addr,
                });
                self.save(record)?;
                self.status.send_replace(PpStatus::Attestation {
                    fingerprint: fingerprint.clone(),
                });
                ConnectionPhase::Attestation
            }
            HostKeyVerdict::Kubernetes { fingerprint } => {
                tracing::info!(
                    "pp {sid}: Kubernetes phase: connected to {}, host key verified {fingerprint}",
                    self.pp.forwarder
                );
                if !(record.upgraded && record.kubernetes_reached) {
                    record.upgraded = true;
                    record.kubernetes_reached = true;
                    self.save(record)?;
                }
                self.status.send_replace(PpStatus::Kubernetes {
                    fingerprint: fingerprint.clone(),
                });
                ConnectionPhase::Kubernetes
            }
            HostKeyVerdict::Refused { reason } => {
                return Err(format!("host key refused: {reason}"));
            }
        };
        let context = ConnectionContext {
            sid,
            pp_key: &self.pp_key,
            proxy: &self.proxy,
            egress: &self.egress,
            targets: &self.pp.targets,
            target_stats: &self.targets,
            slot: &self.slot,
            status: &self.status,
            timing: &self.timing,
            sighting: record.attestation.as_ref(),
            relay_check: self.pp.relay_check,
        };
        let serving = serve_connection(&context, connection, phase);
        let end = match phase {
            ConnectionPhase::Attestation => within(deadline, serving).await.ok_or(DEADLINE_CUT)?,
            ConnectionPhase::Kubernetes => serving.await,
        };
        if end == ConnectionEnd::Upgraded {
            record.upgraded = true;
            self.save(record)?;
        }
        Ok(end)
    }

    fn save(&self, record: &PpRecord) -> Result<(), String> {
        self.records
            .save(&self.pp.sid, record)
            .map_err(|error| error.to_string())
    }
}

/// Runs `work` until `deadline` (if any); `None` when the deadline cut it.
async fn within<T>(deadline: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}
