//! UDP and unix datagram sockets joined to mux flows (docs/protocol.md 2,
//! `OPEN_FLOW`/`DATAGRAM`), shared by the forwarder and the adaptor.
//!
//! * [`serve_listener`]: the side with the local listener. One flow per
//!   client address, opened lazily on the client's first datagram through
//!   the caller's opener; replies go back to that client; flows idle for
//!   [`RelaySettings::idle`] are reset; at most
//!   [`RelaySettings::max_flows`] flows per listener.
//! * [`serve_target`]: the side with the target. One connected socket per
//!   incoming flow, both ways until idle, RESET or a socket error.
//!
//! Contract: datagrams are never merged, split or reordered; one larger
//! than [`MAX_DATAGRAM`](pp_mux::MAX_DATAGRAM) is dropped (it is read into
//! a 64 KiB buffer, so its size is known); nothing here waits on a slow
//! peer (a full flow queue drops). Every drop is counted in
//! [`DatagramCounters`], by reason. Neither function spawns or needs
//! `Send` from its caller's opener, so both run on the forwarder's
//! single-threaded runtime and in the adaptor's tasks.

mod counters;
mod listener;
mod socket;
mod target;

pub use counters::{DatagramCounters, DatagramCounts};
pub use listener::{RelaySettings, serve_listener};
pub use socket::{ClientAddr, ConnectedDatagram, DatagramSocket};
pub use target::serve_target;

/// Bytes a datagram is read into: any UDP payload fits, so an oversized
/// one is seen whole and dropped rather than truncated.
const RECEIVE_BUFFER: usize = 64 * 1024;
