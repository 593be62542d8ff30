//! HTTP/1.1 requests to a cloud metadata service: emit the request bytes
//! (any method, custom headers: the core's `emit_get` only does plain GET),
//! send them over one TCP connection to an IP literal (no DNS) and parse
//! the response with the core's bounded parser
//! (`pp_http::ResponseParser`) as it arrives.
//!
//! Contract: [`Request::emit`] refuses header values and paths holding
//! control characters (an AWS token comes from the network and is sent back
//! in a header), so no request can be split. [`exchange`] is bounded in
//! time as a whole (a server trickling bytes cannot hold us longer than
//! the timeout) and in size (the core parser's head limit and our body
//! limit).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pp_http::{self as core_http, Progress, Response, ResponseParser};

/// What went wrong talking to the metadata service.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{field} holds a control character or non-ASCII byte; refusing to send it")]
    UnsafeField { field: String },
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("response from {addr}: {source}")]
    Response {
        addr: SocketAddr,
        source: core_http::HttpError,
    },
}

/// One request: method, path (with query), Host header and extra headers.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'static str,
    pub path: &'static str,
    pub host: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

impl Request<'_> {
    /// The request bytes: request line, `Host`, `Connection: close`, the
    /// extra headers, `Content-Length: 0` for methods other than GET.
    pub fn emit(&self) -> Result<Vec<u8>, ExchangeError> {
        check_field("request path", self.path)?;
        check_field("Host header", self.host)?;
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.host
        );
        for (name, value) in self.headers {
            check_field("header name", name)?;
            check_field(&format!("{name} header"), value)?;
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.method != "GET" {
            out.push_str("Content-Length: 0\r\n");
        }
        out.push_str("\r\n");
        Ok(out.into_bytes())
    }
}

/// Visible ASCII and spaces only: nothing that could end a line.
fn check_field(field: &str, value: &str) -> Result<(), ExchangeError> {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err(ExchangeError::UnsafeField {
            field: field.to_owned(),
        })
    }
}

/// Send `request` to `addr` and parse the response, accepting a body of
/// at most `max_body` bytes. `timeout` bounds the whole exchange.
pub fn exchange(
    addr: SocketAddr,
    request: &[u8],
    max_body: usize,
    timeout: Duration,
) -> Result<Response, ExchangeError> {
    let io = |source| ExchangeError::Io { addr, source };
    let parsed = |source| ExchangeError::Response { addr, source };
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| io(std::io::ErrorKind::TimedOut.into()))
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ExchangeError::Connect { addr, source })?;
    stream.set_write_timeout(Some(remaining()?)).map_err(io)?;
    stream.write_all(request).map_err(io)?;
    let mut parser = ResponseParser::new(max_body);
    let mut chunk = [0u8; 8192];
    loop {
        stream.set_read_timeout(Some(remaining()?)).map_err(io)?;
        let got = stream.read(&mut chunk).map_err(io)?;
        if got == 0 {
            return parser.finish().map_err(parsed);
        }
        if let Progress::Done(response) = parser.feed(&chunk[..got]).map_err(parsed)? {
            return Ok(response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_request_carries_its_headers_and_an_empty_body() {
        let bytes = Request {
            method: "PUT",
            path: "/latest/api/token",
            host: "169.254.169.254",
            headers: &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        }
        .emit()
        .unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\
             X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_header_value_with_a_line_break_is_refused() {
        let err = Request {
            method: "GET",
            path: "/latest/user-data",
            host: "169.254.169.254",
            headers: &[("X-aws-ec2-metadata-token", "abc\r\nEvil: 1")],
        }
        .emit()
        .unwrap_err();
        assert!(err.to_string().contains("X-aws-ec2-metadata-token header"));
    }

    #[test]
    fn a_body_longer_than_the_limit_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = conn.read(&mut buf).unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                .unwrap();
            conn.write_all(&[b'x'; 100]).unwrap();
        });
        let err =
            exchange(addr, b"GET / HTTP/1.1\r\n\r\n", 99, Duration::from_secs(5)).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(
                err,
                ExchangeError::Response {
                    source: core_http::HttpError::BodyTooLarge { limit: 99 },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_server_that_never_closes_is_cut_off_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
            let mut buf = [0u8; 256];
            // Hold the connection open until the client gives up.
            while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
        });
        let started = Instant::now();
        let err = exchange(
            addr,
            b"GET / HTTP/1.1\r\n\r\n",
            1000,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::Io { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        server.join().unwrap();
    }
}
