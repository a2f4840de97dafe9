//! Forwarding with failover: pick the region, send, and on a retryable failure try the next
//! best region while the retry budget allows.
//!
//! The region hint comes from `X-Region-Hint` (or `Region-Hint`), else from the JSON body's
//! `region` field; the body is parsed only when no header hint was sent, and a body that is
//! not JSON is forwarded untouched so the node can reject it.
//!
//! Two rules keep a request that fails everywhere (a "request of death") from hurting anyone
//! else: only its first failure counts towards ejecting a node (the others say more about
//! the request than about the nodes), and its retries come out of the shared budget.
//!
//! Residency: a request belongs to the zone of its hinted region (else of the region that would
//! serve it first). `POST /events` never leaves that zone: when none of its regions can take
//! it, the answer is `503 residency_unavailable` (nothing was sent: safe to retry). A read that
//! fails over out of the zone carries `x-georec-residency-zone`, and the node answers without
//! storing anything about the user.
//!
//! Every request carries an `x-request-id` and a W3C `traceparent` to the node: the client's
//! own when they are valid, else fresh ones; both are logged and returned.

use std::borrow::Cow;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::{debug, warn};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::front::request::Request;
use crate::front::response::Response;
use crate::headers::{FAILOVER_FROM, HINT_HEADERS, REQUEST_ID, SERVED_BY, TRACEPARENT};
use crate::metrics::NO_REGION;
use crate::regions::state::RegionState;
use crate::regions::Region;
use crate::upstream::{Answer, Outgoing, Upstream, UpstreamError};

/// Nodes of one region tried for one request before moving to the next region.
const NODES_TRIED_PER_REGION: usize = 2;
/// Longest client-supplied request id passed on; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 128;

/// What one worker thread needs to forward: its own connections to the nodes (they stay on
/// the worker's runtime) and the shared router state.
#[derive(Debug)]
pub struct Proxy {
    pub upstream: Upstream,
    pub state: AppState,
}

/// Why a request could not be served. Mapped to HTTP in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("unknown region {hint:?}; valid regions: {}", known.join(", "))]
    UnknownRegion { hint: String, known: Vec<String> },
    #[error("no healthy region: every region is drained")]
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
    #[error("no region of residency zone {zone:?} can take the events now, and they do not leave the zone; nothing was stored: retry later")]
    ResidencyUnavailable { zone: String, states: Vec<(String, RegionState)> },
}

/// `POST /recommendations`, `POST /api/v1/recommendations/user/{user_id}`, `POST /events`.
pub async fn forward(proxy: &Proxy, req: Request) -> Response {
    let started = Instant::now();
    let state = &proxy.state;
    let ids = Ids::of(&req);
    let (mut resp, region) = match route(proxy, req, &ids).await {
        Ok(served) => served,
        Err(e) => {
            let (request_id, trace_id) = (ids.request_id(), ids.trace_id());
            match &e {
                // Expected outcomes, or (no healthy region) already logged as state changes:
                // a log line per request would flood the log during an outage.
                RouteError::UnknownRegion { .. } | RouteError::NoHealthyRegion { .. } => {
                    debug!(request_id, trace_id, error = %e, "not routed")
                }
                _ => warn!(request_id, trace_id, error = %e, "request failed"),
            }
            (e.response(), NO_REGION)
        }
    };
    resp.set_header(REQUEST_ID, ids.request_id.clone());
    resp.set_header(TRACEPARENT, ids.traceparent.clone());
    state.metrics.request_served(region, resp.status);
    state.metrics.request_seconds.observe(started.elapsed().as_secs_f64());
    resp
}

