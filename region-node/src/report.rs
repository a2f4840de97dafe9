//! What a node says about itself: health (for the router and orchestrators) and stats.
//!
//! Plain serialisable structs built from the node's state; the HTTP layer only chooses the
//! status code. Field names are a contract: the router reads `status`, `model_version` and
//! `redis` from `/health/ready`.

use model::manifest::{now_unix, rfc3339};
use model::rollout::{Candidate, NodeReport};
use serde::Serialize;

use crate::node::Node;
use crate::service::ServeError;
use crate::swap::SwapFailure;

/// Whether the node serves: `ready` once a model is loaded, `loading` before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
    Loading,
}

/// `up` while answers are cached in Redis, `down` while the node answers from the model only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    Up,
    Down,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: Readiness,
    pub region: String,
    #[schema(required = true)]
    pub model_version: Option<String>,
    /// RFC 3339; when the serving snapshot went live.
    #[schema(format = DateTime, required = true)]
    pub loaded_at: Option<String>,
    /// RFC 3339; when model-sync built the serving version.
    #[schema(format = DateTime, required = true)]
    pub model_created_at: Option<String>,
    pub redis: RedisState,
    pub cache_hit_ratio: f64,
    pub swap_count: u64,
    /// The last failed pointer check or load; cleared once the node serves what the pointer names.
    #[schema(required = true)]
    pub last_swap_error: Option<SwapFailure>,
    /// The candidate under rollout, once loaded here (see `GET /rollout/metrics`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub candidate: Option<Candidate>,
    /// Why the pointer's candidate is not loaded here; the stable version answers everyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub candidate_error: Option<SwapFailure>,
    pub uptime_secs: u64,
}

impl Health {
    pub fn of(node: &Node) -> Self {
        let snapshot = node.slot().current();
        let status = node.swapper().status();
        Health {
            status: if snapshot.is_some() { Readiness::Ready } else { Readiness::Loading },
            region: node.region().to_string(),
            model_version: snapshot.as_ref().map(|s| s.version.clone()),
            loaded_at: snapshot.as_ref().map(|s| rfc3339(s.loaded_at)),
            model_created_at: snapshot.as_ref().map(|s| s.manifest.created_at.clone()),
            redis: if node.cache().is_up() { RedisState::Up } else { RedisState::Down },
            cache_hit_ratio: node.metrics().cache.hit_ratio(),
            swap_count: status.swap_count,
            last_swap_error: status.last_error,
            candidate: node.service().serving().and_then(|s| s.candidate.as_ref().map(|c| c.spec.clone())),
            candidate_error: status.candidate_error,
            uptime_secs: node.uptime().as_secs(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.model_version.is_some()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub hit_ratio: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub region: String,
    pub model_version: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub model_created_at: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub loaded_at: String,
    pub users: u64,
    pub items: u64,
    /// Events read before (user, item) aggregation.
    pub interactions: u64,
    /// Distinct (user, item) pairs.
    pub pairs: u64,
    /// pairs / (users x items).
    pub density: f64,
    pub categories: u64,
    /// As model-sync recorded them in the manifest.
    pub build_parameters: serde_json::Value,
    pub cache: CacheStats,
}

impl Stats {
    pub fn of(node: &Node) -> Result<Self, ServeError> {
        let s = node.service().snapshot()?;
        let c = &node.metrics().cache;
        Ok(Stats {
            region: node.region().to_string(),
            model_version: s.version.clone(),
            model_created_at: s.manifest.created_at.clone(),
            loaded_at: rfc3339(s.loaded_at),
            users: s.model.users.len() as u64,
            items: s.model.items.len() as u64,
            interactions: s.model.interactions,
            pairs: s.pairs(),
            density: s.density(),
            categories: s.model.categories.len() as u64,
            build_parameters: s.manifest.parameters.clone(),
            cache: CacheStats {
                hits: c.hits.get(),
                misses: c.misses.get(),
                errors: c.errors.get(),
                hit_ratio: c.hit_ratio(),
            },
        })
    }
}

/// `GET /rollout/metrics`: each resident version's figures, with the users each answered in
/// this region (one Redis round trip; 0 when Redis cannot say).
pub async fn rollout(node: &Node) -> NodeReport {
    let serving = node.service().serving();
    let versions = serving.as_ref().map(|s| s.versions()).unwrap_or_default();
    let users = if versions.is_empty() { Vec::new() } else { node.cache().users(&versions).await };
    let users_of = |i: usize| users.get(i).copied().unwrap_or(0);
    NodeReport {
        region: node.region().to_string(),
        instance: node.instance().to_string(),
        at: rfc3339(now_unix()),
        stable: serving.as_ref().map(|s| s.stable.figures.report(&s.stable.version, users_of(0))),
        candidate: serving.as_ref().and_then(|s| s.candidate.as_ref()).map(|c| c.report(users_of(1))),
        candidate_error: node.swapper().status().candidate_error.map(|e| e.error),
        attribution_window_s: crate::cache::ATTRIBUTION_WINDOW.as_secs(),
        latency_buckets_s: model::rollout::LATENCY_BUCKETS.to_vec(),
    }
}
