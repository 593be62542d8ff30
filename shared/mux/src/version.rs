//! [`MuxVersion`]: which pp-mux protocol a channel speaks. The SSH
//! subsystem name carries it (`pp-mux-v1`, `pp-mux-v2`) and both HELLOs
//! repeat it (docs/protocol.md 2, "Versions").

use core::fmt;

/// A pp-mux protocol version. Version 2 is version 1 plus datagram flows
/// (`OPEN_FLOW`, `DATAGRAM`); a v1 channel carries byte streams only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MuxVersion {
    /// `pp-mux-v1`: byte streams.
    V1,
    /// `pp-mux-v2`: byte streams and datagram flows.
    V2,
}

impl MuxVersion {
    /// Every version, newest first: the order in which a WN asks for them.
    pub const NEWEST_FIRST: [MuxVersion; 2] = [MuxVersion::V2, MuxVersion::V1];

    /// The `version` byte of HELLO on a channel of this version.
    pub const fn number(self) -> u8 {
        match self {
            MuxVersion::V1 => 1,
            MuxVersion::V2 => 2,
        }
    }

    /// The SSH subsystem name that asks for this version.
    pub const fn subsystem(self) -> &'static str {
        match self {
            MuxVersion::V1 => "pp-mux-v1",
            MuxVersion::V2 => "pp-mux-v2",
        }
    }

    /// The version a subsystem name asks for; `None` for any other name.
    pub fn from_subsystem(name: &str) -> Option<Self> {
        Self::NEWEST_FIRST
            .into_iter()
            .find(|version| version.subsystem() == name)
    }

    /// Whether channels of this version carry datagram flows.
    pub const fn has_flows(self) -> bool {
        matches!(self, MuxVersion::V2)
    }
}

impl fmt::Display for MuxVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subsystem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsystem_names_and_numbers_name_each_version_once() {
        assert_eq!(MuxVersion::V1.subsystem(), "pp-mux-v1");
        assert_eq!(MuxVersion::V2.subsystem(), "pp-mux-v2");
        assert_eq!(MuxVersion::V1.number(), 1);
        assert_eq!(MuxVersion::V2.number(), 2);
        for version in MuxVersion::NEWEST_FIRST {
            assert_eq!(
                MuxVersion::from_subsystem(version.subsystem()),
                Some(version)
            );
        }
        for other in ["pp-mux-v3", "pp-mux", "PP-MUX-V2", "", "sftp"] {
            assert_eq!(MuxVersion::from_subsystem(other), None, "{other}");
        }
    }

    #[test]
    fn only_version_2_carries_flows_and_it_is_asked_for_first() {
        assert!(MuxVersion::V2.has_flows() && !MuxVersion::V1.has_flows());
        assert_eq!(MuxVersion::NEWEST_FIRST[0], MuxVersion::V2);
    }
}