async fn route<'a>(proxy: &'a Proxy, req: Request, ids: &Ids) -> Result<(Response, &'a str), RouteError> {
    let state = &proxy.state;
    let regions = &state.regions;
    let hint = match hint(&req) {
        None => None,
        Some(h) => Some(
            regions
                .find(&h)
                .ok_or_else(|| RouteError::UnknownRegion { hint: h.into_owned(), known: regions.names() })?,
        ),
    };
    let mut tries = regions.tries(hint);
    let panic = tries.panic();
    if panic {
        state.metrics.panic_requests.inc();
    }
    // Events are appended, not looked up: after an attempt the node may have acted on, another
    // region would store them twice. Only failures that did nothing are retried.
    let at_most_once = req.path() == "/events";
    let home = hint.or(tries.first()).map(|i| regions.get(i));
    let zone = home.and_then(|r| r.zone.as_deref().zip(r.zone_header.as_ref()));
    // Events stay in their zone: regions outside it are skipped.
    let kept_in = zone.filter(|_| at_most_once).map(|(z, _)| z);
    let stays = |i: usize| kept_in.is_none_or(|z| regions.get(i).zone.as_deref() == Some(z));
    if let Some(z) = kept_in {
        if !tries.any(regions, stays) {
            let states = regions
                .iter()
                .filter(|r| r.zone.as_deref() == Some(z))
                .map(|r| (r.name.clone(), r.state()))
                .collect();
            return Err(RouteError::ResidencyUnavailable { zone: z.to_string(), states });
        }
    }
    if tries.first().is_none() {
        return Err(no_healthy_region(state));
    }
    let out = Outgoing::new(req, ids.request_id.clone(), ids.traceparent.clone());
    // The same request for regions outside the zone, made when first needed.
    let mut leaving: Option<Outgoing> = None;
    let (request_id, trace_id) = (ids.request_id(), ids.trace_id());
    state.budget.deposit();
    let mut failures: Vec<UpstreamError> = Vec::new();
    let mut budget_spent = false;
    'plan: while let Some(idx) = tries.next(regions) {
        if !stays(idx) {
            continue;
        }
        let region = regions.get(idx);
        let mut failed_node = None;
        // A failed node gets one sibling in its region tried before the request moves on:
        // a replica is closer than another region, and a region-wide outage costs one try.
        for _ in 0..NODES_TRIED_PER_REGION {
            // The plan is a snapshot: nodes may have gone down while earlier attempts ran.
            let Some(n) = region.pick(failed_node, panic) else { continue 'plan };
            let node = &region.nodes[n];
            if let Some(last) = failures.last() {
                if !state.budget.try_retry() {
                    state.metrics.retries_refused.inc();
                    budget_spent = true;
                    break 'plan;
                }
                state.metrics.retries.with_label_values(&[last.region.as_str()]).inc();
            }
            let attempt = {
                let _in_flight = node.start();
                // A short deadline buys a quick retry elsewhere; events get no retry after a
                // timeout, so a short one would only turn a slow fsync into a failed request.
                let timeout = match at_most_once {
                    true => state.settings.request_timeout,
                    false => attempt_timeout(&state.settings, node.ewma.observed()),
                };
                let out = match zone {
                    Some((z, header)) if region.zone.as_deref() != Some(z) => {
                        &*leaving.get_or_insert_with(|| out.leaving_zone(header.clone()))
                    }
                    _ => &out,
                };
                proxy.upstream.send(node, out, timeout, !at_most_once).await
            };
            match attempt {
                Ok(answer) => {
                    region.record_success(n, answer.took);
                    state.metrics.observe_upstream(&region.name, answer.took.as_secs_f64());
                    let hinted = hint.map(|h| regions.get(h).name.as_str());
                    let from = failed_over_from(hinted, &failures, &region.name);
                    if let Some(from) = from {
                        state.metrics.failovers.with_label_values(&[from, region.name.as_str()]).inc();
                        debug!(request_id, trace_id, from, to = %region.name, "failed over");
                    }
                    return Ok((relay(answer, region, from), region.name.as_str()));
                }
                Err((kind, took)) => {
                    let err =
                        UpstreamError { region: region.name.clone(), node: node.url.clone(), kind, took };
                    if !err.is_retryable() {
                        return Err(RouteError::Upstream(err));
                    }
                    // Only a request's first failure says something about the node.
                    if failures.is_empty() {
                        let may_eject = || regions.may_eject();
                        region.record_failure(n, took, &state.settings.health, &state.metrics, may_eject);
                    }
                    state.metrics.observe_upstream(&region.name, took.as_secs_f64());
                    let (node, error) = (&node.url, err.kind.detail());
                    warn!(request_id, trace_id, region = %region.name, node, error, "attempt failed");
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
fn relay(answer: Answer, served_by: &Region, failed_over_from: Option<&str>) -> Response {
    // Already without hop-by-hop headers and those set here (`upstream::Upstream::answer`).
    let mut headers = answer.headers;
    headers.insert(SERVED_BY, served_by.name_header.clone());
    if let Some(from) = failed_over_from {
        // Region names are checked to be plain tokens when the configuration loads.
        headers.insert(FAILOVER_FROM, HeaderValue::from_str(from).unwrap_or(HeaderValue::from_static("?")));
    }
    Response { status: answer.status, headers, body: answer.body }
}

/// A request's identity across the hops: its request id and W3C trace context.
#[derive(Debug, Clone)]
pub struct Ids {
    pub request_id: HeaderValue,
    pub traceparent: HeaderValue,
}

impl Ids {
    /// The client's `x-request-id` and `traceparent` when they are sensible, else fresh ones.
    pub fn of(req: &Request) -> Self {
        let request_id = client_value(req, &REQUEST_ID, |v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        });
        let traceparent = client_value(req, &TRACEPARENT, valid_traceparent);
        match (request_id, traceparent) {
            (Some(request_id), Some(traceparent)) => Self { request_id, traceparent },
            (request_id, traceparent) => {
                let fresh = Self::fresh();
                Self {
                    request_id: request_id.unwrap_or(fresh.request_id),
                    traceparent: traceparent.unwrap_or(fresh.traceparent),
                }
            }
        }
    }

    /// A random request id (32 hex digits) and a new sampled trace context (random trace and
    /// parent ids), written into one shared buffer: this runs for most requests, and the ids
    /// are then cloned for the node and the client without copying or allocating again.
    fn fresh() -> Self {
        let mut rng = rand::rng();
        let random: [u64; 5] = std::array::from_fn(|_| rand::Rng::next_u64(&mut rng));
        let mut text = [0u8; FRESH_IDS_LEN];
        let mut digits = random.iter().flat_map(|r| [hex(*r as u32), hex((r >> 32) as u32)]);
        let mut put = |out: &mut [u8]| {
            for chunk in out.chunks_exact_mut(8) {
                chunk.copy_from_slice(&digits.next().unwrap_or_default().to_le_bytes());
            }
        };
        put(&mut text[..32]);
        text[32..35].copy_from_slice(b"00-");
        put(&mut text[35..67]);
        text[67] = b'-';
        put(&mut text[68..84]);
        text[84..].copy_from_slice(b"-01");
        // W3C Trace Context: neither id may be all zeros.
        for last in [66, 83] {
            if text[last] == b'0' {
                text[last] = b'1';
            }
        }
        let shared = Bytes::from_owner(text);
        let value = |range| {
            HeaderValue::from_maybe_shared(shared.slice(range)).unwrap_or(HeaderValue::from_static("0"))
        };
        Self { request_id: value(0..32), traceparent: value(32..FRESH_IDS_LEN) }
    }

    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    /// The trace id part of the trace context (32 hex digits).
    pub fn trace_id(&self) -> &str {
        self.traceparent.to_str().ok().and_then(|t| t.get(3..35)).unwrap_or_default()
    }
}

/// The eight nibbles of `x` as lower-case hex digits, one per byte (low nibble first): a
/// few arithmetic steps for eight digits instead of a table lookup per digit.
fn hex(x: u32) -> u64 {
    let mut v = u64::from(x);
    v = (v | v << 16) & 0x0000_ffff_0000_ffff;
    v = (v | v << 8) & 0x00ff_00ff_00ff_00ff;
    v = (v | v << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10 or more: those become letters.
    let letters = ((v + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    v + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)
}

/// A fresh request id (32) and trace context (`00-` 32 `-` 16 `-01`: 55), side by side.
const FRESH_IDS_LEN: usize = 32 + 55;

/// The client's value of `name`, without surrounding spaces, when `ok` accepts it: the
/// client's own value (shared, not copied) unless there were spaces to drop.
fn client_value(req: &Request, name: &HeaderName, ok: impl Fn(&str) -> bool) -> Option<HeaderValue> {
    let value = req.headers.get(name)?;
    let text = value.to_str().ok()?;
    let trimmed = text.trim();
    if !ok(trimmed) {
        return None;
    }
    match trimmed.len() == text.len() {
        true => Some(value.clone()),
        false => HeaderValue::from_str(trimmed).ok(),
    }
}

/// `version-traceid-parentid-flags` as W3C Trace Context level 1 defines it: lower-case hex,
/// ids not all zeros, version `ff` invalid. Later versions may append fields.
fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex_of = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match parts.as_slice() {
        [version, trace, parent, flags, rest @ ..] => {
            hex_of(version, 2)
                && *version != "ff"
                && (rest.is_empty() || *version != "00")
                && hex_of(trace, 32)
                && nonzero(trace)
                && hex_of(parent, 16)
                && nonzero(parent)
                && hex_of(flags, 2)
        }
        _ => false,
    }
}

/// The hinted region name, if any: headers first, then the JSON body's `region`.
pub fn hint(req: &Request) -> Option<Cow<'_, str>> {
    // By `HeaderName`: a `&str` name would be parsed and checked again at each lookup.
    let from_header = HINT_HEADERS
        .iter()
        .filter_map(|h| req.headers.get(h)?.to_str().ok().map(str::trim))
        .find(|v| !v.is_empty());
    match from_header {
        Some(h) => Some(Cow::Borrowed(h)),
        None => hint_from_body(&req.body).map(Cow::Owned),
    }
}

/// What the router reads of a body it forwards; the node gets the body unchanged.
#[derive(Deserialize, ToSchema)]
#[schema(as = ForwardedBody)]
pub struct BodyHint {
    /// The region to serve the request, when no `x-region-hint` or `region-hint` header names
    /// one. Any other field is the node's business.
    #[serde(default)]
    #[schema(nullable = false)]
    region: Option<String>,
}

/// `region` of a JSON object body; `None` for any other body (left for the node to judge).
fn hint_from_body(body: &[u8]) -> Option<String> {
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
    use http::header::HeaderName;
    use http::{HeaderMap, Method};

    use super::*;

    /// A POST with `headers` and `body`.
    fn post(headers: &[(&str, &str)], body: &str) -> Request {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        Request::new(Method::POST, "/recommendations", map, body.to_string())
    }

    #[test]
    fn header_hint_wins_and_body_is_the_fallback() {
        let body = r#"{"user_id": 1, "region": "eu-west"}"#;
        assert_eq!(hint(&post(&[("region-hint", "  us-east ")], body)).as_deref(), Some("us-east"));
        assert_eq!(hint(&post(&[("x-region-hint", "ap-south")], body)).as_deref(), Some("ap-south"));
        assert_eq!(hint(&post(&[], body)).as_deref(), Some("eu-west"));
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
    fn hex_digits_cover_every_nibble() {
        let digits = |x: u32| String::from_utf8(hex(x).to_le_bytes().to_vec()).expect("ascii");
        assert_eq!(digits(0), "00000000");
        assert_eq!(digits(0x0123_4567), "76543210");
        assert_eq!(digits(0x89ab_cdef), "fedcba98");
        assert_eq!(digits(u32::MAX), "ffffffff");
    }

    #[test]
    fn request_ids_are_kept_or_generated() {
        let id = |headers: &[(&str, &str)]| Ids::of(&post(headers, "")).request_id().to_string();
        assert_eq!(id(&[("x-request-id", "abc-123")]), "abc-123");
        let (a, b) = (id(&[]), id(&[]));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
        assert_eq!(id(&[("x-request-id", &"x".repeat(MAX_REQUEST_ID + 1))]).len(), 32);
        assert_eq!(id(&[("x-request-id", "a b")]), "a b");
    }

    #[test]
    fn trace_context_is_passed_on_when_valid_and_created_when_not() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = Ids::of(&post(&[("traceparent", given)], ""));
        assert_eq!(ids.traceparent, given);
        assert_eq!(ids.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let made = Ids::of(&post(&[("traceparent", bad)], ""));
            assert_ne!(made.traceparent, bad);
            assert!(valid_traceparent(made.traceparent.to_str().expect("text")), "{:?}", made.traceparent);
        }
        assert!(
            valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"),
            "future versions may add fields"
        );
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
        let cluster = cluster_config::ClusterConfig::from_toml_str(text, Vec::new()).expect("valid");
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
