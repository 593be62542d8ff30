//! [`MuxFlow`]: one datagram flow of a `pp-mux-v2` mux, and [`FlowTable`],
//! the driver's side of all flows (docs/protocol.md 2.3, 2.5).
//!
//! Contract: a flow never blocks its sender and never holds more than
//! `FLOW_QUEUE_DATAGRAMS` datagrams / `FLOW_QUEUE_BYTES` bytes per
//! direction, and all flows of one connection together never hold more than
//! `FLOWS_HELD_BYTES`. [`MuxFlow::send`] queues one datagram or drops it at once
//! (too large, queue full, flow closed), counting the drop in
//! [`FlowStats`]. The driver moves queued datagrams into the session one
//! per flow in turn, and only while the session's transmit backlog is
//! below [`TRANSMIT_LOW_WATER`], so one flooding flow cannot starve
//! another and a slow pipe makes senders drop instead of buffering.
//! Received datagrams wait for [`MuxFlow::recv`] in a queue of the same
//! bound; beyond it they are dropped and counted. A flow ends with RESET
//! (either side) or with the connection, and [`MuxFlow::recv`] then
//! returns the reason.
//! Dropping the last clone of a live flow resets it ("flow dropped").

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pp_mux::{
    CommandError, FLOW_QUEUE_BYTES, FLOW_QUEUE_DATAGRAMS, FLOWS_HELD_BYTES, MAX_DATAGRAM,
    MuxSession, StreamId,
};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::MuxError;
use crate::driver::Command;

/// The driver moves queued datagrams and streams' written bytes into the
/// session only while fewer bytes than this wait to be written to the pipe.
pub const TRANSMIT_LOW_WATER: usize = 64 * 1024;

/// Whether the driver may move more into `session`: fewer than
/// [`TRANSMIT_LOW_WATER`] bytes (`unwritten` in the driver's buffer plus
/// the session's backlog) wait for the pipe.
pub(crate) fn pipe_has_room(session: &MuxSession, unwritten: usize) -> bool {
    unwritten.saturating_add(session.transmit_backlog()) < TRANSMIT_LOW_WATER
}

/// What one flow carried and dropped, per direction; every counter only
/// grows. "Sent" counts datagrams handed to the mux session (on their way
/// to the peer); datagrams still queued when a flow closes count nowhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Datagrams sent to the peer.
    pub sent_datagrams: u64,
    /// Bytes of those datagrams.
    pub sent_bytes: u64,
    /// Datagrams received from the peer and queued for [`MuxFlow::recv`].
    pub received_datagrams: u64,
    /// Bytes of those datagrams.
    pub received_bytes: u64,
    /// [`MuxFlow::send`] refused a datagram longer than `MAX_DATAGRAM`.
    pub dropped_too_large: u64,
    /// [`MuxFlow::send`] dropped a datagram because the send queue was full.
    pub dropped_send_queue_full: u64,
    /// A datagram from the peer was dropped because the receive queue was full.
    pub dropped_receive_queue_full: u64,
    /// [`MuxFlow::send`] dropped a datagram because the flow had closed.
    pub dropped_closed: u64,
}

/// Why a flow carries no more datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowClosed {
    /// The peer sent RESET with this reason.
    PeerReset(String),
    /// This side reset the flow with this reason.
    LocalReset(String),
    /// The mux connection ended, for this reason.
    ConnectionEnded(String),
}

impl FlowClosed {
    /// The reason text alone (the RESET reason or why the connection ended).
    pub fn reason(&self) -> &str {
        match self {
            FlowClosed::PeerReset(reason)
            | FlowClosed::LocalReset(reason)
            | FlowClosed::ConnectionEnded(reason) => reason,
        }
    }
}

impl fmt::Display for FlowClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowClosed::PeerReset(reason) => write!(f, "mux flow reset by the peer: {reason}"),
            FlowClosed::LocalReset(reason) => write!(f, "mux flow reset by this side: {reason}"),
            FlowClosed::ConnectionEnded(why) => write!(f, "mux connection ended: {why}"),
        }
    }
}

