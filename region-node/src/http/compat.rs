//! The common FastAPI layout of recommendation services, so existing clients keep working:
//!
//! - `POST /api/v1/recommendations/user/{user_id}` `{"count", "exclude_purchased", "categories", "force_refresh"}`
//! - `POST /api/v1/recommendations/similar-products/{product_id}` `{"count", "force_refresh"}`
//! - `POST /api/v1/recommendations/trending` `{"count", "category"}`
//! - `GET /api/v1/recommendations/stats`, `GET /api/v1/health/`
//!
//! Same answers and caching as the native routes; only the JSON shapes differ. Every body
//! field is optional (an empty body is `{}`), as with pydantic defaults.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use model::manifest;
use serde::{Deserialize, Serialize};

use crate::answer::{RankedItem, RecommendQuery, Source, Strategy};
use crate::http::error::{ApiError, ErrorBody, INVALID, MALFORMED, NOT_LOADED};
use crate::http::input::{self, MAX_CATEGORIES};
use crate::node::Node;
use crate::report::Stats;
use crate::service::Served;
use model::rollout::Arm;

/// Body of `POST /api/v1/recommendations/user/{user_id}`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatUserRequest)]
pub(super) struct UserBody {
    /// How many products to return.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Leave out what the user already has.
    #[schema(default = true)]
    exclude_purchased: Option<bool>,
    /// Only products of these categories (each non-blank, at most 256 bytes, no control
    /// characters).
    #[schema(max_items = 100)]
    categories: Option<Vec<String>>,
    /// Bypass the cache.
    #[serde(default)]
    #[schema(default = false)]
    force_refresh: bool,
}

/// Body of `POST /api/v1/recommendations/similar-products/{product_id}`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatSimilarRequest)]
pub(super) struct SimilarBody {
    /// How many products to return.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Bypass the cache.
    #[serde(default)]
    #[schema(default = false)]
    force_refresh: bool,
}

/// Body of `POST /api/v1/recommendations/trending`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatTrendingRequest)]
pub(super) struct TrendingBody {
    /// How many products to return.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Only products of this category (non-blank, at most 256 bytes, no control characters).
    category: Option<String>,
}

/// One product of a list.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatProduct)]
struct Product<'a> {
    product_id: &'a str,
    #[schema(required = true)]
    product_name: Option<&'a str>,
    #[schema(required = true)]
    category: Option<&'a str>,
    score: f32,
    region: &'a str,
}

/// Ranked products, in the FastAPI services' shape.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatList)]
struct ProductList<'a> {
    /// The user asked about (user recommendations).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    user_id: Option<&'a str>,
    /// The product asked about (similar products).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    product_id: Option<&'a str>,
    /// Best first.
    recommendations: Vec<Product<'a>>,
    region: &'a str,
    /// RFC 3339.
    #[schema(format = DateTime)]
    generated_at: String,
    processing_time_ms: f64,
    total_count: usize,
    model_version: &'a str,
    /// Which version answered during a rollout (`stable` otherwise).
    arm: Arm,
    strategy: Strategy,
    source: Source,
}

/// `/stats` with the time of the answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatStats)]
struct StatsAnswer {
    #[serde(flatten)]
    stats: Stats,
    /// RFC 3339.
    #[schema(format = DateTime)]
    generated_at: String,
}

fn products<'a>(items: &'a [RankedItem], region: &'a str) -> Vec<Product<'a>> {
    items
        .iter()
        .map(|i| Product {
            product_id: &i.item_id,
            product_name: i.name.as_deref(),
            category: i.category.as_deref(),
            score: i.score,
            region,
        })
        .collect()
}

fn respond(
    node: &Node,
    served: &Served,
    started: Instant,
    user_id: Option<&str>,
    product_id: Option<&str>,
) -> HttpResponse {
    let region = node.region();
    let recommendations = products(&served.ranked.items, region);
    HttpResponse::Ok().json(ProductList {
        user_id,
        product_id,
        total_count: recommendations.len(),
        recommendations,
        region,
        generated_at: manifest::rfc3339(manifest::now_unix()),
        processing_time_ms: started.elapsed().as_secs_f64() * 1000.0,
        model_version: served.version(),
        arm: served.arm(),
        strategy: served.ranked.strategy,
        source: served.source,
    })
}

/// Recommendations for a user (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/user/{user_id}",
    tag = "fastapi",
    operation_id = "compat_user",
    params(("user_id" = String, Path, description = "Non-blank, at most 256 bytes (UTF-8), no control characters")),
    request_body(content = ref("#/components/schemas/CompatUserRequest"), description = "Optional: an empty body counts as `{}`"),
    responses(
        (status = 200, description = "Ranked products", body = ProductList),
        (status = 400, description = MALFORMED, body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn user(
    node: web::Data<Node>,
    req: HttpRequest,
    user_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
    let b: UserBody = input::parse_json(&body, true)?;
    input::check_id("user_id", &user_id)?;
    let count = input::check_count("count", b.count)?;
    let categories = input::check_list("categories", b.categories, MAX_CATEGORIES)?;
    let mut query = RecommendQuery::new(user_id.as_str(), count, Vec::new(), categories);
    query.include_seen = !b.exclude_purchased.unwrap_or(true);
    let served = node.service().recommend(query, b.force_refresh).await?;
    Ok(respond(&node, &served, started, Some(&user_id), None))
}

/// Products most often chosen by the same users (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/similar-products/{product_id}",
    tag = "fastapi",
    operation_id = "compat_similar_products",
    params(("product_id" = String, Path, description = "Non-blank, at most 256 bytes (UTF-8), no control characters")),
    request_body(content = ref("#/components/schemas/CompatSimilarRequest"), description = "Optional: an empty body counts as `{}`"),
    responses(
        (status = 200, description = "Similar products", body = ProductList),
        (status = 400, description = MALFORMED, body = ErrorBody),
        (status = 404, description = "Unknown product", body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn similar_products(
    node: web::Data<Node>,
    req: HttpRequest,
    product_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
    let b: SimilarBody = input::parse_json(&body, true)?;
    input::check_id("product_id", &product_id)?;
    let count = input::check_count("count", b.count)?;
    let served = node.service().similar(&product_id, count, b.force_refresh).await?;
    Ok(respond(&node, &served, started, None, Some(&product_id)))
}

/// Recency-decayed popularity (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/trending",
    tag = "fastapi",
    operation_id = "compat_trending",
    request_body(content = ref("#/components/schemas/CompatTrendingRequest"), description = "Optional: an empty body counts as `{}`"),
    responses(
        (status = 200, description = "Popular products", body = ProductList),
        (status = 400, description = MALFORMED, body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn trending(
    node: web::Data<Node>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
    let b: TrendingBody = input::parse_json(&body, true)?;
    let count = input::check_count("count", b.count)?;
    if let Some(c) = &b.category {
        input::check_id("category", c)?;
    }
    let served = node.service().trending(count, b.category.as_deref())?;
    Ok(respond(&node, &served, started, None, None))
}

/// Same as `/stats`, with `generated_at` (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/recommendations/stats",
    tag = "fastapi",
    operation_id = "compat_stats",
    responses(
        (status = 200, description = "Figures", body = StatsAnswer),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn stats(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let stats = Stats::of(&node)?;
    Ok(HttpResponse::Ok().json(StatsAnswer { stats, generated_at: manifest::rfc3339(manifest::now_unix()) }))
}
