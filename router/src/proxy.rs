//! Forwarding with failover: pick the region, send, and on a retryable failure try the next
//! best region while the retry budget allows.
//!
//! The region hint comes from `X-Region-Hint` (or `Region-Hint`), else from the JSON body's
//! `region` field; the body is parsed only when no header hint was sent, and a body that is
//! not JSON is forwarded untouched so the node can reject it.

use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::front::request::Request;
use crate::front::response::{Body, Response};
use crate::metrics::NO_REGION;
use crate::regions::RegionState;
use crate::upstream::{Answer, AnswerBody, Outgoing, Upstream, UpstreamError, REQUEST_ID};
use crate::AppState;

pub const HINT_HEADERS: [&str; 2] = ["x-region-hint", "region-hint"];
pub const SERVED_BY: &str = "x-served-by";
pub const FAILOVER_FROM: &str = "x-failover-from";
/// Nodes of one region tried for one request before moving to the next region.
const NODES_TRIED_PER_REGION: usize = 2;
/// Longest client-supplied request id passed on; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// What one worker thread needs to forward: its own connections to the nodes (they stay on
/// the worker's runtime) and the shared router state.
#[derive(Debug)]
pub struct Proxy {
    pub upstream: Upstream,
    pub state: AppState,
}

/// Why a request could not be served. Mapped to HTTP in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("unknown region {hint:?}; valid regions: {}", known.join(", "))]
    UnknownRegion { hint: String, known: Vec<String> },
    #[error("no healthy region: every region is down or drained")]
    NoHealthyRegion { states: Vec<(String, RegionState)> },
    #[error("all {} region(s) tried failed", attempts.len())]
    AllRegionsFailed { attempts: Vec<UpstreamError> },
    #[error("retry budget exhausted after: {last}")]
    BudgetExhausted {
        #[source]
        last: UpstreamError,
    },
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("{0}; not retried in another region: the node may have stored the events, and a retry could store them twice")]
    MaybeApplied(UpstreamError),
}

/// `POST /recommendations`, `POST /api/v1/recommendations/user/{user_id}`, `POST /events`.
pub async fn forward(proxy: &Proxy, req: Request) -> Response {
    let started = Instant::now();
    let state = &proxy.state;
    let request_id = request_id(&req);
    let (mut resp, region) = match route(proxy, &req, &request_id).await {
        Ok(served) => served,
        Err(e) => {
            match &e {
                // Expected outcomes, or (no healthy region) already logged as state changes:
                // a log line per request would flood the log during an outage.
                RouteError::UnknownRegion { .. } | RouteError::NoHealthyRegion { .. } => {
                    debug!(request_id, error = %e, "not routed")
                }
                _ => warn!(request_id, error = %e, "request failed"),
            }
            (e.response(), NO_REGION)
        }
    };
    resp.set_header(REQUEST_ID, request_id);
    state.metrics.request_served(region, resp.status);
    state.metrics.request_seconds.observe(started.elapsed().as_secs_f64());
    resp
}

