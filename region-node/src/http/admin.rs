//! `POST /admin/model/reload` and `POST /admin/cache/clear`, behind a bearer token.
//!
//! No token configured means no admin API (403), not an open one; a missing or wrong token
//! is 401. The token is compared in constant time and never logged.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::http::error::ApiError;
use crate::node::Node;

fn authorize(node: &Node, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = &node.settings().admin_token else { return Err(ApiError::AdminDisabled) };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(p) if token.matches(p) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Check the region's pointer now (instead of at the next poll) and swap if it moved.
/// A version that fails to load is reported (502) and the serving one kept.
pub async fn reload(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let outcome = node.swapper().check_now().await?;
    tracing::info!(outcome = ?outcome, "model reload requested");
    let mut body = serde_json::to_value(&outcome).unwrap_or_default();
    body["region"] = json!(node.region());
    body["model_version"] = json!(node.slot().version());
    Ok(HttpResponse::Ok().json(body))
}

/// Drop every cached answer of this region (SCAN + UNLINK; Redis keeps serving meanwhile).
pub async fn clear_cache(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let removed = node.cache().clear().await?;
    tracing::info!(removed, "cache cleared");
    Ok(HttpResponse::Ok().json(json!({ "region": node.region(), "removed": removed })))
}
