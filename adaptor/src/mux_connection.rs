//! Serving one established connection to a PP: runs the pp-tunnel mux over
//! the `pp-mux-v1` channel and answers what the PP does on it.
//!
//! Contract: while the connection lasts it is published in the PP's
//! [`MuxSlot`](crate::local_tunnels::MuxSlot) (so local tunnel listeners can
//! open streams) and withdrawn before [`serve_connection`] returns. Incoming
//! `KBS` streams go to the KBS reverse proxy, `EGRESS` streams (Kubernetes
//! phase only) to the egress proxy; other incoming names are reset. Attestation phase: an `UPGRADE` whose key is the PP's registered
//! key ends the connection with [`ConnectionEnd::Upgraded`] (after a short
//! grace for in-flight KBS streams), any other key with
//! [`ConnectionEnd::Stop`]. Kubernetes phase: `INFO_REQUEST` is sent at
//! once when the adaptor has a sighting of its attestation connection, and
//! the answer is checked by [`crate::relay_check`]; no answer in time is a
//! `Stop`, a difference is [`ConnectionEnd::Relayed`]. The SSH connection
//! is closed on return.

use crate::config::Timing;
use crate::egress_proxy::EgressProxy;
use crate::host_key_policy::check_upgrade_key;
use crate::kbs_proxy::KbsProxy;
use crate::local_tunnels::ActiveMux;
use crate::pp_record::AttestationSighting;
use crate::pp_status::PpStatus;
use crate::relay_check::{RelayCheck, RelayVerdict, check_info};
use crate::sid::Sid;
use crate::ssh_connect::MuxConnection;
use crate::tunnel_stats::TargetStats;
use crate::wn_targets;
use pp_ssh_key::PublicKey;
use pp_tag::{ConnectionPhase, TunnelSet};
use pp_tunnel::{MuxEvent, MuxLimits, MuxVersion, Side};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The name of the PP's tunnel to Trustee.
pub const KBS_TUNNEL: &str = "KBS";
/// The name of the PP's tunnel to the worker node's egress proxy.
pub const EGRESS_TUNNEL: &str = "EGRESS";

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The connection went away (network, PP restart, keepalive loss):
    /// reconnect.
    Dropped { reason: String },
    /// The PP upgraded with its registered key: reconnect for the
    /// Kubernetes phase.
    Upgraded,
    /// Something that reconnecting cannot fix: stop serving the PP.
    Stop { reason: String },
    /// The PP served an attestation connection that was not the adaptor's.
    Relayed { reason: String },
}

/// What serving a connection needs from the PP's driver.
pub struct ConnectionContext<'a> {
    pub sid: &'a Sid,
    pub pp_key: &'a PublicKey,
    pub proxy: &'a KbsProxy,
    pub egress: &'a EgressProxy,
    /// The WN-side ends of the PP's inbound tunnels.
    pub targets: &'a TunnelSet,
    /// Their counters.
    pub target_stats: &'a TargetStats,
    pub slot: &'a watch::Sender<Option<ActiveMux>>,
    pub status: &'a watch::Sender<PpStatus>,
    pub timing: &'a Timing,
    /// What the adaptor saw of its own attestation connection, if known.
    pub sighting: Option<&'a AttestationSighting>,
    /// What the relay check compares.
    pub relay_check: RelayCheck,
}

