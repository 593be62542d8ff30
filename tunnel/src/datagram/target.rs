//! [`serve_target`]: the target side of a datagram tunnel: one incoming
//! flow joined to one connected socket.
//!
//! Contract: datagrams go both ways until the flow ends (the peer's RESET
//! or the connection's end), the flow carried nothing for `idle`, or the
//! socket fails (e.g. the ICMP "port unreachable" of a target that does not
//! listen); in the last two cases the flow is reset with the reason. A
//! datagram from the target larger than `MAX_DATAGRAM` is dropped and
//! counted. Returns why the flow ended.

use std::time::Duration;

use pp_mux::MAX_DATAGRAM;
use tokio::time::Instant;

use super::socket::ConnectedDatagram;
use super::{DatagramCounters, RECEIVE_BUFFER};
use crate::{FlowSendError, MuxFlow};

enum Wake {
    FromPeer(Result<Vec<u8>, crate::FlowClosed>),
    FromTarget(std::io::Result<usize>),
    Idle,
}

pub async fn serve_target(
    flow: MuxFlow,
    socket: ConnectedDatagram,
    idle: Duration,
    counters: &DatagramCounters,
) -> String {
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut last_active = Instant::now();
    counters.flow_opened();
    let (reason, expired) = loop {
        let wake = tokio::select! {
            datagram = flow.recv() => Wake::FromPeer(datagram),
            received = socket.recv(&mut buf) => Wake::FromTarget(received),
            () = tokio::time::sleep_until(last_active + idle) => Wake::Idle,
        };
        match wake {
            Wake::FromPeer(Ok(datagram)) => {
                last_active = Instant::now();
                if let Err(e) = socket.send(&datagram).await {
                    let reason = format!("target failed: {e}");
                    flow.reset(&reason);
                    break (reason, false);
                }
                counters.delivered(datagram.len());
            }
            Wake::FromPeer(Err(closed)) => break (closed.to_string(), false),
            Wake::FromTarget(Ok(len)) => {
                last_active = Instant::now();
                let Some(datagram) = buf.get(..len).filter(|d| d.len() <= MAX_DATAGRAM) else {
                    counters.too_large();
                    continue;
                };
                match flow.send(datagram) {
                    Ok(()) => counters.sent(len),
                    Err(FlowSendError::TooLarge { .. }) => counters.too_large(),
                    Err(FlowSendError::QueueFull) => counters.queue_full(1),
                    Err(FlowSendError::Closed(closed)) => break (closed.to_string(), false),
                }
            }
            Wake::FromTarget(Err(e)) => {
                let reason = format!("target failed: {e}");
                flow.reset(&reason);
                break (reason, false);
            }
            Wake::Idle => {
                let reason = format!("idle for {} s", idle.as_secs());
                flow.reset(&reason);
                break (reason, true);
            }
        }
    };
    counters.queue_full(flow.stats().dropped_receive_queue_full);
    counters.flow_closed(expired);
    reason
}