async fn route<'a>(
    proxy: &'a Proxy,
    req: &Request,
    request_id: &str,
) -> Result<(Response, &'a str), RouteError> {
    let state = &proxy.state;
    let regions = &state.regions;
    let hint = match hint(req) {
        None => None,
        Some(h) => Some(
            regions.find(&h).ok_or_else(|| RouteError::UnknownRegion { hint: h, known: regions.names() })?,
        ),
    };
    let plan = regions.plan(hint);
    if plan.is_empty() {
        return Err(no_healthy_region(state));
    }
    // Events are appended, not looked up: after an attempt the node may have acted on, another
    // region would store them twice. Only failures that did nothing are retried.
    let at_most_once = req.path() == "/events";
    let out = Outgoing::new(req, request_id);
    state.budget.deposit();
    let mut failures: Vec<UpstreamError> = Vec::new();
    let mut _retry = None;
    let mut budget_spent = false;
    'plan: for idx in plan {
        let region = regions.get(idx);
        let mut failed_node = None;
        // A failed node gets one sibling in its region tried before the request moves on:
        // a replica is closer than another region, and a region-wide outage costs one try.
        for _ in 0..NODES_TRIED_PER_REGION {
            // The plan is a snapshot: nodes may have gone down while earlier attempts ran.
            let Some(n) = region.pick(failed_node) else { continue 'plan };
            let node = &region.nodes[n];
            if let Some(last) = failures.last() {
                let Some(permit) = state.budget.try_retry() else {
                    state.metrics.retries_refused.inc();
                    budget_spent = true;
                    break 'plan;
                };
                _retry = Some(permit);
                state.metrics.retries.with_label_values(&[last.region.as_str()]).inc();
            }
            let attempt = {
                let _in_flight = node.start();
                let timeout = attempt_timeout(&state.settings, node.ewma.observed());
                proxy.upstream.send(node, &out, timeout).await
            };
            let latency = state.metrics.upstream_seconds.with_label_values(&[region.name.as_str()]);
            match attempt {
                Ok(answer) => {
                    region.record_success(n, answer.took);
                    latency.observe(answer.took.as_secs_f64());
                    let hinted = hint.map(|h| regions.get(h).name.as_str());
                    let from = failed_over_from(hinted, &failures, &region.name);
                    if let Some(from) = from {
                        state.metrics.failovers.with_label_values(&[from, region.name.as_str()]).inc();
                        debug!(request_id, from, to = %region.name, "failed over");
                    }
                    return Ok((relay(answer, &region.name, from), region.name.as_str()));
                }
                Err((kind, took)) => {
                    let err =
                        UpstreamError { region: region.name.clone(), node: node.url.clone(), kind, took };
                    if !err.is_retryable() {
                        return Err(RouteError::Upstream(err));
                    }
                    region.record_failure(n, took, &state.settings.health, &state.metrics);
                    latency.observe(took.as_secs_f64());
                    let (node, error) = (&node.url, err.kind.detail());
                    warn!(request_id, region = %region.name, node, error, "attempt failed");
                    if at_most_once && !err.kind.nothing_done() {
                        return Err(RouteError::MaybeApplied(err));
                    }
                    failures.push(err);
                    failed_node = Some(n);
                }
            }
        }
    }
    match failures.pop() {
        None => Err(no_healthy_region(state)),
        Some(last) if budget_spent => Err(RouteError::BudgetExhausted { last }),
        Some(last) => {
            failures.push(last);
            Err(RouteError::AllRegionsFailed { attempts: failures })
        }
    }
}

/// The region a served request moved away from: the hint when another region served it,
/// else (unhinted) the first region that failed, if that is not the one that served.
fn failed_over_from<'a>(
    hint: Option<&'a str>,
    failures: &'a [UpstreamError],
    served: &str,
) -> Option<&'a str> {
    match hint {
        Some(h) => (h != served).then_some(h),
        None => failures.first().map(|f| f.region.as_str()).filter(|r| *r != served),
    }
}

fn no_healthy_region(state: &AppState) -> RouteError {
    RouteError::NoHealthyRegion {
        states: state.regions.iter().map(|r| (r.name.clone(), r.state())).collect(),
    }
}

/// The node's answer as the client gets it: status, end-to-end headers and body unchanged,
/// plus `x-served-by` (overwriting the node's own) and `x-failover-from` when it applies.
fn relay(answer: Answer, served_by: &str, failed_over_from: Option<&str>) -> Response {
    let body = match answer.body {
        AnswerBody::Full(bytes) => Body::Full(bytes),
        AnswerBody::Stream(stream, len) => Body::Stream(stream, len),
    };
    // Already without hop-by-hop headers and those set here (`upstream::is_relayed`).
    let mut headers = answer.headers;
    headers.push((Bytes::from_static(SERVED_BY.as_bytes()), Bytes::copy_from_slice(served_by.as_bytes())));
    if let Some(from) = failed_over_from {
        headers.push((Bytes::from_static(FAILOVER_FROM.as_bytes()), Bytes::copy_from_slice(from.as_bytes())));
    }
    Response { status: answer.status, headers, body }
}

/// The client's `x-request-id` if it is sensible, else a fresh random one.
/// Only printable ASCII is kept, so the id is a valid header value wherever it goes.
pub fn request_id(req: &Request) -> String {
    req.header_str(REQUEST_ID)
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        })
        .map_or_else(random_id, str::to_string)
}

