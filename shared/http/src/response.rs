//! An incremental HTTP/1.1 response parser with hard limits.

use super::{MAX_HEAD_LEN, MAX_LINE_LEN};
use alloc::vec::Vec;
use core::fmt;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// What `feed` made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Feed more bytes (or call `finish` at end of stream).
    NeedMore,
    /// The response is complete; later bytes are not looked at.
    Done(Response),
}

/// Why a response cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The request host or path holds characters that would break it.
    BadRequestTarget,
    /// Status line and headers exceed `MAX_HEAD_LEN`.
    HeadTooLarge,
    /// The status line or a header is malformed; `what` says which.
    BadHead {
        /// What is wrong.
        what: &'static str,
    },
    /// A transfer encoding other than `chunked`.
    UnsupportedTransferEncoding,
    /// The body would exceed the caller's limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Chunked framing is malformed; `what` says where.
    BadChunk {
        /// What is wrong.
        what: &'static str,
    },
    /// The connection ended before the response did.
    Truncated,
    /// `feed` or `finish` was called after the response was complete or failed.
    Finished,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRequestTarget => {
                f.write_str("request host or path holds spaces or control characters")
            }
            Self::HeadTooLarge => write!(f, "response head is larger than {MAX_HEAD_LEN} bytes"),
            Self::BadHead { what } => write!(f, "malformed response head: {what}"),
            Self::UnsupportedTransferEncoding => {
                f.write_str("response uses a transfer encoding other than chunked")
            }
            Self::BodyTooLarge { limit } => write!(f, "response body is larger than {limit} bytes"),
            Self::BadChunk { what } => write!(f, "malformed chunked body: {what}"),
            Self::Truncated => {
                f.write_str("the connection closed before the response was complete")
            }
            Self::Finished => f.write_str("the response was already complete or failed"),
        }
    }
}

impl core::error::Error for HttpError {}

#[derive(Debug)]
enum Stage {
    Head,
    Fixed { remaining: usize },
    ChunkSize,
    ChunkData { remaining: usize },
    ChunkDataEnd,
    Trailer,
    UntilClose,
    Finished,
}

/// Parses one response from bytes fed as they arrive.
#[derive(Debug)]
pub struct ResponseParser {
    max_body: usize,
    stage: Stage,
    status: u16,
    pending: Vec<u8>,
    body: Vec<u8>,
    trailer_len: usize,
}

