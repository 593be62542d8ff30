//! THE phase state machine of the forwarder: one transition table
//! ([`step`]) from (state, event) to (state, actions), pure, no I/O.
//!
//! ```text
//! Restoring --Restored--> AttestationOpen --Authenticated--> AttestationClaimed
//!     |                        |                                  |  KeysObtained
//!     |                        |                                  v
//!     +--Restored(Kubernetes)-------------------------------> Kubernetes
//!     any state --DeadlineExpired (not Kubernetes), PersistFailed,
//!                 damaged record--> Failed (terminal)
//! ```
//!
//! Contract:
//! * Exactly one connection is ever admitted in the attestation phase per
//!   boot: the first to *authenticate* claims it, and the claim is
//!   persisted before the connection learns that it succeeded.
//! * The phase never goes back: Restoring < AttestationOpen <
//!   AttestationClaimed < Kubernetes < Failed. A closed attestation
//!   connection does not reopen the phase; `Failed` is terminal.
//! * Every (state, event) pair has a defined outcome; invalid ones leave
//!   the state unchanged and return an [`Action::Note`] saying why. Nothing
//!   panics.
//!
//! Driver duties: carry out the actions of one step in order. When a
//! [`Action::Persist`] fails, stop executing the remaining actions of that
//! step and feed [`Event::PersistFailed`] (so a connection is never admitted
//! without its claim on disk). `Refuse` means drop the TCP connection
//! without letting the auth success out. The driver tells the machine
//! which phase's host key a connection was shown at key exchange (`shown`);
//! the machine refuses a connection whose phase changed since.

mod action;
#[cfg(test)]
mod model_check;
mod step;
#[cfg(test)]
mod tests;

pub use action::Action;
pub use step::step;

use crate::record::{BootId, RecordedPhase};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use pp_ssh_key::{PrivateKey, PublicKey};
use pp_tag::ConnectionPhase;

/// A connection id, chosen by the driver, unique within the process.
pub type ConnId = u64;

/// How a client tries to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// SSH `none` authentication.
    None,
    /// SSH `publickey` authentication with this key.
    PublicKey(PublicKey),
}

/// What the WN must be able to compare after the attestation phase (the
/// `INFO` transcript check of docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationFacts {
    /// `SHA256:...` of the host key the attestation connection saw.
    pub host_key_fingerprint: String,
    /// The TCP peer of the attestation connection.
    pub peer: SocketAddr,
}

/// The Kubernetes-phase keys obtained from Trustee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseKeys {
    /// This PP's Kubernetes-phase host key (`default/pp-<SID>/privateKey`).
    pub host_key: PrivateKey,
    /// The only WN key the Kubernetes phase accepts (`default/sshclient/publicKey`).
    pub wn_key: PublicKey,
}

/// What the driver found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// No record of this boot (first start, or a record of another boot).
    NoRecord,
    /// The record of this boot.
    Record(RecordedPhase),
    /// The record could not be read or trusted.
    Damaged {
        /// Why, for the log line.
        reason: String,
    },
}

/// The inputs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Once, at start, before anything else; `now_ms` is the time since
    /// boot (CLOCK_BOOTTIME), which the attestation deadline counts from.
    Restored {
        /// What the store found.
        found: Restored,
        /// Milliseconds since boot (CLOCK_BOOTTIME).
        now_ms: u64,
    },
    /// A client offers an authentication method; answered with
    /// `AcceptAuth` or `RejectAuth`. `shown` is the phase whose host key
    /// the connection saw at key exchange.
    AuthOffered {
        /// The connection.
        conn: ConnId,
        /// The phase whose host key the connection was shown at key exchange.
        shown: Option<ConnectionPhase>,
        /// The authentication method.
        method: AuthMethod,
    },
    /// A client has proved the method (signature checked); the decision
    /// point of the one-shot rule. Answered with `Admit` or `Refuse`.
    Authenticated {
        /// The connection.
        conn: ConnId,
        /// The TCP peer.
        peer: SocketAddr,
        /// The phase whose host key the connection was shown at key exchange.
        shown: Option<ConnectionPhase>,
        /// The authentication method.
        method: AuthMethod,
    },
    /// An admitted connection asks for its mux channel; answered with
    /// `OpenMux` or `RefuseMux`.
    MuxRequested {
        /// The connection.
        conn: ConnId,
    },
    /// CDH returned both Kubernetes-phase keys.
    KeysObtained(PhaseKeys),
    /// A connection ended (any reason, authenticated or not).
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
    },
    /// The attestation deadline passed. It also bounds the key fetch, which
    /// retries until the keys come or this event arrives.
    DeadlineExpired,
    /// Writing the record failed.
    PersistFailed {
        /// Why, for the log line.
        reason: String,
    },
}

