//! `GET /`: a self-contained status page (inline CSS and JS, no external assets, since the
//! cluster may run offline) that polls `GET /regions` and can send a test recommendation.

use crate::front::response::Response;

const PAGE: &str = include_str!("status.html");

pub fn page() -> Response {
    Response::new(200, "text/html; charset=utf-8", PAGE)
        .with_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"))
}
