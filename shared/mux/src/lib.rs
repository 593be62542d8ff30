//! The multiplexer of docs/protocol.md section 2 (`pp-mux-v1`), sans-IO:
//! [`frame`] turns bytes into validated frames and back, [`session`] is the
//! per-channel state machine one side runs. Drivers (the forwarder's, and
//! the `pp-tunnel` crate's tokio driver) own the channel and feed them.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod frame;
pub mod session;

#[cfg(test)]
mod session_tests;

pub use frame::{Frame, FrameError, Phase, Role, Side, StreamId};
pub use session::{
    CommandError, DEFAULT_MAX_PEER_STREAMS, DEFAULT_STREAM_WINDOW, DEFAULT_WINDOW_BUDGET, Event,
    INITIAL_WINDOW, MAX_UNREAD_ANSWERS, MAX_WINDOW, MuxLimits, MuxSession, ProtocolError,
    STREAM_LIMIT_REASON,
};
