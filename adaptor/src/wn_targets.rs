//! The WN-side ends of a PP's own inbound tunnels (the PP's `targets`, e.g.
//! `BOTH_PHASES:LOG:127.0.0.1:5140`): which one a stream the PP opens may
//! reach, and carrying it there.
//!
//! Contract: [`may_reach`] is the one place the adaptor decides whether a
//! PP-opened tunnel other than `KBS`/`EGRESS` is served: the tag must be in
//! the PP's targets and its phase must allow the connection's phase, by the
//! same rule the forwarder applies ([`pp_forwarder_core::policy::may_open`]).
//! [`carry_stream`] connects to the target and copies both ways;
//! [`carry_flow`] joins a datagram flow to a connected UDP or unix datagram
//! socket until it ends or idles out. A target that cannot be reached
//! resets the stream or flow with the reason, in one log line.

use crate::sid::Sid;
use crate::tunnel_stats::{Counted, TunnelStats};
use pp_forwarder_core::policy::{OpenRefusal, may_open};
use pp_tag::{ConnectionPhase, Target, TunnelSet};
use pp_tunnel::datagram::ConnectedDatagram;
use pp_tunnel::{MuxFlow, MuxStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};

/// The target of `name` if the PP's targets hold it for `phase`.
pub fn may_reach<'a>(
    targets: &'a TunnelSet,
    name: &str,
    phase: ConnectionPhase,
) -> Result<&'a Target, OpenRefusal> {
    may_open(targets, name, phase).map(|tag| tag.target())
}

/// Carries a stream the PP opened to `target` until both directions end,
/// counted in `stats`.
pub async fn carry_stream(
    sid: Sid,
    name: String,
    stream: MuxStream,
    (target, stats): (Target, Arc<TunnelStats>),
) {
    let described = target.to_string();
    let _open = stats.open_stream();
    let moved = match &target {
        Target::Tcp { ip, port } => match TcpStream::connect((*ip, *port)).await {
            Ok(socket) => Ok(pp_tunnel::pump(stream, counted(socket, &stats)).await),
            Err(error) => Err((stream, error)),
        },
        Target::Unix { path } => match UnixStream::connect(path).await {
            Ok(socket) => Ok(pp_tunnel::pump(stream, counted(socket, &stats)).await),
            Err(error) => Err((stream, error)),
        },
        Target::NetnsTcp { .. } | Target::NetnsUdp { .. } => Err((
            stream,
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "network namespaces are not supported on the worker node",
            ),
        )),
        Target::Udp { .. } | Target::UnixDatagram { .. } => Err((
            stream,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "this target takes datagram flows, not byte streams",
            ),
        )),
    };
    match moved {
        Ok(Ok((to_target, from_target))) => tracing::info!(
            "pp {sid}: stream to WN target {name} ({described}) done ({to_target} B in, {from_target} B out)"
        ),
        Ok(Err(error)) => {
            tracing::info!("pp {sid}: stream to WN target {name} ({described}) ended: {error}")
        }
        Err((stream, error)) => {
            tracing::warn!(
                "pp {sid}: stream to WN target {name}: cannot connect to {described}: {error}"
            );
            stream.reset(&format!(
                "cannot connect to {name} on the worker node: {error}"
            ));
        }
    }
}

/// Carries a flow the PP opened to the datagram `target` until it ends,
/// counted in `stats`.
pub async fn carry_flow(
    sid: Sid,
    name: String,
    flow: MuxFlow,
    (target, stats): (Target, Arc<TunnelStats>),
    idle: Duration,
) {
    let described = target.to_string();
    let socket = match &target {
        Target::Udp { ip, port } => ConnectedDatagram::connect_udp((*ip, *port).into()).await,
        Target::UnixDatagram { path } => ConnectedDatagram::connect_unix(path),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a datagram target on the worker node",
        )),
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!("pp {sid}: flow to WN target {name}: cannot reach {described}: {error}");
            flow.reset(&format!("cannot reach {name} on the worker node: {error}"));
            return;
        }
    };
    let reason = pp_tunnel::datagram::serve_target(flow, socket, idle, &stats.datagrams).await;
    tracing::info!("pp {sid}: flow to WN target {name} ({described}) ended ({reason})");
}

/// `socket` with its traffic counted in `stats` (reads: towards the PP).
fn counted<S>(socket: S, stats: &Arc<TunnelStats>) -> Counted<S> {
    Counted {
        socket,
        stats: stats.clone(),
    }
}
