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
use crate::http::error::ApiError;
use crate::http::input::{self, MAX_CATEGORIES};
use crate::node::Node;
use crate::report::Stats;
use crate::service::Served;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    count: Option<i64>,
    /// Leave out what the user already has (default true).
    exclude_purchased: Option<bool>,
    categories: Option<Vec<String>>,
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SimilarBody {
    count: Option<i64>,
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrendingBody {
    count: Option<i64>,
    category: Option<String>,
}

#[derive(Serialize)]
struct Product<'a> {
    product_id: &'a str,
    product_name: Option<&'a str>,
    category: Option<&'a str>,
    score: f32,
    region: &'a str,
}

#[derive(Serialize)]
struct ProductList<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<&'a str>,
    recommendations: Vec<Product<'a>>,
    region: &'a str,
    generated_at: String,
    processing_time_ms: f64,
    total_count: usize,
    model_version: &'a str,
    strategy: Strategy,
    source: Source,
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
        strategy: served.ranked.strategy,
        source: served.source,
    })
}

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

pub async fn stats(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let mut body = serde_json::to_value(Stats::of(&node)?).unwrap_or_default();
    body["generated_at"] = manifest::rfc3339(manifest::now_unix()).into();
    Ok(HttpResponse::Ok().json(body))
}
