//! One attempt to one node: the client request replayed as-is, and the typed ways it fails.
//!
//! Plain `http://` nodes (the normal case) are reached over the worker's own keep-alive
//! HTTP/1.1 connections ([`h1`]). An actix worker is a single-threaded runtime, so its pool
//! needs no lock, and an attempt drives its connection itself: no connection task and no
//! channel per request, which is what a general client (reqwest on hyper) costs. Any other
//! node URL (`https://`, credentials in the URL) goes through reqwest ([`generic`]).
//!
//! The request body is held as `Bytes` (shared, never copied or re-serialised) so a retry can
//! send it again. Small answers with a known length are read whole within the attempt's
//! deadline, so a node dying mid-body is still a retryable failure; anything else streams,
//! under the same deadline.

mod generic;
pub mod h1;

use std::fmt;
use std::io;
use std::io::Write as _;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use crate::front::request::Request;
use crate::proxy::{FAILOVER_FROM, SERVED_BY};
use crate::regions::Node;

/// Answers up to this size with a known length are buffered (see the module doc).
pub const BUFFER_LIMIT: u64 = 256 * 1024;
/// Idle pooled connections are dropped before the nodes' keep-alive (actix default: 5 s)
/// would close them under us; one closed anyway is retried transparently (see [`h1`]).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

pub const REQUEST_ID: &str = "x-request-id";

/// Headers that describe one connection, not the message: never forwarded either way.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Headers that describe one connection, not the message: never forwarded either way.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Whether a node's response header (name in any case) reaches the client: not hop-by-hop,
/// not the length (the router frames the body itself), not one the router sets itself.
pub fn is_relayed(name: &[u8]) -> bool {
    let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
    !(is_hop_by_hop(name) || is("content-length") || is(SERVED_BY) || is(FAILOVER_FROM) || is(REQUEST_ID))
}

/// How a node is reached, decided once from its URL.
#[derive(Debug)]
pub enum Target {
    /// `http://host[:port][/prefix]`: the router's own HTTP/1.1 connections.
    Plain(h1::Endpoint),
    /// Anything else: reqwest, with the node's URL as text.
    Generic,
}

impl Target {
    pub fn new(base: &str) -> Self {
        h1::Endpoint::parse(base).map_or(Target::Generic, Target::Plain)
    }
}

/// The client request, ready to be sent to any node.
#[derive(Debug)]
pub struct Outgoing {
    method: Bytes,
    /// Path and query, as the client sent them.
    target: Bytes,
    /// Everything after the request line and `host`: the end-to-end headers, the request
    /// id, `content-length` and the blank line, serialised once for every attempt.
    head: Vec<u8>,
    body: Bytes,
}

impl Outgoing {
    /// Copy method, path, query, end-to-end headers and body of `req`; set the request id
    /// (printable ASCII: see [`crate::proxy::request_id`]).
    pub fn new(req: &Request, request_id: &str) -> Self {
        let mut head = Vec::with_capacity(256);
        // Headers the client named in `Connection` are for this hop only (RFC 9110 7.6.1).
        let named: Vec<&[u8]> = req
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty() && !is_hop_by_hop(t) && !t.eq_ignore_ascii_case(b"close"))
            .collect();
        let for_this_hop = |name: &[u8]| named.iter().any(|t| t.eq_ignore_ascii_case(name));
        for (name, value) in req.headers() {
            let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
            if is_hop_by_hop(name)
                || is("host")
                || is("content-length")
                || is(REQUEST_ID)
                || for_this_hop(name)
            {
                continue;
            }
            for part in [name, b": ", value, b"\r\n"] {
                head.extend_from_slice(part);
            }
        }
        for part in [REQUEST_ID.as_bytes(), b": ", request_id.as_bytes(), b"\r\n"] {
            head.extend_from_slice(part);
        }
        // Writing to a Vec cannot fail.
        let _ = write!(head, "content-length: {}\r\n\r\n", req.body.len());
        Self { method: req.method_bytes(), target: req.target_bytes(), head, body: req.body.clone() }
    }

    pub fn method(&self) -> &[u8] {
        &self.method
    }

    /// Path and query, as the client sent them.
    pub fn target(&self) -> &[u8] {
        &self.target
    }
}

/// A node's answer below 500.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The headers the client gets (see [`is_relayed`]), as the node sent them.
    pub headers: Vec<(Bytes, Bytes)>,
    pub body: AnswerBody,
    /// Until headers, plus the body when buffered.
    pub took: Duration,
}

/// The rest of a large or unknown-length body, chunk by chunk; ends after the first error.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>>>>;

pub enum AnswerBody {
    Full(Bytes),
    /// Large or unknown length: relayed chunk by chunk; `Some(len)` when the node said.
    Stream(BodyStream, Option<u64>),
}

impl fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerBody::Full(b) => f.debug_tuple("Full").field(&b.len()).finish(),
            AnswerBody::Stream(_, len) => f.debug_tuple("Stream").field(len).finish(),
        }
    }
}

/// Why an attempt failed. Everything but [`AttemptError::Invalid`] is worth retrying on
/// another region: recommendation requests are safe to repeat.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("node answered {0}")]
    ServerError(u16),
    #[error("connection failed during the exchange")]
    Transport(#[source] io::Error),
    #[error("request cannot be sent")]
    Invalid(#[source] io::Error),
}

impl AttemptError {
    /// The node certainly did nothing: no connection, or a 503 (georec nodes answer 503 only
    /// for work they did not do: no model yet, events not stored).
    pub fn nothing_done(&self) -> bool {
        matches!(self, AttemptError::Connect(_) | AttemptError::ServerError(503))
    }

    /// The error with its causes (`cannot connect: ...: Connection refused`), for logs.
    pub fn detail(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

/// An attempt's failure with the region and node it happened on.
#[derive(Debug, thiserror::Error)]
#[error("region {region} ({node}): {kind}")]
pub struct UpstreamError {
    pub region: String,
    pub node: String,
    #[source]
    pub kind: AttemptError,
    /// How long the attempt took before failing.
    pub took: Duration,
}

impl UpstreamError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self.kind, AttemptError::Invalid(_))
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, AttemptError::Timeout(_))
    }
}

/// One worker's way to the nodes: its own keep-alive connections to plain HTTP nodes and a
/// reqwest client for the others. Lives on one worker thread, never shared.
pub struct Upstream {
    pool: Rc<h1::Pool>,
    client: reqwest::Client,
}

impl Upstream {
    pub fn new(client: reqwest::Client) -> Self {
        Self { pool: Rc::new(h1::Pool::default()), client }
    }

    /// Close idle connections once they expire, also while no request comes to reuse them
    /// (the nodes would close them anyway, leaving sockets half-closed here). Needs the
    /// worker's runtime; stops when this `Upstream` is dropped.
    pub fn spawn_idle_sweeper(&self) {
        let pool = Rc::downgrade(&self.pool);
        tokio::task::spawn_local(async move {
            loop {
                tokio::time::sleep(POOL_IDLE_TIMEOUT / 2).await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep();
            }
        });
    }

    /// Send `out` to `node` with a deadline of `timeout`.
    pub async fn send(
        &self,
        node: &Node,
        out: &Outgoing,
        timeout: Duration,
    ) -> Result<Answer, (AttemptError, Duration)> {
        match &node.target {
            Target::Plain(endpoint) => h1::send(&self.pool, node.key, endpoint, out, timeout).await,
            Target::Generic => generic::send(&self.client, &node.url, out, timeout).await,
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

/// The client used towards nodes that [`h1`] does not serve: keep-alive pool, no system
/// proxy, no decompression.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    generic::client()
}
