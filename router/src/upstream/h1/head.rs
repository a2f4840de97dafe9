//! A node's response head: parsed once it is complete, and how its body is framed.

use std::io;
use std::mem::MaybeUninit;

use bytes::Bytes;

use super::invalid;
pub(super) use crate::http::wire::head_len;
use crate::http::wire::tokens;
use crate::upstream::is_relayed;

/// Response heads with more headers than this are refused as malformed.
const MAX_HEADERS: usize = 100;

/// A final response head.
pub(super) struct Head {
    pub status: u16,
    /// Relayed headers, slices of the received head.
    pub headers: Vec<(Bytes, Bytes)>,
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub keep_alive: bool,
}

impl Head {
    /// Parse a complete head; header values stay slices of `raw` (no copy).
    pub fn parse(raw: &Bytes, head_request: bool) -> io::Result<Self> {
        let mut parsed = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, raw, &mut parsed)
            .map_err(|e| invalid(format!("malformed response head: {e}")))?;
        let (httparse::Status::Complete(_), Some(status), Some(version)) = (parsed, resp.code, resp.version)
        else {
            return Err(invalid("malformed response head: incomplete"));
        };
        let mut headers = Vec::with_capacity(resp.headers.len());
        let (mut length, mut chunked, mut encoded) = (None, false, false);
        let (mut close, mut keep_alive) = (false, false);
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| invalid("invalid content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting content-length headers"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                encoded = true;
                chunked = tokens(h.value).last().is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                close |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close"));
                keep_alive |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"keep-alive"));
            }
            if !is_relayed(name) {
                continue;
            }
            // httparse has checked names to be tokens and values to be printable.
            headers.push((raw.slice_ref(name), raw.slice_ref(h.value)));
        }
        // RFC 9112 6.3: no body for HEAD, 1xx, 204, 304; then transfer coding, then length.
        let framing = if head_request || status < 200 || status == 204 || status == 304 {
            Framing::Length(0)
        } else if encoded && chunked {
            Framing::Chunked(Chunk::Size)
        } else if encoded {
            Framing::Close
        } else {
            length.map_or(Framing::Close, Framing::Length)
        };
        let persistent = if version >= 1 { !close } else { keep_alive && !close };
        // A length beside a transfer coding is ignored, and the connection not trusted after.
        let keep_alive = persistent && !matches!(framing, Framing::Close) && !(encoded && length.is_some());
        Ok(Self { status, headers, framing, keep_alive })
    }
}

#[derive(Debug)]
pub(super) enum Framing {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunk),
    /// Until the node closes the connection.
    Close,
    Done,
}

#[derive(Debug)]
pub(super) enum Chunk {
    Size,
    /// This many bytes left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}
