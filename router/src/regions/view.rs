//! The read-only view of a region that `GET /regions` (and the status page) shows.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use utoipa::ToSchema;

use super::state::RegionState;
use super::Region;

impl Region {
    pub fn view(&self) -> RegionView {
        let last_probe = self.last_probe.load_full().map(|p| ProbeView {
            ok: p.ok,
            at_unix_ms: p.at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            age_ms: p.at.elapsed().map_or(0, |d| d.as_millis() as u64),
            took_ms: ms(p.took),
            detail: p.detail.clone(),
        });
        let healthy_ewma =
            self.nodes.iter().filter(|n| n.health.is_up()).filter_map(|n| n.ewma.observed()).min();
        RegionView {
            name: self.name.clone(),
            state: self.state(),
            ewma_ms: healthy_ewma
                .or_else(|| self.nodes.iter().filter_map(|n| n.ewma.observed()).min())
                .map(ms),
            last_probe,
            consecutive_failures: self
                .nodes
                .iter()
                .map(|n| n.health.consecutive_failures())
                .min()
                .unwrap_or(0),
            model_version: self.model_version.load_full().map(|v| v.as_ref().clone()),
            rollout: self.rollout(),
            requests_served: self.served(),
            failover: self.failover_names.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeView {
                    url: n.url.clone(),
                    healthy: n.health.is_up(),
                    ewma_ms: n.ewma.observed().map(ms),
                    in_flight: n.in_flight.load(Ordering::Relaxed),
                    consecutive_failures: n.health.consecutive_failures(),
                })
                .collect(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// One region as `GET /regions` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Region)]
pub struct RegionView {
    pub name: String,
    pub state: RegionState,
    /// Latency estimate of its best healthy node (of any node when none is healthy), in ms;
    /// null before any answer.
    #[schema(required = true)]
    pub ewma_ms: Option<f64>,
    /// Null before the first probe.
    #[schema(required = true)]
    pub last_probe: Option<ProbeView>,
    /// Failure streak of its least-failing node (probes or requests).
    pub consecutive_failures: u32,
    /// The version its nodes last reported.
    #[schema(required = true)]
    pub model_version: Option<String>,
    /// Its versions as its nodes report them: serving, candidate, and per version the request
    /// rate, p99 and conversions over the last 15 minutes.
    pub rollout: super::series::RolloutView,
    pub requests_served: u64,
    /// Regions it fails over to, best first.
    pub failover: Vec<String>,
    pub nodes: Vec<NodeView>,
}

/// The last health probe of a region.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Probe)]
pub struct ProbeView {
    pub ok: bool,
    pub at_unix_ms: u64,
    pub age_ms: u64,
    pub took_ms: f64,
    pub detail: String,
}

/// One node of a region.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Node)]
pub struct NodeView {
    pub url: String,
    pub healthy: bool,
    /// Latency estimate in ms; null before any answer.
    #[schema(required = true)]
    pub ewma_ms: Option<f64>,
    pub in_flight: usize,
    pub consecutive_failures: u32,
}
