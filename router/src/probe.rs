//! The active prober: each node is asked `GET /health/ready` every `interval` (jittered so
//! probes of many nodes do not line up), and the outcome goes to its region
//! ([`crate::regions::Region::record_probe`]) and its health state machine ([`crate::health`]).

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::regions::ProbeRecord;
use crate::upstream::connect::{Connector, Endpoint};

/// Path every region node answers readiness on.
pub const READY_PATH: &str = "/health/ready";

/// Start one probe loop per node; they run until aborted.
pub fn spawn_probers(state: &AppState) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (r, region) in state.regions.iter().enumerate() {
        for n in 0..region.nodes.len() {
            tasks.push(tokio::spawn(probe_loop(state.clone(), r, n)));
        }
    }
    tasks
}

async fn probe_loop(state: AppState, region: usize, node: usize) {
    let health = state.settings.health;
    let r = state.regions.get(region);
    loop {
        let record = probe(&state.settings.connector, &r.nodes[node].endpoint, health.timeout).await;
        r.record_probe(node, record, &health, &state.metrics);
        tokio::time::sleep(jittered(health.interval)).await;
    }
}

/// The part of a node's readiness answer the router shows.
#[derive(Deserialize)]
struct Ready {
    #[serde(default)]
    model_version: Option<serde_json::Value>,
}

/// Readiness answers longer than this are not read.
const MAX_READY_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("connection refused or unreachable: {0}")]
    Connect(std::io::Error),
    #[error("probe failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("probe failed: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// `GET path` on a connection of its own (through the same TCP or TLS path as requests), so
/// a probe also proves a new connection can be made: the status and up to `limit` bytes.
async fn fetch(
    connector: &Connector,
    endpoint: &Endpoint,
    path: &str,
    limit: usize,
) -> Result<(http::StatusCode, Bytes), ProbeError> {
    let io = connector.connect(endpoint).await.map_err(ProbeError::Connect)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::new(Empty::<Bytes>::new());
    *req.uri_mut() =
        format!("{}{path}", endpoint.prefix).parse().map_err(|e| ProbeError::Body(Box::new(e)))?;
    req.headers_mut().insert(header::HOST, endpoint.authority.clone());
    req.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), limit).collect().await.map_err(ProbeError::Body)?;
    Ok((status, body.to_bytes()))
}

/// One `GET /health/ready`.
async fn probe(connector: &Connector, endpoint: &Endpoint, timeout: Duration) -> ProbeRecord {
    let at = SystemTime::now();
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, fetch(connector, endpoint, READY_PATH, MAX_READY_BODY)).await;
    let took = started.elapsed();
    let (ok, detail, model_version) = match outcome {
        Ok(Ok((status, body))) => {
            let version =
                serde_json::from_slice::<Ready>(&body).ok().and_then(|r| r.model_version).map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                });
            (status == http::StatusCode::OK, format!("HTTP {}", status.as_u16()), version)
        }
        Err(_) => (false, format!("no answer within {timeout:?}"), None),
        Ok(Err(e)) => (false, e.to_string(), None),
    };
    ProbeRecord { ok, at, took, detail, model_version }
}

/// Path of a node's per-version figures.
pub const ROLLOUT_PATH: &str = "/rollout/metrics";
const MAX_ROLLOUT_BODY: usize = 256 * 1024;

/// Start one sampler per region: every [`Settings::sample_every`] it reads every node's
/// `GET /rollout/metrics` into the region's series ([`crate::regions::series`]). A node that
/// does not answer (or runs a build without the route) leaves a gap, nothing else.
pub fn spawn_samplers(state: &AppState) -> Vec<JoinHandle<()>> {
    (0..state.regions.iter().count()).map(|r| tokio::spawn(sample_loop(state.clone(), r))).collect()
}

async fn sample_loop(state: AppState, region: usize) {
    let r = state.regions.get(region);
    let every = state.settings.sample_every();
    let timeout = state.settings.health.timeout;
    loop {
        let mut reports = Vec::with_capacity(r.nodes.len());
        for node in &r.nodes {
            let got = tokio::time::timeout(
                timeout,
                fetch(&state.settings.connector, &node.endpoint, ROLLOUT_PATH, MAX_ROLLOUT_BODY),
            )
            .await;
            reports.push(match got {
                Ok(Ok((status, body))) if status == http::StatusCode::OK => {
                    serde_json::from_slice(&body).ok()
                }
                _ => None,
            });
        }
        let now_ms =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        r.record_sample(&reports, now_ms);
        tokio::time::sleep(jittered(every)).await;
    }
}

/// `interval` +/- 10%, so probes of many nodes spread out instead of arriving together.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!((900..=1100).contains(&d.as_millis()), "{d:?}");
        }
    }
}
