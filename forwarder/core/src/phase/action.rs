//! What the phase machine asks the driver to do; each action reads as one
//! log line (`Display`).

use super::{ConnId, PhaseKeys};
use crate::record::PhaseRecord;
use alloc::string::String;
use core::fmt;
use pp_ssh_key::PublicKey;
use pp_tag::ConnectionPhase;

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer the offered authentication method with success (for
    /// `publickey`: the key is acceptable, check its signature).
    AcceptAuth { conn: ConnId },
    /// Answer the offered method with failure; the client may try another.
    RejectAuth { conn: ConnId, reason: String },
    /// Drop this authenticated connection before the auth success leaves.
    Refuse { conn: ConnId, reason: String },
    /// Write this record (atomically) before carrying out later actions.
    Persist(PhaseRecord),
    /// Write the keys as 0600 files before carrying out later actions.
    PersistKeys(PhaseKeys),
    /// Let the auth success out; the connection serves this phase.
    Admit {
        conn: ConnId,
        phase: ConnectionPhase,
    },
    /// Start fetching the Kubernetes-phase keys from CDH.
    FetchKeys,
    /// Close this connection now.
    Close { conn: ConnId, reason: String },
    /// Send `UPGRADE(host_key)` on this connection's mux channel.
    SignalUpgrade { conn: ConnId, host_key: PublicKey },
    /// Close this connection after the upgrade grace period (30 s).
    CloseAfterGrace { conn: ConnId, reason: String },
    /// Close every connection and listener and accept nothing more.
    FailClosed { reason: String },
    /// Nothing to do; log why.
    Note { reason: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AcceptAuth { conn } => {
                write!(f, "connection {conn}: authentication method acceptable")
            }
            Self::RejectAuth { conn, reason } => {
                write!(f, "connection {conn}: authentication rejected: {reason}")
            }
            Self::Refuse { conn, reason } => write!(f, "connection {conn}: refused: {reason}"),
            Self::Persist(record) => write!(f, "persisting phase record: {:?}", record.phase),
            Self::PersistKeys(keys) => write!(
                f,
                "persisting Kubernetes-phase keys: host key {}, WN key {}",
                keys.host_key.public().fingerprint(),
                keys.wn_key.fingerprint()
            ),
            Self::Admit { conn, phase } => {
                write!(
                    f,
                    "connection {conn}: admitted in the {} phase",
                    phase.as_str()
                )
            }
            Self::FetchKeys => f.write_str("fetching Kubernetes-phase keys from CDH"),
            Self::Close { conn, reason } => write!(f, "connection {conn}: closing: {reason}"),
            Self::SignalUpgrade { conn, host_key } => write!(
                f,
                "connection {conn}: sending UPGRADE with host key {}",
                host_key.fingerprint()
            ),
            Self::CloseAfterGrace { conn, reason } => {
                write!(
                    f,
                    "connection {conn}: closing after the grace period: {reason}"
                )
            }
            Self::FailClosed { reason } => write!(f, "failing closed: {reason}"),
            Self::Note { reason } => f.write_str(reason),
        }
    }
}