/// Serves `connection`, which is in `phase`, until it ends.
pub async fn serve_connection(
    context: &ConnectionContext<'_>,
    connection: MuxConnection,
    phase: ConnectionPhase,
) -> ConnectionEnd {
    let MuxConnection {
        handle: ssh,
        stream,
        version,
        ..
    } = connection;
    let (mux, mut events, driver) =
        pp_tunnel::start_with(stream, Side::Wn, version, MuxLimits::default());
    let sid = context.sid;
    if version == MuxVersion::V1 {
        tracing::warn!(
            "pp {sid}: the PP speaks only pp-mux-v1 (an older forwarder): UDP tunnels are off on this connection"
        );
    }
    let driver = driver.run();
    tokio::pin!(driver);
    let mut incoming_streams = JoinSet::new();
    let mut info_deadline = None;
    let mut upgrade_deadline = None;
    context.slot.send_replace(Some(ActiveMux {
        phase,
        handle: mux.clone(),
    }));
    if phase == ConnectionPhase::Kubernetes {
        match context.sighting {
            Some(_) => {
                info_deadline = Some(Instant::now() + context.timing.info_timeout);
                // Queued now, written once the driver below runs; if it
                // cannot go out, the connection is ending anyway.
                let mux = mux.clone();
                tokio::spawn(async move { mux.send_info_request().await });
            }
            None => tracing::warn!(
                "pp {sid}: no record of the adaptor's own attestation connection (state dir lost?): \
                 cannot check whether the attestation phase was relayed"
            ),
        }
    }
    let end = loop {
        tokio::select! {
            result = &mut driver => {
                break ConnectionEnd::Dropped { reason: match result {
                    Ok(()) => "the PP closed the mux channel".to_owned(),
                    Err(error) => error.to_string(),
                }};
            }
            event = events.recv() => {
                let Some(event) = event else {
                    break ConnectionEnd::Dropped { reason: "the mux ended".to_owned() };
                };
                if let Some(end) = handle_event(context, phase, event, &mut incoming_streams, &mut info_deadline, &mut upgrade_deadline) {
                    break end;
                }
            }
            () = sleep_until(info_deadline) => {
                break ConnectionEnd::Stop { reason: format!(
                    "the PP did not answer INFO_REQUEST within {} s, so the attestation phase cannot be verified",
                    context.timing.info_timeout.as_secs()
                )};
            }
            () = sleep_until(upgrade_deadline) => break ConnectionEnd::Upgraded,
            Some(_) = incoming_streams.join_next(), if !incoming_streams.is_empty() => {
                if upgrade_deadline.is_some() && incoming_streams.is_empty() {
                    break ConnectionEnd::Upgraded;
                }
            }
        }
    };
    context.slot.send_replace(None);
    let _ = ssh
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    end
}

