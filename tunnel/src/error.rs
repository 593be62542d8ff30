//! [`MuxError`]: why the mux connection or a mux request failed.

use std::fmt;
use std::io;

use pp_mux::{CommandError, ProtocolError};

#[derive(Debug)]
pub enum MuxError {
    /// The peer broke the pp-mux protocol; the connection must be closed.
    Protocol(ProtocolError),
    /// Reading or writing the byte pipe failed.
    Io(io::Error),
    /// A local request was invalid (bad tunnel name, wrong role, ...).
    Command(CommandError),
    /// The driver is not running any more (the connection ended).
    Stopped,
    /// This side's flow-control accounting diverged from the session's.
    WindowAccounting { stream: pp_mux::StreamId },
    /// Datagram flows need a `pp-mux-v2` channel; this one is v1.
    NeedsVersion2,
}

impl MuxError {
    /// A refused command; [`CommandError::NeedsVersion2`] becomes
    /// [`MuxError::NeedsVersion2`].
    pub(crate) fn from_command(e: CommandError) -> Self {
        match e {
            CommandError::NeedsVersion2 => MuxError::NeedsVersion2,
            e => MuxError::Command(e),
        }
    }
}

impl fmt::Display for MuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuxError::Protocol(e) => write!(f, "pp-mux protocol error from the peer: {e}"),
            MuxError::Io(e) => write!(f, "mux channel IO failed: {e}"),
            MuxError::Command(e) => write!(f, "mux request refused: {e}"),
            MuxError::Stopped => write!(f, "the mux connection has ended"),
            MuxError::WindowAccounting { stream } => write!(
                f,
                "internal error: stream {stream} wrote beyond its send window (report this bug)"
            ),
            MuxError::NeedsVersion2 => CommandError::NeedsVersion2.fmt(f),
        }
    }
}

impl std::error::Error for MuxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MuxError::Protocol(e) => Some(e),
            MuxError::Io(e) => Some(e),
            MuxError::Command(e) => Some(e),
            MuxError::Stopped | MuxError::WindowAccounting { .. } | MuxError::NeedsVersion2 => None,
        }
    }
}
