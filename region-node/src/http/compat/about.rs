//! `GET /`, `GET /api/v1/health/` (and without the slash), `GET /api/v1/health/detailed`
//! and `GET /api/v1/recommendations/stats` in the FastAPI layout.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::{web, HttpResponse};
use model::manifest::{now_unix, rfc3339};
use serde::Serialize;

use crate::http::compat::{CompatError, CompatErrorBody};
use crate::http::error::NOT_LOADED;
use crate::node::Node;
use crate::report::{Health, Stats};

/// This build's version.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the node is.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatRoot)]
struct Root<'a> {
    message: &'static str,
    region: &'a str,
    version: &'static str,
    /// Where the API is described (Swagger UI).
    docs: &'static str,
    /// `healthy` once a model is loaded, else `loading`.
    status: &'static str,
}

/// What this service is, and whether it serves (FastAPI layout).
#[utoipa::path(
    get,
    path = "/",
    tag = "fastapi",
    operation_id = "compat_root",
    responses((status = 200, description = "Always 200; `status` says whether it serves", body = Root))
)]
pub async fn root(node: web::Data<Node>) -> HttpResponse {
    let status = if node.slot().current().is_some() { "healthy" } else { "loading" };
    HttpResponse::Ok().json(Root {
        message: "georec recommendation service",
        region: node.region(),
        version: VERSION,
        docs: "/docs",
        status,
    })
}

/// `/health/ready` with the time and the build version.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatHealth)]
struct CompatHealth {
    #[serde(flatten)]
    health: Health,
    /// RFC 3339.
    #[schema(format = DateTime)]
    timestamp: String,
    version: &'static str,
}

fn health(node: &Node) -> HttpResponse {
    let health = Health::of(node);
    let mut res = if health.is_ready() { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.json(CompatHealth { health, timestamp: rfc3339(now_unix()), version: VERSION })
}

/// Readiness as `/health/ready`, with `timestamp` and `version` (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/health/",
    tag = "fastapi",
    operation_id = "compat_health",
    responses(
        (status = 200, description = "Ready", body = CompatHealth),
        (status = 503, description = "No model loaded yet", body = CompatHealth),
    )
)]
pub async fn compat_health(node: web::Data<Node>) -> HttpResponse {
    health(&node)
}

/// Same as `/api/v1/health/` (FastAPI serves both with and without the trailing slash).
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "fastapi",
    operation_id = "compat_health_no_slash",
    responses(
        (status = 200, description = "Ready", body = CompatHealth),
        (status = 503, description = "No model loaded yet", body = CompatHealth),
    )
)]
pub async fn compat_health_no_slash(node: web::Data<Node>) -> HttpResponse {
    health(&node)
}

/// One dependency.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatService)]
struct Service {
    /// `healthy` or `unhealthy`.
    status: &'static str,
    /// What was checked and what it found.
    detail: String,
    /// Time the check took (Redis), in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    response_time_ms: Option<f64>,
    /// The version serving (model).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    model_version: Option<String>,
}

/// Health of each dependency.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatDetailedHealth)]
struct Detailed<'a> {
    /// `healthy` when every service is, `degraded` when the node serves without some
    /// (Redis, a fresh pointer), `unhealthy` without a model.
    status: &'static str,
    region: &'a str,
    /// RFC 3339.
    #[schema(format = DateTime)]
    timestamp: String,
    version: &'static str,
    /// `redis`, `model_store` and `model`.
    services: BTreeMap<&'static str, Service>,
    uptime_seconds: u64,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "healthy"
    } else {
        "unhealthy"
    }
}

