//! A set of tunnels with distinct names. Which of them a connection may
//! open is the trusted core's policy (`pp_forwarder_core::policy`).

use super::{ConnectionPhase, Direction, Tag, TagError, TagErrorKind};
use alloc::vec::Vec;

/// Tags of one direction whose names are all distinct.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelSet {
    tags: Vec<Tag>,
}

impl TunnelSet {
    /// Builds a set, refusing two tags with the same name.
    pub fn new(tags: Vec<Tag>) -> Result<Self, TagError> {
        for (index, tag) in tags.iter().enumerate() {
            if tags
                .iter()
                .take(index)
                .any(|earlier| earlier.name == tag.name)
            {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn stream_and_datagram_tags_share_one_name_space() {
        let error = TunnelSet::parse(
            ["BOTH_PHASES:DNS:53", "BOTH_PHASES:DNS:udp:53"],
            Direction::Inbound,
        )
        .unwrap_err();
        assert_eq!(
            error.kind,
            TagErrorKind::DuplicateName { name: "DNS".into() }
        );
        let set = TunnelSet::parse(
            ["BOTH_PHASES:DNS:udp:53", "BOTH_PHASES:WEB:80"],
            Direction::Inbound,
        )
        .unwrap();
        assert!(set.get("DNS").unwrap().target().is_datagram());
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
