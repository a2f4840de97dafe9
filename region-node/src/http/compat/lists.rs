//! `POST /api/v1/recommendations/user/{user_id}`, `.../similar-products/{product_id}` and
//! `.../trending` in the FastAPI layout. Every body field is optional (an empty body is
//! `{}`, as with pydantic defaults); similar products and trending also take their fields
//! from the query string (the body wins when both name one).

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use model::manifest;
use serde::{Deserialize, Serialize};

use crate::answer::RecommendQuery;
use crate::answer::{Source, Strategy};
use crate::http::compat::{unit_scores, CompatError, CompatErrorBody};
use crate::http::error::{ApiError, INVALID, MALFORMED, NOT_LOADED};
use crate::http::input::{self, MAX_CATEGORIES};
use crate::http::recommend::{transit, Transit};
use crate::node::Node;
use crate::service::Served;
use crate::trend::{self, MAX_WINDOW_HOURS};
use model::rollout::Arm;

/// Query parameters of similar products.
pub const SIMILAR_QUERY: [&str; 2] = ["count", "force_refresh"];
/// Query parameters of trending.
pub const TRENDING_QUERY: [&str; 3] = ["count", "category", "time_window_hours"];
/// Trending window when the request does not say.
pub const DEFAULT_WINDOW_HOURS: u32 = 24;

/// Body of `POST /api/v1/recommendations/user/{user_id}`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatUserRequest)]
pub struct UserBody {
    /// How many products to return.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    pub count: Option<i64>,
    /// Leave out what the user already has.
    #[schema(default = true)]
    pub exclude_purchased: Option<bool>,
    /// Only products of these categories (each non-blank, at most 256 bytes, no control
    /// characters).
    #[schema(max_items = 100)]
    pub categories: Option<Vec<String>>,
    /// Accepted for compatibility (0..5) and not applied: the model holds no product ratings.
    #[schema(minimum = 0, maximum = 5)]
    pub min_rating: Option<f64>,
    /// Bypass the cache.
    #[serde(default)]
    #[schema(default = false)]
    pub force_refresh: bool,
    /// The region asked for: the router routes on it; a node answers for its own region.
    pub region: Option<String>,
}

/// Body of `POST /api/v1/recommendations/similar-products/{product_id}`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatSimilarRequest)]
pub struct SimilarBody {
    /// How many products to return (or `?count=`).
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Bypass the cache (or `?force_refresh=true`).
    force_refresh: Option<bool>,
}

/// Body of `POST /api/v1/recommendations/trending`; may be empty.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatTrendingRequest)]
pub struct TrendingBody {
    /// How many products to return (or `?count=`).
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Only products of this category (non-blank, at most 256 bytes, no control characters).
    category: Option<String>,
    /// Hours of the window interactions and growth are measured over (or `?time_window_hours=`).
    #[schema(minimum = 1, maximum = 168, default = 24)]
    time_window_hours: Option<i64>,
}

/// One recommended product.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatProduct)]
pub struct Product {
    pub product_id: String,
    #[schema(required = true)]
    pub product_name: Option<String>,
    #[schema(required = true)]
    pub category: Option<String>,
    /// In 0..1, best first: the model's score divided by the list's best when that exceeds 1.
    pub score: f64,
    /// The model's own score (user-KNN sums are unbounded).
    pub raw_score: f32,
    pub region: String,
}

/// Recommendations for a user, in the FastAPI services' shape.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatUserRecommendations)]
struct UserAnswer<'a> {
    user_id: &'a str,
    /// Best first.
    recommendations: Vec<Product>,
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
    /// Present when answered outside the user's residency zone: nothing about the user was
    /// stored here.
    #[serde(skip_serializing_if = "Option::is_none")]
    residency: Option<Transit>,
}

/// `served`'s items as products of `region`.
pub fn products(served: &Served, region: &str) -> Vec<Product> {
    let items = &served.ranked.items;
    items
        .iter()
        .zip(unit_scores(items))
        .map(|(i, score)| Product {
            product_id: i.item_id.clone(),
            product_name: i.name.clone(),
            category: i.category.clone(),
            score,
            raw_score: i.score,
            region: region.to_string(),
        })
        .collect()
}

