//! The head of an HTTP/1.1 `CONNECT` request, as a proxy client (image-rs
//! under CDH, with `https_proxy` set) sends it into the PP's egress tunnel:
//! `CONNECT registry.example:443 HTTP/1.1`, headers, an empty line.
//!
//! Contract: [`parse_connect`] never panics and looks at no more than
//! [`MAX_HEAD_LEN`] bytes. It answers "need more bytes" until the empty
//! line arrives, then either the target (a host name or IP literal and a
//! port, the name lower-cased and without a trailing dot) and the head's
//! length (bytes after it belong to the tunnel), or why the head cannot be
//! served. Header values are not interpreted: the proxy needs none of them.

use crate::MAX_HEAD_LEN;
use alloc::string::String;
use core::fmt;
use core::net::Ipv6Addr;

/// The longest host name (RFC 1035: 253 characters in text form).
const MAX_HOST_NAME_LEN: usize = 253;
/// The longest label of a host name.
const MAX_LABEL_LEN: usize = 63;

/// Where a `CONNECT` asks to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// A lower-case host name, an IPv4 literal, or an IPv6 literal without
    /// brackets.
    pub host: String,
    /// The port, never 0.
    pub port: u16,
    /// Bytes of request line and headers, the empty line included.
    pub head_len: usize,
}

/// Why a request head cannot be served; [`fmt::Display`] is the reason
/// for the client and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// No empty line within [`MAX_HEAD_LEN`] bytes.
    HeadTooLarge,
    /// The request line is not `METHOD TARGET HTTP/1.x`, or a header line
    /// holds a bare CR or a NUL.
    Malformed,
    /// A method other than `CONNECT` (the tunnel is no forward proxy for
    /// plain-text requests).
    NotConnect,
    /// The target is not `HOST:PORT` with a valid host name or IP literal
    /// and a port from 1 to 65535.
    BadTarget,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeadTooLarge => "the request head is larger than 16 KiB",
            Self::Malformed => "the request is not HTTP/1.x",
            Self::NotConnect => "only CONNECT is served (set https_proxy, not a plain http URL)",
            Self::BadTarget => "the CONNECT target is not HOST:PORT",
        })
    }
}

/// Parses the head at the start of `buf`: `Ok(None)` while the empty line
/// that ends it has not arrived.
pub fn parse_connect(buf: &[u8]) -> Result<Option<ConnectRequest>, ConnectError> {
    let window = buf.get(..MAX_HEAD_LEN).unwrap_or(buf);
    let Some(end) = find(window, b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD_LEN {
            Err(ConnectError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let head = window.get(..end).ok_or(ConnectError::Malformed)?;
    if head.contains(&0) {
        return Err(ConnectError::Malformed);
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().ok_or(ConnectError::Malformed)?;
    if lines.any(|line| line.contains(&b'\r')) {
        return Err(ConnectError::Malformed);
    }
    let request_line = core::str::from_utf8(request_line).map_err(|_| ConnectError::Malformed)?;
    let mut words = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ConnectError::Malformed);
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ConnectError::Malformed);
    }
    if method != "CONNECT" {
        return Err(ConnectError::NotConnect);
    }
    let (host, port) = parse_authority(target).ok_or(ConnectError::BadTarget)?;
    Ok(Some(ConnectRequest {
        host,
        port,
        head_len: end.checked_add(4).ok_or(ConnectError::Malformed)?,
    }))
}

/// `HOST:PORT` or `[IPV6]:PORT` (a `CONNECT` target, or an egress allow
/// entry) into a normalised host (lower case, no trailing dot, IPv6
/// without brackets) and a port from 1 to 65535.
pub fn parse_authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let addr: Ipv6Addr = v6.parse().ok()?;
        return Some((alloc::format!("{addr}"), port));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    is_host_name(&name).then_some((name, port))
}

/// RFC 1123 host names (which include IPv4 literals): dot-separated labels
/// of letters, digits and inner hyphens.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOST_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The index of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(head: &str) -> Result<Option<(String, u16)>, ConnectError> {
        parse_connect(head.as_bytes()).map(|r| r.map(|r| (r.host, r.port)))
    }

    #[test]
    fn a_connect_head_gives_the_target_and_its_length() {
        let head =
            b"CONNECT Registry.Example.:443 HTTP/1.1\r\nHost: registry.example:443\r\n\r\n\x16\x03";
        let request = parse_connect(head).unwrap().unwrap();
        assert_eq!(request.host, "registry.example");
        assert_eq!(request.port, 443);
        assert_eq!(&head[request.head_len..], b"\x16\x03");
    }

    #[test]
    fn ip_literals_are_targets_too() {
        assert_eq!(
            target("CONNECT 192.0.2.1:5000 HTTP/1.0\r\n\r\n"),
            Ok(Some(("192.0.2.1".into(), 5000)))
        );
        assert_eq!(
            target("CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n\r\n"),
            Ok(Some(("2001:db8::1".into(), 443)))
        );
    }

    #[test]
    fn an_unfinished_head_asks_for_more() {
        assert_eq!(target("CONNECT a:1 HTTP/1.1\r\nHost: a"), Ok(None));
        assert_eq!(target(""), Ok(None));
    }

    #[test]
    fn what_is_not_a_connect_is_refused_with_its_reason() {
        assert_eq!(
            target("GET http://a/ HTTP/1.1\r\n\r\n"),
            Err(ConnectError::NotConnect)
        );
        assert_eq!(
            target("CONNECT a:1 HTTP/2\r\n\r\n"),
            Err(ConnectError::Malformed)
        );
        assert_eq!(
            target("CONNECT a:1  HTTP/1.1\r\n\r\n"),
            Err(ConnectError::Malformed)
        );
        assert_eq!(
            target("CONNECT a:1 HTTP/1.1\r\nX: a\rb\r\n\r\n"),
            Err(ConnectError::Malformed)
        );
        assert_eq!(
            target("CONNECT a\0:1 HTTP/1.1\r\n\r\n"),
            Err(ConnectError::Malformed)
        );
        for bad in [
            "a", "a:", "a:0", "a:65536", "a:+1", ":443", "-a:1", "a..b:1", "[::1:1", "a_b:1",
        ] {
            assert_eq!(
                target(&format!("CONNECT {bad} HTTP/1.1\r\n\r\n")),
                Err(ConnectError::BadTarget),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_head_never_grows_past_the_limit() {
        let mut head = b"CONNECT a:1 HTTP/1.1\r\n".to_vec();
        head.resize(MAX_HEAD_LEN, b'x');
        assert_eq!(parse_connect(&head), Err(ConnectError::HeadTooLarge));
        head.truncate(MAX_HEAD_LEN - 1);
        assert_eq!(parse_connect(&head), Ok(None));
    }

    #[test]
    fn no_input_panics() {
        let seeds: [&[u8]; 2] = [
            b"CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n",
            b"CONNECT [::1]:443 HTTP/1.0\r\n\r\nrest",
        ];
        pp_test_support::feed_mutations(&seeds, 4000, |input| {
            let _ = parse_connect(input);
        });
    }
}
