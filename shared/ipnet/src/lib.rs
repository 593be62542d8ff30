//! IP networks in CIDR form (`10.0.0.0/8`, `fd00::/64`), as written in
//! `wn-source-networks` of `forwarder.toml` (the networks the WN connects
//! from), and the masking that makes an address block of a source.
//!
//! Contract: [`SourceNetwork::parse`] never panics; it refuses host bits
//! set below the prefix (`10.0.0.1/8`), a prefix longer than the address,
//! and anything that is not an IP literal (no names are ever resolved).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

use alloc::string::String;
use core::fmt;
use core::net::IpAddr;

/// A validated network: the address has no bits set below `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl SourceNetwork {
    /// Parses `ADDRESS/PREFIX`; a bare address means the one host.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            alloc::format!(
                "{text:?} is not a network; expected ADDRESS/PREFIX with an IP literal, \
                 e.g. 10.0.0.0/8 or fd00::/64"
            )
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| expected())?;
        let bits = address_bits(addr);
        let prefix = match prefix {
            None => bits,
            Some(p) if is_plain_decimal(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(expected()),
            },
            Some(_) => return Err(expected()),
        };
        let network = Self { addr, prefix };
        if mask(addr, prefix) != addr {
            return Err(alloc::format!(
                "{text:?} has host bits set below /{prefix}; write {network_part}/{prefix}",
                network_part = mask(addr, prefix)
            ));
        }
        Ok(network)
    }

    /// An IPv4 network (else IPv6).
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) counts as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        address_bits(ip) == address_bits(self.addr) && mask(ip, self.prefix) == self.addr
    }
}

impl fmt::Display for SourceNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// 32 for IPv4, 128 for IPv6.
fn address_bits(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit below the first `prefix` bits cleared.
pub fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let keep = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

/// Digits only, without a leading zero (`8`, `64`, `0`; not `08`, `+8`).
fn is_plain_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let net = SourceNetwork::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.200.3.4")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::a00:1")), "IPv6 is never inside IPv4");
        assert!(net.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped counts");
        let v6 = SourceNetwork::parse("fd00:1::/64").unwrap();
        assert!(v6.contains(ip("fd00:1::1234")));
        assert!(!v6.contains(ip("fd00:2::1")));
        let host = SourceNetwork::parse("192.0.2.7").unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        assert!(
            SourceNetwork::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("1.2.3.4"))
        );
    }

    #[test]
    fn bad_networks_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "host.example/8",
            "10.0.0.0/8/8",
        ] {
            let error = SourceNetwork::parse(bad).unwrap_err();
            assert!(error.contains("ADDRESS/PREFIX"), "{bad}: {error}");
        }
        let error = SourceNetwork::parse("10.0.0.1/8").unwrap_err();
        assert!(error.contains("write 10.0.0.0/8"), "{error}");
    }
}
