//! `Tag::parse` and `Tag::emit`: the text form of a tunnel tag.

use super::{
    Availability, Direction, NETNS_DIR, Tag, TagError, TagErrorKind, Target, is_valid_name,
};
use alloc::format;
use alloc::string::{String, ToString};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_UNIX_PATH_LEN: usize = 107;
/// Linux's PATH_MAX, a generous bound for namespace paths.
const MAX_NETNS_PATH_LEN: usize = 4096;
/// Linux's NAME_MAX, the bound for a bare namespace name.
const MAX_NETNS_NAME_LEN: usize = 255;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Tag {
    /// Parses one tag (surrounding whitespace ignored). `direction` decides
    /// how a bare word before the port is read (see the module comment) and
    /// whether port 0 (any free port, listeners only) is allowed.
    pub fn parse(text: &str, direction: Direction) -> Result<Self, TagError> {
        let tag = text.trim();
        parse_fields(tag, direction).map_err(|kind| TagError {
            tag: tag.into(),
            kind,
        })
    }

    /// The canonical text form: the short `PHASE:NAME:PORT` form for
    /// 127.0.0.1, bracketed IPv6, full namespace paths.
    pub fn emit(&self) -> String {
        let head = format!("{}:{}", self.phase.as_str(), self.name);
        match &self.target {
            Target::Tcp { ip, port } => format!("{head}:{}", emit_ip_port(*ip, *port)),
            Target::NetnsTcp { netns_path, port } => format!("{head}:{netns_path}:{port}"),
            Target::Unix { path } => format!("{head}:unix:{path}"),
            Target::Udp { ip, port } => format!("{head}:udp:{}", emit_ip_port(*ip, *port)),
            Target::NetnsUdp { netns_path, port } => format!("{head}:udp:{netns_path}:{port}"),
            Target::UnixDatagram { path } => format!("{head}:unixgram:{path}"),
        }
    }
}

/// `PORT` for 127.0.0.1, `A.B.C.D:PORT`, `[v6]:PORT`.
fn emit_ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        LOCALHOST => format!("{port}"),
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

fn parse_fields(tag: &str, direction: Direction) -> Result<Tag, TagErrorKind> {
    let (phase, rest) = tag.split_once(':').ok_or(TagErrorKind::Shape)?;
    let (name, rest) = rest.split_once(':').ok_or(TagErrorKind::Shape)?;
    let phase = parse_phase(phase)?;
    if !is_valid_name(name) {
        return Err(TagErrorKind::Name { found: name.into() });
    }
    let target = parse_target(rest, direction)?;
    Ok(Tag {
        phase,
        name: name.into(),
        target,
    })
}

fn parse_phase(text: &str) -> Result<Availability, TagErrorKind> {
    [
        Availability::Attestation,
        Availability::Kubernetes,
        Availability::Both,
    ]
    .into_iter()
    .find(|phase| phase.as_str() == text)
    .ok_or_else(|| TagErrorKind::Phase { found: text.into() })
}

/// Parses what follows `PHASE:NAME:`.
fn parse_target(rest: &str, direction: Direction) -> Result<Target, TagErrorKind> {
    if let Some(path) = rest.strip_prefix("unix:") {
        return parse_unix_path(path).map(|path| Target::Unix { path });
    }
    if let Some(path) = rest.strip_prefix("unixgram:") {
        return parse_unix_path(path).map(|path| Target::UnixDatagram { path });
    }
    if let Some(address) = rest.strip_prefix("udp:") {
        return Ok(match parse_address(address, direction)? {
            Address::Ip { ip, port } => Target::Udp { ip, port },
            Address::Netns { netns_path, port } => Target::NetnsUdp { netns_path, port },
        });
    }
    Ok(match parse_address(rest, direction)? {
        Address::Ip { ip, port } => Target::Tcp { ip, port },
        Address::Netns { netns_path, port } => Target::NetnsTcp { netns_path, port },
    })
}

/// The address forms TCP and UDP tags share.
enum Address {
    /// `PORT` (127.0.0.1), `A.B.C.D:PORT` or `[v6]:PORT`.
    Ip { ip: IpAddr, port: u16 },
    /// `NETNS:PORT`: 127.0.0.1:PORT inside a network namespace.
    Netns { netns_path: String, port: u16 },
}

