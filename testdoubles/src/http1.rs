//! Minimal HTTP/1.1 framing shared by the doubles' servers (KBS, CDH) and
//! the CDH double's KBS client: parse a message head, read a body framed by
//! `Content-Length` or `Transfer-Encoding: chunked` (or, for a response, by
//! the end of the connection), and write messages. Keep-alive is the default.
//!
//! Contract: the parsers (`find_head_end`, `parse_request_head`,
//! `parse_response_head`, `decode_chunked`) are plain functions over bytes
//! that never panic; heads are capped at `MAX_HEAD_BYTES` and bodies at
//! `MAX_BODY_BYTES`, beyond which reading fails with an error.

use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest accepted request or response head (start line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What went wrong while reading or writing an HTTP message.
#[derive(Debug)]
pub enum HttpError {
    /// The bytes are not HTTP/1.1 as this module reads it.
    Malformed(String),
    /// A head or body exceeds the limits above.
    TooLarge(&'static str),
    /// The peer closed the connection in the middle of a message.
    UnexpectedEof,
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed HTTP message: {why}"),
            Self::TooLarge(what) => write!(f, "HTTP {what} too large"),
            Self::UnexpectedEof => write!(f, "connection closed in the middle of an HTTP message"),
            Self::Io(e) => write!(f, "HTTP connection failed: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn malformed(why: impl Into<String>) -> HttpError {
    HttpError::Malformed(why.into())
}

/// Header names are stored lowercase; values are trimmed.
pub type Headers = Vec<(String, String)>;

/// Returns the first value of header `name` (lowercase).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub headers: Headers,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Headers,
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The offset just past the blank line that ends a head, if present.
pub fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

fn head_lines(head: &[u8]) -> Result<Vec<&str>, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("head is not UTF-8"))?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or_else(|| malformed("head does not end with an empty line"))?;
    Ok(text.split("\r\n").collect())
}

fn parse_headers(lines: &[&str]) -> Result<Headers, HttpError> {
    lines
        .iter()
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| malformed(format!("header line without a colon: {line:?}")))?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(malformed(format!("invalid header name {name:?}")));
            }
            Ok((name.to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect()
}

/// Parses a request head (`find_head_end` bytes, blank line included).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, HttpError> {
    let lines = head_lines(head)?;
    let (start, header_lines) = lines
        .split_first()
        .ok_or_else(|| malformed("empty request"))?;
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(format!("bad request line {start:?}")));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(malformed(format!("unsupported version {version:?}")));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(malformed(format!("bad method {method:?}")));
    }
    if !target.starts_with('/') {
        return Err(malformed(format!(
            "request target must be a path: {target:?}"
        )));
    }
    Ok(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        headers: parse_headers(header_lines)?,
    })
}

/// Parses a response head (`find_head_end` bytes, blank line included).
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, HttpError> {
    let lines = head_lines(head)?;
    let (start, header_lines) = lines
        .split_first()
        .ok_or_else(|| malformed("empty response"))?;
    let mut parts = start.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(malformed(format!("bad status line {start:?}")));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(malformed(format!("unsupported version {version:?}")));
    }
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|s| (100..=999).contains(s) && code.len() == 3)
        .ok_or_else(|| malformed(format!("bad status code {code:?}")))?;
    Ok(ResponseHead {
        status,
        headers: parse_headers(header_lines)?,
    })
}

