//! What CDH's api-server-rest replies mean, and how long to wait before
//! asking again.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;

/// Where api-server-rest listens (loopback peers only).
pub const CDH_ADDRESS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8006));
/// The WN public key for the Kubernetes phase.
pub const WN_KEY_PATH: &str = "/cdh/resource/default/sshclient/publicKey";
/// This PP's Kubernetes-phase host key (the WN's proxy rewrites `pp-sid`).
pub const HOST_KEY_PATH: &str = "/cdh/resource/default/pp-sid/privateKey";

/// How much of an error body goes into a log line.
const MAX_REASON_CHARS: usize = 200;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Why a CDH request should be tried again; `Display` is the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryReason(pub String);

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 200 gives the resource; any other status is a reason to retry. CDH
/// reports every failure (attestation refused, resource not found, KBS
/// unreachable) as 500 with a short text body, which goes into the reason.
pub fn classify_cdh_reply(status: u16, body: Vec<u8>) -> Result<Vec<u8>, RetryReason> {
    if status == 200 {
        return Ok(body);
    }
    let text = printable_excerpt(&body);
    Err(RetryReason(match status {
        500 => format!("CDH could not get the resource (HTTP 500): {text}"),
        403 => format!(
            "api-server-rest refused the request (HTTP 403): it serves loopback peers only: {text}"
        ),
        404 => format!(
            "api-server-rest has no such endpoint (HTTP 404): is it started with `--features resource`? {text}"
        ),
        _ => format!("unexpected HTTP {status} from api-server-rest: {text}"),
    }))
}

/// The body as one short log-safe line.
fn printable_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text
        .trim()
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().nth(MAX_REASON_CHARS).is_some() {
        excerpt.push('…');
    }
    if excerpt.is_empty() {
        excerpt.push_str("(empty body)");
    }
    excerpt
}

/// The wait before retry number `attempt` (0 for the first retry): 1 s
/// doubling to at most 30 s, plus `jitter` chosen by the caller (e.g.
/// uniformly in 0..1 s) so that retries do not march in step.
pub fn backoff(attempt: u32, jitter: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    FIRST_DELAY
        .checked_mul(factor)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY)
        .saturating_add(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn only_200_is_the_resource() {
        assert_eq!(
            classify_cdh_reply(200, b"ssh-ed25519 AAAA".to_vec()),
            Ok(b"ssh-ed25519 AAAA".to_vec())
        );
        assert!(classify_cdh_reply(201, vec![]).is_err());
    }

    #[test]
    fn a_500_carries_cdh_text_into_the_retry_reason() {
        let reason =
            classify_cdh_reply(500, b"get resource failed: not found\n".to_vec()).unwrap_err();
        assert_eq!(
            reason.to_string(),
            "CDH could not get the resource (HTTP 500): get resource failed: not found"
        );
    }

    #[test]
    fn long_or_binary_bodies_become_one_short_line() {
        let reason =
            classify_cdh_reply(502, [b'x'; 500].iter().chain(b"\n\x00").copied().collect())
                .unwrap_err();
        assert!(reason.0.starts_with("unexpected HTTP 502"));
        assert!(reason.0.ends_with('…') && reason.0.len() < 300, "{reason}");
        let empty = classify_cdh_reply(403, vec![]).unwrap_err();
        assert!(
            empty.0.contains("loopback") && empty.0.ends_with("(empty body)"),
            "{empty}"
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_to_a_thirty_second_cap_plus_jitter() {
        let seconds: Vec<u64> = (0..8)
            .map(|attempt| backoff(attempt, Duration::ZERO).as_secs())
            .collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX, Duration::ZERO), MAX_DELAY);
        assert_eq!(
            backoff(1, Duration::from_millis(250)),
            Duration::from_millis(2250)
        );
    }
}
