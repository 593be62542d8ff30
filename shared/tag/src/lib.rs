//! Tunnel tags, the operators' syntax from cloud-api-adaptor kept as it was
//! (docs/protocol.md section 3):
//!
//! ```text
//! PHASE:NAME:PORT               127.0.0.1:PORT
//! PHASE:NAME:HOST:PORT          HOST an IPv4 literal or [IPv6] literal
//! PHASE:NAME:NETNS:PORT         127.0.0.1:PORT inside network namespace NETNS
//! PHASE:NAME:unix:PATH          a unix socket (absolute path)
//! PHASE:NAME:udp:...            UDP: any of the three address forms above
//!                               after `udp:` (PORT, HOST:PORT, NETNS:PORT)
//! PHASE:NAME:unixgram:PATH      a unix datagram socket (absolute path)
//! ```
//!
//! `NETNS` is a path (`/run/netns/podns`). In *inbound* tags a bare
//! namespace name (`podns`) is also accepted, as cloud-api-adaptor did, and
//! means `/run/netns/podns`. In *outbound* tags a bare word used to be a
//! host name; there is no DNS in the peer pod, so it is refused.
//!
//! Contract: [`Tag::parse`] never panics; it returns a [`Tag`] whose every
//! field is valid, or a [`TagError`] naming the tag, the field and the
//! expected form. [`Tag::emit`] writes the canonical form, and
//! `parse(emit(tag)) == tag` for every parsed tag.
//! [`TunnelSet`] holds tags with distinct names and decides which tunnel a
//! connection of a given phase may open.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

mod error;
mod parse;
mod set;

pub use error::{TagError, TagErrorKind};
pub use set::TunnelSet;

use alloc::string::String;
use core::net::IpAddr;

/// The longest tunnel name (`[A-Za-z0-9_-]{1,64}`).
pub const MAX_NAME_LEN: usize = 64;
/// Where bare network namespace names of inbound tags live.
pub const NETNS_DIR: &str = "/run/netns";

/// In which connection phases a tunnel is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    /// `ATTESTATION_PHASE`
    Attestation,
    /// `KUBERNETES_PHASE`
    Kubernetes,
    /// `BOTH_PHASES`
    Both,
}

/// The phase of one SSH connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionPhase {
    /// The attestation phase (ephemeral host key, one connection per boot).
    Attestation,
    /// The Kubernetes phase (Trustee keys).
    Kubernetes,
}

impl Availability {
    /// Whether a tunnel of this phase may be used on a connection of `phase`.
    pub fn allows(self, phase: ConnectionPhase) -> bool {
        matches!(
            (self, phase),
            (Self::Both, _)
                | (Self::Attestation, ConnectionPhase::Attestation)
                | (Self::Kubernetes, ConnectionPhase::Kubernetes)
        )
    }

    /// The tag spelling: `ATTESTATION_PHASE`, `KUBERNETES_PHASE`, `BOTH_PHASES`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attestation => "ATTESTATION_PHASE",
            Self::Kubernetes => "KUBERNETES_PHASE",
            Self::Both => "BOTH_PHASES",
        }
    }
}

impl ConnectionPhase {
    /// `attestation` or `kubernetes`, as log lines and `INFO` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attestation => "attestation",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// Whether a tag describes a local listener or a target to dial; the two
/// read a bare word in the `HOST`/`NETNS` position differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A local listener whose connections become streams.
    Inbound,
    /// A target that streams opened by the peer are connected to.
    Outbound,
}

/// Where a tunnel ends on this side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A TCP address (listen address for inbound, peer for outbound).
    Tcp {
        /// The IP address.
        ip: IpAddr,
        /// The TCP port.
        port: u16,
    },
    /// TCP on 127.0.0.1:`port` inside the network namespace at `netns_path`.
    NetnsTcp {
        /// The network namespace (a path).
        netns_path: String,
        /// The TCP port.
        port: u16,
    },
    /// A unix stream socket at the absolute `path`.
    Unix {
        /// The socket path.
        path: String,
    },
    /// A UDP address (bound for inbound, datagrams sent to it for outbound).
    Udp {
        /// The IP address.
        ip: IpAddr,
        /// The UDP port.
        port: u16,
    },
    /// UDP on 127.0.0.1:`port` inside the network namespace at `netns_path`.
    NetnsUdp {
        /// The network namespace (a path).
        netns_path: String,
        /// The UDP port.
        port: u16,
    },
    /// A unix datagram socket at the absolute `path`.
    UnixDatagram {
        /// The socket path.
        path: String,
    },
}

