//! Why a connection ended: one value per cause, so the log level follows
//! from what happened (a refusal is a warning, an ordinary end is not) and
//! the one log line about the end reads the same as before.

use std::fmt;
use std::time::Duration;

use crate::refusal::Refusal;

/// Why a connection ended, for the one log line about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed the TCP connection.
    ClientClosed,
    /// The SSH transport failed (I/O, framing, key exchange).
    Transport(String),
    /// sunset reported a protocol error.
    Protocol(String),
    /// Answering an SSH event failed.
    Session(String),
    /// The SSH session ended (sunset's `Defunct`).
    SessionEnded,
    /// The authenticated connection was refused (not admitted).
    Refused(Refusal),
    /// No SSH version and key exchange within the handshake grace time.
    HandshakeGraceExpired(Duration),
    /// No authentication within the login grace time.
    LoginGraceExpired(Duration),
    /// The controller closed it (superseded, upgrade grace over).
    Closed(String),
    /// Its channels ended it (mux or raw tunnel).
    Channel(String),
}

impl EndReason {
    /// Whether this end is a refusal (logged as a warning).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => f.write_str("the client closed the connection"),
            Self::Transport(e) => write!(f, "SSH transport error: {e}"),
            Self::Protocol(e) => write!(f, "SSH protocol error: {e}"),
            Self::Session(e) => write!(f, "SSH session failed: {e}"),
            Self::SessionEnded => f.write_str("the SSH session ended"),
            Self::Refused(reason) => write!(f, "refused: {reason}"),
            Self::HandshakeGraceExpired(grace) => write!(
                f,
                "no SSH version and key exchange within the handshake grace time ({grace:?})"
            ),
            Self::LoginGraceExpired(grace) => {
                write!(
                    f,
                    "not authenticated within the login grace time ({grace:?})"
                )
            }
            Self::Closed(reason) | Self::Channel(reason) => f.write_str(reason),
        }
    }
}
