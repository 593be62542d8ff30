//! What the phase machine asks the driver to do; each action reads as one
//! log line (`Display`).

use super::ConnId;
use crate::record::{PhaseRecord, RecordedPhase};
use alloc::format;
use alloc::string::String;
use core::fmt;
use pp_ssh_key::{PrivateKey, PublicKey};
use pp_tag::ConnectionPhase;

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer the offered authentication method with success (for
    /// `publickey`: the key is acceptable, check its signature).
    AcceptAuth {
        /// The connection.
        conn: ConnId,
    },
    /// Answer the offered method with failure; the client may try another.
    RejectAuth {
        /// The connection.
        conn: ConnId,
        /// Why, for the log line.
        reason: String,
    },
    /// Drop this authenticated connection before the auth success leaves.
    Refuse {
        /// The connection.
        conn: ConnId,
        /// Why, for the log line.
        reason: String,
    },
    /// Write this record (one atomic write; a `Kubernetes` record holds the
    /// keys) before carrying out later actions.
    Persist(PhaseRecord),
    /// Let the auth success out; the connection serves this phase.
    Admit {
        /// The connection.
        conn: ConnId,
        /// The phase it serves.
        phase: ConnectionPhase,
    },
    /// Open this connection's one mux channel, serving `phase`.
    OpenMux {
        /// The connection.
        conn: ConnId,
        /// The phase it serves.
        phase: ConnectionPhase,
    },
    /// Refuse a mux channel on this connection.
    RefuseMux {
        /// The connection.
        conn: ConnId,
        /// Why, for the log line.
        reason: String,
    },
    /// Feed `DeadlineExpired` after this many milliseconds.
    StartDeadline {
        /// Milliseconds from now.
        after_ms: u64,
    },
    /// Start fetching the Kubernetes-phase keys from CDH.
    FetchKeys,
    /// Close this connection now.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log line.
        reason: String,
    },
    /// Send `UPGRADE(host_key)` on this connection's mux channel.
    SignalUpgrade {
        /// The connection.
        conn: ConnId,
        /// The Kubernetes-phase host key the WN must see next.
        host_key: PublicKey,
    },
    /// Close this connection after the upgrade grace period (30 s).
    CloseAfterGrace {
        /// The connection.
        conn: ConnId,
        /// Why, for the log line.
        reason: String,
    },
    /// Stop serving for the rest of the boot: the driver powers the VM off
    /// or exits (its `--deadline-action`); nothing is accepted any more.
    FailClosed {
        /// Why, for the log line.
        reason: String,
    },
    /// Nothing to do; log why.
    Note {
        /// Why, for the log line.
        reason: String,
    },
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
            Self::Persist(PhaseRecord {
                phase:
                    RecordedPhase::Kubernetes {
                        attestation_host_key_fingerprint,
                        attestation_peer,
                        keys,
                    },
                ..
            }) => {
                let host_key = PrivateKey::from_seed(keys.host_key_seed).public();
                let wn_key = PublicKey::from_bytes(keys.wn_key)
                    .map(|key| key.fingerprint())
                    .unwrap_or_else(|error| format!("({error})"));
                write!(
                    f,
                    "persisting phase record: Kubernetes (attestation host key \
                     {attestation_host_key_fingerprint}, peer {attestation_peer}) with the \
                     Kubernetes-phase keys: host key {}, WN key {wn_key}",
                    host_key.fingerprint()
                )
            }
            Self::Persist(record) => write!(f, "persisting phase record: {:?}", record.phase),
            Self::Admit { conn, phase } => {
                write!(
                    f,
                    "connection {conn}: admitted in the {} phase",
                    phase.as_str()
                )
            }
            Self::OpenMux { conn, phase } => write!(
                f,
                "connection {conn}: mux channel opened in the {} phase",
                phase.as_str()
            ),
            Self::RefuseMux { conn, reason } => {
                write!(f, "connection {conn}: mux channel refused: {reason}")
            }
            Self::StartDeadline { after_ms } => {
                write!(f, "attestation deadline in {after_ms} ms")
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
