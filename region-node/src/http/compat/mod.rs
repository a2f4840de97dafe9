//! The common FastAPI layout of multi-region recommendation services, so clients written
//! for it keep working unchanged (the contract is listed in docs/reference.md):
//!
//! - [`lists`]: user recommendations, similar products, trending products;
//! - [`about`]: `GET /`, `GET /api/v1/health/detailed`, `GET /api/v1/recommendations/stats`;
//! - [`regions`]: `GET /api/v1/regions/{current,all,health,failover}`;
//! - [`cross`]: `POST /api/v1/recommendations/cross-region`;
//! - [`ops`]: `POST /api/v1/recommendations/{refresh-models,clear-cache}` (admin token).
//!
//! Same answers and caching as the native routes; only the JSON shapes differ. Every
//! `score` lies in 0..1 ([`unit_scores`]); errors are `{"detail", "region"}` ([`CompatError`]).

pub mod about;
pub mod cross;
pub mod lists;
pub mod ops;
pub mod regions;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::answer::RankedItem;
use crate::http::error::ApiError;

/// An [`ApiError`] answered in the FastAPI layout: same status and headers, body
/// `{"detail", "region", "error", "field"?}`.
#[derive(Debug, thiserror::Error)]
#[error("{inner}")]
pub struct CompatError {
    #[source]
    inner: ApiError,
    region: String,
}

impl CompatError {
    pub fn new(inner: ApiError, region: &str) -> Self {
        Self { inner, region: region.to_string() }
    }
}

/// The body of every error of these routes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatErrorBody)]
pub struct CompatErrorBody {
    /// What went wrong, for people.
    detail: String,
    /// The region that answered.
    region: String,
    /// Machine-readable code, as in the native `Error`.
    error: &'static str,
    /// The input to blame, e.g. `count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
}

impl ResponseError for CompatError {
    fn status_code(&self) -> StatusCode {
        self.inner.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        // Keep the native answer's status and headers (Retry-After, WWW-Authenticate).
        let native = self.inner.error_response();
        let mut res = HttpResponse::build(native.status());
        for (name, value) in native.headers() {
            if name != actix_web::http::header::CONTENT_TYPE
                && name != actix_web::http::header::CONTENT_LENGTH
            {
                res.insert_header((name.clone(), value.clone()));
            }
        }
        res.json(CompatErrorBody {
            detail: cluster_config::errors::error_chain(&self.inner),
            region: self.region.clone(),
            error: self.inner.code(),
            field: self.inner.field().map(str::to_string),
        })
    }
}

/// `items`' scores mapped into 0..1: divided by the best one when it exceeds 1 (user-KNN
/// and popularity scores are unbounded sums), clamped otherwise (cosine similarities
/// already are in 0..1). The order is kept; the raw score stays available as `raw_score`.
pub fn unit_scores(items: &[RankedItem]) -> Vec<f64> {
    let best = items.iter().map(|i| f64::from(i.score)).fold(0.0_f64, f64::max);
    let scale = if best > 1.0 { best.recip() } else { 1.0 };
    items
        .iter()
        .map(|i| {
            let s = f64::from(i.score) * scale;
            if s.is_finite() {
                s.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Prefix of every route of the layout.
pub const PREFIX: &str = "/api/v1/";

/// The app's 404: under [`PREFIX`] in the layout's error shape, elsewhere the native one.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    refusal(&req, ApiError::NotFound { method: req.method().to_string(), path: req.path().to_string() })
}

/// A resource's 405, likewise.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    refusal(
        &req,
        ApiError::MethodNotAllowed { method: req.method().to_string(), path: req.path().to_string() },
    )
}

fn refusal(req: &HttpRequest, e: ApiError) -> HttpResponse {
    match req.app_data::<web::Data<crate::node::Node>>() {
        Some(node) if req.path().starts_with(PREFIX) => CompatError::new(e, node.region()).error_response(),
        _ => e.error_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(scores: &[f32]) -> Vec<RankedItem> {
        let item = |s: &f32| RankedItem { item_id: "i".into(), score: *s, name: None, category: None };
        scores.iter().map(item).collect()
    }

    #[test]
    fn scores_land_in_the_unit_interval_in_order() {
        assert_eq!(unit_scores(&items(&[233.0, 116.5, 0.0])), [1.0, 0.5, 0.0]);
        assert_eq!(unit_scores(&items(&[0.8, 0.4])), [0.800000011920929, 0.4000000059604645]);
        assert_eq!(unit_scores(&items(&[-1.0, f32::NAN])), [0.0, 0.0]);
        assert!(unit_scores(&[]).is_empty());
    }
}