/// 128 random bits as 32 hex digits (without `format!`: this runs for most requests).
fn random_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    (0..32).rev().map(|i| char::from(HEX[(bits >> (i * 4)) as usize & 0xf])).collect()
}

/// The hinted region name, if any: headers first, then the JSON body's `region`.
pub fn hint(req: &Request) -> Option<String> {
    let from_header = HINT_HEADERS.iter().filter_map(|h| req.header_str(h)).find(|v| !v.is_empty());
    if let Some(h) = from_header {
        return Some(h.to_string());
    }
    hint_from_body(&req.body)
}

/// `region` of a JSON object body; `None` for any other body (left for the node to judge).
fn hint_from_body(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct BodyHint {
        #[serde(default)]
        region: Option<String>,
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<BodyHint>(body)
        .ok()?
        .region
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A POST with `headers` (`Name: value` lines) and `body`.
    fn post(headers: &str, body: &str) -> Request {
        let raw = format!(
            "POST /recommendations HTTP/1.1\r\n{headers}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        Request::from_bytes(raw.as_bytes()).expect("valid request")
    }

    #[test]
    fn header_hint_wins_and_body_is_the_fallback() {
        let body = r#"{"user_id": 1, "region": "eu-west"}"#;
        assert_eq!(hint(&post("Region-Hint:  us-east \r\n", body)).as_deref(), Some("us-east"));
        assert_eq!(hint(&post("X-Region-Hint: ap-south\r\n", body)).as_deref(), Some("ap-south"));
        assert_eq!(hint(&post("", body)).as_deref(), Some("eu-west"));
    }

    #[test]
    fn bodies_without_a_usable_region_give_no_hint() {
        for body in
            [&b""[..], b"not json", b"{\"user_id\": 1", b"{\"region\": 5}", b"{\"region\": null}", b"[1]"]
        {
            assert_eq!(hint_from_body(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        assert_eq!(request_id(&post("X-Request-Id: abc-123\r\n", "")), "abc-123");
        let a = request_id(&post("", ""));
        let b = request_id(&post("", ""));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
        let long = format!("x-request-id: {}\r\n", "x".repeat(MAX_REQUEST_ID + 1));
        assert_eq!(request_id(&post(&long, "")).len(), 32);
        assert_eq!(request_id(&post("x-request-id: a b\r\n", "")), "a b");
        assert_eq!(request_id(&post("x-request-id: caf\u{e9}\r\n", "")).len(), 32, "not ASCII");
    }
}

/// Deadline of one attempt: a multiple of what this node usually takes, so a node that
/// accepts and never answers is given up on in milliseconds; the configured request
/// timeout before anything is known and as the ceiling.
pub fn attempt_timeout(
    s: &crate::settings::Settings,
    observed: Option<std::time::Duration>,
) -> std::time::Duration {
    match observed {
        Some(latency) => {
            (latency * s.attempt_timeout_factor).max(s.attempt_timeout_floor).min(s.request_timeout)
        }
        None => s.request_timeout,
    }
}

#[cfg(test)]
mod timeout_tests {
    use std::time::Duration;

    use super::attempt_timeout;
    use crate::settings::{Settings, Tuning};

    fn settings() -> Settings {
        let text = include_str!("../../regions.toml");
        let cluster = model_sync::config::ClusterConfig::from_toml_str(text, Vec::new()).expect("valid");
        Settings::new(&cluster, None, &Tuning::default()).expect("valid settings")
    }

    #[test]
    fn attempt_timeout_follows_latency_within_floor_and_ceiling() {
        let s = settings();
        let ms = Duration::from_millis;
        assert_eq!(attempt_timeout(&s, None), s.request_timeout, "nothing known: the full timeout");
        assert_eq!(attempt_timeout(&s, Some(ms(2))), ms(100), "fast node: the floor");
        assert_eq!(attempt_timeout(&s, Some(ms(20))), ms(400), "20x the estimate");
        assert_eq!(attempt_timeout(&s, Some(ms(900))), s.request_timeout, "never above the request timeout");
    }
}
