//! `GET /health/live`, `GET /health/ready` and its alias `GET /health` (the FastAPI-layout
//! `GET /api/v1/health/` is in [`crate::http::compat::about`]).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::node::Node;
use crate::report::Health;

/// The process serves HTTP.
#[derive(Serialize, ToSchema)]
struct Live<'a> {
    /// Always `live`.
    status: &'static str,
    region: &'a str,
}

/// 200 while the process serves HTTP: restart the node only if this fails.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "Live", body = Live))
)]
pub async fn live(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "live", region: node.region() })
}

/// 200 once a model is loaded, else 503; the body is the same either way, so the router and
/// operators see why a node is not ready.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "No model loaded yet", body = Health),
    )
)]
pub async fn ready(node: web::Data<Node>) -> HttpResponse {
    let health = Health::of(&node);
    let mut res = if health.is_ready() { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.json(health)
}

/// Same as `/health/ready`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "No model loaded yet", body = Health),
    )
)]
pub async fn health(node: web::Data<Node>) -> HttpResponse {
    ready(node).await
}