impl std::error::Error for FlowClosed {}

/// Why [`MuxFlow::send`] dropped a datagram (each is counted in [`FlowStats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowSendError {
    /// Longer than `MAX_DATAGRAM` (16384 bytes).
    TooLarge {
        /// The datagram's length.
        len: usize,
    },
    /// The flow's send queue is full: the pipe or the peer is slower than
    /// the sender.
    QueueFull,
    /// The flow has closed.
    Closed(FlowClosed),
}

impl fmt::Display for FlowSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowSendError::TooLarge { len } => write!(
                f,
                "datagram of {len} bytes dropped: a mux flow carries at most {MAX_DATAGRAM}"
            ),
            FlowSendError::QueueFull => write!(
                f,
                "datagram dropped: the flow's send queue holds {FLOW_QUEUE_DATAGRAMS} datagrams \
                 or {FLOW_QUEUE_BYTES} bytes already, or the connection's flows hold \
                 {FLOWS_HELD_BYTES} bytes"
            ),
            FlowSendError::Closed(closed) => write!(f, "datagram dropped: {closed}"),
        }
    }
}

impl std::error::Error for FlowSendError {}

/// Bytes of datagrams queued in all flows of one connection (both
/// directions), kept at most `FLOWS_HELD_BYTES`.
#[derive(Debug, Default)]
pub(crate) struct HeldBytes(AtomicUsize);

impl HeldBytes {
    /// Takes `len` bytes of the budget, or `false` when they do not fit.
    fn take(&self, len: usize) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(len).filter(|&n| n <= FLOWS_HELD_BYTES)
            })
            .is_ok()
    }

    fn give_back(&self, len: usize) {
        // The closure never refuses, so the update always happens.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(len))
            });
    }
}

/// A bounded queue of whole datagrams, charged to its connection's
/// [`HeldBytes`].
#[derive(Debug, Default)]
struct DatagramQueue {
    datagrams: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl DatagramQueue {
    /// Queues `datagram`, or hands it back when this queue or the
    /// connection's budget is full.
    fn push(&mut self, datagram: Vec<u8>, held: &HeldBytes) -> Result<(), Vec<u8>> {
        let len = datagram.len();
        let fits = self.datagrams.len() < FLOW_QUEUE_DATAGRAMS
            && self.bytes.saturating_add(len) <= FLOW_QUEUE_BYTES;
        if !fits || !held.take(len) {
            return Err(datagram);
        }
        self.bytes = self.bytes.saturating_add(len);
        self.datagrams.push_back(datagram);
        Ok(())
    }

    fn pop(&mut self, held: &HeldBytes) -> Option<Vec<u8>> {
        let datagram = self.datagrams.pop_front()?;
        self.bytes = self.bytes.saturating_sub(datagram.len());
        held.give_back(datagram.len());
        Some(datagram)
    }

    fn clear(&mut self, held: &HeldBytes) {
        self.datagrams.clear();
        held.give_back(core::mem::take(&mut self.bytes));
    }
}

/// What the driver and the flow's users both see.
#[derive(Debug, Default)]
struct FlowState {
    received: DatagramQueue,
    to_send: DatagramQueue,
    /// The flow is in the driver's round-robin queue.
    scheduled: bool,
    closed: Option<FlowClosed>,
    stats: FlowStats,
}

impl FlowState {
    /// Ends the flow (a first reason wins); queued datagrams to send are
    /// dropped.
    fn close(&mut self, why: FlowClosed, held: &HeldBytes) {
        self.closed.get_or_insert(why);
        self.to_send.clear(held);
    }
}

#[derive(Debug)]
struct FlowShared {
    state: Mutex<FlowState>,
    /// Wakes receivers on a new datagram or on close.
    changed: Notify,
    /// The budget of the connection this flow belongs to.
    held: Arc<HeldBytes>,
}

impl FlowShared {
    fn lock(&self) -> MutexGuard<'_, FlowState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The user half; dropping the last one resets a live flow.
#[derive(Debug)]
struct FlowUser {
    id: StreamId,
    shared: Arc<FlowShared>,
    commands: UnboundedSender<Command>,
}

impl FlowUser {
    fn reset(&self, reason: &str) {
        {
            let mut state = self.shared.lock();
            if state.closed.is_some() {
                return;
            }
            let held = &self.shared.held;
            state.close(FlowClosed::LocalReset(reason.to_owned()), held);
            state.received.clear(held);
        }
        self.shared.changed.notify_waiters();
        // If the driver is gone the flow is gone with it: nothing to tell.
        let _ = self.commands.send(Command::Reset {
            stream: self.id,
            reason: reason.to_owned(),
        });
    }
}

impl Drop for FlowUser {
    fn drop(&mut self) {
        self.reset("flow dropped");
        // Datagrams received before the flow closed and never read give
        // their bytes back to the connection's budget.
        self.shared.lock().received.clear(&self.shared.held);
    }
}

/// One datagram flow. Cheap to clone (all clones are the same flow);
/// `Send + Sync`. See the module documentation.
#[derive(Clone, Debug)]
pub struct MuxFlow {
    user: Arc<FlowUser>,
}

impl MuxFlow {
    /// The flow's id on the wire (odd: opened by the WN, even: by the PP).
    pub fn id(&self) -> StreamId {
        self.user.id
    }

