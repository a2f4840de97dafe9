//! `GET /stats` (the model and the cache, as JSON) and `GET /metrics` (Prometheus text).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use model::rollout::NodeReport;

use crate::http::error::{ApiError, ErrorBody, NOT_LOADED};
use crate::node::Node;
use crate::report::Stats;

/// Model and cache figures.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "operations",
    responses(
        (status = 200, description = "Figures", body = Stats),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn stats(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Stats::of(&node)?))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 500, description = "The metrics could not be encoded", body = ErrorBody),
    )
)]
pub async fn metrics(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let mut text = node.metrics().render()?;
    if let Some(serving) = node.service().serving() {
        text.push_str(&crate::rollout::prometheus_text(&serving));
    }
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, prometheus::TEXT_FORMAT)).body(text))
}

/// What this node measured for each resident version (the rollout controller's input).
#[utoipa::path(
    get,
    path = "/rollout/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Cumulative figures per resident version since this node loaded it", body = NodeReport),
    )
)]
pub async fn rollout(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(crate::report::rollout(&node).await)
}
