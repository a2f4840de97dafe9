//! `GET /items/{item_id}/similar` and `GET /trending`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::answer::{RankedItem, Source};
use crate::http::error::{ApiError, ErrorBody, INVALID, NOT_LOADED};
use crate::http::input;
use crate::node::Node;

/// The query parameters of `GET /items/{item_id}/similar`; any other is refused.
pub const SIMILAR_QUERY: [&str; 2] = ["count", "force_refresh"];
/// The query parameters of `GET /trending`; any other is refused.
pub const TRENDING_QUERY: [&str; 2] = ["count", "category"];

// [`SIMILAR_QUERY`] for the OpenAPI document: `input` reads queries by hand so that an error
// names the bad value.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SimilarQuery {
    /// How many items to return.
    #[param(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Bypass the cache: `true` (or `1`, or no value) or `false` (or `0`).
    force_refresh: Option<bool>,
}

// [`TRENDING_QUERY`] for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TrendingQuery {
    /// How many items to return.
    #[param(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Only items of this category (non-blank, at most 256 bytes, no control characters).
    category: Option<String>,
}

/// Items similar to one item.
#[derive(Serialize, ToSchema)]
#[schema(as = SimilarItems)]
struct SimilarResponse<'a> {
    item_id: &'a str,
    region: &'a str,
    model_version: &'a str,
    /// Best first.
    items: &'a [RankedItem],
    source: Source,
    /// Time spent on the node, in microseconds.
    took_us: u64,
}

/// Items most often chosen by the same users (cosine), cached like recommendations.
#[utoipa::path(
    get,
    path = "/items/{item_id}/similar",
    tag = "recommendations",
    params(
        ("item_id" = String, Path, description = "Non-blank, at most 256 bytes (UTF-8), no control characters"),
        SimilarQuery,
    ),
    responses(
        (status = 200, description = "Similar items", body = SimilarResponse),
        (status = 400, description = "Malformed query string", body = ErrorBody),
        (status = 404, description = "Unknown item", body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn similar(
    node: web::Data<Node>,
    req: HttpRequest,
    item_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let params = input::query_params(&req, &SIMILAR_QUERY)?;
    let count = input::query_count(&params)?;
    let force_refresh = input::query_flag(&params, "force_refresh")?;
    input::check_id("item_id", &item_id)?;
    let served = node.service().similar(&item_id, count, force_refresh).await?;
    Ok(HttpResponse::Ok().json(SimilarResponse {
        item_id: &item_id,
        region: node.region(),
        model_version: served.version(),
        items: &served.ranked.items,
        source: served.source,
        took_us: started.elapsed().as_micros() as u64,
    }))
}

/// The most popular items lately.
#[derive(Serialize, ToSchema)]
#[schema(as = TrendingItems)]
struct TrendingResponse<'a> {
    region: &'a str,
    model_version: &'a str,
    /// The category asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    category: Option<&'a str>,
    /// Best first.
    items: &'a [RankedItem],
    source: Source,
    /// Time spent on the node, in microseconds.
    took_us: u64,
}

/// Recency-decayed popularity.
#[utoipa::path(
    get,
    path = "/trending",
    tag = "recommendations",
    params(TrendingQuery),
    responses(
        (status = 200, description = "Popular items", body = TrendingResponse),
        (status = 400, description = "Malformed query string", body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn trending(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let params = input::query_params(&req, &TRENDING_QUERY)?;
    let count = input::query_count(&params)?;
    let category = input::query_value(&params, "category");
    if let Some(c) = category {
        input::check_id("category", c)?;
    }
    let served = node.service().trending(count, category)?;
    Ok(HttpResponse::Ok().json(TrendingResponse {
        region: node.region(),
        model_version: served.version(),
        category,
        items: &served.ranked.items,
        source: served.source,
        took_us: started.elapsed().as_micros() as u64,
    }))
}
