//! The work behind accepted channels of one connection: the `pp-mux-v1`
//! channel (the multiplexer, see docs/protocol.md section 2) and raw
//! `tunnel NAME` channels.
//!
//! sunset channels speak embedded-io-async; the mux driver speaks tokio IO.
//! `bridge` copies between a sunset channel and one end of an in-memory
//! pipe whose other end the mux driver owns.

use std::rc::Rc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use log::{info, warn};
use pp_tag::Target;
use pp_tunnel::{MuxEvent, MuxStream, Side};
use sunset::ChanHandle;
use sunset_async::embedded_io_async::{Read, Write};
use sunset_async::{ChanInOut, SSHServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::controller::{ConnId, Controller};
use crate::targets;

/// Size of the in-memory pipe between a sunset channel and the mux driver.
const PIPE_BYTES: usize = 64 * 1024;
/// Copy buffer; sunset's channel window is 1000 bytes anyway.
const COPY_BYTES: usize = 4096;

/// An accepted channel and what it was accepted for.
pub enum ChannelJob {
    Mux(ChanHandle),
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
                Some(ChannelJob::Mux(handle)) => running.push(Box::pin(async move {
                    match server.stdio(handle).await {
                        Ok(chan) => serve_mux(chan, conn, ctrl).await,
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

async fn serve_mux(chan: ChanInOut<'_>, conn: ConnId, ctrl: &Rc<Controller>) -> String {
    let (ssh_end, mux_end) = tokio::io::duplex(PIPE_BYTES);
    let (mux, mut events, driver) = pp_tunnel::start(mux_end, Side::Pp(ctrl.mux_phase(conn)));
    ctrl.register_mux(conn, mux.clone());
    let handle_events = async {
        while let Some(event) = events.recv().await {
            match event {
                MuxEvent::Incoming(incoming) => match ctrl.outbound_for(conn, &incoming.name) {
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
        reason = bridge(chan, ssh_end) => reason,
        result = driver.run() => match result {
            Ok(()) => "the WN closed the mux channel".into(),
            Err(e) => format!("mux: {e}"),
        },
        reason = handle_events => reason,
    }
}

/// Carries one stream the WN opened to an outbound target.
async fn carry(conn: ConnId, name: String, stream: MuxStream, target: Target) {
    let described = targets::describe(&target);
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
    let described = targets::describe(&target);
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

/// Joins a sunset channel to a tokio pipe end until either side ends.
async fn bridge(chan: ChanInOut<'_>, local: DuplexStream) -> String {
    let (local_r, local_w) = tokio::io::split(local);
    let reason = copy_both_ways(chan, local_r, local_w).await;
    format!("mux channel ended ({reason})")
}

async fn copy_both_ways(
    chan: ChanInOut<'_>,
    mut local_r: impl tokio::io::AsyncRead + Unpin,
    mut local_w: impl tokio::io::AsyncWrite + Unpin,
) -> String {
    let (mut chan_in, mut chan_out) = chan.split();
    let from_wn = async {
        let mut buf = [0u8; COPY_BYTES];
        loop {
            let n = match chan_in.read(&mut buf).await {
                Ok(0) | Err(sunset::Error::ChannelEOF) => return "the WN sent EOF".to_string(),
                Ok(n) => n,
                Err(e) => return format!("channel read: {e}"),
            };
            if let Err(e) = local_w.write_all(&buf[..n]).await {
                return format!("local write: {e}");
            }
        }
    };
    let to_wn = async {
        let mut buf = [0u8; COPY_BYTES];
        loop {
            let n = match local_r.read(&mut buf).await {
                Ok(0) => return "the local side closed".to_string(),
                Ok(n) => n,
                Err(e) => return format!("local read: {e}"),
            };
            if let Err(e) = chan_out.write_all(&buf[..n]).await {
                return format!("channel write: {e}");
            }
        }
    };
    tokio::select! {
        reason = from_wn => reason,
        reason = to_wn => reason,
    }
}
