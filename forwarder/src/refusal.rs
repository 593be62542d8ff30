//! Why the controller said no to a connection: one value per cause, so the
//! session and channels carry the cause, not a string, and the one log line
//! about it reads the same as before.

use std::fmt;

use pp_forwarder_core::policy::OpenRefusal;

/// Why a connection, its authentication or one of its requests was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The phase machine rejected the authentication or refused the
    /// connection or its mux channel, for this reason.
    PhaseMachine(String),
    /// The tunnel policy of the connection's phase refused the tunnel.
    Tunnel(OpenRefusal),
    /// The connection asked for a tunnel before it was admitted.
    NotAdmitted,
    /// The client authenticated although no method had been allowed.
    NoAllowedMethod,
    /// Persisting the phase failed (the machine then fails closed).
    PersistFailed(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PhaseMachine(reason) | Self::PersistFailed(reason) => f.write_str(reason),
            Self::Tunnel(refusal) => refusal.fmt(f),
            Self::NotAdmitted => f.write_str("the connection is not admitted"),
            Self::NoAllowedMethod => f.write_str("authenticated without an allowed method"),
        }
    }
}
