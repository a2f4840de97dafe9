//! `GET /docs`: Swagger UI for `/openapi.json`, from files built into the binary
//! (utoipa-swagger-ui's `vendored` feature: nothing is downloaded at build or run time, and the
//! page loads nothing from elsewhere).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use utoipa_swagger_ui::Config;

use crate::http::error::{self, ApiError, ErrorBody};

/// The document to show; no validator badge (it would send the document to swagger.io).
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["/openapi.json"]).validator_url("none")));

/// The page links its assets relatively (`./swagger-ui.css`); a `<base>` makes them resolve
/// under `/docs/` whether the page was asked for as `/docs` or `/docs/`.
static PAGE: LazyLock<Option<Bytes>> = LazyLock::new(|| {
    let page = asset("index.html")?;
    let html = String::from_utf8_lossy(&page.1);
    Some(html.replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1).into())
});

/// An embedded file of Swagger UI: content type and bytes (`swagger-initializer.js` is filled
/// in with [`CONFIG`]).
fn asset(name: &str) -> Option<(String, Bytes)> {
    let file = utoipa_swagger_ui::serve(name, CONFIG.clone()).ok()??;
    let bytes = match file.bytes {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    Some((file.content_type, bytes))
}

/// Swagger UI's page.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    responses((status = 200, description = "Swagger UI", body = String, content_type = "text/html"))
)]
pub async fn page() -> HttpResponse {
    match &*PAGE {
        Some(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html.clone()),
        None => HttpResponse::InternalServerError().finish(),
    }
}

/// Same as `/docs`.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    operation_id = "page_slash",
    responses((status = 200, description = "Swagger UI", body = String, content_type = "text/html"))
)]
pub async fn page_slash() -> HttpResponse {
    page().await
}

/// A file of Swagger UI (scripts, styles, icons).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    params(("file" = String, Path, description = "e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The file, as JavaScript, CSS, HTML or PNG"),
        (status = 404, description = "No such file", body = ErrorBody),
    )
)]
pub async fn file(req: HttpRequest, file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let Some((content_type, bytes)) = asset(&file) else { return error::not_found(req).await };
    let content_type =
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, content_type)).body(bytes))
}
