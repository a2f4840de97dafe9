//! A client's request as the handlers see it: method, origin-form target, headers and the
//! whole body. hyper frames and parses it ([`super`]); what is checked here is what hyper
//! leaves to the application: the `Host` rules of RFC 9112 section 3.2, transfer codings other
//! than `chunked`, and the body's length and time, each refused with the status that says
//! what is wrong.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

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
    /// Check the head of `req` and read its body (at most `max_body` bytes, all of it within
    /// `timeout`).
    pub async fn read(
        req: http::Request<Incoming>,
        max_body: usize,
        timeout: Duration,
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
        let mut collect = std::pin::pin!(whole(Limited::new(body, max_body)));
        let collected = match (&mut collect).now_or_never() {
            Some(done) => Ok(done),
            None => tokio::time::timeout(timeout, collect).await,
        };
        let body = match collected {
            Err(_) => return Err(Refusal::Timeout(timeout.as_millis())),
            Ok(Ok(b)) => b,
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

/// `body` read whole (trailers are dropped). A body that arrives as one frame, as most do,
/// is that frame's bytes, shared with the read buffer; http_body_util's `Collected` would
/// first put every frame in a list of its own, an allocation per message.
pub async fn whole<B>(mut body: B) -> Result<Bytes, B::Error>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        match (&mut first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(one), None) => {
                let mut both = BytesMut::with_capacity(one.len() + data.len());
                both.extend_from_slice(one);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
            (Some(_), Some(all)) => all.extend_from_slice(&data),
        }
    }
    Ok(match joined {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
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
        || plain_host(host.as_bytes())
        || host.to_str().ok().is_some_and(|h| {
            !h.contains('@') && !h.contains(['/', '?', '#']) && h.parse::<http::uri::Authority>().is_ok()
        });
    if !valid {
        return Err(malformed(format!("invalid Host header {:?}", String::from_utf8_lossy(host.as_bytes()))));
    }
    Ok(())
}

/// `name` or `name:port` with a name of letters, digits, dots and hyphens: what nearly every
/// `Host` is, and valid without a full parse (which copies the value to check it).
fn plain_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    !name.is_empty()
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit))
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

    #[tokio::test]
    async fn whole_bodies_share_a_single_frame_and_join_several() {
        use http_body::Frame;
        use http_body_util::{Full, StreamBody};
        let one = Bytes::from_static(b"{\"user_id\": 1}");
        let got = whole(Full::new(one.clone())).await.expect("whole");
        assert_eq!((got.as_ptr(), got.len()), (one.as_ptr(), one.len()), "not copied");
        let pieces = [&b"ab"[..], b"", b"cd", b"e"]
            .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(b))));
        let mut frames = Vec::from(pieces);
        frames.push(Ok(Frame::trailers(HeaderMap::new())));
        let got = whole(StreamBody::new(futures::stream::iter(frames))).await.expect("whole");
        assert_eq!(got, "abcde");
        let empty = whole(StreamBody::new(futures::stream::iter(Vec::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >::new())));
        assert_eq!(empty.await.expect("whole"), "");
    }

    #[test]
    fn plain_hosts_are_a_subset_of_valid_authorities() {
        for plain in ["router", "router:8080", "a.b-c.example", "127.0.0.1:80"] {
            assert!(plain_host(plain.as_bytes()), "{plain}");
            assert!(plain.parse::<http::uri::Authority>().is_ok(), "{plain}");
        }
        for other in ["", ":80", "h:", "h:123456", "h:8a", "[::1]:80", "u@h", "a b", "h:1:2", "é"] {
            assert!(!plain_host(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn paths_drop_the_query() {
        let r = Request::new(Method::POST, "/api/v1/recommendations/user/7?count=2", HeaderMap::new(), "");
        assert_eq!((r.method(), r.path()), ("POST", "/api/v1/recommendations/user/7"));
        assert_eq!(r.target(), "/api/v1/recommendations/user/7?count=2");
    }
}
