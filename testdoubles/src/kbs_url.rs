//! The KBS address the CDH double talks to: `http://IP:PORT` with an IP
//! literal (IPv4 or bracketed IPv6), optional port (default 80) and an
//! optional trailing `/`. Host names are refused: the guest test image has
//! no DNS, like the forwarder. `parse` never panics.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A parsed KBS URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KbsUrl {
    pub addr: SocketAddr,
}

/// A KBS URL this double cannot use.
#[derive(Debug, PartialEq, Eq)]
pub struct KbsUrlError(pub String);

impl fmt::Display for KbsUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KBS URL {:?} is not http://IP[:PORT] (IP literals only, no host names, no https)",
            self.0
        )
    }
}

impl std::error::Error for KbsUrlError {}

impl KbsUrl {
    /// Parses `http://IP[:PORT][/]`.
    pub fn parse(text: &str) -> Result<Self, KbsUrlError> {
        let error = || KbsUrlError(text.to_string());
        let authority = text.strip_prefix("http://").ok_or_else(error)?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if let Ok(addr) = authority.parse::<SocketAddr>() {
            return Ok(Self { addr });
        }
        let host = authority
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(authority);
        let ip: IpAddr = host.parse().map_err(|_| error())?;
        Ok(Self {
            addr: SocketAddr::new(ip, 80),
        })
    }

    /// The value of the `Host` header.
    pub fn host_header(&self) -> String {
        self.addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literal_urls_parse_with_or_without_port() {
        assert_eq!(
            KbsUrl::parse("http://127.0.0.1:8080").unwrap().addr,
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            KbsUrl::parse("http://127.0.0.1/").unwrap().addr,
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            KbsUrl::parse("http://[::1]:9").unwrap().addr,
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            KbsUrl::parse("http://[::1]").unwrap().addr,
            "[::1]:80".parse().unwrap()
        );
    }

    #[test]
    fn names_https_and_paths_are_refused() {
        for bad in [
            "",
            "127.0.0.1:8080",
            "https://127.0.0.1:8080",
            "http://localhost:8080",
            "http://kbs.example/",
            "http://127.0.0.1:8080/kbs",
            "http://127.0.0.1:99999",
            "http://[::1",
        ] {
            assert!(KbsUrl::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
