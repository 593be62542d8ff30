//! Where the PP's egress tunnel may lead: the `[egress]` allow-list of
//! `HOST:PORT` patterns, and the addresses a permitted name may resolve to.
//!
//! Contract (pure, no IO): [`EgressPolicy::check_name`] admits a target only
//! when an `allow` pattern names it (an exact host, or `*.SUFFIX` for any
//! name below SUFFIX, never SUFFIX itself; the port always exact).
//! [`EgressPolicy::check_address`] refuses every address a pod must not
//! reach through the worker node: loopback, private (RFC 1918, ULA),
//! carrier-grade NAT, link-local (the cloud's metadata service), multicast,
//! unspecified and broadcast, IPv4-mapped forms of those, and the
//! configured `deny_networks` (the cluster's pod and service ranges), unless
//! a `permit_networks` entry holds it. The default policy admits nothing.

use pp_ipnet::SourceNetwork;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One `allow` entry: `registry.example:443` or `*.registry.example:443`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowPattern {
    /// Lower case, no trailing dot; for a wildcard, the part after `*.`.
    host: String,
    wildcard: bool,
    port: u16,
}

impl AllowPattern {
    /// Parses `HOST:PORT` or `*.SUFFIX:PORT` (a host name or IP literal,
    /// IPv6 in brackets).
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "egress allow entry {text:?} is not HOST:PORT or *.DOMAIN:PORT \
                 (e.g. \"registry-1.docker.io:443\", \"*.quay.io:443\")"
            )
        };
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (host, port) = pp_http::parse_authority(rest).ok_or_else(invalid)?;
        Ok(Self {
            host,
            wildcard,
            port,
        })
    }

    fn admits(&self, host: &str, port: u16) -> bool {
        port == self.port
            && if self.wildcard {
                host.strip_suffix(self.host.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            } else {
                host == self.host
            }
    }
}

impl fmt::Display for AllowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.wildcard { "*." } else { "" };
        match self.host.parse::<Ipv6Addr>() {
            Ok(v6) => write!(f, "{star}[{v6}]:{}", self.port),
            Err(_) => write!(f, "{star}{}:{}", self.host, self.port),
        }
    }
}

/// The egress rules of one adaptor.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    /// Targets the PP may ask for; empty: egress is off.
    pub allow: Vec<AllowPattern>,
    /// Extra networks never reached (the cluster's pod and service CIDRs).
    pub deny_networks: Vec<SourceNetwork>,
    /// Networks reached although they are loopback, private or link-local
    /// (a registry mirror inside the data centre, a test on loopback).
    pub permit_networks: Vec<SourceNetwork>,
}

/// Why a target is refused; the text goes to the PP's client and the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EgressRefusal {
    #[error("egress is not enabled on this worker node (no [egress] allow entries)")]
    Disabled,
    #[error("{host}:{port} is not in the worker node's egress allow-list")]
    NotAllowed { host: String, port: u16 },
    #[error("{addr} is a {kind} address, which the egress tunnel never reaches")]
    Forbidden { addr: IpAddr, kind: &'static str },
}

impl EgressPolicy {
    /// Whether the PP may ask for `host:port` at all.
    pub fn check_name(&self, host: &str, port: u16) -> Result<(), EgressRefusal> {
        if self.allow.is_empty() {
            return Err(EgressRefusal::Disabled);
        }
        if self.allow.iter().any(|pattern| pattern.admits(host, port)) {
            Ok(())
        } else {
            Err(EgressRefusal::NotAllowed {
                host: host.to_owned(),
                port,
            })
        }
    }

    /// Whether an address that an allowed name resolved to may be dialled.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), EgressRefusal> {
        let addr = addr.to_canonical();
        if self.permit_networks.iter().any(|net| net.contains(addr)) {
            return Ok(());
        }
        let kind = if self.deny_networks.iter().any(|net| net.contains(addr)) {
            Some("cluster (deny_networks)")
        } else {
            match addr {
                IpAddr::V4(v4) => special_v4(v4),
                IpAddr::V6(v6) => special_v6(v6),
            }
        };
        match kind {
            Some(kind) => Err(EgressRefusal::Forbidden { addr, kind }),
            None => Ok(()),
        }
    }
}

/// The kind of a non-public IPv4 address.
fn special_v4(addr: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = addr.octets();
    if addr.is_loopback() {
        Some("loopback")
    } else if addr.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if addr.is_link_local() {
        Some("link-local")
    } else if addr.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if addr.is_multicast() || addr.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

/// The kind of a non-public IPv6 address.
fn special_v6(addr: Ipv6Addr) -> Option<&'static str> {
    let first = addr.segments()[0];
    if addr.is_loopback() {
        Some("loopback")
    } else if addr.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if addr.is_multicast() {
        Some("multicast or reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> EgressPolicy {
        EgressPolicy {
            allow: allow
                .iter()
                .map(|a| AllowPattern::parse(a).unwrap())
                .collect(),
            ..EgressPolicy::default()
        }
    }

    #[test]
    fn the_default_policy_admits_nothing() {
        assert_eq!(
            EgressPolicy::default().check_name("registry.example", 443),
            Err(EgressRefusal::Disabled)
        );
    }

    #[test]
    fn exact_and_wildcard_patterns_match_names_and_ports() {
        let policy = policy(&["Registry.Example:443", "*.quay.io:443"]);
        assert!(policy.check_name("registry.example", 443).is_ok());
        assert!(policy.check_name("cdn.quay.io", 443).is_ok());
        assert!(policy.check_name("a.b.quay.io", 443).is_ok());
        for (host, port) in [
            ("registry.example", 80),
            ("quay.io", 443),
            ("evilquay.io", 443),
            ("registry.example.evil", 443),
        ] {
            assert_eq!(
                policy.check_name(host, port),
                Err(EgressRefusal::NotAllowed {
                    host: host.into(),
                    port
                })
            );
        }
    }

    #[test]
    fn patterns_that_are_not_host_and_port_are_refused() {
        for bad in [
            "registry",
            "registry:0",
            "*.:443",
            "*:443",
            "a b:1",
            "http://r:443",
        ] {
            assert!(AllowPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AllowPattern::parse("*.Quay.io.:443").unwrap().to_string(),
            "*.quay.io:443"
        );
        assert_eq!(
            AllowPattern::parse("[2001:DB8::1]:443")
                .unwrap()
                .to_string(),
            "[2001:db8::1]:443"
        );
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_dialled() {
        let policy = EgressPolicy::default();
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast or reserved"),
            ("255.255.255.255", "multicast or reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast or reserved"),
            ("::ffff:10.0.0.1", "private"),
        ] {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(
                policy.check_address(ip),
                Err(EgressRefusal::Forbidden {
                    addr: ip.to_canonical(),
                    kind
                }),
                "{addr}"
            );
        }
        for public in ["192.0.2.1", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(
                policy.check_address(public.parse().unwrap()).is_ok(),
                "{public}"
            );
        }
    }

    #[test]
    fn deny_networks_add_to_and_permit_networks_override_the_rules() {
        let policy = EgressPolicy {
            deny_networks: vec![SourceNetwork::parse("198.51.100.0/24").unwrap()],
            permit_networks: vec![SourceNetwork::parse("127.0.0.0/8").unwrap()],
            ..EgressPolicy::default()
        };
        assert!(policy.check_address("127.0.0.2".parse().unwrap()).is_ok());
        assert!(matches!(
            policy.check_address("198.51.100.7".parse().unwrap()),
            Err(EgressRefusal::Forbidden {
                kind: "cluster (deny_networks)",
                ..
            })
        ));
    }
}