/// Decodes a complete chunked body at the start of `buffer`. Returns the
/// body and the bytes consumed, or `None` when more bytes are needed.
/// Trailers are skipped.
pub fn decode_chunked(buffer: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut body = Vec::new();
    let mut at = 0usize;
    loop {
        let rest = buffer.get(at..).unwrap_or_default();
        let Some(line_len) = rest.windows(2).position(|w| w == b"\r\n") else {
            return if rest.len() > 1024 {
                Err(malformed("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(rest.get(..line_len).unwrap_or_default())
            .map_err(|_| malformed("chunk size line is not UTF-8"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| malformed(format!("bad chunk size {size_text:?}")))?;
        at += line_len + 2;
        if size == 0 {
            // Skip trailer lines up to the final empty line.
            loop {
                let rest = buffer.get(at..).unwrap_or_default();
                let Some(len) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += len + 2;
                if len == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge("body"));
        }
        let end = at.saturating_add(size);
        let (Some(data), Some(crlf)) =
            (buffer.get(at..end), buffer.get(end..end.saturating_add(2)))
        else {
            return Ok(None);
        };
        if crlf != b"\r\n" {
            return Err(malformed("chunk data not followed by CRLF"));
        }
        body.extend_from_slice(data);
        at = end + 2;
    }
}

/// How the body of a message is delimited.
#[derive(Debug, PartialEq, Eq)]
enum BodyFraming {
    Length(usize),
    Chunked,
    UntilClose,
}

fn body_framing(headers: &Headers, until_close_allowed: bool) -> Result<BodyFraming, HttpError> {
    if let Some(encoding) = header(headers, "transfer-encoding") {
        return if encoding.eq_ignore_ascii_case("chunked") {
            Ok(BodyFraming::Chunked)
        } else {
            Err(malformed(format!(
                "unsupported transfer-encoding {encoding:?}"
            )))
        };
    }
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    match lengths.as_slice() {
        [] if until_close_allowed => Ok(BodyFraming::UntilClose),
        [] => Ok(BodyFraming::Length(0)),
        [one] => {
            let length = one
                .parse::<usize>()
                .map_err(|_| malformed(format!("bad content-length {one:?}")))?;
            if length > MAX_BODY_BYTES {
                Err(HttpError::TooLarge("body"))
            } else {
                Ok(BodyFraming::Length(length))
            }
        }
        _ => Err(malformed("several content-length headers")),
    }
}

/// Whether the connection stays open after this message.
pub fn keeps_alive(headers: &Headers) -> bool {
    !header(headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// One HTTP/1.1 connection with its read buffer.
pub struct Connection<S> {
    stream: S,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; returns false at end of stream.
    async fn fill(&mut self) -> Result<bool, HttpError> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        self.buffer
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    /// Reads one head; `None` at a clean end of stream before any byte.
    async fn read_head(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(end) = find_head_end(&self.buffer) {
                let rest = self.buffer.split_off(end);
                return Ok(Some(std::mem::replace(&mut self.buffer, rest)));
            }
            if self.buffer.len() > MAX_HEAD_BYTES {
                return Err(HttpError::TooLarge("head"));
            }
            if !self.fill().await? {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::UnexpectedEof)
                };
            }
        }
    }

    async fn read_body(&mut self, framing: BodyFraming) -> Result<Vec<u8>, HttpError> {
        match framing {
            BodyFraming::Length(length) => {
                while self.buffer.len() < length {
                    if !self.fill().await? {
                        return Err(HttpError::UnexpectedEof);
                    }
                }
                let rest = self.buffer.split_off(length);
                Ok(std::mem::replace(&mut self.buffer, rest))
            }
            BodyFraming::Chunked => loop {
                if let Some((body, used)) = decode_chunked(&self.buffer)? {
                    self.buffer.drain(..used);
                    return Ok(body);
                }
                if self.buffer.len() > MAX_BODY_BYTES + MAX_HEAD_BYTES {
                    return Err(HttpError::TooLarge("body"));
                }
                if !self.fill().await? {
                    return Err(HttpError::UnexpectedEof);
                }
            },
            BodyFraming::UntilClose => {
                while self.fill().await? {
                    if self.buffer.len() > MAX_BODY_BYTES {
                        return Err(HttpError::TooLarge("body"));
                    }
                }
                Ok(std::mem::take(&mut self.buffer))
            }
        }
    }

    /// Reads one request; `None` when the peer closed the connection
    /// between requests.
    pub async fn read_request(&mut self) -> Result<Option<Request>, HttpError> {
        let Some(head) = self.read_head().await? else {
            return Ok(None);
        };
        let head = parse_request_head(&head)?;
        let body = self.read_body(body_framing(&head.headers, false)?).await?;
        Ok(Some(Request { head, body }))
    }

    /// Reads one response (to a request that was not HEAD).
    pub async fn read_response(&mut self) -> Result<Response, HttpError> {
        let head = self.read_head().await?.ok_or(HttpError::UnexpectedEof)?;
        let head = parse_response_head(&head)?;
        let framing = if head.status == 204 || head.status == 304 || head.status < 200 {
            BodyFraming::Length(0)
        } else {
            body_framing(&head.headers, true)?
        };
        let body = self.read_body(framing).await?;
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// Writes a request with a `Content-Length` body.
    pub async fn write_request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), HttpError> {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        self.write_all(head.as_bytes(), body).await
    }

    /// Writes a response with a `Content-Length` body; `keep_alive` false
    /// adds `Connection: close`.
    pub async fn write_response(
        &mut self,
        response: &Response,
        keep_alive: bool,
    ) -> Result<(), HttpError> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            response.status,
            reason(response.status)
        );
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !keep_alive {
            head.push_str("connection: close\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", response.body.len()));
        self.write_all(head.as_bytes(), &response.body).await
    }

    async fn write_all(&mut self, head: &[u8], body: &[u8]) -> Result<(), HttpError> {
        self.stream.write_all(head).await?;
        self.stream.write_all(body).await?;
        self.stream.flush().await?;
        Ok(())
    }
}

/// The reason phrase for the status codes the doubles send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses_into_method_target_and_lowercase_headers() {
        let head = b"POST /kbs/v0/auth HTTP/1.1\r\nContent-Type: application/json\r\nCookie:  a=b \r\n\r\n";
        let parsed = parse_request_head(head).unwrap();
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.target, "/kbs/v0/auth");
        assert_eq!(header(&parsed.headers, "cookie"), Some("a=b"));
        assert_eq!(
            header(&parsed.headers, "content-type"),
            Some("application/json")
        );
    }

    #[test]
    fn a_response_head_parses_status_and_headers() {
        let parsed =
            parse_response_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!(parsed.status, 404);
        assert_eq!(header(&parsed.headers, "content-length"), Some("3"));
    }

    #[test]
    fn garbage_heads_are_refused_without_panicking() {
        for garbage in [
            &b""[..],
            b"\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse_request_head(garbage).is_err(), "accepted {garbage:?}");
        }
        for garbage in [
            &b""[..],
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 +20 OK\r\n\r\n",
            b"SPDY 200 OK\r\n\r\n",
        ] {
            assert!(
                parse_response_head(garbage).is_err(),
                "accepted {garbage:?}"
            );
        }
    }

    #[test]
    fn the_head_ends_after_the_first_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn a_chunked_body_decodes_and_reports_the_bytes_used() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (body, used) = decode_chunked(wire).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&wire[used..], b"NEXT");
    }

    #[test]
    fn an_incomplete_chunked_body_asks_for_more() {
        for prefix in [
            &b"4\r\nWi"[..],
            b"4\r\nWiki\r\n",
            b"4\r\nWiki\r\n0\r\n",
            b"4",
        ] {
            assert!(decode_chunked(prefix).unwrap().is_none());
        }
    }

    #[test]
    fn garbage_chunked_bodies_are_refused() {
        for garbage in [&b"zz\r\n"[..], b"4\r\nWikiXX", b"ffffffffffffffffffff\r\n"] {
            assert!(decode_chunked(garbage).is_err(), "accepted {garbage:?}");
        }
    }

    #[test]
    fn oversized_or_conflicting_lengths_are_refused() {
        let too_big = vec![(
            "content-length".to_string(),
            (MAX_BODY_BYTES + 1).to_string(),
        )];
        assert!(body_framing(&too_big, false).is_err());
        let twice = vec![
            ("content-length".to_string(), "1".to_string()),
            ("content-length".to_string(), "2".to_string()),
        ];
        assert!(body_framing(&twice, false).is_err());
        let gzip = vec![("transfer-encoding".to_string(), "gzip".to_string())];
        assert!(body_framing(&gzip, false).is_err());
    }

    #[tokio::test]
    async fn two_requests_on_one_connection_are_read_in_turn() {
        let (client, server) = tokio::io::duplex(4096);
        let mut client = Connection::new(client);
        let mut server = Connection::new(server);
        client
            .write_request("POST", "/a", &[("X-Test", "1")], b"one")
            .await
            .unwrap();
        client.write_request("GET", "/b", &[], b"").await.unwrap();
        let first = server.read_request().await.unwrap().unwrap();
        let second = server.read_request().await.unwrap().unwrap();
        assert_eq!(
            (first.head.target.as_str(), first.body.as_slice()),
            ("/a", &b"one"[..])
        );
        assert_eq!((second.head.target.as_str(), second.body.len()), ("/b", 0));
        server
            .write_response(&Response::new(200, "text/plain", "ok"), true)
            .await
            .unwrap();
        let response = client.read_response().await.unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
    }
}