/// The connection a phase serves, and whether its mux channel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The connection.
    pub conn: ConnId,
    /// Whether its one mux channel is open.
    pub mux_open: bool,
}

/// The phase the forwarder is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Waiting for `Restored`; every connection is refused.
    Restoring,
    /// No connection admitted yet in the attestation phase.
    AttestationOpen,
    /// The one attestation connection is admitted; keys are being fetched.
    AttestationClaimed {
        /// The admitted attestation connection.
        owner: Admitted,
        /// The TCP peer.
        peer: SocketAddr,
    },
    /// Serving with the Trustee keys; `current` is the admitted connection.
    Kubernetes {
        /// The admitted connection, if any.
        current: Option<Admitted>,
        /// The Kubernetes-phase keys.
        keys: PhaseKeys,
        /// What the WN compares after the attestation phase.
        attestation: AttestationFacts,
    },
    /// Failed closed for this boot.
    Failed {
        /// Why, for the log line.
        reason: String,
    },
}

impl State {
    /// The order in which phases follow each other; it never decreases.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Restoring => 0,
            Self::AttestationOpen => 1,
            Self::AttestationClaimed { .. } => 2,
            Self::Kubernetes { .. } => 3,
            Self::Failed { .. } => 4,
        }
    }

    /// A short name for log lines.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Restoring => "restoring",
            Self::AttestationOpen => "attestation-open",
            Self::AttestationClaimed { .. } => "attestation-claimed",
            Self::Kubernetes { .. } => "kubernetes",
            Self::Failed { .. } => "failed",
        }
    }

    /// The phase a connection admitted now would be in.
    pub fn connection_phase(&self) -> Option<ConnectionPhase> {
        match self {
            Self::AttestationOpen | Self::AttestationClaimed { .. } => {
                Some(ConnectionPhase::Attestation)
            }
            Self::Kubernetes { .. } => Some(ConnectionPhase::Kubernetes),
            Self::Restoring | Self::Failed { .. } => None,
        }
    }

    /// The Kubernetes-phase host key, once the machine has it; before, a
    /// connection is shown the ephemeral attestation host key.
    pub fn host_key(&self) -> Option<&PrivateKey> {
        match self {
            Self::Kubernetes { keys, .. } => Some(&keys.host_key),
            Self::Restoring
            | Self::AttestationOpen
            | Self::AttestationClaimed { .. }
            | Self::Failed { .. } => None,
        }
    }
}

/// Fixed facts of this process the machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This boot, for the records the machine asks to persist.
    pub boot_id: BootId,
    /// The ephemeral attestation-phase host key of this process.
    pub attestation_host_key: PublicKey,
    /// The WN key from init-data; `None` means the attestation phase
    /// accepts `none` authentication only.
    pub init_data_wn_key: Option<PublicKey>,
    /// How long after the first start of this boot the attestation phase
    /// must have reached the Kubernetes phase.
    pub attestation_deadline_ms: u64,
}

/// The machine: settings plus the current state; [`PhaseMachine::step`]
/// applies [`step`].
#[derive(Debug, Clone)]
pub struct PhaseMachine {
    settings: Settings,
    state: State,
}

impl PhaseMachine {
    /// A machine in `Restoring`; feed `Event::Restored` first.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: State::Restoring,
        }
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies one event; returns the actions to carry out, in order.
    pub fn step(&mut self, event: Event) -> Vec<Action> {
        let state = core::mem::replace(&mut self.state, State::Restoring);
        let (next, actions) = step(&self.settings, state, event);
        self.state = next;
        actions
    }

    /// The payload of the mux `INFO` frame for this phase, if connections
    /// are being served: `phase=attestation`, or `phase=kubernetes` with the
    /// attestation host key fingerprint and peer.
    pub fn info(&self) -> Option<String> {
        match &self.state {
            State::AttestationOpen | State::AttestationClaimed { .. } => {
                Some(String::from("phase=attestation\n"))
            }
            State::Kubernetes { attestation, .. } => Some(format!(
                "phase=kubernetes\nattestation-hostkey={}\nattestation-peer={}\n",
                attestation.host_key_fingerprint, attestation.peer
            )),
            State::Restoring | State::Failed { .. } => None,
        }
    }
}
