//! Parse one complete HTTP/1.1 response (the whole connection's bytes, the
//! server having closed it) into status, headers and body.
//!
//! The status line and headers are parsed by `httparse` (no_std, fuzzed,
//! used by hyper); the body is framed by `Transfer-Encoding: chunked`,
//! `Content-Length`, or the end of the connection, in that order.
//!
//! Contract: never panics on input; the body can only be as large as the
//! input (callers bound the input); a body shorter than its
//! `Content-Length`, a malformed chunk or more than 64 headers is an error.

const MAX_HEADERS: usize = 64;

/// Why a response could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("malformed HTTP response head: {0}")]
    Head(String),
    #[error("HTTP response ends inside its head")]
    IncompleteHead,
    #[error("HTTP response has a malformed Content-Length")]
    BadContentLength,
    #[error("HTTP response body is {got} bytes, shorter than its Content-Length {expected}")]
    ShortBody { got: usize, expected: usize },
    #[error("HTTP response has a malformed chunked body")]
    BadChunk,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names as sent; look them up with [`Response::header`].
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Parse the bytes of one whole response.
pub fn parse(bytes: &[u8]) -> Result<Response, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(ResponseError::IncompleteHead),
        Err(e) => return Err(ResponseError::Head(e.to_string())),
    };
    let status = head.code.ok_or(ResponseError::IncompleteHead)?;
    let headers: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    let rest = bytes.get(head_len..).unwrap_or(&[]);
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
    response.body = if chunked {
        dechunk(rest)?
    } else if let Some(value) = response.header("content-length") {
        let expected: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or(ResponseError::BadContentLength)?;
        rest.get(..expected)
            .ok_or(ResponseError::ShortBody {
                got: rest.len(),
                expected,
            })?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, ResponseError> {
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            _ => return Err(ResponseError::BadChunk),
        };
        let size = usize::try_from(size).map_err(|_| ResponseError::BadChunk)?;
        rest = rest.get(used..).ok_or(ResponseError::BadChunk)?;
        if size == 0 {
            return Ok(body);
        }
        let end = size.checked_add(2).ok_or(ResponseError::BadChunk)?;
        let chunk = rest.get(..end).ok_or(ResponseError::BadChunk)?;
        if &chunk[size..] != b"\r\n" {
            return Err(ResponseError::BadChunk);
        }
        body.extend_from_slice(&chunk[..size]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_length_body_is_cut_at_its_length() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert_eq!(r.header("x-a"), Some(&b"b"[..]));
    }

    #[test]
    fn a_body_without_framing_runs_to_the_end() {
        let r = parse(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn a_chunked_body_is_reassembled() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
    }

    #[test]
    fn short_and_malformed_bodies_are_errors() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            Err(ResponseError::ShortBody {
                got: 3,
                expected: 9
            })
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ResponseError::BadContentLength)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            Err(ResponseError::BadChunk)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n"),
            Err(ResponseError::IncompleteHead)
        );
        assert!(matches!(
            parse(b"garbage\r\n\r\n"),
            Err(ResponseError::Head(_))
        ));
    }
}
