//! A client's request as the handlers see it: method, origin-form target, headers and the
//! whole body. hyper frames and parses it ([`super`]); what is checked here is what hyper
//! leaves to the application: the `Host` rules of RFC 9112 section 3.2, transfer codings other
//! than `chunked`, and the body's length and time, each refused with the status that says
//! what is wrong.

use bytes::Bytes;
use futures::FutureExt;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

/// One request, head and whole body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path and query (origin form, also for absolute-form targets); never a fragment.
    target: PathAndQuery,
    pub headers: HeaderMap,
    pub version: Version,
    pub body: Bytes,
    /// The TCP peer (a client, or a proxy in front of it); `None` for requests built in tests.
    pub peer: Option<std::net::SocketAddr>,
}

/// Why a request is refused; the connection is closed after the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request body larger than the {limit} bytes allowed (--max-body-bytes)")]
    BodyTooLarge { limit: usize },
    #[error("the request was not complete within {0} ms (--client-timeout-ms)")]
    Timeout(u128),
    #[error("transfer-encoding {0:?} is not supported: send the body with content-length or chunked")]
    UnsupportedEncoding(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) => 400,
            Refusal::BodyTooLarge { .. } => 413,
            Refusal::Timeout(_) => 408,
            Refusal::UnsupportedEncoding(_) => 501,
        }
    }

    /// The JSON the client gets: `{"error": code, "message": text}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.code(), "message": self.to_string() }).to_string()
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed_request",
            Refusal::BodyTooLarge { .. } => "body_too_large",
            Refusal::Timeout(_) => "request_timeout",
            Refusal::UnsupportedEncoding(_) => "unsupported_transfer_encoding",
        }
    }
}

fn malformed(what: impl Into<String>) -> Refusal {
    Refusal::Malformed(what.into())
}

impl Request {
    /// Check the head of `req` and read its body (at most `max_body` bytes, all of it before
    /// `deadline`).
    pub async fn read(
        req: http::Request<Incoming>,
        max_body: usize,
        deadline: Instant,
        timeout_ms: u128,
    ) -> Result<Self, Refusal> {
        let (parts, body) = req.into_parts();
        check_host(&parts.headers, parts.version)?;
        let target = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        // hyper takes raw UTF-8 in a target; RFC 3986 does not (it must be percent-encoded).
        if !target.as_str().bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("the request target has bytes that are not ASCII: percent-encode them"));
        }
        // hyper decodes `chunked` when it is the last coding; any other coding would reach the
        // node undecoded and unlabelled.
        for te in parts.headers.get_all(TRANSFER_ENCODING) {
            if !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::UnsupportedEncoding(
                    String::from_utf8_lossy(te.as_bytes()).into_owned(),
                ));
            }
        }
        // An announced length over the limit is refused before a byte of the body is read
        // (and before `100 Continue`, which hyper sends only when the body is polled).
        let announced = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|n| n > max_body as u64) {
            return Err(Refusal::BodyTooLarge { limit: max_body });
        }
        // A small body has usually arrived with its head: then no timer is needed.
        let mut collect = std::pin::pin!(Limited::new(body, max_body).collect());
        let collected = match (&mut collect).now_or_never() {
            Some(done) => Ok(done),
            None => tokio::time::timeout_at(deadline, collect).await,
        };
        let body = match collected {
            Err(_) => return Err(Refusal::Timeout(timeout_ms)),
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Refusal::BodyTooLarge { limit: max_body })
            }
            Ok(Err(e)) => return Err(malformed(format!("invalid body: {e}"))),
        };
        Ok(Self {
            method: parts.method,
            target,
            headers: parts.headers,
            version: parts.version,
            body,
            peer: None,
        })
    }

    /// A request built directly, for tests.
    pub fn new(method: Method, target: &'static str, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        let target = PathAndQuery::from_static(target);
        Self { method, target, headers, version: Version::HTTP_11, body: body.into(), peer: None }
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// Path and query, as sent (origin form).
    pub fn target(&self) -> &str {
        self.target.as_str()
    }

    /// Path and query, sharing the received bytes.
    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.target
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.path()
    }

    /// The first value of header `name` as text, trimmed; `None` if absent or not visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
    }
}

/// RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one `Host`; any `Host` sent
/// must be a valid `host[:port]` (empty is allowed).
fn check_host(headers: &HeaderMap, version: Version) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(HOST).iter();
    let Some(host) = hosts.next() else {
        return if version == Version::HTTP_11 { Err(malformed("missing Host header")) } else { Ok(()) };
    };
    if hosts.next().is_some() {
        return Err(malformed("more than one Host header"));
    }
    let valid = host.is_empty()
        || host.to_str().ok().is_some_and(|h| {
            !h.contains('@') && !h.contains(['/', '?', '#']) && h.parse::<http::uri::Authority>().is_ok()
        });
    if !valid {
        return Err(malformed(format!("invalid Host header {:?}", String::from_utf8_lossy(host.as_bytes()))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let v11 = Version::HTTP_11;
        assert!(check_host(&headers(&[("host", "router:8080")]), v11).is_ok());
        assert!(check_host(&headers(&[("host", "[::1]:80")]), v11).is_ok());
        assert!(check_host(&headers(&[("host", "")]), v11).is_ok());
        assert!(check_host(&headers(&[]), Version::HTTP_10).is_ok());
        for bad in [vec![], vec![("host", "a"), ("host", "a")], vec![("host", "a b")], vec![("host", "u@h")]]
        {
            let err = check_host(&headers(&bad), v11).expect_err("refused");
            assert_eq!(err.status(), 400, "{bad:?}");
        }
        assert!(check_host(&headers(&[("host", "x/y")]), Version::HTTP_10).is_err());
    }

    #[test]
    fn paths_drop_the_query() {
        let r = Request::new(Method::POST, "/api/v1/recommendations/user/7?count=2", HeaderMap::new(), "");
        assert_eq!((r.method(), r.path()), ("POST", "/api/v1/recommendations/user/7"));
        assert_eq!(r.target(), "/api/v1/recommendations/user/7?count=2");
    }
}