    /// Queues one whole datagram for the peer, or drops it at once; never
    /// waits.
    pub fn send(&self, datagram: &[u8]) -> Result<(), FlowSendError> {
        let user = &self.user;
        let mut state = user.shared.lock();
        if let Some(closed) = &state.closed {
            let error = FlowSendError::Closed(closed.clone());
            state.stats.dropped_closed = state.stats.dropped_closed.saturating_add(1);
            return Err(error);
        }
        if datagram.len() > MAX_DATAGRAM {
            state.stats.dropped_too_large = state.stats.dropped_too_large.saturating_add(1);
            return Err(FlowSendError::TooLarge {
                len: datagram.len(),
            });
        }
        if state
            .to_send
            .push(datagram.to_vec(), &user.shared.held)
            .is_err()
        {
            let dropped = &mut state.stats.dropped_send_queue_full;
            *dropped = dropped.saturating_add(1);
            return Err(FlowSendError::QueueFull);
        }
        if !state.scheduled {
            state.scheduled = true;
            // Without a driver the flow is closed already (see close_all).
            let _ = user.commands.send(Command::FlowReady { stream: user.id });
        }
        Ok(())
    }

    /// The next datagram from the peer, whole; once the flow has closed,
    /// why it closed (after a peer RESET or the connection's end, only once
    /// the datagrams received before it were read; after a local reset at
    /// once). Several tasks may wait; each datagram goes to one of them.
    pub async fn recv(&self) -> Result<Vec<u8>, FlowClosed> {
        let shared = &self.user.shared;
        loop {
            let mut changed = pin!(shared.changed.notified());
            changed.as_mut().enable();
            {
                let mut state = shared.lock();
                if let Some(datagram) = state.received.pop(&shared.held) {
                    return Ok(datagram);
                }
                if let Some(closed) = &state.closed {
                    return Err(closed.clone());
                }
            }
            changed.await;
        }
    }

    /// Ends the flow and tells the peer why (cut to 256 bytes). Idempotent:
    /// only the first call of any clone sends RESET.
    pub fn reset(&self, reason: &str) {
        self.user.reset(reason);
    }

    /// Why the flow closed, or `None` while it is live.
    pub fn closed(&self) -> Option<FlowClosed> {
        self.user.shared.lock().closed.clone()
    }

