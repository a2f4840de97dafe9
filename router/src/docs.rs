//! `GET /docs`: Swagger UI for `GET /openapi.json`, from files built into the binary
//! (utoipa-swagger-ui's `vendored` feature: nothing is downloaded at build or run time, and the
//! page loads nothing from elsewhere, as the status page).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use utoipa_swagger_ui::Config;

use crate::error::plain_error;
use crate::front::response::Response;

/// The document to show; no validator badge (it would send the document to swagger.io).
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["/openapi.json"]).validator_url("none")));

/// The page links its assets relatively (`./swagger-ui.css`); a `<base>` makes them resolve
/// under `/docs/` whether the page was asked for as `/docs` or `/docs/`.
static PAGE: LazyLock<Option<Bytes>> = LazyLock::new(|| {
    let (_, page) = asset("index.html")?;
    let html = String::from_utf8_lossy(&page);
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

/// `GET /docs` and `GET /docs/`.
pub fn page() -> Response {
    match &*PAGE {
        Some(html) => Response::new(200, "text/html; charset=utf-8", html.clone()),
        None => plain_error(500, "internal", "Swagger UI's page is missing from the build"),
    }
}

/// `GET /docs/{file}`.
pub fn file(name: &str) -> Response {
    let Some((content_type, bytes)) = asset(name) else {
        return plain_error(404, "not_found", format_args!("no route for /docs/{name}"));
    };
    let mut resp = Response::new(200, "application/octet-stream", bytes);
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.set_header(CONTENT_TYPE, v);
    }
    resp
}
