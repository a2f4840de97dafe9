//! A client's request: read off its connection, framed and checked; refused with the 4xx/5xx
//! that says what is wrong when it is not a request the router can pass on safely.

use std::mem::MaybeUninit;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

pub use crate::http::wire::head_len;
use crate::http::wire::tokens;

/// Request heads with more headers than this are refused (431).
pub const MAX_HEADERS: usize = 100;
/// Request heads larger than this are refused (431).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this is malformed.
const MAX_LINE: usize = 4 * 1024;

/// One request, head and whole body. Header names and values are slices of the head as
/// received (no copies, no re-encoding), names in the client's case.
#[derive(Debug, Clone)]
pub struct Request {
    head: Bytes,
    method: Range<usize>,
    target: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    /// HTTP/1.x minor version.
    pub minor_version: u8,
    pub body: Bytes,
    /// The client lets the connection carry another request after this one.
    pub keep_alive: bool,
}

/// Why a request is refused; the connection is closed after the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {MAX_HEAD_BYTES} bytes or with more than {MAX_HEADERS} headers")]
    HeadTooLarge,
    #[error("request body larger than the {limit} bytes allowed (--max-body-bytes)")]
    BodyTooLarge { limit: usize },
    #[error("transfer-encoding {0:?} is not supported: send the body with content-length or chunked")]
    UnsupportedEncoding(String),
    #[error("the request was not complete within {0} s")]
    Timeout(u64),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::HeadTooLarge => 431,
            Refusal::BodyTooLarge { .. } => 413,
            Refusal::UnsupportedEncoding(_) => 501,
            Refusal::Timeout(_) => 408,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed_request",
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::BodyTooLarge { .. } => "body_too_large",
            Refusal::UnsupportedEncoding(_) => "unsupported_transfer_encoding",
            Refusal::Timeout(_) => "request_timeout",
        }
    }
}

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed(what.into())
}

/// How the body of a parsed head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Length(usize),
    Chunked,
}

/// A complete head, parsed; the body is still to be read.
#[derive(Debug)]
pub struct Head {
    pub request: Request,
    pub framing: BodyFraming,
    /// `Expect: 100-continue`: the client waits for a go-ahead before the body.
    pub expects_continue: bool,
}

impl Head {
    /// Parse a complete head (through its blank line). `max_body` refuses announced
    /// lengths above it at once, before any body is read.
    pub fn parse(head: Bytes, max_body: usize) -> Result<Self, Refusal> {
        let mut parsed = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_request_with_uninit_headers(&mut req, &head, &mut parsed)
            .map_err(|e| match e {
                httparse::Error::TooManyHeaders => Refusal::HeadTooLarge,
                e => malformed(e.to_string()),
            })?;
        let (httparse::Status::Complete(_), Some(method), Some(target), Some(minor_version)) =
            (status, req.method, req.path, req.version)
        else {
            return Err(malformed("incomplete request head"));
        };
        if !target.starts_with('/') {
            return Err(malformed(format!("request target {target:?} is not a path")));
        }
        let range = |s: &[u8]| {
            let start = s.as_ptr() as usize - head.as_ptr() as usize;
            start..start + s.len()
        };
        let mut headers = Vec::with_capacity(req.headers.len());
        let (mut length, mut encoding) = (None::<usize>, None::<&[u8]>);
        let (mut close, mut keep_alive_token, mut expects_continue) = (false, false, false);
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| malformed("content-length is not a number"))?;
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(malformed("conflicting content-length headers"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                if encoding.is_some() {
                    return Err(malformed("more than one transfer-encoding header"));
                }
                encoding = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
                keep_alive_token |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"keep-alive"));
            } else if name.eq_ignore_ascii_case(b"expect") {
                if !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                    return Err(malformed("the only expectation supported is 100-continue"));
                }
                expects_continue = true;
            }
            headers.push((range(name), range(h.value)));
        }
        // RFC 9112 6.1-6.3: a length beside a transfer coding is a smuggling attempt; only
        // plain `chunked` is decoded (nothing else is sent by real clients of this API).
        let framing = match (encoding, length) {
            (Some(_), Some(_)) => return Err(malformed("both content-length and transfer-encoding")),
            (Some(te), None) if te.trim_ascii().eq_ignore_ascii_case(b"chunked") => BodyFraming::Chunked,
            (Some(te), None) => {
                return Err(Refusal::UnsupportedEncoding(String::from_utf8_lossy(te).into_owned()))
            }
            (None, Some(n)) if n > max_body => return Err(Refusal::BodyTooLarge { limit: max_body }),
            (None, n) => BodyFraming::Length(n.unwrap_or(0)),
        };
        let keep_alive = if minor_version >= 1 { !close } else { keep_alive_token && !close };
        let (method, target) = (range(method.as_bytes()), range(target.as_bytes()));
        let request =
            Request { head, method, target, headers, minor_version, body: Bytes::new(), keep_alive };
        Ok(Self { request, framing, expects_continue })
    }
}

