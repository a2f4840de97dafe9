//! `POST /recommendations`: the API the router forwards and other services call.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::answer::{RankedItem, RecommendQuery, Source, Strategy};
use crate::http::error::ApiError;
use crate::http::input::{self, MAX_CATEGORIES, MAX_EXCLUDE};
use crate::node::Node;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecommendBody {
    user_id: String,
    /// 1..=100, default 10. Signed so that `-1` is reported as out of range, not as a type error.
    count: Option<i64>,
    exclude: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    /// The region the client (or router) aimed at; answers always come from this node's
    /// region, which `region` in the response and `x-served-by` name.
    region: Option<String>,
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Serialize)]
struct RecommendResponse<'a> {
    user_id: &'a str,
    region: &'a str,
    model_version: &'a str,
    items: &'a [RankedItem],
    strategy: Strategy,
    source: Source,
    took_us: u64,
}

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
    let query = RecommendQuery::new(b.user_id.clone(), count, exclude, categories);
    let served = node.service().recommend(query, b.force_refresh).await?;
    Ok(HttpResponse::Ok().json(RecommendResponse {
        user_id: &b.user_id,
        region: node.region(),
        model_version: served.version(),
        items: &served.ranked.items,
        strategy: served.ranked.strategy,
        source: served.source,
        took_us: started.elapsed().as_micros() as u64,
    }))
}
