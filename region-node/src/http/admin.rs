//! `POST /admin/model/reload`, `POST /admin/cache/clear` and `DELETE /users/{user_id}`,
//! behind a bearer token.
//!
//! No token configured means no admin API (403), not an open one; a missing or wrong token
//! is 401. The token is compared in constant time and never logged.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::ErasedData;
use crate::http::error::{ApiError, ErrorBody};
use crate::node::Node;
use crate::swap::CheckOutcome;

/// Descriptions of the answers every admin route may give.
const UNAUTHORIZED: &str = "Missing or wrong token (`WWW-Authenticate: Bearer`)";
const DISABLED: &str = "GEOREC_ADMIN_TOKEN is not configured on the node";

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

/// What a reload did, and what serves now.
#[derive(Serialize, ToSchema)]
struct Reloaded<'a> {
    #[serde(flatten)]
    outcome: CheckOutcome,
    region: &'a str,
    /// The version serving now.
    #[schema(required = true)]
    model_version: Option<String>,
}

/// Check the region's pointer now (instead of at the next poll) and swap if it moved.
/// A version that fails to load is reported (502) and the serving one kept.
#[utoipa::path(
    post,
    path = "/admin/model/reload",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unchanged or swapped", body = Reloaded),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = DISABLED, body = ErrorBody),
        (status = 502, description = "The pointer could not be read or its version not loaded; the serving version stays", body = ErrorBody),
    )
)]
pub async fn reload(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let outcome = node.swapper().check_now().await?;
    tracing::info!(outcome = ?outcome, "model reload requested");
    Ok(HttpResponse::Ok().json(Reloaded {
        outcome,
        region: node.region(),
        model_version: node.slot().version(),
    }))
}

/// Cached answers removed.
#[derive(Serialize, ToSchema)]
struct CacheCleared<'a> {
    region: &'a str,
    /// Keys deleted.
    removed: u64,
}

/// Drop every cached answer of this region (SCAN + UNLINK; Redis keeps serving meanwhile).
#[utoipa::path(
    post,
    path = "/admin/cache/clear",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Number of keys removed", body = CacheCleared),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = DISABLED, body = ErrorBody),
        (status = 503, description = "Redis could not be reached", body = ErrorBody),
    )
)]
pub async fn clear_cache(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let removed = node.cache().clear().await?;
    tracing::info!(removed, "cache cleared");
    Ok(HttpResponse::Ok().json(CacheCleared { region: node.region(), removed }))
}

/// What erasing a user did in this region.
#[derive(Serialize, ToSchema)]
struct UserErased<'a> {
    user_id: &'a str,
    region: &'a str,
    /// What was removed from the region's Redis.
    removed: ErasedData,
}

/// Erase a user's data in this region: their recent events, cached answers, served-items
/// records, remembered event ids and events not yet ingested go at once, and an erasure
/// record is kept. Until a model built without them serves, they get popular items and are
/// nobody's neighbour; their new events are refused (409). Repeating it is harmless; a user
/// the region never saw is answered 202 too.
#[utoipa::path(
    delete,
    path = "/users/{user_id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("user_id" = String, Path, description = "The user to erase (1-256 bytes, no control characters)")),
    responses(
        (status = 202, description = "Erased here; the models forget the user at their next build", body = UserErased),
        (status = 401, description = UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = DISABLED, body = ErrorBody),
        (status = 422, description = "Invalid user_id", body = ErrorBody),
        (status = 503, description = "Redis could not be reached; nothing was erased, retry", body = ErrorBody),
    )
)]
pub async fn erase_user(
    node: web::Data<Node>,
    req: HttpRequest,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&node, &req)?;
    let user_id = user_id.into_inner();
    model::events::check_id("user_id", &user_id).map_err(|e| {
        ApiError::invalid("user_id", e.to_string().trim_start_matches("user_id ").to_string())
    })?;
    let removed = node.service().erase(&user_id).await?;
    tracing::info!(user_id = %user_id, removed = ?removed, "user erased");
    Ok(HttpResponse::Accepted().json(UserErased { user_id: &user_id, region: node.region(), removed }))
}
