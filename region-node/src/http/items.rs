//! `GET /items/{item_id}/similar` and `GET /trending`.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::answer::{RankedItem, Source};
use crate::http::error::ApiError;
use crate::http::input;
use crate::node::Node;

#[derive(Serialize)]
struct SimilarResponse<'a> {
    item_id: &'a str,
    region: &'a str,
    model_version: &'a str,
    items: &'a [RankedItem],
    source: Source,
    took_us: u64,
}

/// `?count=10[&force_refresh=true]`: items chosen by the same users, cached like
/// recommendations.
pub async fn similar(
    node: web::Data<Node>,
    req: HttpRequest,
    item_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let params = input::query_params(&req, &["count", "force_refresh"])?;
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

#[derive(Serialize)]
struct TrendingResponse<'a> {
    region: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    items: &'a [RankedItem],
    source: Source,
    took_us: u64,
}

/// `?count=10[&category=c]`: recency-decayed popularity.
pub async fn trending(node: web::Data<Node>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let params = input::query_params(&req, &["count", "category"])?;
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