    /// The flow's counters so far.
    pub fn stats(&self) -> FlowStats {
        self.user.shared.lock().stats
    }
}

/// The driver's view of every live flow and its round-robin send turn.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    flows: HashMap<StreamId, Arc<FlowShared>>,
    /// Bytes queued in all of this connection's flows.
    held: Arc<HeldBytes>,
    /// Flows with queued datagrams, in turn order; each appears once.
    ready: VecDeque<StreamId>,
}

impl FlowTable {
    /// Registers a flow the session has just opened (either side).
    pub(crate) fn add(&mut self, id: StreamId, commands: UnboundedSender<Command>) -> MuxFlow {
        let shared = Arc::new(FlowShared {
            state: Mutex::default(),
            changed: Notify::new(),
            held: self.held.clone(),
        });
        self.flows.insert(id, shared.clone());
        MuxFlow {
            user: Arc::new(FlowUser {
                id,
                shared,
                commands,
            }),
        }
    }

    /// A datagram from the peer: queued for the flow's reader, or dropped
    /// and counted when the queue is full.
    pub(crate) fn deliver(&self, id: StreamId, datagram: Vec<u8>) {
        let Some(shared) = self.flows.get(&id) else {
            return;
        };
        {
            let mut guard = shared.lock();
            let state = &mut *guard;
            if state.closed.is_some() {
                return;
            }
            let len = byte_count(&datagram);
            let stats = &mut state.stats;
            if state.received.push(datagram, &shared.held).is_err() {
                stats.dropped_receive_queue_full =
                    stats.dropped_receive_queue_full.saturating_add(1);
                return;
            }
            stats.received_datagrams = stats.received_datagrams.saturating_add(1);
            stats.received_bytes = stats.received_bytes.saturating_add(len);
        }
        shared.changed.notify_waiters();
    }

    /// Whether `id` is a live flow of this table.
    pub(crate) fn holds(&self, id: StreamId) -> bool {
        self.flows.contains_key(&id)
    }

    /// The flow `id` has queued datagrams (its first since it last drained).
    pub(crate) fn mark_ready(&mut self, id: StreamId) {
        if self.holds(id) {
            self.ready.push_back(id);
        }
    }

    /// Closes and forgets flow `id` if it is one of ours (a peer RESET or
    /// this side's reset reached the session).
    pub(crate) fn close(&mut self, id: StreamId, why: FlowClosed) {
        if let Some(shared) = self.flows.remove(&id) {
            shared.lock().close(why, &shared.held);
            shared.changed.notify_waiters();
        }
    }

    /// Every flow ends with the connection.
    pub(crate) fn close_all(&mut self, why: &str) {
        self.ready.clear();
        for (_, shared) in self.flows.drain() {
            shared
                .lock()
                .close(FlowClosed::ConnectionEnded(why.to_owned()), &shared.held);
            shared.changed.notify_waiters();
        }
    }

    /// Moves queued datagrams into `session`, one per ready flow in turn,
    /// while fewer than [`TRANSMIT_LOW_WATER`] bytes (`unwritten` plus the
    /// session's backlog) wait for the pipe. Returns whether any moved.
    pub(crate) fn send_queued(
        &mut self,
        session: &mut MuxSession,
        unwritten: usize,
    ) -> Result<bool, MuxError> {
        let mut moved = false;
        while pipe_has_room(session, unwritten) {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            let Some(shared) = self.flows.get(&id) else {
                continue;
            };
            let mut state = shared.lock();
            let Some(datagram) = state.to_send.pop(&shared.held) else {
                state.scheduled = false;
                continue;
            };
            match session.send_datagram(id, &datagram) {
                Ok(()) => {
                    let stats = &mut state.stats;
                    stats.sent_datagrams = stats.sent_datagrams.saturating_add(1);
                    stats.sent_bytes = stats.sent_bytes.saturating_add(byte_count(&datagram));
                    moved = true;
                }
                // Reset meanwhile: its RESET is on the way to this driver.
                Err(CommandError::StreamClosed(_)) => {}
                Err(e) => return Err(MuxError::Command(e)),
            }
            if state.to_send.datagrams.is_empty() {
                state.scheduled = false;
            } else {
                self.ready.push_back(id);
            }
        }
        Ok(moved)
    }
}

fn byte_count(datagram: &[u8]) -> u64 {
    u64::try_from(datagram.len()).unwrap_or(u64::MAX)
}
