//! [`PpStatus`]: where the adaptor is with one PP, published on a watch
//! channel for callers (tests, the CLI) to follow; [`PpActivity`]: what the
//! PP's task saw besides its status (lost connections, the last error).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Written by the PP's task, read by the control API and the metrics.
#[derive(Debug, Default)]
pub struct PpActivity {
    connections_lost: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl PpActivity {
    /// An established connection went away (each one is followed by a
    /// reconnect).
    pub fn connection_lost(&self, reason: &str) {
        self.connections_lost.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(reason);
    }

    /// Something failed (a connection attempt, the PP's task).
    pub fn set_last_error(&self, reason: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reason.to_owned());
    }

    /// How many established connections were lost.
    pub fn connections_lost(&self) -> u64 {
        self.connections_lost.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The adaptor's view of one PP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PpStatus {
    /// Connecting or reconnecting; no usable connection right now.
    Connecting,
    /// Connected in the attestation phase to a host key that cannot be
    /// proven yet (its `SHA256:` fingerprint).
    Attestation { fingerprint: String },
    /// The PP announced its Kubernetes-phase key; reconnecting.
    Upgrading,
    /// Connected in the Kubernetes phase; the host key is the PP's own.
    Kubernetes { fingerprint: String },
    /// The adaptor gave up on this PP (final).
    Failed { reason: String },
    /// The adaptor stopped serving the PP on request; its keys stay (final).
    Stopped,
    /// The PP was torn down on request (final).
    TornDown,
}

impl PpStatus {
    /// Whether the PP will not move on any more.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::Stopped | Self::TornDown)
    }
}

impl fmt::Display for PpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting => f.write_str("connecting"),
            Self::Attestation { fingerprint } => write!(
                f,
                "attestation phase (host key {fingerprint}, not provable)"
            ),
            Self::Upgrading => f.write_str("upgrading to the Kubernetes phase"),
            Self::Kubernetes { fingerprint } => {
                write!(f, "Kubernetes phase (host key {fingerprint} verified)")
            }
            Self::Failed { reason } => write!(f, "failed: {reason}"),
            Self::Stopped => f.write_str("stopped"),
            Self::TornDown => f.write_str("torn down"),
        }
    }
}
