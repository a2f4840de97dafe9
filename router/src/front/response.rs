//! What the router answers: status, headers and a whole or streamed body, serialised as
//! HTTP/1.1 by the connection that sends it.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use crate::upstream::BodyStream;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// End-to-end headers; the connection adds framing (`content-length` or
    /// `transfer-encoding`), `connection` and `date` (unless set here).
    pub headers: Vec<(Bytes, Bytes)>,
    pub body: Body,
}

pub enum Body {
    Full(Bytes),
    /// Relayed chunk by chunk; `Some(len)` when the length is known.
    Stream(BodyStream, Option<u64>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => f.debug_tuple("Full").field(&b.len()).finish(),
            Body::Stream(_, len) => f.debug_tuple("Stream").field(len).finish(),
        }
    }
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(Bytes::from_static(b"content-type"), Bytes::from_static(content_type.as_bytes()))],
            body: Body::Full(body.into()),
        }
    }

    /// `value` as JSON (`application/json`).
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, "application/json", body),
            // Only maps with non-string keys fail to serialise; none are sent.
            Err(e) => Self::new(500, "text/plain; charset=utf-8", format!("cannot encode the answer: {e}")),
        }
    }

    /// Add a header (name in lower case).
    pub fn with_header(mut self, name: &'static str, value: impl Into<Bytes>) -> Self {
        self.headers.push((Bytes::from_static(name.as_bytes()), value.into()));
        self
    }

    /// Set header `name` (lower case), replacing any value it had.
    pub fn set_header(&mut self, name: &'static str, value: impl Into<Bytes>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        self.headers.push((Bytes::from_static(name.as_bytes()), value.into()));
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| &v[..])
    }
}

/// The reason phrase for `status` (`""` for unknown codes, which HTTP/1.1 allows).
pub fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

/// The current time as an HTTP date, formatted at most once a second per thread.
pub fn http_date() -> Bytes {
    thread_local! {
        static CACHED: RefCell<(u64, Bytes)> = const { RefCell::new((u64::MAX, Bytes::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *text = Bytes::from(httpdate::fmt_http_date(now));
            *at = secs;
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_set_once_and_found_in_any_case() {
        let mut r = Response::json(200, &serde_json::json!({"a": 1})).with_header("x-served-by", "a");
        r.set_header("x-served-by", "b");
        assert_eq!(r.header("X-Served-By"), Some(&b"b"[..]));
        assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
        assert!(matches!(&r.body, Body::Full(b) if &b[..] == br#"{"a":1}"#), "{:?}", r.body);
        assert_eq!(reason(404), "Not Found");
        assert_eq!(reason(599), "");
        assert!(http_date().ends_with(b" GMT"));
    }
}
