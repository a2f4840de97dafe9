//! Around every request: a request id (and the W3C trace id of `traceparent`, which the
//! router passes on or creates) in the tracing span, the request id in the response,
//! `x-served-by`, and the request metrics. One middleware so the ids, the span and the timing
//! agree.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::node::Node;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Longest incoming request id reused as is; longer or odd ones are replaced.
const MAX_REQUEST_ID: usize = 128;

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = incoming_id(&req).unwrap_or_else(new_id);
    let node = req.app_data::<web::Data<Node>>().cloned();
    let method = req.method().clone();
    let trace_id = trace_id(&req).unwrap_or_default();
    let span =
        tracing::info_span!("request", request_id = %id, trace_id, method = %method, path = %req.path());

    // Handlers' errors are responses by now; only the routing layer itself could err here,
    // and cloning the request to answer that would break routing (it must own the request).
    let mut res = next.call(req).instrument(span.clone()).await?.map_into_boxed_body();

    let status = res.status();
    let elapsed = started.elapsed();
    // The route pattern, not the path: ids in paths would make unbounded label sets.
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
    if let Some(node) = node {
        let m = node.metrics();
        m.requests.with_label_values(&[route.as_str(), method.as_str(), status.as_str()]).inc();
        m.latency.with_label_values(&[route.as_str()]).observe(elapsed.as_secs_f64());
        if let Ok(region) = HeaderValue::from_str(node.region()) {
            res.headers_mut().insert(SERVED_BY, region);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let latency_us = elapsed.as_micros() as u64;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), latency_us, route = %route, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), latency_us, route = %route, "request done");
        }
    });
    Ok(res)
}

/// The caller's `x-request-id`, if it is short and plain enough to log and echo.
fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| v.to_string())
}

/// The trace id of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), to log.
fn trace_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(TRACEPARENT)?.to_str().ok()?;
    let mut parts = v.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    let hex = trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && trace.bytes().any(|b| b != b'0')).then(|| trace.to_string())
}

fn new_id() -> String {
    format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>())
}
