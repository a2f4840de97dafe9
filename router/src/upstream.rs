//! One attempt to one node: the client request replayed as-is, and the typed ways it fails.
//!
//! The request body is held as `Bytes` (shared, never copied or re-serialised) so a retry can
//! send it again. Small answers with a known length are read whole within the attempt's
//! deadline, so a node dying mid-body is still a retryable failure; anything else streams.

use std::time::{Duration, Instant};

use actix_web::http::header as ax;
use actix_web::HttpRequest;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Answers up to this size with a known length are buffered (see the module doc).
pub const BUFFER_LIMIT: u64 = 256 * 1024;
/// Idle pooled connections are dropped before the nodes' keep-alive (actix default: 5 s)
/// would close them under us, which would turn a reused connection into a spurious failure.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

pub const REQUEST_ID: &str = "x-request-id";

/// The client request, ready to be sent to any node.
#[derive(Debug)]
pub struct Outgoing {
    method: reqwest::Method,
    path_and_query: String,
    /// Split once here, so each attempt sets them on a pre-parsed node URL.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Outgoing {
    /// Copy method, path, query and end-to-end headers of `req`; set the request id.
    pub fn new(req: &HttpRequest, body: Bytes, request_id: &str) -> Self {
        let method =
            reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or(reqwest::Method::POST);
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let mut headers = HeaderMap::with_capacity(req.headers().len() + 1);
        for (name, value) in req.headers() {
            if is_hop_by_hop(name) || name == ax::HOST || name == ax::CONTENT_LENGTH || name == REQUEST_ID {
                continue;
            }
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
            {
                headers.append(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID, v);
        }
        Self { method, path_and_query, path, query, headers, body }
    }
}

/// Headers that describe one connection, not the message: never forwarded either way.
pub fn is_hop_by_hop(name: &ax::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
    )
}

/// A node's answer below 500.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: AnswerBody,
    /// Until headers, plus the body when buffered.
    pub took: Duration,
}

#[derive(Debug)]
pub enum AnswerBody {
    Full(Bytes),
    /// Large or unknown length: relayed chunk by chunk; `Some(len)` when the node said.
    Stream(reqwest::Response, Option<u64>),
}

/// Why an attempt failed. Everything but [`AttemptError::Invalid`] is worth retrying on
/// another region: recommendation requests are safe to repeat.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot connect")]
    Connect(#[source] reqwest::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("node answered {0}")]
    ServerError(u16),
    #[error("connection failed during the exchange")]
    Transport(#[source] reqwest::Error),
    #[error("request cannot be sent")]
    Invalid(#[source] reqwest::Error),
}

impl AttemptError {
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

/// A node's base URL parsed once, so an attempt does not re-parse scheme and host.
/// `None` when it cannot be parsed or has a path of its own: the URL is then built as text.
pub fn parse_base(base: &str) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(base).ok()?;
    (url.path() == "/" && url.query().is_none() && !base.ends_with('/') && !url.cannot_be_a_base())
        .then_some(url)
}

/// Send `out` to the node at `base` (pre-parsed as `parsed` when possible, see
/// [`parse_base`]) with a deadline of `timeout`.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    parsed: Option<&reqwest::Url>,
    out: &Outgoing,
    timeout: Duration,
) -> Result<Answer, (AttemptError, Duration)> {
    let started = Instant::now();
    let classify = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            AttemptError::Timeout(timeout)
        } else if e.is_connect() {
            AttemptError::Connect(e)
        } else if e.is_builder() {
            AttemptError::Invalid(e)
        } else {
            AttemptError::Transport(e)
        };
        (kind, started.elapsed())
    };
    let builder = match parsed {
        Some(parsed) => {
            let mut url = parsed.clone();
            url.set_path(&out.path);
            url.set_query(out.query.as_deref());
            client.request(out.method.clone(), url)
        }
        None => {
            let mut url = String::with_capacity(base.len() + out.path_and_query.len());
            url.push_str(base);
            url.push_str(&out.path_and_query);
            client.request(out.method.clone(), url)
        }
    };
    let mut resp = builder
        .headers(out.headers.clone())
        .body(out.body.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(classify)?;
    let status = resp.status().as_u16();
    if status >= 500 {
        return Err((AttemptError::ServerError(status), started.elapsed()));
    }
    let headers = std::mem::take(resp.headers_mut());
    let len = resp.content_length();
    let body = match len {
        Some(n) if n <= BUFFER_LIMIT => AnswerBody::Full(resp.bytes().await.map_err(classify)?),
        _ => AnswerBody::Stream(resp, len),
    };
    Ok(Answer { status, headers, body, took: started.elapsed() })
}

/// The client used towards the nodes: keep-alive pool, no system proxy, no decompression.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        // Nodes speak HTTP/1.1 over plain TCP; attempts are retried by the proxy itself.
        .http1_only()
        .retry(reqwest::retry::never())
        .referer(false)
        .build()
}
