//! [`PpStatus`]: where the adaptor is with one PP, published on a watch
//! channel for callers (tests, the CLI) to follow.

use std::fmt;

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
