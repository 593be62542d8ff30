//! [`DatagramCounters`]: what one datagram listener or target carried and
//! dropped, by reason; shared with whoever reports it (the adaptor's
//! metrics, the forwarder's log).
//!
//! Contract: every counter only grows, except `flows_open` (a gauge).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters; share with `Arc`.
#[derive(Debug, Default)]
pub struct DatagramCounters {
    to_peer: AtomicU64,
    to_peer_bytes: AtomicU64,
    from_peer: AtomicU64,
    from_peer_bytes: AtomicU64,
    dropped_too_large: AtomicU64,
    dropped_no_tunnel: AtomicU64,
    dropped_flow_limit: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_no_reply_address: AtomicU64,
    flows_opened: AtomicU64,
    flows_open: AtomicU64,
    flows_expired: AtomicU64,
}

/// A point-in-time copy of [`DatagramCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatagramCounts {
    /// Datagrams (and their bytes) put on a flow towards the mux peer.
    pub to_peer: u64,
    pub to_peer_bytes: u64,
    /// Datagrams (and their bytes) from the mux peer delivered locally.
    pub from_peer: u64,
    pub from_peer_bytes: u64,
    /// Larger than `MAX_DATAGRAM`.
    pub dropped_too_large: u64,
    /// No connection allowed the tunnel when a flow was needed.
    pub dropped_no_tunnel: u64,
    /// The listener already had its most flows.
    pub dropped_flow_limit: u64,
    /// A flow's queue (this side's or the peer's) was full.
    pub dropped_queue_full: u64,
    /// A reply for a unix client that sent from an unnamed socket.
    pub dropped_no_reply_address: u64,
    pub flows_opened: u64,
    /// Flows open now.
    pub flows_open: u64,
    /// Flows reset for being idle.
    pub flows_expired: u64,
}

impl DatagramCounts {
    /// Every dropped datagram, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_too_large
            + self.dropped_no_tunnel
            + self.dropped_flow_limit
            + self.dropped_queue_full
            + self.dropped_no_reply_address
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl DatagramCounters {
    pub fn counts(&self) -> DatagramCounts {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DatagramCounts {
            to_peer: get(&self.to_peer),
            to_peer_bytes: get(&self.to_peer_bytes),
            from_peer: get(&self.from_peer),
            from_peer_bytes: get(&self.from_peer_bytes),
            dropped_too_large: get(&self.dropped_too_large),
            dropped_no_tunnel: get(&self.dropped_no_tunnel),
            dropped_flow_limit: get(&self.dropped_flow_limit),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_no_reply_address: get(&self.dropped_no_reply_address),
            flows_opened: get(&self.flows_opened),
            flows_open: get(&self.flows_open),
            flows_expired: get(&self.flows_expired),
        }
    }

    pub(crate) fn sent(&self, len: usize) {
        add(&self.to_peer, 1);
        add(&self.to_peer_bytes, len as u64);
    }

    pub(crate) fn delivered(&self, len: usize) {
        add(&self.from_peer, 1);
        add(&self.from_peer_bytes, len as u64);
    }

    pub(crate) fn too_large(&self) {
        add(&self.dropped_too_large, 1);
    }

    pub(crate) fn no_tunnel(&self, n: usize) {
        add(&self.dropped_no_tunnel, n as u64);
    }

    pub(crate) fn flow_limit(&self) {
        add(&self.dropped_flow_limit, 1);
    }

    pub(crate) fn queue_full(&self, n: u64) {
        add(&self.dropped_queue_full, n);
    }

    pub(crate) fn no_reply_address(&self) {
        add(&self.dropped_no_reply_address, 1);
    }

    pub(crate) fn flow_opened(&self) {
        add(&self.flows_opened, 1);
        add(&self.flows_open, 1);
    }

    pub(crate) fn flow_closed(&self, expired: bool) {
        self.flows_open.fetch_sub(1, Ordering::Relaxed);
        if expired {
            add(&self.flows_expired, 1);
        }
    }
}
