//! Nodes that [`super::h1`] does not serve (`https://`, credentials in the URL): reqwest.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{is_relayed, Answer, AnswerBody, AttemptError, Outgoing, BUFFER_LIMIT, POOL_IDLE_TIMEOUT};

/// Request headers a client may send (actix accepts 96) plus the router's own.
const MAX_HEADERS: usize = 128;

/// Send `out` to the node at `base` with a deadline of `timeout`.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    out: &Outgoing,
    timeout: Duration,
) -> Result<Answer, (AttemptError, Duration)> {
    let started = Instant::now();
    let classify = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            AttemptError::Timeout(timeout)
        } else if e.is_connect() {
            AttemptError::Connect(io::Error::other(e))
        } else if e.is_builder() {
            AttemptError::Invalid(io::Error::other(e))
        } else {
            AttemptError::Transport(io::Error::other(e))
        };
        (kind, started.elapsed())
    };
    let mut url = String::with_capacity(base.len() + out.target().len());
    url.push_str(base);
    url.push_str(&String::from_utf8_lossy(out.target()));
    let method = reqwest::Method::from_bytes(out.method()).unwrap_or(reqwest::Method::POST);
    let mut resp = client
        .request(method, url)
        .headers(headers(&out.head))
        .body(out.body.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(classify)?;
    let status = resp.status().as_u16();
    if status >= 500 {
        return Err((AttemptError::ServerError(status), started.elapsed()));
    }
    let headers = std::mem::take(resp.headers_mut())
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.filter(|n| is_relayed(n.as_str().as_bytes()))?;
            Some((Bytes::copy_from_slice(name.as_str().as_bytes()), Bytes::copy_from_slice(value.as_bytes())))
        })
        .collect();
    let len = resp.content_length();
    let body = match len {
        Some(n) if n <= BUFFER_LIMIT => AnswerBody::Full(resp.bytes().await.map_err(classify)?),
        _ => AnswerBody::Stream(Box::pin(chunks(resp)), len),
    };
    Ok(Answer { status, headers, body, took: started.elapsed() })
}

/// The node's body as a stream of chunks, ending after the first error.
fn chunks(resp: reqwest::Response) -> impl futures::Stream<Item = Result<Bytes, io::Error>> {
    futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(io::Error::other(e)), None)),
        }
    })
}

/// The forwarded headers of [`Outgoing`], which keeps them serialised; reqwest sets the
/// length itself.
fn headers(head: &[u8]) -> HeaderMap {
    let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut map = HeaderMap::new();
    if let Ok(httparse::Status::Complete((_, parsed))) = httparse::parse_headers(head, &mut parsed) {
        for h in parsed.iter().filter(|h| !h.name.eq_ignore_ascii_case("content-length")) {
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
            {
                map.append(n, v);
            }
        }
    }
    map
}

/// Keep-alive pool, no system proxy, no decompression, no redirects, no retries of its own.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .retry(reqwest::retry::never())
        .referer(false)
        .build()
}