fn parse_address(rest: &str, direction: Direction) -> Result<Address, TagErrorKind> {
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, port) = bracketed
            .split_once("]:")
            .ok_or_else(|| TagErrorKind::Host { found: rest.into() })?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| TagErrorKind::Host { found: ip.into() })?;
        return Ok(Address::Ip {
            ip: IpAddr::V6(ip),
            port: parse_port(port, direction)?,
        });
    }
    let Some((place, port)) = rest.rsplit_once(':') else {
        return Ok(Address::Ip {
            ip: LOCALHOST,
            port: parse_port(rest, direction)?,
        });
    };
    let port = parse_port(port, direction)?;
    if let Ok(ip) = place.parse::<Ipv4Addr>() {
        return Ok(Address::Ip {
            ip: IpAddr::V4(ip),
            port,
        });
    }
    if place.starts_with('/') {
        return Ok(Address::Netns {
            netns_path: parse_netns_path(place)?,
            port,
        });
    }
    match direction {
        Direction::Inbound if is_netns_name(place) => Ok(Address::Netns {
            netns_path: format!("{NETNS_DIR}/{place}"),
            port,
        }),
        Direction::Inbound => Err(TagErrorKind::NetnsPath {
            found: place.into(),
        }),
        Direction::Outbound => Err(TagErrorKind::Host {
            found: place.into(),
        }),
    }
}

fn parse_port(text: &str, direction: Direction) -> Result<u16, TagErrorKind> {
    let error = || TagErrorKind::Port { found: text.into() };
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    let port: u16 = text.parse().map_err(|_| error())?;
    if port == 0 && direction == Direction::Outbound {
        return Err(error());
    }
    Ok(port)
}

