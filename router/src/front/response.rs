//! What the router answers: a status, end-to-end headers and a whole or streamed body.
//! hyper adds the framing (`content-length` from the body's exact size, else chunked),
//! `date` and `connection`.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Body,
}

/// A body: whole, or a node's streamed one.
#[derive(Debug)]
pub enum Body {
    Full(Option<Bytes>),
    Stream(Pin<Box<Streamed>>),
}

/// A node's body relayed as it comes. Each piece must arrive within `idle` of the one before
/// (a stalled node must not hold the client forever), however long the whole takes.
#[derive(Debug)]
pub struct Streamed {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Streamed {
    pub fn new(inner: Incoming, idle: Duration) -> Self {
        Self { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }
}

/// A node stopped sending a body mid-way for longer than the idle limit.
#[derive(Debug, thiserror::Error)]
#[error("the node sent nothing of the body for {0:?}")]
pub struct BodyStalled(Duration);

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => {
                Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b))))
            }
            Body::Stream(s) => {
                let s = s.as_mut().get_mut();
                if let Poll::Ready(frame) = Pin::new(&mut s.inner).poll_frame(cx) {
                    let next = Instant::now() + s.idle;
                    s.deadline.as_mut().reset(next);
                    return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
                }
                ready!(s.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyStalled(s.idle).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Body::Stream(s) => s.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) => s.inner.size_hint(),
        }
    }
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self { status, headers, body: Body::Full(Some(body.into())) }
    }

    /// `value` as JSON (`application/json`).
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status, "application/json", body),
            // Only maps with non-string keys fail to serialise; none are sent.
            Err(e) => Self::new(500, "text/plain; charset=utf-8", format!("cannot encode the answer: {e}")),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Set header `name`, replacing any value it had.
    pub fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }

    /// The whole body, if it is not streamed (for tests).
    pub fn full_body(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Full(b) => Some(b.as_deref().unwrap_or_default()),
            Body::Stream(_) => None,
        }
    }
}

impl From<Response> for http::Response<Body> {
    fn from(r: Response) -> Self {
        let mut resp = http::Response::new(r.body);
        // Statuses are the router's own or a node's checked to be within 100..=599.
        *resp.status_mut() = http::StatusCode::from_u16(r.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        *resp.headers_mut() = r.headers;
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_set_once_and_found_in_any_case() {
        let name = HeaderName::from_static("x-served-by");
        let mut r = Response::json(200, &serde_json::json!({"a": 1}))
            .with_header(name.clone(), HeaderValue::from_static("a"));
        r.set_header(name, HeaderValue::from_static("b"));
        assert_eq!(r.header("X-Served-By"), Some(&b"b"[..]));
        assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(r.full_body(), Some(&br#"{"a":1}"#[..]));
        let resp: http::Response<Body> = r.into();
        assert_eq!(http_body::Body::size_hint(resp.body()).exact(), Some(7));
    }
}
