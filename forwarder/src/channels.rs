//! The work behind accepted channels of one connection: the mux channel
//! (`pp-mux-v2` or `pp-mux-v1`, the multiplexer, see docs/protocol.md
//! section 2) and raw `tunnel NAME` channels. A stream the WN opens goes
//! to a stream target, a flow to a datagram target; the other way round
//! is refused.
//!
//! sunset channels speak embedded-io-async; the mux driver and the raw
//! copy speak tokio IO through [`ChanIo`], straight on the channel.

use std::rc::Rc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use log::{info, warn};
use pp_tag::Target;
use pp_tunnel::{MuxEvent, MuxLimits, MuxStream, MuxVersion, Side};
use sunset::ChanHandle;
use sunset_async::{ChanInOut, SSHServer};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::mpsc;

use crate::chan_io::ChanIo;
use crate::controller::{ConnId, Controller};
use crate::datagram;
use crate::targets;

/// Copy buffer of a raw tunnel, each way: one full SSH data packet.
const COPY_BYTES: usize = 32 * 1024;

/// An accepted channel and what it was accepted for.
pub enum ChannelJob {
    Mux(ChanHandle, MuxVersion),
    Raw(ChanHandle, Target),
}

/// Runs every channel job of a connection; returns when one of them ends
/// the connection (a mux protocol error, a raw tunnel's target closing).
pub async fn run(
    server: &SSHServer<'_>,
    conn: ConnId,
    ctrl: &Rc<Controller>,
    mut jobs: mpsc::UnboundedReceiver<ChannelJob>,
) -> String {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(ChannelJob::Mux(handle, version)) => running.push(Box::pin(async move {
                    match server.stdio(handle).await {
                        Ok(chan) => serve_mux(chan, version, conn, ctrl).await,
                        Err(e) => format!("cannot use the mux channel: {e}"),
                    }
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = String> + '_>>),
                Some(ChannelJob::Raw(handle, target)) => running.push(Box::pin(async move {
                    match server.stdio(handle).await {
                        Ok(chan) => serve_raw(chan, conn, target).await,
                        Err(e) => format!("cannot use the raw tunnel channel: {e}"),
                    }
                })),
                None => return std::future::pending().await,
            },
            Some(reason) = running.next() => return reason,
        }
    }
}

async fn serve_mux(
    chan: ChanInOut<'_>,
    version: MuxVersion,
    conn: ConnId,
    ctrl: &Rc<Controller>,
) -> String {
    let (mux, mut events, driver) = pp_tunnel::start_with(
        ChanIo::new(&chan),
        Side::Pp(ctrl.mux_phase(conn)),
        version,
        MuxLimits::default(),
    );
    ctrl.register_mux(conn, mux.clone());
    let handle_events = async {
        while let Some(event) = events.recv().await {
            match event {
                MuxEvent::Incoming(incoming) => match ctrl.outbound_for(conn, &incoming.name) {
                    Ok(target) if target.is_datagram() => {
                        let reason = targets::wrong_kind("a datagram tunnel: open a flow");
                        info!(
                            "conn {conn}: stream to {:?} refused: {reason}",
                            incoming.name
                        );
                        incoming.stream.reset(&reason.to_string());
                    }
                    Ok(target) => {
                        tokio::task::spawn_local(carry(
                            conn,
                            incoming.name,
                            incoming.stream,
                            target,
                        ));
                    }
                    Err(reason) => {
                        info!(
                            "conn {conn}: stream to {:?} refused: {reason}",
                            incoming.name
                        );
                        incoming.stream.reset(&reason.to_string());
                    }
                },
                MuxEvent::IncomingFlow(incoming) => match ctrl.outbound_for(conn, &incoming.name) {
                    Ok(target) if target.is_datagram() => {
                        tokio::task::spawn_local(datagram::carry_flow(
                            conn,
                            incoming.name,
                            incoming.flow,
                            target,
                            ctrl.udp_idle(),
                        ));
                    }
                    Ok(_) => {
                        let reason = targets::wrong_kind("a stream tunnel: open a stream");
                        info!("conn {conn}: flow to {:?} refused: {reason}", incoming.name);
                        incoming.flow.reset(&reason.to_string());
                    }
                    Err(reason) => {
                        info!("conn {conn}: flow to {:?} refused: {reason}", incoming.name);
                        incoming.flow.reset(&reason.to_string());
                    }
                },
                MuxEvent::InfoRequest => {
                    if let Err(e) = mux.send_info(&ctrl.info_text(conn)).await {
                        return format!("cannot answer INFO_REQUEST: {e}");
                    }
                }
                MuxEvent::Hello(side) => info!("conn {conn}: mux hello from {side:?}"),
                MuxEvent::Upgrade(_) | MuxEvent::Info(_) => {
                    return "protocol error: the WN sent a frame only a PP may send".into();
                }
            }
        }
        "the mux ended".into()
    };
    tokio::select! {
        result = driver.run() => match result {
            Ok(()) => "the WN closed the mux channel".into(),
            Err(e) => format!("mux: {e}"),
        },
        reason = handle_events => reason,
    }
}

/// Carries one stream the WN opened to an outbound target.
async fn carry(conn: ConnId, name: String, stream: MuxStream, target: Target) {
    let described = target.to_string();
    match targets::connect(&target).await {
        Ok(socket) => {
            info!(
                "conn {conn}: stream {} to {name} ({described}) opened",
                stream.id()
            );
            match pp_tunnel::pump(stream, socket).await {
                Ok((up, down)) => {
                    info!("conn {conn}: stream to {name} done ({up} B in, {down} B out)")
                }
                Err(e) => info!("conn {conn}: stream to {name} ended: {e}"),
            }
        }
        Err(e) => {
            warn!("conn {conn}: stream to {name}: cannot connect to {described}: {e}");
            stream.reset(&format!("cannot connect to {name}: {e}"));
        }
    }
}

/// A raw `tunnel NAME` channel: the channel's bytes are the stream. The
/// server cannot end a channel, so when the target closes the whole
/// connection ends (docs/protocol.md 1.2).
async fn serve_raw(chan: ChanInOut<'_>, conn: ConnId, target: Target) -> String {
    let described = target.to_string();
    match targets::connect(&target).await {
        Ok(socket) => {
            info!("conn {conn}: raw tunnel to {described} connected");
            let (socket_r, socket_w) = tokio::io::split(socket);
            let reason = copy_both_ways(chan, socket_r, socket_w).await;
            format!("raw tunnel to {described} ended ({reason})")
        }
        Err(e) => format!("raw tunnel: cannot connect to {described}: {e}"),
    }
}

/// Copies between a sunset channel and a local socket until either
/// direction ends (EOF or error); says which.
async fn copy_both_ways(
    chan: ChanInOut<'_>,
    local_r: impl AsyncRead + Unpin,
    mut local_w: impl AsyncWrite + Unpin,
) -> String {
    let (chan_r, mut chan_w) = tokio::io::split(ChanIo::new(&chan));
    let mut chan_r = BufReader::with_capacity(COPY_BYTES, chan_r);
    let mut local_r = BufReader::with_capacity(COPY_BYTES, local_r);
    tokio::select! {
        r = tokio::io::copy_buf(&mut chan_r, &mut local_w) => match r {
            Ok(_) => "the WN sent EOF".to_string(),
            Err(e) => format!("from the WN: {e}"),
        },
        r = tokio::io::copy_buf(&mut local_r, &mut chan_w) => match r {
            Ok(_) => "the local side closed".to_string(),
            Err(e) => format!("to the WN: {e}"),
        },
    }
}