fn now() -> String {
    manifest::rfc3339(manifest::now_unix())
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
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
        (status = 200, description = "Ranked products", body = UserAnswer),
        (status = 400, description = MALFORMED, body = CompatErrorBody),
        (status = 422, description = INVALID, body = CompatErrorBody),
        (status = 503, description = NOT_LOADED, body = CompatErrorBody),
    )
)]
pub async fn user(
    node: web::Data<Node>,
    req: HttpRequest,
    user_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, CompatError> {
    let started = Instant::now();
    let residency = transit(&req, node.settings().zone.as_deref());
    let transit = &residency;
    let answer = async {
        let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
        let b: UserBody = input::parse_json(&body, true)?;
        input::check_id("user_id", &user_id)?;
        let served = recommend(&node, &user_id, b, transit.is_some()).await?;
        Ok::<_, ApiError>(served)
    };
    let served = answer.await.map_err(|e| CompatError::new(e, node.region()))?;
    let region = node.region();
    let recommendations = products(&served, region);
    Ok(HttpResponse::Ok().json(UserAnswer {
        user_id: &user_id,
        total_count: recommendations.len(),
        recommendations,
        region,
        generated_at: now(),
        processing_time_ms: ms(started),
        model_version: served.version(),
        arm: served.arm(),
        strategy: served.ranked.strategy,
        source: served.source,
        residency,
    }))
}

/// Checks `b` and answers it from this node (also for cross-region requests).
/// `transit`: answered outside the user's residency zone, nothing stored.
pub async fn recommend(node: &Node, user_id: &str, b: UserBody, transit: bool) -> Result<Served, ApiError> {
    let count = input::check_count("count", b.count)?;
    let categories = input::check_list("categories", b.categories, MAX_CATEGORIES)?;
    if let Some(r) = b.min_rating.filter(|r| !(0.0..=5.0).contains(r)) {
        return Err(ApiError::invalid("min_rating", format!("must be between 0 and 5, got {r}")));
    }
    if let Some(r) = &b.region {
        input::check_id("region", r)?;
    }
    let mut query = RecommendQuery::new(user_id, count, Vec::new(), categories);
    query.include_seen = !b.exclude_purchased.unwrap_or(true);
    query.transit = transit;
    Ok(node.service().recommend(query, b.force_refresh).await?)
}

/// One similar product.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatSimilarProduct)]
struct SimilarProduct<'a> {
    product_id: &'a str,
    #[schema(required = true)]
    product_name: Option<&'a str>,
    #[schema(required = true)]
    category: Option<&'a str>,
    /// Cosine over the users who chose both, in 0..1.
    similarity_score: f64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatSimilarProducts)]
struct SimilarAnswer<'a> {
    product_id: &'a str,
    /// Most similar first.
    similar_products: Vec<SimilarProduct<'a>>,
    region: &'a str,
    /// RFC 3339.
    #[schema(format = DateTime)]
    generated_at: String,
    processing_time_ms: f64,
    total_count: usize,
    model_version: &'a str,
    source: Source,
}

/// A count from the body, else from the query.
fn count_of(body: Option<i64>, query: &[(String, String)]) -> Result<usize, ApiError> {
    match body {
        Some(n) => input::check_count("count", Some(n)),
        None => input::query_count(query),
    }
}

/// Products most often chosen by the same users (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/similar-products/{product_id}",
    tag = "fastapi",
    operation_id = "compat_similar_products",
    params(
        ("product_id" = String, Path, description = "Non-blank, at most 256 bytes (UTF-8), no control characters"),
        ("count" = Option<i64>, Query, description = "How many products (1..100, default 10); the body's wins"),
        ("force_refresh" = Option<bool>, Query, description = "Bypass the cache"),
    ),
    request_body(content = ref("#/components/schemas/CompatSimilarRequest"), description = "Optional: an empty body counts as `{}`"),
    responses(
        (status = 200, description = "Similar products", body = SimilarAnswer),
        (status = 400, description = MALFORMED, body = CompatErrorBody),
        (status = 404, description = "Unknown product", body = CompatErrorBody),
        (status = 422, description = INVALID, body = CompatErrorBody),
        (status = 503, description = NOT_LOADED, body = CompatErrorBody),
    )
)]
pub async fn similar_products(
    node: web::Data<Node>,
    req: HttpRequest,
    product_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, CompatError> {
    let started = Instant::now();
    let answer = async {
        let query = input::query_params(&req, &SIMILAR_QUERY)?;
        let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
        let b: SimilarBody = input::parse_json(&body, true)?;
        input::check_id("product_id", &product_id)?;
        let count = count_of(b.count, &query)?;
        let force = match b.force_refresh {
            Some(f) => f,
            None => input::query_flag(&query, "force_refresh")?,
        };
        Ok::<_, ApiError>(node.service().similar(&product_id, count, force).await?)
    };
    let served = answer.await.map_err(|e| CompatError::new(e, node.region()))?;
    let items = &served.ranked.items;
    let similar_products: Vec<SimilarProduct> = items
        .iter()
        .zip(unit_scores(items))
        .map(|(i, similarity_score)| SimilarProduct {
            product_id: &i.item_id,
            product_name: i.name.as_deref(),
            category: i.category.as_deref(),
            similarity_score,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SimilarAnswer {
        product_id: &product_id,
        total_count: similar_products.len(),
        similar_products,
        region: node.region(),
        generated_at: now(),
        processing_time_ms: ms(started),
        model_version: served.version(),
        source: served.source,
    }))
}

/// One trending product.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatTrendingProduct)]
struct TrendingProduct<'a> {
    product_id: &'a str,
    #[schema(required = true)]
    product_name: Option<&'a str>,
    #[schema(required = true)]
    category: Option<&'a str>,
    /// Recency-decayed popularity in the model, in 0..1 (1 for the most popular listed).
    trend_score: f64,
    /// Events on the product in this region over the window.
    interaction_count: u64,
    /// `(this window - previous window) / max(previous window, 1)`, from events counted per hour.
    growth_rate: f64,
    region: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatTrendingProducts)]
