//! [`serve_listener`]: the listener side of a datagram tunnel. Each client
//! address gets its own flow, opened on its first datagram; replies on the
//! flow go back to that client.
//!
//! Contract: runs until dropped and never spawns: opening flows, every
//! flow's replies and the idle sweep all run inside the one future, so a
//! client waiting for its flow to open never holds up another. Datagrams a
//! client sends while its flow is being opened wait (at most
//! [`PENDING_DATAGRAMS`] per client and [`PENDING_BYTES`] for all clients
//! of the listener together, so what waiting for a connection can hold is
//! bounded); if the opener finds no connection they are dropped and
//! counted. A flow the peer ends (RESET, connection end) is
//! forgotten, and the client's next datagram opens a new one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use pp_mux::MAX_DATAGRAM;
use tokio::time::Instant;

use super::socket::{ClientAddr, DatagramSocket};
use super::{DatagramCounters, RECEIVE_BUFFER};
use crate::{FlowSendError, MuxFlow};

/// Datagrams kept for a client whose flow is still being opened.
pub const PENDING_DATAGRAMS: usize = 16;
/// Bytes kept for all clients of a listener whose flows are being opened.
pub const PENDING_BYTES: usize = 256 * 1024;

/// How a listener treats its flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelaySettings {
    /// A flow that carried nothing either way for this long is reset.
    pub idle: Duration,
    /// Flows (open or being opened) per listener, at most; a datagram from
    /// a further client is dropped and counted.
    pub max_flows: usize,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60),
            max_flows: 256,
        }
    }
}

/// One client's open flow.
struct Client {
    flow: MuxFlow,
    /// Milliseconds since the listener started, at the last datagram
    /// either way (the reply pump writes it too).
    active_ms: Arc<AtomicU64>,
}

/// What woke the listener.
enum Wake {
    Received(std::io::Result<(usize, ClientAddr)>),
    Opened(ClientAddr, Option<MuxFlow>),
    /// The flow of this client (by flow id) ended.
    Ended(ClientAddr, pp_mux::StreamId),
    Sweep,
}

