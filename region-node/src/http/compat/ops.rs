//! `POST /api/v1/recommendations/refresh-models` and `/clear-cache`: the native admin
//! routes (`/admin/model/reload`, `/admin/cache/clear`) behind the same bearer token, with
//! FastAPI-layout errors.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::admin;
use crate::http::compat::{CompatError, CompatErrorBody};
use crate::node::Node;

/// Check the region's model pointer now and swap if it moved (as `/admin/model/reload`).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/refresh-models",
    tag = "fastapi",
    operation_id = "compat_refresh_models",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unchanged or swapped, as `/admin/model/reload`", body = Object),
        (status = 401, description = "Missing or wrong token", body = CompatErrorBody),
        (status = 403, description = "GEOREC_ADMIN_TOKEN is not configured on the node", body = CompatErrorBody),
        (status = 502, description = "The pointer or its version could not be loaded; the serving version stays", body = CompatErrorBody),
    )
)]
pub async fn refresh_models(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, CompatError> {
    let region = node.region().to_string();
    admin::reload(node, req).await.map_err(|e| CompatError::new(e, &region))
}

/// Drop this region's cached answers (as `/admin/cache/clear`).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/clear-cache",
    tag = "fastapi",
    operation_id = "compat_clear_cache",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Keys removed, as `/admin/cache/clear`", body = Object),
        (status = 401, description = "Missing or wrong token", body = CompatErrorBody),
        (status = 403, description = "GEOREC_ADMIN_TOKEN is not configured on the node", body = CompatErrorBody),
        (status = 503, description = "Redis could not be reached", body = CompatErrorBody),
    )
)]
pub async fn clear_cache(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, CompatError> {
    let region = node.region().to_string();
    admin::clear_cache(node, req).await.map_err(|e| CompatError::new(e, &region))
}