fn handle_event(
    context: &ConnectionContext<'_>,
    phase: ConnectionPhase,
    event: MuxEvent,
    incoming_streams: &mut JoinSet<()>,
    info_deadline: &mut Option<Instant>,
    upgrade_deadline: &mut Option<Instant>,
) -> Option<ConnectionEnd> {
    let sid = context.sid;
    match event {
        MuxEvent::Hello(side) => {
            if side == Side::Pp(phase) {
                tracing::info!("pp {sid}: {} phase: mux up", phase.as_str());
            } else {
                // The host key decides the phase; the HELLO is only a hint.
                tracing::warn!(
                    "pp {sid}: mux up, but the PP's HELLO says {side:?} while its host key means the {} phase",
                    phase.as_str()
                );
            }
        }
        MuxEvent::Incoming(incoming) if incoming.name == KBS_TUNNEL => {
            tracing::debug!(
                "pp {sid}: KBS tunnel stream {} opened by the PP",
                incoming.stream.id()
            );
            let proxy = context.proxy.clone();
            incoming_streams.spawn(async move { proxy.serve_stream(incoming.stream).await });
        }
        MuxEvent::Incoming(incoming)
            if incoming.name == EGRESS_TUNNEL
                && phase == ConnectionPhase::Kubernetes
                && context.egress.is_enabled() =>
        {
            let egress = context.egress.clone();
            let sid = sid.clone();
            incoming_streams.spawn(async move { egress.serve_stream(&sid, incoming.stream).await });
        }
        MuxEvent::IncomingFlow(incoming) => {
            match wn_targets::may_reach(context.targets, &incoming.name, phase) {
                Ok(target) if target.is_datagram() => {
                    let stats = context.target_stats.of(&incoming.name);
                    incoming_streams.spawn(wn_targets::carry_flow(
                        sid.clone(),
                        incoming.name,
                        incoming.flow,
                        (target.clone(), stats),
                        context.timing.udp_idle,
                    ));
                }
                refused => {
                    let reason = match refused {
                        Ok(_) => format!(
                            "tunnel `{}` is a stream tunnel on the worker node; open a stream",
                            incoming.name
                        ),
                        Err(refusal) => format!("{refusal} on the worker node"),
                    };
                    tracing::warn!(
                        "pp {sid}: refused flow to WN tunnel {:?}: {reason}",
                        incoming.name
                    );
                    incoming.flow.reset(&reason);
                }
            }
        }
        MuxEvent::Incoming(incoming) if incoming.name != EGRESS_TUNNEL => {
            match wn_targets::may_reach(context.targets, &incoming.name, phase) {
                Ok(target) => {
                    let (sid, target) = (sid.clone(), target.clone());
                    let stats = context.target_stats.of(&incoming.name);
                    incoming_streams.spawn(wn_targets::carry_stream(
                        sid,
                        incoming.name,
                        incoming.stream,
                        (target, stats),
                    ));
                }
                Err(refusal) => {
                    let reason = format!("{refusal} on the worker node");
                    tracing::warn!(
                        "pp {sid}: refused stream to WN tunnel {:?}: {reason}",
                        incoming.name
                    );
                    incoming.stream.reset(&reason);
                }
            }
        }
        MuxEvent::Incoming(incoming) => {
            let reason = if phase == ConnectionPhase::Kubernetes {
                "egress is not enabled on this worker node (no [egress] allow entries)"
            } else {
                "egress is served in the Kubernetes phase only"
            };
            tracing::warn!(
                "pp {sid}: refused stream to WN tunnel {:?}: {reason}",
                incoming.name
            );
            incoming.stream.reset(reason);
        }
        MuxEvent::Upgrade(line) if phase == ConnectionPhase::Attestation => {
            if let Err(error) = check_upgrade_key(&line, context.pp_key) {
                return Some(ConnectionEnd::Stop {
                    reason: error.to_string(),
                });
            }
            tracing::info!(
                "pp {sid}: upgrade received (host key {} is the registered one); reconnecting for the Kubernetes phase",
                context.pp_key.fingerprint()
            );
            context.status.send_replace(PpStatus::Upgrading);
            // No new local tunnel streams on a connection that is going away.
            context.slot.send_replace(None);
            if incoming_streams.is_empty() {
                return Some(ConnectionEnd::Upgraded);
            }
            *upgrade_deadline = Some(Instant::now() + context.timing.upgrade_grace);
        }
        MuxEvent::Upgrade(_) => {
            tracing::warn!("pp {sid}: ignoring UPGRADE on a Kubernetes-phase connection")
        }
        MuxEvent::Info(text) => match (info_deadline.take(), context.sighting) {
            (Some(_), Some(sighting)) => match check_info(&text, sighting, context.relay_check) {
                RelayVerdict::SameConnection if context.relay_check == RelayCheck::HostKeyOnly => {
                    tracing::info!(
                        "pp {sid}: Kubernetes phase: the PP confirms the adaptor's attestation host key {} (relay_check = host-key-only: peer address not compared)",
                        sighting.hostkey_fingerprint
                    )
                }
                RelayVerdict::SameConnection => tracing::info!(
                    "pp {sid}: Kubernetes phase: the PP confirms the adaptor's own attestation connection ({} from {})",
                    sighting.hostkey_fingerprint,
                    sighting.local_addr
                ),
                RelayVerdict::Relayed { reason } => return Some(ConnectionEnd::Relayed { reason }),
            },
            _ => tracing::debug!("pp {sid}: INFO {text:?}"),
        },
        MuxEvent::InfoRequest => {
            tracing::debug!("pp {sid}: ignoring INFO_REQUEST (only the WN asks)")
        }
    }
    None
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