impl Target {
    /// Whether the tunnel carries datagrams (a mux flow) rather than a
    /// byte stream.
    pub fn is_datagram(&self) -> bool {
        match self {
            Self::Tcp { .. } | Self::NetnsTcp { .. } | Self::Unix { .. } => false,
            Self::Udp { .. } | Self::NetnsUdp { .. } | Self::UnixDatagram { .. } => true,
        }
    }
}

impl core::fmt::Display for Target {
    /// A short description of where the tunnel ends, for log lines
    /// (`127.0.0.1:8080`, `udp:10.0.0.1:53`, `unix:PATH`, `127.0.0.1:80 in
    /// /run/netns/x`); the tag form is [`Tag::emit`].
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::net::SocketAddr;
        match self {
            Target::Tcp { ip, port } => write!(f, "{}", SocketAddr::new(*ip, *port)),
            Target::NetnsTcp { netns_path, port } => write!(f, "127.0.0.1:{port} in {netns_path}"),
            Target::Unix { path } => write!(f, "unix:{path}"),
            Target::Udp { ip, port } => write!(f, "udp:{}", SocketAddr::new(*ip, *port)),
            Target::NetnsUdp { netns_path, port } => {
                write!(f, "udp:127.0.0.1:{port} in {netns_path}")
            }
            Target::UnixDatagram { path } => write!(f, "unixgram:{path}"),
        }
    }
}

/// One validated tunnel tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    phase: Availability,
    name: String,
    target: Target,
}

impl Tag {
    /// The phases in which the tunnel is available.
    pub fn phase(&self) -> Availability {
        self.phase
    }

    /// The tunnel name (`[A-Za-z0-9_-]{1,64}`), as used in mux `OPEN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the tunnel ends on this side.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// Whether `name` is a valid tunnel name: `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_allows_exactly_its_connection_phases() {
        use ConnectionPhase::{Attestation as A, Kubernetes as K};
        assert!(Availability::Attestation.allows(A) && !Availability::Attestation.allows(K));
        assert!(!Availability::Kubernetes.allows(A) && Availability::Kubernetes.allows(K));
        assert!(Availability::Both.allows(A) && Availability::Both.allows(K));
    }

    #[test]
    fn targets_describe_where_they_end_for_log_lines() {
        let described = |text: &str| {
            Tag::parse(text, Direction::Outbound)
                .unwrap()
                .target()
                .to_string()
        };
        assert_eq!(described("BOTH_PHASES:A:8080"), "127.0.0.1:8080");
        assert_eq!(described("BOTH_PHASES:A:[::1]:80"), "[::1]:80");
        assert_eq!(
            described("BOTH_PHASES:A:/run/netns/x:80"),
            "127.0.0.1:80 in /run/netns/x"
        );
        assert_eq!(described("BOTH_PHASES:A:unix:/s"), "unix:/s");
        assert_eq!(
            described("BOTH_PHASES:A:udp:10.0.0.1:53"),
            "udp:10.0.0.1:53"
        );
        assert_eq!(
            described("BOTH_PHASES:A:udp:/run/netns/x:53"),
            "udp:127.0.0.1:53 in /run/netns/x"
        );
        assert_eq!(described("BOTH_PHASES:A:unixgram:/g"), "unixgram:/g");
    }

    #[test]
    fn names_follow_the_protocol_alphabet_and_length() {
        assert!(is_valid_name("KATA_AGENT-2"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("with space"));
        assert!(!is_valid_name("dot.ted"));
    }
}
