//! Every HTTP error the node answers, and the one place that maps errors to status codes.
//!
//! Bodies are always JSON: `{"error": "<code>", "message": "<why>", "field": "<which>"}`
//! (`field` only when one input is to blame). Clients branch on `error`, people read
//! `message`; neither ever carries a Rust type name or a panic.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use cluster_config::errors::error_chain;
use serde::Serialize;

use crate::cache::CacheError;
use crate::service::ServeError;
use crate::swap::SwapError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not readable (400).
    #[error("{message}")]
    Malformed { field: String, message: String },
    /// The body is larger than the limit (400).
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// JSON of the wrong shape or a value out of range (422).
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("admin routes need `Authorization: Bearer <token>` with the node's admin token")]
    Unauthorized,
    #[error("admin routes are disabled: the admin token is not configured (set GEOREC_ADMIN_TOKEN)")]
    AdminDisabled,
    /// `/admin/model/reload` found a version it could not load (the old one keeps serving).
    #[error(transparent)]
    Reload(Box<SwapError>),
    /// `/admin/cache/clear` could not reach Redis.
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot render metrics")]
    Metrics(#[from] prometheus::Error),
    /// A cross-region request found no region able to answer.
    #[error("{0}")]
    Regions(String),
    #[error("no route for {method} {path}; see /openapi.json")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}; see /openapi.json")]
    MethodNotAllowed { method: String, path: String },
}

impl From<SwapError> for ApiError {
    fn from(e: SwapError) -> Self {
        // Boxed: the load error chain is large and would bloat every `Result<_, ApiError>`.
        ApiError::Reload(Box::new(e))
    }
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid { field: field.into(), message: message.into() }
    }

    /// Stable, machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed { .. } => "malformed_request",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::Serve(ServeError::NotReady) => "model_not_loaded",
            ApiError::Serve(ServeError::UnknownItem { .. }) => "unknown_item",
            ApiError::Serve(ServeError::EventsNotStored(_)) => "events_not_stored",
            ApiError::Serve(ServeError::EventsUnconfirmed(_)) => "events_unconfirmed",
            ApiError::Serve(ServeError::Failed { .. }) => "model_failed",
            ApiError::Serve(ServeError::UserErased { .. }) => "user_erased",
            ApiError::Unauthorized => "unauthorized",
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::Reload(_) => "reload_failed",
            ApiError::Cache(_) => "cache_unavailable",
            ApiError::Metrics(_) => "internal",
            ApiError::Regions(_) => "no_region_answered",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// The input to blame, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Malformed { field, .. } | ApiError::Invalid { field, .. } => Some(field),
            ApiError::TooLarge { .. } => Some("body"),
            ApiError::Serve(ServeError::UnknownItem { .. }) => Some("item_id"),
            ApiError::Serve(ServeError::UserErased { .. }) => Some("user_id"),
            _ => None,
        }
    }
}

/// Descriptions of the error answers several routes share, for the OpenAPI document.
pub const MALFORMED: &str = "Malformed JSON, or a body over the size limit; `field` names the culprit";
pub const INVALID: &str = "Wrong type, unknown field or value out of range; `field` names it";
pub const NOT_LOADED: &str = "No model loaded yet (`Retry-After: 1`)";

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// Machine-readable code, e.g. `invalid_request`.
    error: &'static str,
    message: String,
    /// The input to blame, e.g. `count` or `exclude[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } | ApiError::TooLarge { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Serve(ServeError::NotReady | ServeError::EventsNotStored(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            // Not 503: a 503 means "not done, safe to retry"; these may have been stored.
            ApiError::Serve(ServeError::EventsUnconfirmed(_)) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Serve(ServeError::UnknownItem { .. }) | ApiError::NotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::Serve(ServeError::UserErased { .. }) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::Reload(_) | ApiError::Regions(_) => StatusCode::BAD_GATEWAY,
            ApiError::Cache(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Metrics(_) | ApiError::Serve(ServeError::Failed { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody { error: self.code(), message: error_chain(self), field: self.field() };
        let mut res = HttpResponse::build(self.status_code()).json(body);
        if matches!(self, ApiError::Unauthorized) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::Serve(ServeError::NotReady | ServeError::EventsNotStored(_))) {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Default service of the app: JSON 404 instead of actix's empty body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound { method: req.method().to_string(), path: req.path().to_string() })
}

/// Default service of each resource: JSON 405.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { method: req.method().to_string(), path: req.path().to_string() })
}
