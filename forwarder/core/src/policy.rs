//! The tunnel policy per phase: which tunnel a stream may be opened to on a
//! connection of a given phase. A tag's `Availability` names the phases a
//! tunnel is in; a connection opens only tunnels of its own phase.

use alloc::string::String;
use core::fmt;
use pp_tag::{Availability, ConnectionPhase, Tag, TunnelSet};

/// Why a stream to a tunnel was refused; `Display` gives the log line and
/// the `RESET` reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenRefusal {
    /// No tunnel of that name is configured.
    Unknown {
        /// The tunnel name asked for.
        name: String,
    },
    /// The tunnel exists but is not available in this connection's phase.
    WrongPhase {
        /// The tunnel name asked for.
        name: String,
        /// The phases the tunnel is available in.
        tunnel_phase: Availability,
        /// The connection's phase.
        connection_phase: ConnectionPhase,
    },
}

impl fmt::Display for OpenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { name } => write!(f, "no tunnel named `{name}` is configured"),
            Self::WrongPhase {
                name,
                tunnel_phase,
                connection_phase,
            } => write!(
                f,
                "tunnel `{name}` is {} only; this connection is in the {} phase",
                tunnel_phase.as_str(),
                connection_phase.as_str()
            ),
        }
    }
}

/// May a stream to the tunnel `name` of `tunnels` be opened on a connection
/// of `phase`? Returns the tag to connect to, or why not.
pub fn may_open<'a>(
    tunnels: &'a TunnelSet,
    name: &str,
    phase: ConnectionPhase,
) -> Result<&'a Tag, OpenRefusal> {
    let tag = tunnels
        .get(name)
        .ok_or_else(|| OpenRefusal::Unknown { name: name.into() })?;
    if tag.phase().allows(phase) {
        Ok(tag)
    } else {
        Err(OpenRefusal::WrongPhase {
            name: name.into(),
            tunnel_phase: tag.phase(),
            connection_phase: phase,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionPhase::{Attestation, Kubernetes};
    use alloc::string::ToString;
    use pp_tag::Direction;

    fn tunnels() -> TunnelSet {
        let tags = [
            "KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock",
            "ATTESTATION_PHASE:ATT:9000",
            "BOTH_PHASES:LOG:9001",
        ];
        TunnelSet::parse(tags, Direction::Outbound).unwrap()
    }

    #[test]
    fn streams_open_only_to_tunnels_of_the_connection_phase() {
        let set = tunnels();
        assert_eq!(
            may_open(&set, "KATAAGENT", Kubernetes).unwrap().name(),
            "KATAAGENT"
        );
        assert_eq!(may_open(&set, "ATT", Attestation).unwrap().name(), "ATT");
        assert!(
            may_open(&set, "LOG", Attestation).is_ok() && may_open(&set, "LOG", Kubernetes).is_ok()
        );
        let refusal = may_open(&set, "KATAAGENT", Attestation).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "tunnel `KATAAGENT` is KUBERNETES_PHASE only; this connection is in the attestation phase"
        );
        assert!(matches!(
            may_open(&set, "ATT", Kubernetes),
            Err(OpenRefusal::WrongPhase { .. })
        ));
    }

    #[test]
    fn unknown_tunnels_are_refused_by_name() {
        let refusal = may_open(&tunnels(), "SSH", Kubernetes).unwrap_err();
        assert_eq!(refusal.to_string(), "no tunnel named `SSH` is configured");
    }
}
