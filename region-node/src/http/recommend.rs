//! `POST /recommendations`: the API the router forwards and other services call.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use model::rollout::Arm;

use crate::answer::{RankedItem, RecommendQuery, Source, Strategy};
use crate::http::error::{ApiError, ErrorBody, INVALID, MALFORMED, NOT_LOADED};
use crate::http::input::{self, MAX_CATEGORIES, MAX_EXCLUDE};
use crate::node::Node;

/// A recommendation request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RecommendRequest)]
struct RecommendBody {
    /// Non-blank, at most 256 bytes (UTF-8), no control characters. Unknown users get popular
    /// items.
    #[schema(min_length = 1)]
    user_id: String,
    /// How many items to return.
    // Signed so that `-1` is reported as out of range, not as a type error.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    /// Item ids to leave out (each non-blank, at most 256 bytes, no control characters).
    #[schema(max_items = 1000)]
    exclude: Option<Vec<String>>,
    /// Only items of these categories (each non-blank, at most 256 bytes, no control
    /// characters).
    #[schema(max_items = 100)]
    categories: Option<Vec<String>>,
    /// The region the caller (or the router) aimed at, informational: answers always come from
    /// this node's region, which `region` in the answer and `x-served-by` name. Non-blank, at
    /// most 256 bytes, no control characters.
    region: Option<String>,
    /// Bypass the cache (the answer is computed and cached again).
    #[serde(default)]
    #[schema(default = false)]
    force_refresh: bool,
}

/// Ranked items for one user.
#[derive(Serialize, ToSchema)]
#[schema(as = Recommendations)]
struct RecommendResponse<'a> {
    user_id: &'a str,
    /// The region that served the answer.
    region: &'a str,
    model_version: &'a str,
    /// Which version answered: `candidate` for the users a rollout's split assigns to the
    /// candidate version, `stable` otherwise.
    arm: Arm,
    /// Best first.
    items: &'a [RankedItem],
    strategy: Strategy,
    source: Source,
    /// Time spent on the node, in microseconds.
    took_us: u64,
    /// Present when the router sent the request here from outside the user's residency zone
    /// (a failover): nothing about the user was stored in this region.
    #[serde(skip_serializing_if = "Option::is_none")]
    residency: Option<Transit>,
}

/// An answer given outside the user's residency zone.
#[derive(Serialize, ToSchema)]
pub struct Transit {
    /// The user's residency zone.
    pub zone: String,
    /// Always `false`: no cached answer, no served record.
    pub stored: bool,
}

/// The residency zone a request was sent here from, when it is not this node's own (see
/// `cluster_config::RESIDENCY_HEADER`): the answer must store nothing about the user.
pub fn transit(req: &HttpRequest, own: Option<&str>) -> Option<Transit> {
    let zone = req.headers().get(cluster_config::RESIDENCY_HEADER)?.to_str().ok()?.trim();
    (!zone.is_empty() && Some(zone) != own).then(|| Transit { zone: zone.to_string(), stored: false })
}

/// Recommend items for a user (popular items for unknown users).
#[utoipa::path(
    post,
    path = "/recommendations",
    tag = "recommendations",
    request_body = RecommendBody,
    responses(
        (status = 200, description = "Ranked items", body = RecommendResponse),
        (status = 400, description = MALFORMED, body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = NOT_LOADED, body = ErrorBody),
    )
)]
pub async fn recommend(
    node: web::Data<Node>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
    let b: RecommendBody = input::parse_json(&body, false)?;
    input::check_id("user_id", &b.user_id)?;
    let count = input::check_count("count", b.count)?;
    let exclude = input::check_list("exclude", b.exclude, MAX_EXCLUDE)?;
    let categories = input::check_list("categories", b.categories, MAX_CATEGORIES)?;
    if let Some(r) = &b.region {
        input::check_id("region", r)?;
    }
    let mut query = RecommendQuery::new(b.user_id.clone(), count, exclude, categories);
    let residency = transit(&req, node.settings().zone.as_deref());
    query.transit = residency.is_some();
    let served = node.service().recommend(query, b.force_refresh).await?;
    Ok(HttpResponse::Ok().json(RecommendResponse {
        user_id: &b.user_id,
        region: node.region(),
        model_version: served.version(),
        arm: served.arm(),
        items: &served.ranked.items,
        strategy: served.ranked.strategy,
        source: served.source,
        took_us: started.elapsed().as_micros() as u64,
        residency,
    }))
}
