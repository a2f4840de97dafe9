//! What a node says about itself: health (for the router and orchestrators) and stats.
//!
//! Plain serialisable structs built from the node's state; the HTTP layer only chooses the
//! status code. Field names are a contract: the router reads `status`, `model_version` and
//! `redis` from `/health/ready`.

use model::manifest::rfc3339;
use serde::Serialize;

use crate::node::Node;
use crate::service::ServeError;
use crate::swap::SwapFailure;

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ready` once a model is loaded, `loading` before.
    pub status: &'static str,
    pub region: String,
    pub model_version: Option<String>,
    /// RFC 3339; when the serving snapshot went live.
    pub loaded_at: Option<String>,
    /// RFC 3339; when model-sync built the serving version.
    pub model_created_at: Option<String>,
    /// `up` while answers are cached in Redis, `down` while the node answers from the model only.
    pub redis: &'static str,
    pub cache_hit_ratio: f64,
    pub swap_count: u64,
    /// The last failed pointer check or load; cleared once the node serves what the pointer names.
    pub last_swap_error: Option<SwapFailure>,
    pub uptime_secs: u64,
}

impl Health {
    pub fn of(node: &Node) -> Self {
        let snapshot = node.slot().current();
        let status = node.swapper().status();
        Health {
            status: if snapshot.is_some() { "ready" } else { "loading" },
            region: node.region().to_string(),
            model_version: snapshot.as_ref().map(|s| s.version.clone()),
            loaded_at: snapshot.as_ref().map(|s| rfc3339(s.loaded_at)),
            model_created_at: snapshot.as_ref().map(|s| s.manifest.created_at.clone()),
            redis: if node.cache().is_up() { "up" } else { "down" },
            cache_hit_ratio: node.metrics().cache.hit_ratio(),
            swap_count: status.swap_count,
            last_swap_error: status.last_error,
            uptime_secs: node.uptime().as_secs(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.model_version.is_some()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub hit_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub region: String,
    pub model_version: String,
    pub model_created_at: String,
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