struct TrendingAnswer<'a> {
    /// Model popularity order.
    trending_products: Vec<TrendingProduct<'a>>,
    /// The category asked for; null for all.
    #[schema(required = true)]
    category: Option<&'a str>,
    time_window_hours: u32,
    /// False when Redis could not say: counts and growth then read 0.
    growth_measured: bool,
    region: &'a str,
    /// RFC 3339.
    #[schema(format = DateTime)]
    generated_at: String,
    processing_time_ms: f64,
    total_count: usize,
    model_version: &'a str,
}

/// Popular products and how their interactions grow (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/trending",
    tag = "fastapi",
    operation_id = "compat_trending",
    params(
        ("count" = Option<i64>, Query, description = "How many products (1..100, default 10); the body's wins"),
        ("category" = Option<String>, Query, description = "Only this category"),
        ("time_window_hours" = Option<i64>, Query, description = "Window of counts and growth (1..168, default 24)"),
    ),
    request_body(content = ref("#/components/schemas/CompatTrendingRequest"), description = "Optional: an empty body counts as `{}`"),
    responses(
        (status = 200, description = "Trending products", body = TrendingAnswer),
        (status = 400, description = MALFORMED, body = CompatErrorBody),
        (status = 422, description = INVALID, body = CompatErrorBody),
        (status = 503, description = NOT_LOADED, body = CompatErrorBody),
    )
)]
pub async fn trending(
    node: web::Data<Node>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CompatError> {
    let started = Instant::now();
    let region = node.region();
    let answer = async {
        let query = input::query_params(&req, &TRENDING_QUERY)?;
        let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
        let b: TrendingBody = input::parse_json(&body, true)?;
        let count = count_of(b.count, &query)?;
        let category = b.category.or_else(|| input::query_value(&query, "category").map(str::to_string));
        if let Some(c) = &category {
            input::check_id("category", c)?;
        }
        let window = match b.time_window_hours {
            Some(h) => Some(h),
            None => match input::query_value(&query, "time_window_hours") {
                None => None,
                Some(raw) => Some(raw.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid("time_window_hours", format!("must be an integer, got {raw:?}"))
                })?),
            },
        };
        let window = match window {
            None => DEFAULT_WINDOW_HOURS,
            Some(h) if (1..=i64::from(MAX_WINDOW_HOURS)).contains(&h) => h as u32,
            Some(h) => {
                let message = format!("must be between 1 and {MAX_WINDOW_HOURS}, got {h}");
                return Err(ApiError::invalid("time_window_hours", message));
            }
        };
        let served = node.service().trending(count, category.as_deref())?;
        Ok::<_, ApiError>((served, category, window))
    };
    let (served, category, window) = answer.await.map_err(|e| CompatError::new(e, region))?;
    let items = &served.ranked.items;
    let ids: Vec<&str> = items.iter().map(|i| i.item_id.as_str()).collect();
    let counts = trend::counts(node.cache(), &ids, window, manifest::now_unix()).await;
    let measured = counts.is_ok();
    let counts = counts.unwrap_or_else(|_| vec![Default::default(); ids.len()]);
    let trending_products: Vec<TrendingProduct> = items
        .iter()
        .zip(unit_scores(items))
        .zip(counts)
        .map(|((i, trend_score), c)| TrendingProduct {
            product_id: &i.item_id,
            product_name: i.name.as_deref(),
            category: i.category.as_deref(),
            trend_score,
            interaction_count: c.current,
            growth_rate: c.growth_rate(),
            region,
        })
        .collect();
    Ok(HttpResponse::Ok().json(TrendingAnswer {
        total_count: trending_products.len(),
        trending_products,
        category: category.as_deref(),
        time_window_hours: window,
        growth_measured: measured,
        region,
        generated_at: now(),
        processing_time_ms: ms(started),
        model_version: served.version(),
    }))
}
