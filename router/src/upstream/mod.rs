//! One attempt to one node: the client request replayed, and the typed ways it fails.
//!
//! Nodes are reached with hyper's HTTP/1.1 client (`hyper::client::conn::http1`) over
//! [`connect`]'s TCP or TLS connections. Each worker keeps its own keep-alive connections
//! ([`Pool`]): an idle connection is watched by hyper's connection task, which closes it on
//! any byte or EOF from the node, so a connection that went stale (the node's keep-alive
//! timer, a restart, a stray response) is never handed a request. The pool needs no lock:
//! the worker's runtime is single-threaded, and connection tasks live on it too.
//!
//! Writes happen at most once. hyper hands a request back when none of it was written (the
//! connection closed first); only then is it sent again, on a new connection, within the
//! same attempt. Any failure after that may have reached the node, and the caller decides
//! ([`AttemptError::nothing_done`]). The one exception is a request the caller marks safe to
//! repeat (a recommendation read): when a pooled connection closes with no answer at all (the
//! node's keep-alive timer closing it just as the request went out), it is sent once more on
//! a new connection to the same node, as browsers do; a write never is.
//!
//! The request body is held as `Bytes` (shared, never copied) so a retry can send it again.
//! Small answers with a known length are read whole within the attempt's deadline, so a node
//! dying mid-body is still a retryable failure; larger ones stream, each piece within an idle
//! deadline of its own.

