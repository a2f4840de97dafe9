//! Talking to the other regions' nodes: readiness probes for `GET /api/v1/regions/health`
//! (bounded by the probe deadline, cached for [`HEALTH_TTL`] so a dashboard polling every
//! node does not multiply probes) and the recommendations a cross-region request asks each
//! region for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::topology::Topology;

/// How long one round of probes answers `GET /api/v1/regions/health`.
pub const HEALTH_TTL: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("region {0:?} has no node URL in the configuration")]
    NoEndpoint(String),
    #[error("{url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: answered HTTP {status}: {detail}")]
    Status { url: String, status: u16, detail: String },
    #[error("{url}: the answer has no `recommendations` list")]
    Shape { url: String },
}

/// One region as a probe found it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionProbe {
    pub region: String,
    /// `healthy` when its node answered `/health/ready` with 200, else `unhealthy`.
    pub status: &'static str,
    /// Null when no node answered in time.
    #[schema(required = true)]
    pub response_time_ms: Option<f64>,
    pub endpoint: String,
    /// What went wrong (unhealthy regions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

/// A round of probes and when it ran.
#[derive(Debug, Clone)]
pub struct Probed {
    pub at: Instant,
    /// Unix seconds.
    pub at_unix: i64,
    pub regions: Arc<Vec<RegionProbe>>,
}

pub struct Peers {
    client: reqwest::Client,
    topology: Topology,
    /// The last round; the lock is held while probing, so concurrent callers share a round.
    last: Mutex<Option<Probed>>,
}

impl Peers {
    pub fn new(topology: Topology) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().connect_timeout(topology.peer_timeout).build()?;
        Ok(Self { client, topology, last: Mutex::new(None) })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Every region but `own` probed (at most [`HEALTH_TTL`] ago), `own` answered from
    /// `own_ready`; in the configuration's order.
    pub async fn health(&self, own: &str, own_ready: bool) -> Probed {
        let mut last = self.last.lock().await;
        if let Some(p) = last.as_ref().filter(|p| p.at.elapsed() < HEALTH_TTL) {
            return p.clone();
        }
        let probes = self.topology.regions.keys().map(|region| async move {
            let endpoint = self.topology.endpoint(region).to_string();
            if region == own {
                let status = if own_ready { "healthy" } else { "unhealthy" };
                let error = (!own_ready).then(|| "no model loaded yet".to_string());
                return RegionProbe {
                    region: region.clone(),
                    status,
                    response_time_ms: Some(0.0),
                    endpoint,
                    error,
                };
            }
            let started = Instant::now();
            let outcome = self.probe(region).await;
            let took = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
            match outcome {
                Ok(()) => RegionProbe {
                    region: region.clone(),
                    status: "healthy",
                    response_time_ms: Some(took),
                    endpoint,
                    error: None,
                },
                Err(e) => RegionProbe {
                    region: region.clone(),
                    status: "unhealthy",
                    response_time_ms: None,
                    endpoint,
                    error: Some(cluster_config::errors::error_chain(&e)),
                },
            }
        });
        let regions = futures::future::join_all(probes).await;
        let probed =
            Probed { at: Instant::now(), at_unix: model::manifest::now_unix(), regions: Arc::new(regions) };
        *last = Some(probed.clone());
        probed
    }

    /// `GET /health/ready` on the region's nodes in turn until one answers 200.
    async fn probe(&self, region: &str) -> Result<(), PeerError> {
        let mut last = PeerError::NoEndpoint(region.to_string());
        for base in self.urls(region) {
            let url = format!("{base}/health/ready");
            let res = self.client.get(&url).timeout(self.topology.probe_timeout).send().await;
            match res {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status().as_u16();
                    last = PeerError::Status { url, status, detail: "not ready".into() };
                }
                Err(source) => last = PeerError::Request { url, source },
            }
        }
        Err(last)
    }

    fn urls(&self, region: &str) -> &[String] {
        self.topology.regions.get(region).map_or(&[], Vec::as_slice)
    }

    /// `POST /api/v1/recommendations/user/{user_id}` with `body` on the region's nodes in
    /// turn until one answers 200; its `recommendations`.
    pub async fn recommend(
        &self,
        region: &str,
        user_id: &str,
        body: &Value,
    ) -> Result<Vec<Value>, PeerError> {
        let mut last = PeerError::NoEndpoint(region.to_string());
        for base in self.urls(region) {
            let url = format!("{base}/api/v1/recommendations/user/{}", encode_segment(user_id));
            let res = self.client.post(&url).json(body).timeout(self.topology.peer_timeout).send().await;
            let res = match res {
                Ok(r) => r,
                Err(source) => {
                    last = PeerError::Request { url, source };
                    continue;
                }
            };
            let status = res.status().as_u16();
            let json: Result<Value, _> = res.json().await;
            match json {
                Ok(mut v) if status == 200 => match v.get_mut("recommendations").map(Value::take) {
                    Some(Value::Array(items)) => return Ok(items),
                    _ => return Err(PeerError::Shape { url }),
                },
                Ok(v) => {
                    let detail = v.get("detail").and_then(Value::as_str).unwrap_or("no detail").to_string();
                    // A refusal of the request (4xx) is the same on every node of the region.
                    let refused = (400..500).contains(&status);
                    last = PeerError::Status { url, status, detail };
                    if refused {
                        break;
                    }
                }
                Err(source) => last = PeerError::Request { url, source },
            }
        }
        Err(last)
    }
}

/// `s` percent-encoded as one path segment (unreserved characters kept).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("u-1_a.b~"), "u-1_a.b~");
        assert_eq!(encode_segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
    }
}
