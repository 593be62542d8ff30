//! `pp-tunnel`: the tokio driver of the pp-mux multiplexer
//! (docs/protocol.md section 2) that both the forwarder (PP) and the adaptor
//! (WN) run over their mux channel.
//!
//! On a `pp-mux-v2` channel ([`start`]; [`start_with`] picks the version)
//! the mux also carries datagram flows: [`MuxHandle::open_flow`] and
//! [`MuxEvent::IncomingFlow`] give [`MuxFlow`]s, which send without ever
//! waiting (a full queue drops and counts, [`FlowStats`]) and are served in
//! turn so one busy flow cannot starve another.
//!
//! [`start`] takes any `AsyncRead + AsyncWrite + Unpin` byte pipe by value
//! and returns a [`MuxHandle`] (open streams, send control frames), a
//! [`MuxEvents`] receiver (incoming streams and control frames) and a
//! [`MuxDriver`] whose [`MuxDriver::run`] future does all the IO. The driver
//! never spawns and never needs `Send` from the pipe, so it can run on a
//! current-thread runtime or a `LocalSet`; handles and streams are `Send`.
//! Each [`MuxStream`] is an `AsyncRead + AsyncWrite` with its own flow
//! control: at most one window is buffered per stream (1 MiB while the
//! connection's [`MuxLimits::window_budget`] of 4 MiB lasts, else 64 KiB)
//! and CREDIT goes out only as the stream's reader drains it, so a stalled
//! consumer never blocks other streams. The peer may have at most
//! [`MuxLimits::max_peer_streams`] streams open at once (default 256), so
//! what it can make this side buffer is bounded by that times 64 KiB plus
//! the budget (docs/protocol.md 2.5). [`pump`] joins a stream to a TCP or
//! unix socket; [`datagram`] joins flows to UDP and unix datagram sockets.
#![forbid(unsafe_code)]

pub mod datagram;
mod driver;
mod error;
mod flow;
#[cfg(test)]
mod flow_tests;
mod handle;
mod pump;
mod stream;

pub use driver::{MuxDriver, start, start_with};
pub use error::MuxError;
pub use flow::{FlowClosed, FlowSendError, FlowStats, MuxFlow, TRANSMIT_LOW_WATER};
pub use handle::{IncomingFlow, IncomingStream, MuxEvent, MuxEvents, MuxHandle};
pub use pp_mux::{
    CommandError, MuxLimits, Phase, ProtocolError, Role, STREAM_LIMIT_REASON, Side, StreamId,
};
pub use pp_mux::{
    FLOW_LIMIT_REASON, FLOW_QUEUE_BYTES, FLOW_QUEUE_DATAGRAMS, FLOWS_HELD_BYTES, MAX_DATAGRAM,
    MuxVersion,
};
pub use pump::pump;
pub use stream::MuxStream;