pub mod connect;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Uri};
use http_body_util::{Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use self::connect::{Connector, Endpoint};
use crate::front::request::{whole, Request};
use crate::front::response::{Body, Streamed};
use crate::headers::{FAILOVER_FROM, REQUEST_ID, RESIDENCY, TRACEPARENT};
use crate::regions::Node;

/// Answers up to this size with a known length are buffered (see the module doc).
pub const BUFFER_LIMIT: u64 = 256 * 1024;
/// Idle pooled connections are dropped before the nodes' keep-alive (actix default: 5 s)
/// would close them under us.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per node (per worker); more are closed when handed back.
const MAX_IDLE_PER_NODE: usize = 256;
/// A node's answer head larger than this is invalid.
const MAX_ANSWER_HEAD: usize = 64 * 1024;

/// Headers that describe one connection, not the message: never forwarded either way.
static HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// The headers a message's `Connection` header names: for this hop only (RFC 9110 7.6.1).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

/// Bit `n` set when some name of `names` is `n` bytes long (longer ones share bit 63).
fn lengths(names: impl Iterator<Item = usize>) -> u64 {
    names.fold(0, |mask, n| mask | 1 << n.min(63))
}

/// `headers` without hop-by-hop ones, those the `Connection` header names, and `also`. They
/// are removed in place: this runs twice for every request and usually finds nothing to
/// remove, so nothing is copied, hashed again or allocated. A name is compared with the
/// doomed ones only when one of them has its length (most names are passed after one table
/// lookup); the names to remove are bits of a mask over [`HOP_BY_HOP`] and `also`.
/// (Removing may change the order of the other names, which carries no meaning; the values
/// of one name keep theirs.)
fn end_to_end(mut headers: HeaderMap, also: &[&HeaderName]) -> HeaderMap {
    assert!(HOP_BY_HOP.len() + also.len() <= 32, "a u32 mask holds the names to remove");
    static HOP_LENGTHS: LazyLock<u64> =
        LazyLock::new(|| lengths(HOP_BY_HOP.iter().map(|h| h.as_str().len())));
    let doomed_lengths = *HOP_LENGTHS | lengths(also.iter().map(|h| h.as_str().len()));
    let mut doomed = 0u32;
    for name in headers.keys() {
        if doomed_lengths & (1 << name.as_str().len().min(63)) == 0 {
            continue;
        }
        // `HeaderName` equality: names http knows compare as enum values, others by their
        // bytes (parsed names are lower case).
        let hop = HOP_BY_HOP.iter().position(|h| h == name);
        if let Some(i) = hop.or_else(|| also.iter().position(|h| *h == name).map(|i| HOP_BY_HOP.len() + i)) {
            doomed |= 1 << i;
        }
    }
    if doomed == 0 {
        return headers;
    }
    // Bit 0 is `connection` (`HOP_BY_HOP[0]`): the names it lists go too.
    let named = if doomed & 1 != 0 { connection_named(&headers) } else { Vec::new() };
    for (i, name) in HOP_BY_HOP.iter().chain(also.iter().copied()).enumerate() {
        if doomed & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in &named {
        headers.remove(name);
    }
    headers
}

/// The client request, ready to be sent to any node.
#[derive(Debug)]
pub struct Outgoing {
    method: Method,
    /// Path and query, as the client sent them.
    target: PathAndQuery,
    /// End-to-end headers, the request id and the trace context, and `host` and
    /// `content-length` in the places the client had them (their values are set per node and
    /// per body).
    headers: HeaderMap,
    /// `content-length` of `body`.
    length: HeaderValue,
    body: Bytes,
}

impl Outgoing {
    /// Method, path, query, end-to-end headers and body of `req`, with the request id and
    /// trace context set (both checked to be valid header values by the proxy).
    pub fn new(req: Request, request_id: HeaderValue, traceparent: HeaderValue) -> Self {
        let length = match req.headers.get(header::CONTENT_LENGTH) {
            // The client's own value when it is the plain decimal length: shared, not rebuilt.
            Some(given) if is_decimal(given, req.body.len()) => given.clone(),
            _ => HeaderValue::from(req.body.len()),
        };
        let target = req.path_and_query().clone();
        let mut headers = end_to_end(req.headers, &[&RESIDENCY]);
        headers.insert(REQUEST_ID, request_id);
        headers.insert(TRACEPARENT, traceparent);
        Self { method: req.method, target, headers, length, body: req.body }
    }

    /// The same request sent outside the residency zone `zone` (its value for
    /// [`RESIDENCY`]): the node stores nothing about the user.
    pub fn leaving_zone(&self, zone: HeaderValue) -> Self {
        let mut headers = self.headers.clone();
        headers.insert(RESIDENCY, zone);
        Self {
            method: self.method.clone(),
            target: self.target.clone(),
            headers,
            length: self.length.clone(),
            body: self.body.clone(),
        }
    }

    /// The request for `endpoint`.
    fn request(&self, endpoint: &Endpoint) -> Result<http::Request<Full<Bytes>>, AttemptError> {
        let uri = if endpoint.prefix.is_empty() {
            Uri::from(self.target.clone())
        } else {
            let path = format!("{}{}", endpoint.prefix, self.target);
            path.parse::<Uri>().map_err(|e| AttemptError::Invalid(io::Error::other(e)))?
        };
        let mut req = http::Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        // A copy of the prepared map: values are shared, nothing is hashed again.
        let mut headers = self.headers.clone();
        headers.insert(header::HOST, endpoint.authority.clone());
        headers.insert(header::CONTENT_LENGTH, self.length.clone());
        *req.headers_mut() = headers;
        Ok(req)
    }
}

/// Whether `value` is `n` in decimal digits, without a sign or leading zeros.
fn is_decimal(value: &HeaderValue, n: usize) -> bool {
    let digits = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    value.len() == digits && value.to_str().ok().and_then(|v| v.parse::<usize>().ok()) == Some(n)
}

/// A node's answer below 500.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The end-to-end headers the client gets: no length, no `x-failover-from`; the router
    /// replaces any `x-served-by` and `x-request-id` with its own.
    pub headers: HeaderMap,
    pub body: Body,
    /// Until headers, plus the body when buffered.
    pub took: Duration,
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
    Transport(#[source] hyper::Error),
    #[error("invalid answer from the node: {0}")]
    BadAnswer(String),
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

/// One worker's way to the nodes: its own keep-alive connections, by node key
/// ([`crate::regions::Node::key`]). Lives on one worker thread, never shared.
pub struct Upstream {
    pool: Rc<Pool>,
    connector: Connector,
    /// Longest pause within a streamed answer body.
    stream_idle: Duration,
}

#[derive(Default)]
struct Pool {
    /// Per node: oldest first, so the most recently used (warm) connection is taken first and
    /// the expired ones gather at the front.
    idle: RefCell<Vec<Vec<Idle>>>,
}

struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

impl Pool {
    fn checkout(&self, key: usize) -> Option<http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.borrow_mut();
        let queue = idle.get_mut(key)?;
        while let Some(conn) = queue.pop() {
            if conn.since.elapsed() >= POOL_IDLE_TIMEOUT {
                queue.clear(); // the newest has expired: so have all the others
                return None;
            }
            if !conn.sender.is_closed() {
                return Some(conn.sender);
            }
        }
        None
    }

    fn checkin(&self, key: usize, sender: http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() <= key {
            idle.resize_with(key + 1, Vec::new);
        }
        let queue = &mut idle[key];
        if queue.len() >= MAX_IDLE_PER_NODE {
            queue.remove(0);
        }
        queue.push(Idle { sender, since: Instant::now() });
    }

    /// Drop every idle connection to the node `key`.
    fn forget(&self, key: usize) {
        if let Some(queue) = self.idle.borrow_mut().get_mut(key) {
            queue.clear();
        }
    }

    /// Close the connections idle for longer than [`POOL_IDLE_TIMEOUT`] or closed by the node.
    fn sweep(&self) {
        for queue in self.idle.borrow_mut().iter_mut() {
            queue.retain(|c| c.since.elapsed() < POOL_IDLE_TIMEOUT && !c.sender.is_closed());
        }
    }
}

impl Upstream {
    pub fn new(connector: Connector, stream_idle: Duration) -> Self {
        Self { pool: Rc::default(), connector, stream_idle }
    }

    /// Close idle connections once they expire, also while no request comes to reuse them.
    /// Needs the worker's runtime; stops when this `Upstream` is dropped.
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

    /// Idle connections to the node `key` (for tests).
    pub fn idle(&self, key: usize) -> usize {
        self.pool.idle.borrow().get(key).map_or(0, Vec::len)
    }

    /// Send `out` to `node` with a deadline of `timeout`; `repeatable`: safe to send twice
    /// (see the module doc).
    pub async fn send(
        &self,
        node: &Node,
        out: &Outgoing,
        timeout: Duration,
        repeatable: bool,
    ) -> Result<Answer, (AttemptError, Duration)> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let exchange = async {
            let (sender, resp) = self.exchange(node, out, repeatable).await?;
            self.answer(node.key, sender, resp, started).await
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err((e, started.elapsed())),
            Err(_) => Err((AttemptError::Timeout(timeout), started.elapsed())),
        }
    }

    /// The request sent and the answer's head received, on a pooled connection or a new one.
    async fn exchange(
        &self,
        node: &Node,
        out: &Outgoing,
        mut repeatable: bool,
    ) -> Result<(http1::SendRequest<Full<Bytes>>, http::Response<Incoming>), AttemptError> {
        let mut req = out.request(&node.endpoint)?;
        loop {
            let (mut sender, pooled) = match self.pool.checkout(node.key) {
                Some(sender) => (sender, true),
                // Boxed: opening a connection (TCP, TLS, HTTP handshakes) is rare once the
                // pool is warm, and inline its state would enlarge every request's future.
                None => (Box::pin(self.connect(&node.endpoint)).await?, false),
            };
            // A pooled connection still finishing its last answer becomes ready at once.
            if pooled && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((sender, resp)),
                Err(mut e) => match e.take_message() {
                    // Not a byte of it was written: safe to send on another connection.
                    Some(back) if pooled => req = back,
                    Some(_) => return Err(AttemptError::Connect(io::Error::other(e.into_error()))),
                    None if pooled && repeatable && e.error().is_incomplete_message() => {
                        // Closed under the request: the node's other idle ones likely are too.
                        repeatable = false;
                        self.pool.forget(node.key);
                        req = out.request(&node.endpoint)?;
                    }
                    None => return Err(classify(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<http1::SendRequest<Full<Bytes>>, AttemptError> {
        let io = self.connector.connect(endpoint).await.map_err(AttemptError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_ANSWER_HEAD * 2)
            .max_header_size(MAX_ANSWER_HEAD)
            .writev(false)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| AttemptError::Connect(io::Error::other(e)))?;
        tokio::task::spawn_local(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "node connection ended");
            }
        });
        Ok(sender)
    }

    /// Check the answer's head and read or stream its body; the connection goes back to the
    /// pool once its answer was read whole.
    async fn answer(
        &self,
        key: usize,
        sender: http1::SendRequest<Full<Bytes>>,
        resp: http::Response<Incoming>,
        started: Instant,
    ) -> Result<Answer, AttemptError> {
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        if status == 101 || status > 599 {
            return Err(AttemptError::BadAnswer(format!("status {status}")));
        }
        let length = http_body::Body::size_hint(&body).exact();
        let buffered = length.filter(|&n| n <= BUFFER_LIMIT);
        if status >= 500 {
            // Read a short error body so the connection can serve again; else let it go.
            if buffered.is_some() && whole(Limited::new(body, BUFFER_LIMIT as usize)).await.is_ok() {
                self.pool.checkin(key, sender);
            }
            return Err(AttemptError::ServerError(status));
        }
        // `x-served-by` and `x-request-id` are set by the router on every answer it relays,
        // replacing the node's own: not removed here only to be inserted again.
        let headers = end_to_end(parts.headers, &[&header::CONTENT_LENGTH, &FAILOVER_FROM]);
        let body = match buffered {
            Some(_) => {
                let bytes = whole(body).await.map_err(classify)?;
                self.pool.checkin(key, sender);
                Body::Full(Some(bytes))
            }
            // The connection closes once the stream ends: it is not pooled again.
            None => Body::Stream(Box::pin(Streamed::new(body, self.stream_idle))),
        };
        Ok(Answer { status, headers, body, took: started.elapsed() })
    }
}

/// What a hyper client error means for the attempt.
fn classify(e: hyper::Error) -> AttemptError {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        AttemptError::BadAnswer(e.to_string())
    } else if e.is_user() {
        AttemptError::Invalid(io::Error::other(e))
    } else {
        AttemptError::Transport(e)
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::SERVED_BY;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn only_end_to_end_headers_pass_and_repeated_values_keep_their_order() {
        let given = map(&[
            ("host", "client"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("accept", "a"),
            ("x-served-by", "node"),
            ("accept", "b"),
            ("proxy-connection", "close"),
            ("x-custom", "kept"),
        ]);
        let kept = end_to_end(given, &[&SERVED_BY]);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "host", "x-custom"]);
        let accept: Vec<&str> = kept.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(accept, ["a", "b"]);
    }

    #[test]
    fn only_plain_decimal_lengths_are_reused() {
        let v = HeaderValue::from_static;
        assert!(is_decimal(&v("0"), 0) && is_decimal(&v("9"), 9) && is_decimal(&v("10"), 10));
        assert!(is_decimal(&v("262144"), 262_144));
        for (given, n) in [("07", 7), ("+7", 7), ("8", 7), ("", 0), (" 7", 7), ("1000", 100)] {
            assert!(!is_decimal(&v(given), n), "{given:?} for {n}");
        }
    }
}
