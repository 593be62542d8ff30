//! Datagram flows of a `pp-mux-v2` session (docs/protocol.md 2.3, 2.5):
//! `OPEN_FLOW` and `DATAGRAM` from the peer, [`MuxSession::open_flow`] and
//! [`MuxSession::send_datagram`] from this side.
//!
//! A flow takes its id from the one sequence streams use, carries whole
//! datagrams both ways with no window and ends with `RESET` only. The peer
//! may have at most [`MuxLimits::max_peer_flows`](super::MuxLimits) open;
//! the session refuses an `OPEN_FLOW` over that itself. On a v1 session the
//! two frame types are unknown types, exactly as a v1-only peer sees them.

use alloc::string::String;
use alloc::vec::Vec;

use super::{CommandError, Event, MuxSession, ProtocolError};
use crate::frame::{self, FrameError, MAX_DATAGRAM, StreamId, TYPE_DATAGRAM, TYPE_OPEN_FLOW};

/// Flows the peer may have open at once unless `MuxLimits` says otherwise.
pub const DEFAULT_MAX_PEER_FLOWS: usize = 256;
/// The `RESET` reason of an `OPEN_FLOW` over the limit starts with this.
pub const FLOW_LIMIT_REASON: &str = "flow limit:";
/// Datagrams a driver holds per flow and direction before it drops
/// (docs/protocol.md 2.5): undelivered received ones, unsent queued ones.
pub const FLOW_QUEUE_DATAGRAMS: usize = 64;
/// Bytes of datagrams a driver holds per flow and direction before it drops.
pub const FLOW_QUEUE_BYTES: usize = 256 * 1024;
/// Bytes of datagrams a driver holds over all flows of one connection, both
/// directions together, before it drops: what a peer can make a side hold
/// stays at 4 MiB however many flows it opens.
pub const FLOWS_HELD_BYTES: usize = 4 * 1024 * 1024;

impl MuxSession {
    /// Opens a datagram flow to the peer's target `name`; datagrams may
    /// follow at once. Only on a `pp-mux-v2` session.
    pub fn open_flow(&mut self, name: &str) -> Result<StreamId, CommandError> {
        self.check_flows()?;
        frame::check_tunnel_name(name).map_err(CommandError::Invalid)?;
        let stream = self.take_local_id()?;
        self.flows.insert(stream);
        self.queue(&frame::Frame::OpenFlow {
            stream,
            name: name.into(),
        });
        Ok(stream)
    }

    /// Queues one whole datagram on `flow`. There is no window: the driver
    /// bounds what it queues (see [`MuxSession::transmit_backlog`]).
    pub fn send_datagram(&mut self, flow: StreamId, datagram: &[u8]) -> Result<(), CommandError> {
        self.check_flows()?;
        if datagram.len() > MAX_DATAGRAM {
            return Err(CommandError::DatagramTooLarge {
                len: datagram.len(),
            });
        }
        if !self.flows.contains(&flow) {
            return Err(CommandError::StreamClosed(flow));
        }
        frame::emit_datagram(flow, datagram, &mut self.transmit);
        Ok(())
    }

    /// Live flows opened by the peer (never above the limit).
    pub fn peer_flows(&self) -> usize {
        self.peer_flows
    }

    fn check_flows(&self) -> Result<(), CommandError> {
        self.check_alive()?;
        if self.version.has_flows() {
            Ok(())
        } else {
            Err(CommandError::NeedsVersion2)
        }
    }

    /// On a v1 channel the flow frames are unknown types.
    fn check_flow_frame(&self, frame_type: u8) -> Result<(), ProtocolError> {
        if self.version.has_flows() {
            Ok(())
        } else {
            Err(ProtocolError::Frame(FrameError::UnknownType(frame_type)))
        }
    }

    pub(super) fn handle_open_flow(
        &mut self,
        stream: StreamId,
        name: String,
    ) -> Result<Option<Event>, ProtocolError> {
        self.check_flow_frame(TYPE_OPEN_FLOW)?;
        self.take_peer_id(stream)?;
        if self.peer_flows >= self.limits.max_peer_flows {
            let limit = self.limits.max_peer_flows;
            self.refuse_over_cap(stream, "OPEN_FLOW", FLOW_LIMIT_REASON, limit, "flows")?;
            return Ok(None);
        }
        self.flows.insert(stream);
        self.peer_flows = self.peer_flows.saturating_add(1);
        Ok(Some(Event::FlowOpened { stream, name }))
    }

    pub(super) fn handle_datagram(
        &mut self,
        stream: StreamId,
        bytes: Vec<u8>,
    ) -> Result<Option<Event>, ProtocolError> {
        self.check_flow_frame(TYPE_DATAGRAM)?;
        if self.flows.contains(&stream) {
            return Ok(Some(Event::Datagram { stream, bytes }));
        }
        if self.streams.contains_key(&stream) {
            return Err(ProtocolError::NotAFlow { stream });
        }
        if self.was_opened(stream) {
            // A finished flow (or stream): its late frames are ignored.
            return Ok(None);
        }
        Err(ProtocolError::UnknownStream {
            frame: "DATAGRAM",
            stream,
        })
    }

    /// Forgets a live flow; `false` if `stream` is not one.
    pub(super) fn finish_flow(&mut self, stream: StreamId) -> bool {
        if !self.flows.remove(&stream) {
            return false;
        }
        if stream.opener() != self.side.role() {
            self.peer_flows = self.peer_flows.saturating_sub(1);
        }
        true
    }
}
