//! `GET /`: a self-contained status page (inline CSS and JS, no external assets, since the
//! cluster may run offline) that polls `GET /regions` and can send a test recommendation.

use actix_web::HttpResponse;

const PAGE: &str = include_str!("status.html");

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(PAGE)
}
