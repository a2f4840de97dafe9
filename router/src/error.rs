//! The one place router errors become HTTP responses: status codes and JSON bodies
//! `{"error": <code>, "message": <text>, ...details}`.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{json, Value};

use crate::admin::AdminError;
use crate::front::response::Response;
use crate::proxy::RouteError;
use crate::upstream::UpstreamError;

impl RouteError {
    fn code(&self) -> &'static str {
        match self {
            RouteError::UnknownRegion { .. } => "unknown_region",
            RouteError::NoHealthyRegion { .. } => "no_healthy_region",
            RouteError::AllRegionsFailed { .. } => "all_regions_failed",
            RouteError::BudgetExhausted { .. } => "retry_budget_exhausted",
            RouteError::Upstream(_) => "upstream_error",
            RouteError::MaybeApplied(_) => "outcome_unknown",
        }
    }
}

fn attempt(e: &UpstreamError) -> Value {
    json!({
        "region": e.region,
        "node": e.node,
        "error": e.kind.to_string(),
        "retryable": e.is_retryable(),
        "took_ms": e.took.as_millis() as u64,
    })
}

impl RouteError {
    pub fn status(&self) -> u16 {
        match self {
            RouteError::UnknownRegion { .. } => 400,
            RouteError::NoHealthyRegion { .. }
            | RouteError::AllRegionsFailed { .. }
            | RouteError::BudgetExhausted { .. } => 503,
            RouteError::Upstream(e) | RouteError::MaybeApplied(e) if e.is_timeout() => 504,
            RouteError::Upstream(_) | RouteError::MaybeApplied(_) => 502,
        }
    }

    pub fn response(&self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        match self {
            RouteError::UnknownRegion { known, .. } => body["valid_regions"] = json!(known),
            RouteError::NoHealthyRegion { states } => {
                body["regions"] = states.iter().map(|(name, s)| (name.clone(), json!(s))).collect();
            }
            RouteError::AllRegionsFailed { attempts } => {
                body["attempts"] = attempts.iter().map(attempt).collect();
            }
            RouteError::BudgetExhausted { last }
            | RouteError::Upstream(last)
            | RouteError::MaybeApplied(last) => {
                body["attempts"] = json!([attempt(last)]);
            }
        }
        let resp = Response::json(self.status(), &body);
        if self.status() == 503 {
            return resp.with_header(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::MissingToken => 401,
            AdminError::NotConfigured | AdminError::WrongToken => 403,
            AdminError::BadBody(_) | AdminError::UnknownRegion { .. } => 400,
        }
    }

    pub fn response(&self) -> Response {
        let code = match self {
            AdminError::NotConfigured => "admin_not_configured",
            AdminError::MissingToken => "missing_token",
            AdminError::WrongToken => "wrong_token",
            AdminError::BadBody(_) => "invalid_body",
            AdminError::UnknownRegion { .. } => "unknown_region",
        };
        let mut body = json!({ "error": code, "message": self.to_string() });
        if let AdminError::UnknownRegion { known, .. } = self {
            body["valid_regions"] = json!(known);
        }
        let resp = Response::json(self.status(), &body);
        if matches!(self, AdminError::MissingToken) {
            return resp.with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// An answer the router makes itself: `{"error": code, "message": text}`.
pub fn plain_error(status: u16, code: &str, message: impl std::fmt::Display) -> Response {
    Response::json(status, &json!({ "error": code, "message": message.to_string() }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::AttemptError;

    fn failed(region: &str, kind: AttemptError) -> UpstreamError {
        UpstreamError {
            region: region.into(),
            node: format!("http://{region}:1"),
            kind,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn every_route_error_has_its_status_and_names_the_failed_regions() {
        let timeout = || failed("a", AttemptError::Timeout(Duration::from_millis(300)));
        let cases = [
            (RouteError::UnknownRegion { hint: "x".into(), known: vec!["a".into()] }, 400, "unknown_region"),
            (RouteError::NoHealthyRegion { states: vec![] }, 503, "no_healthy_region"),
            (
                RouteError::AllRegionsFailed {
                    attempts: vec![timeout(), failed("b", AttemptError::ServerError(502))],
                },
                503,
                "all_regions_failed",
            ),
            (RouteError::BudgetExhausted { last: timeout() }, 503, "retry_budget_exhausted"),
            (RouteError::Upstream(timeout()), 504, "upstream_error"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.code(), code);
        }
        let all = RouteError::AllRegionsFailed { attempts: vec![timeout()] };
        assert!(failed("a", AttemptError::ServerError(500)).is_retryable());
        assert_eq!(all.to_string(), "all 1 region(s) tried failed");
        assert_eq!(timeout().to_string(), "region a (http://a:1): no answer within 300ms");
    }

    #[test]
    fn admin_errors_distinguish_missing_from_wrong_tokens() {
        assert_eq!(AdminError::MissingToken.status(), 401);
        assert_eq!(AdminError::WrongToken.status(), 403);
        assert_eq!(AdminError::NotConfigured.status(), 403);
        let resp = AdminError::MissingToken.response();
        assert_eq!(resp.header("www-authenticate"), Some(&b"Bearer"[..]));
    }
}