/// Paths must be absolute and free of whitespace and control characters,
/// so that the canonical form stays one unambiguous word.
fn is_clean_absolute_path(path: &str, max_len: usize) -> bool {
    path.starts_with('/')
        && path.len() <= max_len
        && !path.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_unix_path(path: &str) -> Result<String, TagErrorKind> {
    if is_clean_absolute_path(path, MAX_UNIX_PATH_LEN) {
        Ok(path.into())
    } else {
        Err(TagErrorKind::UnixPath { found: path.into() })
    }
}

fn parse_netns_path(path: &str) -> Result<String, TagErrorKind> {
    if is_clean_absolute_path(path, MAX_NETNS_PATH_LEN) {
        Ok(path.to_string())
    } else {
        Err(TagErrorKind::NetnsPath { found: path.into() })
    }
}

/// A bare namespace name as `ip netns` creates them under /run/netns.
fn is_netns_name(name: &str) -> bool {
    (1..=MAX_NETNS_NAME_LEN).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Inbound, Outbound};
    use alloc::vec::Vec;

    fn tcp(ip: &str, port: u16) -> Target {
        Target::Tcp {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    fn udp(ip: &str, port: u16) -> Target {
        Target::Udp {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn every_documented_form_parses_to_its_target() {
        let cases = [
            ("BOTH_PHASES:KBS:8080", Inbound, tcp("127.0.0.1", 8080)),
            (
                "KUBERNETES_PHASE:mytunnel:149.81.64.62:7777",
                Outbound,
                tcp("149.81.64.62", 7777),
            ),
            (
                "KUBERNETES_PHASE:v6:[fd00::1]:22",
                Outbound,
                tcp("fd00::1", 22),
            ),
            (
                "KUBERNETES_PHASE:ns:/run/netns/podns:6666",
                Outbound,
                Target::NetnsTcp {
                    netns_path: "/run/netns/podns".into(),
                    port: 6666,
                },
            ),
            (
                "KUBERNETES_PHASE:KATAAGENT:unix:/run/kata-containers/agent.sock",
                Outbound,
                Target::Unix {
                    path: "/run/kata-containers/agent.sock".into(),
                },
            ),
        ];
        for (text, direction, target) in cases {
            let tag = Tag::parse(text, direction).unwrap();
            assert_eq!(tag.target(), &target, "{text}");
            assert_eq!(tag.emit(), text);
        }
    }

    #[test]
    fn every_datagram_form_parses_to_its_target_and_back() {
        let cases = [
            ("BOTH_PHASES:DNS:udp:5353", Inbound, udp("127.0.0.1", 5353)),
            (
                "KUBERNETES_PHASE:DNS:udp:10.96.0.10:53",
                Outbound,
                udp("10.96.0.10", 53),
            ),
            (
                "KUBERNETES_PHASE:v6:udp:[fd00::1]:53",
                Outbound,
                udp("fd00::1", 53),
            ),
            (
                "KUBERNETES_PHASE:ns:udp:/run/netns/podns:6666",
                Outbound,
                Target::NetnsUdp {
                    netns_path: "/run/netns/podns".into(),
                    port: 6666,
                },
            ),
            (
                "ATTESTATION_PHASE:LOG:unixgram:/run/log.sock",
                Outbound,
                Target::UnixDatagram {
                    path: "/run/log.sock".into(),
                },
            ),
        ];
        for (text, direction, target) in cases {
            let tag = Tag::parse(text, direction).unwrap();
            assert_eq!(tag.target(), &target, "{text}");
            assert!(tag.target().is_datagram(), "{text}");
            assert_eq!(tag.emit(), text);
        }
    }

    #[test]
    fn only_udp_and_unixgram_tags_are_datagram_tunnels() {
        for text in [
            "BOTH_PHASES:A:80",
            "BOTH_PHASES:A:unix:/a",
            "BOTH_PHASES:A:/n:1",
        ] {
            assert!(!Tag::parse(text, Outbound).unwrap().target().is_datagram());
        }
    }

    #[test]
    fn udp_tags_read_bare_words_and_port_zero_as_tcp_tags_do() {
        let tag = Tag::parse("BOTH_PHASES:DNS:udp:podns:53", Inbound).unwrap();
        assert_eq!(tag.emit(), "BOTH_PHASES:DNS:udp:/run/netns/podns:53");
        assert_eq!(
            Tag::parse("BOTH_PHASES:DNS:udp:0", Inbound)
                .unwrap()
                .target(),
            &udp("127.0.0.1", 0)
        );
        assert_eq!(
            Tag::parse("BOTH_PHASES:DNS:udp:127.0.0.1:53", Inbound)
                .unwrap()
                .emit(),
            "BOTH_PHASES:DNS:udp:53"
        );
    }

    #[test]
    fn each_bad_field_of_a_datagram_tag_is_named_in_the_error() {
        let cases: [(&str, Direction, &str); 7] = [
            ("BOTH_PHASES:DNS:udp:", Inbound, "PORT"),
            ("BOTH_PHASES:DNS:udp:0", Outbound, "PORT"),
            ("BOTH_PHASES:DNS:udp:dns.local:53", Outbound, "HOST"),
            ("BOTH_PHASES:DNS:udp:[::1:53", Outbound, "HOST"),
            ("BOTH_PHASES:DNS:udp:bad/ns:53", Inbound, "NETNS"),
            ("BOTH_PHASES:LOG:unixgram:log.sock", Outbound, "PATH"),
            ("NO_PHASE:DNS:udp:53", Outbound, "PHASE"),
        ];
        for (text, direction, field) in cases {
            let error = Tag::parse(text, direction).unwrap_err();
            assert_eq!(error.kind.field(), field, "{text}: {error}");
            assert_eq!(error.tag, text);
        }
    }

    #[test]
    fn inbound_bare_namespace_names_mean_run_netns_as_in_cloud_api_adaptor() {
        let tag = Tag::parse(" KUBERNETES_PHASE:mytunnel:podns:6666 ", Inbound).unwrap();
        assert_eq!(
            tag.target(),
            &Target::NetnsTcp {
                netns_path: "/run/netns/podns".into(),
                port: 6666
            }
        );
        assert_eq!(
            tag.emit(),
            "KUBERNETES_PHASE:mytunnel:/run/netns/podns:6666"
        );
    }

    #[test]
    fn outbound_host_names_are_refused_because_there_is_no_dns() {
        let error = Tag::parse("KUBERNETES_PHASE:ABC:myhost.com:1234", Outbound).unwrap_err();
        assert_eq!(
            error.kind,
            TagErrorKind::Host {
                found: "myhost.com".into()
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("KUBERNETES_PHASE:ABC:myhost.com:1234"),
            "{message}"
        );
        assert!(
            message.contains("HOST") && message.contains("IPv4 literal"),
            "{message}"
        );
    }

    #[test]
    fn explicit_localhost_is_emitted_in_the_short_form() {
        let tag = Tag::parse("BOTH_PHASES:KBS:127.0.0.1:8080", Inbound).unwrap();
        assert_eq!(tag.emit(), "BOTH_PHASES:KBS:8080");
    }

    #[test]
    fn each_bad_field_is_named_in_the_error() {
        let cases: [(&str, Direction, &str); 11] = [
            ("KBS:8080", Inbound, "tag"),
            ("SOME_PHASE:KBS:8080", Inbound, "PHASE"),
            ("both_phases:KBS:8080", Inbound, "PHASE"),
            ("BOTH_PHASES:K.B.S:8080", Inbound, "NAME"),
            ("BOTH_PHASES::8080", Inbound, "NAME"),
            ("BOTH_PHASES:KBS:80800", Inbound, "PORT"),
            ("BOTH_PHASES:KBS:+80", Inbound, "PORT"),
            ("BOTH_PHASES:KBS:0", Outbound, "PORT"),
            ("BOTH_PHASES:KBS:[::1:80", Outbound, "HOST"),
            ("BOTH_PHASES:KBS:unix:relative.sock", Outbound, "PATH"),
            ("BOTH_PHASES:KBS:bad/ns:80", Inbound, "NETNS"),
        ];
        for (text, direction, field) in cases {
            let error = Tag::parse(text, direction).unwrap_err();
            assert_eq!(error.kind.field(), field, "{text}: {error}");
            assert_eq!(error.tag, text);
            assert!(error.to_string().contains("expected"), "{error}");
        }
    }

    #[test]
    fn port_zero_is_a_listener_only_choice() {
        let tag = Tag::parse("BOTH_PHASES:KBS:0", Inbound).unwrap();
        assert_eq!(tag.target(), &tcp("127.0.0.1", 0));
    }

    #[test]
    fn unix_paths_longer_than_sun_path_are_refused() {
        let long = format!("BOTH_PHASES:X:unix:/{}", "a".repeat(107));
        assert_eq!(
            Tag::parse(&long, Outbound).unwrap_err().kind.field(),
            "PATH"
        );
        let fits = format!("BOTH_PHASES:X:unix:/{}", "a".repeat(106));
        assert!(Tag::parse(&fits, Outbound).is_ok());
    }

    #[test]
    fn emit_of_a_parsed_tag_parses_back_to_the_same_tag() {
        let texts: Vec<&str> = alloc::vec![
            "ATTESTATION_PHASE:a:1",
            "BOTH_PHASES:b:[::ffff:1.2.3.4]:65535",
            "KUBERNETES_PHASE:c:/x:y:9",
            "KUBERNETES_PHASE:d:unix:/a:b",
            "BOTH_PHASES:e:ns.1:80",
            "BOTH_PHASES:f:udp:[::ffff:1.2.3.4]:53",
            "BOTH_PHASES:g:udp:ns.1:0",
            "KUBERNETES_PHASE:h:unixgram:/a:b",
            "KUBERNETES_PHASE:i:udp:/x:y:9",
        ];
        for text in texts {
            for direction in [Inbound, Outbound] {
                if let Ok(tag) = Tag::parse(text, direction) {
                    assert_eq!(Tag::parse(&tag.emit(), direction), Ok(tag), "{text}");
                }
            }
        }
    }

    #[test]
    fn parse_never_panics_and_what_parses_round_trips() {
        let seeds: [&[u8]; 6] = [
            b"BOTH_PHASES:KBS:8080",
            b"BOTH_PHASES:DNS:udp:[fd00::1]:53",
            b"KUBERNETES_PHASE:L:unixgram:/run/l.sock",
            b"KUBERNETES_PHASE:v6:[fd00::1]:22",
            b"KUBERNETES_PHASE:ns:/run/netns/podns:6666",
            b"ATTESTATION_PHASE:K:unix:/run/a.sock",
        ];
        pp_test_support::feed_mutations(&seeds, 4000, |input| {
            let text = String::from_utf8_lossy(input);
            for direction in [Inbound, Outbound] {
                if let Ok(tag) = Tag::parse(&text, direction) {
                    assert_eq!(Tag::parse(&tag.emit(), direction), Ok(tag));
                }
            }
        });
    }
}
