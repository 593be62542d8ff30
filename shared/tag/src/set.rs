//! A set of tunnels with distinct names, and the policy that decides
//! whether a stream may be opened to one of them on a connection.

use super::{ConnectionPhase, Direction, Phase, Tag, TagError, TagErrorKind};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Tags of one direction whose names are all distinct.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelSet {
    tags: Vec<Tag>,
}

/// Why a stream to a tunnel was refused; `Display` gives the log line and
/// the `RESET` reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenRefusal {
    /// No tunnel of that name is configured.
    Unknown { name: String },
    /// The tunnel exists but is not available in this connection's phase.
    WrongPhase {
        name: String,
        tunnel_phase: Phase,
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

impl TunnelSet {
    /// Builds a set, refusing two tags with the same name.
    pub fn new(tags: Vec<Tag>) -> Result<Self, TagError> {
        for (index, tag) in tags.iter().enumerate() {
            if tags[..index].iter().any(|earlier| earlier.name == tag.name) {
                return Err(TagError {
                    tag: tag.emit(),
                    kind: TagErrorKind::DuplicateName {
                        name: tag.name.clone(),
                    },
                });
            }
        }
        Ok(Self { tags })
    }

    /// Parses tag texts (e.g. a TOML array) into a set.
    pub fn parse<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        direction: Direction,
    ) -> Result<Self, TagError> {
        let tags = texts
            .into_iter()
            .map(|text| Tag::parse(text, direction))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(tags)
    }

    /// Parses a comma-separated list (`TAG1,TAG2`, empty items skipped), the
    /// form cloud-api-adaptor's flags and config map entries used.
    pub fn parse_list(list: &str, direction: Direction) -> Result<Self, TagError> {
        Self::parse(
            list.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty()),
            direction,
        )
    }

    /// The tag called `name`.
    pub fn get(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|tag| tag.name == name)
    }

    /// All tags, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter()
    }

    /// The tags available on a connection of `phase` (for inbound
    /// listeners: which ones may be tunnelled now).
    pub fn available_in(&self, phase: ConnectionPhase) -> impl Iterator<Item = &Tag> {
        self.tags.iter().filter(move |tag| tag.phase.allows(phase))
    }

    /// The policy: may a stream to the tunnel `name` be opened on a
    /// connection of `phase`? Returns the tag to connect to, or why not.
    pub fn may_open(&self, name: &str, phase: ConnectionPhase) -> Result<&Tag, OpenRefusal> {
        let tag = self
            .get(name)
            .ok_or_else(|| OpenRefusal::Unknown { name: name.into() })?;
        if tag.phase.allows(phase) {
            Ok(tag)
        } else {
            Err(OpenRefusal::WrongPhase {
                name: name.into(),
                tunnel_phase: tag.phase,
                connection_phase: phase,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn outbounds() -> TunnelSet {
        TunnelSet::parse_list(
            "KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock, ,ATTESTATION_PHASE:ATT:9000,BOTH_PHASES:LOG:9001",
            Direction::Outbound,
        )
        .unwrap()
    }

    #[test]
    fn duplicate_names_are_refused_naming_the_second_tag() {
        let error = TunnelSet::parse(
            ["BOTH_PHASES:KBS:8080", "KUBERNETES_PHASE:KBS:9090"],
            Direction::Inbound,
        )
        .unwrap_err();
        assert_eq!(
            error.kind,
            TagErrorKind::DuplicateName { name: "KBS".into() }
        );
        assert_eq!(error.tag, "KUBERNETES_PHASE:KBS:9090");
    }

    #[test]
    fn streams_open_only_to_tunnels_of_the_connection_phase() {
        let set = outbounds();
        use ConnectionPhase::{Attestation, Kubernetes};
        assert_eq!(
            set.may_open("KATAAGENT", Kubernetes).unwrap().name(),
            "KATAAGENT"
        );
        assert_eq!(set.may_open("ATT", Attestation).unwrap().name(), "ATT");
        assert!(
            set.may_open("LOG", Attestation).is_ok() && set.may_open("LOG", Kubernetes).is_ok()
        );
        let refusal = set.may_open("KATAAGENT", Attestation).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "tunnel `KATAAGENT` is KUBERNETES_PHASE only; this connection is in the attestation phase"
        );
        assert!(matches!(
            set.may_open("ATT", Kubernetes),
            Err(OpenRefusal::WrongPhase { .. })
        ));
    }

    #[test]
    fn unknown_tunnels_are_refused_by_name() {
        let refusal = outbounds()
            .may_open("SSH", ConnectionPhase::Kubernetes)
            .unwrap_err();
        assert_eq!(refusal.to_string(), "no tunnel named `SSH` is configured");
    }

    #[test]
    fn available_in_lists_the_tunnels_of_a_phase_in_order() {
        let set = outbounds();
        let names: Vec<&str> = set
            .available_in(ConnectionPhase::Attestation)
            .map(Tag::name)
            .collect();
        assert_eq!(names, ["ATT", "LOG"]);
    }
}