/// One entry per dependency: the region's Redis (pinged now), the model store (the last
/// pointer check) and the loaded model (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/health/detailed",
    tag = "fastapi",
    operation_id = "compat_health_detailed",
    responses(
        (status = 200, description = "Serving (`healthy` or `degraded`)", body = Detailed),
        (status = 503, description = "No model loaded yet", body = Detailed),
    )
)]
pub async fn detailed(node: web::Data<Node>) -> HttpResponse {
    let started = Instant::now();
    let ping = node.cache().ping().await;
    let redis = Service {
        status: verdict(ping.is_ok()),
        detail: match &ping {
            Ok(()) => "PING answered".to_string(),
            Err(e) => cluster_config::errors::error_chain(e),
        },
        response_time_ms: Some((started.elapsed().as_secs_f64() * 1e6).round() / 1e3),
        model_version: None,
    };
    let swap = node.swapper().status();
    let store = Service {
        status: verdict(swap.last_error.is_none()),
        detail: match &swap.last_error {
            None => "the last pointer check succeeded".to_string(),
            Some(f) => format!("{} (at {})", f.error, f.at),
        },
        response_time_ms: None,
        model_version: None,
    };
    let snapshot = node.slot().current();
    let model = Service {
        status: verdict(snapshot.is_some()),
        detail: match &snapshot {
            Some(s) => format!("loaded at {}", rfc3339(s.loaded_at)),
            None => "no model loaded yet".to_string(),
        },
        response_time_ms: None,
        model_version: snapshot.as_ref().map(|s| s.version.clone()),
    };
    let status = match (snapshot.is_some(), redis.status == "healthy" && store.status == "healthy") {
        (false, _) => "unhealthy",
        (true, true) => "healthy",
        (true, false) => "degraded",
    };
    let services = BTreeMap::from([("redis", redis), ("model_store", store), ("model", model)]);
    let mut res = if snapshot.is_some() { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.json(Detailed {
        status,
        region: node.region(),
        timestamp: rfc3339(now_unix()),
        version: VERSION,
        services,
        uptime_seconds: node.uptime().as_secs(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatModelStats)]
struct ModelStats {
    /// Versions resident: 1, or 2 during a rollout.
    models_loaded: usize,
    user_count: u64,
    product_count: u64,
    /// Events read before (user, item) aggregation.
    total_interactions: u64,
    /// Non-zero share of the user x product matrix.
    matrix_density: f64,
    /// RFC 3339: when the serving version went live.
    #[schema(format = DateTime)]
    last_updated: String,
    model_version: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatCacheStats)]
struct CacheStats {
    /// Redis `used_memory_human`; null when Redis could not say.
    #[schema(required = true)]
    memory_used: Option<String>,
    /// Keys in the region's Redis database; null when Redis could not say.
    #[schema(required = true)]
    keys_count: Option<u64>,
    /// Since the node started.
    cache_hits: u64,
    cache_misses: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatStats)]
struct StatsAnswer<'a> {
    region: &'a str,
    model_stats: ModelStats,
    cache_stats: CacheStats,
    uptime_seconds: u64,
    /// RFC 3339: when this answer was made.
    #[schema(format = DateTime)]
    last_updated: String,
}

/// The model's and the cache's figures, nested (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/recommendations/stats",
    tag = "fastapi",
    operation_id = "compat_stats",
    responses(
        (status = 200, description = "Figures", body = StatsAnswer),
        (status = 503, description = NOT_LOADED, body = CompatErrorBody),
    )
)]
pub async fn stats(node: web::Data<Node>) -> Result<HttpResponse, CompatError> {
    let s = Stats::of(&node).map_err(|e| CompatError::new(e.into(), node.region()))?;
    let models_loaded = node.service().serving().map_or(0, |s| s.versions().len());
    let redis = node.cache().memory().await.ok();
    Ok(HttpResponse::Ok().json(StatsAnswer {
        region: node.region(),
        model_stats: ModelStats {
            models_loaded,
            user_count: s.users,
            product_count: s.items,
            total_interactions: s.interactions,
            matrix_density: s.density,
            last_updated: s.loaded_at,
            model_version: s.model_version,
        },
        cache_stats: CacheStats {
            memory_used: redis.as_ref().map(|r| r.0.clone()),
            keys_count: redis.map(|r| r.1),
            cache_hits: s.cache.hits,
            cache_misses: s.cache.misses,
        },
        uptime_seconds: node.uptime().as_secs(),
        last_updated: rfc3339(now_unix()),
    }))
}