/// Relays between `socket`'s clients and flows from `open` (called once per
/// new client; `None` when no connection allows the tunnel now).
pub async fn serve_listener<O, F>(
    socket: DatagramSocket,
    open: O,
    settings: RelaySettings,
    counters: Arc<DatagramCounters>,
) where
    O: Fn() -> F,
    F: Future<Output = Option<MuxFlow>>,
{
    let started = Instant::now();
    let now_ms = move || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let idle_ms = u64::try_from(settings.idle.as_millis()).unwrap_or(u64::MAX);
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut clients: HashMap<ClientAddr, Client> = HashMap::new();
    let mut pending: HashMap<ClientAddr, Vec<Vec<u8>>> = HashMap::new();
    let mut pending_bytes = 0usize;
    let mut opening = FuturesUnordered::new();
    let mut replying = FuturesUnordered::new();
    let mut sweep = tokio::time::interval((settings.idle / 4).max(Duration::from_millis(50)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = tokio::select! {
            received = socket.recv_from(&mut buf) => Wake::Received(received),
            Some((client, flow)) = opening.next(), if !opening.is_empty() => Wake::Opened(client, flow),
            Some((client, id)) = replying.next(), if !replying.is_empty() => Wake::Ended(client, id),
            _ = sweep.tick() => Wake::Sweep,
        };
        match wake {
            Wake::Received(Err(_)) => {
                // Nothing a client can cause; do not spin on a broken socket.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Wake::Received(Ok((len, client))) => {
                let Some(datagram) = buf.get(..len).filter(|d| d.len() <= MAX_DATAGRAM) else {
                    counters.too_large();
                    continue;
                };
                if let Some(open) = clients.get(&client) {
                    open.active_ms.store(now_ms(), Ordering::Relaxed);
                    match open.flow.send(datagram) {
                        Ok(()) => {
                            counters.sent(len);
                            continue;
                        }
                        Err(FlowSendError::TooLarge { .. }) => counters.too_large(),
                        Err(FlowSendError::QueueFull) => counters.queue_full(1),
                        Err(FlowSendError::Closed(_)) => {
                            // Ended meanwhile: its pump reports it; start anew.
                            clients.remove(&client);
                            counters.flow_closed(false);
                        }
                    }
                    if clients.contains_key(&client) {
                        continue;
                    }
                }
                let fits = pending_bytes.saturating_add(len) <= PENDING_BYTES;
                if let Some(queue) = pending.get_mut(&client) {
                    if fits && queue.len() < PENDING_DATAGRAMS {
                        queue.push(datagram.to_vec());
                        pending_bytes = pending_bytes.saturating_add(len);
                    } else {
                        counters.queue_full(1);
                    }
                    continue;
                }
                if clients.len() + pending.len() >= settings.max_flows {
                    counters.flow_limit();
                    continue;
                }
                if !fits {
                    counters.queue_full(1);
                    continue;
                }
                pending_bytes = pending_bytes.saturating_add(len);
                pending.insert(client.clone(), vec![datagram.to_vec()]);
                opening.push(open_for(client, open()));
            }
            Wake::Opened(client, flow) => {
                let queued = pending.remove(&client).unwrap_or_default();
                let queued_bytes: usize = queued.iter().map(Vec::len).sum();
                pending_bytes = pending_bytes.saturating_sub(queued_bytes);
                let Some(flow) = flow else {
                    counters.no_tunnel(queued.len());
                    continue;
                };
                counters.flow_opened();
                for datagram in &queued {
                    match flow.send(datagram) {
                        Ok(()) => counters.sent(datagram.len()),
                        Err(_) => counters.queue_full(1),
                    }
                }
                let active_ms = Arc::new(AtomicU64::new(now_ms()));
                replying.push(pump_replies(
                    &socket,
                    client.clone(),
                    flow.clone(),
                    active_ms.clone(),
                    now_ms,
                    &counters,
                ));
                clients.insert(client, Client { flow, active_ms });
            }
            Wake::Ended(client, id) => {
                if clients
                    .get(&client)
                    .is_some_and(|open| open.flow.id() == id)
                {
                    if let Some(ended) = clients.remove(&client) {
                        counters.queue_full(ended.flow.stats().dropped_receive_queue_full);
                    }
                    counters.flow_closed(false);
                }
            }
            Wake::Sweep => {
                let now = now_ms();
                let idle: Vec<ClientAddr> = clients
                    .iter()
                    .filter(|(_, open)| {
                        now.saturating_sub(open.active_ms.load(Ordering::Relaxed)) >= idle_ms
                    })
                    .map(|(client, _)| client.clone())
                    .collect();
                for client in idle {
                    if let Some(expired) = clients.remove(&client) {
                        expired
                            .flow
                            .reset(&format!("idle for {} s", settings.idle.as_secs()));
                        counters.queue_full(expired.flow.stats().dropped_receive_queue_full);
                        counters.flow_closed(true);
                    }
                }
            }
        }
    }
}

async fn open_for<F>(client: ClientAddr, opening: F) -> (ClientAddr, Option<MuxFlow>)
where
    F: Future<Output = Option<MuxFlow>>,
{
    (client, opening.await)
}

/// Delivers the flow's datagrams to `client` until the flow ends; returns
/// whose flow it was.
async fn pump_replies(
    socket: &DatagramSocket,
    client: ClientAddr,
    flow: MuxFlow,
    active_ms: Arc<AtomicU64>,
    now_ms: impl Fn() -> u64,
    counters: &DatagramCounters,
) -> (ClientAddr, pp_mux::StreamId) {
    while let Ok(datagram) = flow.recv().await {
        active_ms.store(now_ms(), Ordering::Relaxed);
        match socket.send_to(&datagram, &client).await {
            Ok(true) => counters.delivered(datagram.len()),
            Ok(false) => counters.no_reply_address(),
            // The client went away (ICMP unreachable, a removed socket
            // file): its flow idles out.
            Err(_) => {}
        }
    }
    (client, flow.id())
}