impl ResponseParser {
    /// A parser accepting bodies of at most `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body,
            stage: Stage::Head,
            status: 0,
            pending: Vec::new(),
            body: Vec::new(),
            trailer_len: 0,
        }
    }

    /// Adds received bytes. After `Done` or an error the parser is spent.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, HttpError> {
        if let Stage::Finished = self.stage {
            return Err(HttpError::Finished);
        }
        self.pending.extend_from_slice(bytes);
        let result = self.advance();
        if !matches!(result, Ok(Progress::NeedMore)) {
            self.stage = Stage::Finished;
        }
        result
    }

    /// The peer closed the connection: completes a body that runs until
    /// the close, and is an error for anything else unfinished.
    pub fn finish(&mut self) -> Result<Response, HttpError> {
        let stage = core::mem::replace(&mut self.stage, Stage::Finished);
        match stage {
            Stage::UntilClose => Ok(self.take_response()),
            Stage::Finished => Err(HttpError::Finished),
            Stage::Head
            | Stage::Fixed { .. }
            | Stage::ChunkSize
            | Stage::ChunkData { .. }
            | Stage::ChunkDataEnd
            | Stage::Trailer => Err(HttpError::Truncated),
        }
    }

    fn take_response(&mut self) -> Response {
        Response {
            status: self.status,
            body: core::mem::take(&mut self.body),
        }
    }

    fn done(&mut self) -> Result<Progress, HttpError> {
        Ok(Progress::Done(self.take_response()))
    }

    /// Appends up to `limit` pending bytes to the body; returns how many.
    fn move_to_body(&mut self, limit: usize) -> Result<usize, HttpError> {
        let count = limit.min(self.pending.len());
        if self.body.len().saturating_add(count) > self.max_body {
            return Err(HttpError::BodyTooLarge {
                limit: self.max_body,
            });
        }
        self.body.extend(self.pending.drain(..count));
        Ok(count)
    }

    /// Takes one CRLF-terminated line from `pending`, if complete.
    fn take_line(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        match self.pending.windows(2).position(|pair| pair == b"\r\n") {
            Some(end) if end <= MAX_LINE_LEN => {
                let line = self
                    .pending
                    .drain(..end.saturating_add(2))
                    .take(end)
                    .collect();
                Ok(Some(line))
            }
            Some(_) => Err(HttpError::BadChunk {
                what: "line too long",
            }),
            None if self.pending.len() > MAX_LINE_LEN => Err(HttpError::BadChunk {
                what: "line too long",
            }),
            None => Ok(None),
        }
    }

    fn advance(&mut self) -> Result<Progress, HttpError> {
        loop {
            match self.stage {
                Stage::Head => {
                    let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if self.pending.len() > MAX_HEAD_LEN {
                            return Err(HttpError::HeadTooLarge);
                        }
                        return Ok(Progress::NeedMore);
                    };
                    if end.saturating_add(4) > MAX_HEAD_LEN {
                        return Err(HttpError::HeadTooLarge);
                    }
                    let head: Vec<u8> = self
                        .pending
                        .drain(..end.saturating_add(4))
                        .take(end)
                        .collect();
                    let framing = parse_head(&head)?;
                    if (100..200).contains(&framing.status) {
                        continue; // informational; the real response follows
                    }
                    self.status = framing.status;
                    self.stage = match framing.body {
                        Framing::Empty => return self.done(),
                        Framing::Length(length) if length > self.max_body => {
                            return Err(HttpError::BodyTooLarge {
                                limit: self.max_body,
                            });
                        }
                        Framing::Length(length) => Stage::Fixed { remaining: length },
                        Framing::Chunked => Stage::ChunkSize,
                        Framing::UntilClose => Stage::UntilClose,
                    };
                }
                Stage::Fixed { remaining } => {
                    let moved = self.move_to_body(remaining)?;
                    if moved == remaining {
                        return self.done();
                    }
                    self.stage = Stage::Fixed {
                        remaining: remaining.saturating_sub(moved),
                    };
                    return Ok(Progress::NeedMore);
                }
                Stage::UntilClose => {
                    self.move_to_body(usize::MAX)?;
                    return Ok(Progress::NeedMore);
                }
                Stage::ChunkSize => {
                    let Some(line) = self.take_line()? else {
                        return Ok(Progress::NeedMore);
                    };
                    let size = parse_chunk_size(&line)?;
                    if self.body.len().saturating_add(size) > self.max_body {
                        return Err(HttpError::BodyTooLarge {
                            limit: self.max_body,
                        });
                    }
                    self.stage = if size == 0 {
                        Stage::Trailer
                    } else {
                        Stage::ChunkData { remaining: size }
                    };
                }
                Stage::ChunkData { remaining } => {
                    let moved = self.move_to_body(remaining)?;
                    if moved < remaining {
                        self.stage = Stage::ChunkData {
                            remaining: remaining.saturating_sub(moved),
                        };
                        return Ok(Progress::NeedMore);
                    }
                    self.stage = Stage::ChunkDataEnd;
                }
                Stage::ChunkDataEnd => {
                    let Some(end) = self.pending.get(..2) else {
                        return Ok(Progress::NeedMore);
                    };
                    if end != b"\r\n" {
                        return Err(HttpError::BadChunk {
                            what: "chunk data not followed by CRLF",
                        });
                    }
                    self.pending.drain(..2);
                    self.stage = Stage::ChunkSize;
                }
                Stage::Trailer => {
                    let Some(line) = self.take_line()? else {
                        return Ok(Progress::NeedMore);
                    };
                    if line.is_empty() {
                        return self.done();
                    }
                    self.trailer_len = self.trailer_len.saturating_add(line.len());
                    if self.trailer_len > MAX_HEAD_LEN {
                        return Err(HttpError::HeadTooLarge);
                    }
                }
                Stage::Finished => return Err(HttpError::Finished),
            }
        }
    }
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    body: Framing,
}

fn bad(what: &'static str) -> HttpError {
    HttpError::BadHead { what }
}

fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let text = core::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad("status line does not start with HTTP/1.1 or HTTP/1.0"));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("status code is not three digits"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| bad("status code is not three digits"))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(bad("header line without a colon"))?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("header name is empty or holds whitespace"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("Content-Length is not a decimal number"));
            }
            let length = value
                .parse()
                .map_err(|_| bad("Content-Length is too large"))?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(bad("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(HttpError::UnsupportedTransferEncoding);
            }
            chunked = true;
        }
    }
    let body = if status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = content_length {
        if length == 0 {
            Framing::Empty
        } else {
            Framing::Length(length)
        }
    } else {
        Framing::UntilClose
    };
    Ok(Head { status, body })
}

