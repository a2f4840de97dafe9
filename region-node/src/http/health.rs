//! `GET /health/live`, `GET /health/ready` and `GET /health` (same as ready).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::node::Node;
use crate::report::Health;

/// 200 as soon as the process serves HTTP: restart me only if this fails.
pub async fn live(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "live", "region": node.region() }))
}

/// 200 once a model is loaded, else 503; the body is the same either way, so the router
/// and operators see why a node is not ready.
pub async fn ready(node: web::Data<Node>) -> HttpResponse {
    let health = Health::of(&node);
    let mut res = if health.is_ready() { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.json(health)
}
