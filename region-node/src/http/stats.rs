//! `GET /stats` (the model and the cache, as JSON) and `GET /metrics` (Prometheus text).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::http::error::ApiError;
use crate::node::Node;
use crate::report::Stats;

pub async fn stats(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Stats::of(&node)?))
}

pub async fn metrics(node: web::Data<Node>) -> Result<HttpResponse, ApiError> {
    let text = node.metrics().render()?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, prometheus::TEXT_FORMAT)).body(text))
}