impl Request {
    /// Parse a whole request (head and `content-length` body) from bytes: for tests.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, Refusal> {
        let end = head_len(raw, 0).ok_or_else(|| malformed("incomplete request head"))?;
        let Head { mut request, framing, .. } = Head::parse(Bytes::copy_from_slice(&raw[..end]), usize::MAX)?;
        let BodyFraming::Length(n) = framing else { return Err(malformed("chunked body")) };
        let body = raw.get(end..end + n).ok_or_else(|| malformed("body shorter than content-length"))?;
        request.body = Bytes::copy_from_slice(body);
        Ok(request)
    }

    fn text(&self, r: &Range<usize>) -> &str {
        // httparse checked method and target to be visible ASCII.
        std::str::from_utf8(&self.head[r.clone()]).unwrap_or_default()
    }

    pub fn method(&self) -> &str {
        self.text(&self.method)
    }

    /// The method, sharing the received bytes.
    pub fn method_bytes(&self) -> Bytes {
        self.head.slice(self.method.clone())
    }

    /// Path and query, sharing the received bytes.
    pub fn target_bytes(&self) -> Bytes {
        self.head.slice(self.target.clone())
    }

    /// Path and query, as sent.
    pub fn target(&self) -> &str {
        self.text(&self.target)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// Every header as received: (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().map(|(n, v)| (&self.head[n.clone()], &self.head[v.clone()]))
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// The first value of header `name` as text, trimmed; `None` if absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok()).map(str::trim)
    }
}

/// Decodes a chunked body held in `buf` as far as it goes. Returns `Ok(true)` once the last
/// chunk and trailers have been consumed; `body` collects the data.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    /// Consume what `buf` holds; `Ok(true)` when the body is complete.
    pub fn decode(&mut self, buf: &mut BytesMut, body: &mut BytesMut, limit: usize) -> Result<bool, Refusal> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = left.min(buf.len());
                    body.extend_from_slice(&buf.split_to(n));
                    self.state = if n == left { ChunkState::DataEnd } else { ChunkState::Data(left - n) };
                }
                state => {
                    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                        if buf.len() > MAX_LINE {
                            return Err(malformed("chunked framing line too long"));
                        }
                        return Ok(false);
                    };
                    let line = buf.split_to(end + 1);
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.state = match state {
                        ChunkState::Size => {
                            let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                            let size = std::str::from_utf8(digits)
                                .ok()
                                .filter(|d| !d.is_empty() && d.len() <= 16)
                                .and_then(|d| usize::from_str_radix(d, 16).ok())
                                .ok_or_else(|| malformed("invalid chunk size"))?;
                            if body.len().saturating_add(size) > limit {
                                return Err(Refusal::BodyTooLarge { limit });
                            }
                            if size == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data(size)
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(malformed("chunk data longer than its size")),
                        ChunkState::Trailers if line.is_empty() => ChunkState::Done,
                        ChunkState::Trailers => ChunkState::Trailers,
                        ChunkState::Data(_) | ChunkState::Done => unreachable!("handled above"),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Head, Refusal> {
        Head::parse(Bytes::copy_from_slice(raw.as_bytes()), 1000)
    }

    #[test]
    fn heads_are_parsed_without_copying_headers() {
        let head = parse(
            "POST /api/v1/recommendations/user/7?count=2 HTTP/1.1\r\nHost: x\r\nX-Region-Hint:  eu-west \r\n\
             content-length: 5\r\n\r\n",
        )
        .expect("valid");
        let r = &head.request;
        assert_eq!(
            (r.method(), r.target(), r.path()),
            ("POST", "/api/v1/recommendations/user/7?count=2", "/api/v1/recommendations/user/7")
        );
        assert_eq!(r.header_str("x-region-hint"), Some("eu-west"));
        assert_eq!(r.headers().count(), 3);
        assert_eq!(head.framing, BodyFraming::Length(5));
        assert!(r.keep_alive && !head.expects_continue);
    }

    #[test]
    fn connection_persistence_follows_the_version_and_connection_header() {
        let ka = |raw: &str| parse(raw).expect("valid").request.keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn unsafe_or_unsupported_framing_is_refused_with_its_reason() {
        let cases = [
            ("POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\ncontent-length: +1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\ncontent-length: 1001\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nexpect: magic\r\n\r\n", 400),
            ("POST http://x/ HTTP/1.1\r\n\r\n", 400),
            ("POST / HTTP/2.0\r\n\r\n", 400),
            ("NOT A REQUEST\r\n\r\n", 400),
        ];
        for (raw, status) in cases {
            let err = parse(raw).expect_err(raw);
            assert_eq!(err.status(), status, "{raw:?}: {err}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(parse(&many).expect_err("too many").status(), 431);
        let chunked = parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").expect("valid");
        assert_eq!(chunked.framing, BodyFraming::Chunked);
    }

    #[test]
    fn chunked_bodies_decode_in_pieces_and_respect_the_limit() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\nNEXT";
        for split in [1, 3, 7, wire.len()] {
            let (mut dec, mut body, mut buf) = (ChunkedDecoder::default(), BytesMut::new(), BytesMut::new());
            let mut done = false;
            for piece in wire.chunks(split) {
                buf.extend_from_slice(piece);
                done = dec.decode(&mut buf, &mut body, 100).expect("valid");
                if done {
                    break;
                }
            }
            assert!(done, "split {split}");
            assert_eq!(&body[..], b"hello world");
        }
        let (mut dec, mut body) = (ChunkedDecoder::default(), BytesMut::new());
        let mut buf = BytesMut::from(&b"a\r\n0123456789\r\n0\r\n\r\n"[..]);
        assert_eq!(dec.decode(&mut buf, &mut body, 9), Err(Refusal::BodyTooLarge { limit: 9 }));
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert_eq!(ChunkedDecoder::default().decode(&mut buf, &mut body, 9).expect_err("bad").status(), 400);
    }
}