/// `hex-size [; extensions]`
fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let size = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if size.is_empty() || size.len() > 8 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(HttpError::BadChunk {
            what: "chunk size is not 1 to 8 hex digits",
        });
    }
    let text =
        core::str::from_utf8(size).map_err(|_| HttpError::BadChunk { what: "chunk size" })?;
    usize::from_str_radix(text, 16).map_err(|_| HttpError::BadChunk { what: "chunk size" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const LIMIT: usize = 64 * 1024;

    /// Feeds `bytes` one at a time, then `finish`es if still unfinished.
    fn parse_bytewise(bytes: &[u8], finish: bool) -> Result<Response, HttpError> {
        let mut parser = ResponseParser::new(LIMIT);
        for byte in bytes {
            if let Progress::Done(response) = parser.feed(core::slice::from_ref(byte))? {
                return Ok(response);
            }
        }
        if finish {
            parser.finish()
        } else {
            Err(HttpError::Truncated)
        }
    }

    fn parse_at_once(bytes: &[u8]) -> Result<Progress, HttpError> {
        ResponseParser::new(LIMIT).feed(bytes)
    }

    fn response(status: u16, body: &[u8]) -> Response {
        Response {
            status,
            body: body.to_vec(),
        }
    }

    #[test]
    fn content_length_bodies_complete_at_their_length() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_bytewise(bytes, false), Ok(response(200, b"hello")));
        assert_eq!(
            parse_at_once(bytes),
            Ok(Progress::Done(response(200, b"hello")))
        );
    }

    #[test]
    fn chunked_bodies_are_joined_and_trailers_skipped() {
        let bytes = b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n\
                      4;ext=1\r\nnot \r\n5\r\nfound\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(
            parse_bytewise(bytes, false),
            Ok(response(500, b"not found"))
        );
    }

    #[test]
    fn bodies_without_length_run_until_the_connection_closes() {
        let bytes = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(parse_at_once(bytes), Ok(Progress::NeedMore));
        assert_eq!(
            parse_bytewise(bytes, true),
            Ok(response(200, b"until close"))
        );
    }

    #[test]
    fn informational_responses_are_skipped() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_bytewise(bytes, false), Ok(response(204, b"")));
    }

    #[test]
    fn limits_are_enforced_before_buffering() {
        let big_length = b"HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n";
        assert_eq!(
            parse_at_once(big_length),
            Err(HttpError::BodyTooLarge { limit: LIMIT })
        );
        let big_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10001\r\n";
        assert_eq!(
            parse_at_once(big_chunk),
            Err(HttpError::BodyTooLarge { limit: LIMIT })
        );
        let mut until_close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_close.extend(vec![b'x'; LIMIT + 1]);
        assert_eq!(
            parse_at_once(&until_close),
            Err(HttpError::BodyTooLarge { limit: LIMIT })
        );
        let mut head = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        head.extend(vec![b'y'; MAX_HEAD_LEN]);
        assert_eq!(parse_at_once(&head), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn malformed_heads_and_chunks_are_errors() {
        let cases: [&[u8]; 7] = [
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ];
        for bytes in cases {
            assert!(
                parse_at_once(bytes).is_err(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let missing_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc";
        assert!(matches!(
            parse_at_once(missing_crlf),
            Err(HttpError::BadChunk { .. })
        ));
    }

    #[test]
    fn an_early_close_is_truncation_and_a_spent_parser_says_so() {
        let mut parser = ResponseParser::new(LIMIT);
        assert_eq!(
            parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"),
            Ok(Progress::NeedMore)
        );
        assert_eq!(parser.finish(), Err(HttpError::Truncated));
        assert_eq!(parser.feed(b"more"), Err(HttpError::Finished));
    }

    #[test]
    fn feeding_never_panics_on_mutated_responses() {
        let seeds: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n0\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil close",
        ];
        let mut rng = pp_test_support::XorShift::new(7);
        pp_test_support::feed_mutations(&seeds, 4000, |input| {
            let mut parser = ResponseParser::new(64);
            let mut rest = input;
            while !rest.is_empty() {
                let (now, later) = rest.split_at(1 + rng.below(rest.len() as u64) as usize);
                rest = later;
                if parser.feed(now) != Ok(Progress::NeedMore) {
                    return;
                }
            }
            let _ = parser.finish();
        });
    }
}
