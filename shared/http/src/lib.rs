//! The little HTTP/1.1 client side the forwarder needs to ask CDH's
//! api-server-rest (127.0.0.1:8006) for its keys, plus the CDH reply rule
//! and the retry schedule, and the `CONNECT` head the egress proxy reads,
//! all pure.
//!
//! Contract:
//! * [`emit_get`] writes one `GET` with `Connection: close`; it refuses a
//!   host or path that would break the request line or headers.
//! * [`ResponseParser::feed`] never panics on any input. It holds at most
//!   [`MAX_HEAD_LEN`] bytes of head, a chunk-size line of at most
//!   [`MAX_LINE_LEN`] bytes and a body of at most the caller's limit;
//!   anything larger is an error, never a larger buffer. Bodies framed by
//!   `Content-Length`, `Transfer-Encoding: chunked`, or the end of the
//!   connection ([`ResponseParser::finish`]) are supported.
//! * [`classify_cdh_reply`]: 200 is the resource; everything else (CDH
//!   answers 500 with a text body for every failure, "not found" included)
//!   is a reason to retry, with the text for the log.
//! * [`parse_connect`]: the head of a `CONNECT` into the PP's egress
//!   tunnel (the adaptor's proxy end), at most [`MAX_HEAD_LEN`] bytes.
//! * [`backoff`]: 1 s doubling per attempt, capped at 30 s, plus the
//!   caller's jitter.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

extern crate alloc;

mod cdh;
mod connect;
mod response;

pub use cdh::{CDH_ADDRESS, HOST_KEY_PATH, RetryReason, WN_KEY_PATH, backoff, classify_cdh_reply};
pub use connect::{ConnectError, ConnectRequest, parse_authority, parse_connect};
pub use response::{HttpError, Progress, Response, ResponseParser};

use alloc::format;
use alloc::vec::Vec;

/// The most bytes of status line and headers accepted.
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// The most bytes of one chunk-size or trailer line.
pub const MAX_LINE_LEN: usize = 1024;

/// The request bytes for `GET path` on `host` (e.g. `127.0.0.1:8006`),
/// asking the server to close the connection after the response. `path`
/// must start with `/`; neither may hold spaces or control characters.
pub fn emit_get(host: &str, path: &str) -> Result<Vec<u8>, HttpError> {
    let clean =
        |text: &str| !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if !clean(host) || !clean(path) || !path.starts_with('/') {
        return Err(HttpError::BadRequestTarget);
    }
    Ok(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_requests_close_the_connection() {
        let request = emit_get("127.0.0.1:8006", WN_KEY_PATH).unwrap();
        assert_eq!(
            request,
            b"GET /cdh/resource/default/sshclient/publicKey HTTP/1.1\r\nHost: 127.0.0.1:8006\r\n\
              Accept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn targets_that_would_break_the_request_are_refused() {
        assert_eq!(emit_get("h", "/a b"), Err(HttpError::BadRequestTarget));
        assert_eq!(emit_get("h\r\nX: y", "/"), Err(HttpError::BadRequestTarget));
        assert_eq!(emit_get("h", "relative"), Err(HttpError::BadRequestTarget));
    }
}
