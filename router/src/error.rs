//! The one place router errors become HTTP responses: status codes and JSON bodies
//! [`ErrorBody`]: `{"error": <code>, "message": <text>, ...details}`.

use std::collections::BTreeMap;

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::AdminError;
use crate::front::response::Response;
use crate::proxy::RouteError;
use crate::regions::state::RegionState;
use crate::upstream::UpstreamError;

/// The body of every answer the router makes itself when it cannot serve a request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// Machine-readable code, e.g. `no_healthy_region`.
    pub error: &'a str,
    pub message: String,
    /// The regions a hint may name (`unknown_region`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub valid_regions: Option<&'a [String]>,
    /// Every region's state (`no_healthy_region`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub regions: Option<BTreeMap<&'a str, RegionState>>,
    /// The attempts that failed, in order (`all_regions_failed`: all of them; otherwise the last).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub attempts: Option<Vec<Attempt<'a>>>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(error: &'a str, message: impl std::fmt::Display) -> Self {
        Self { error, message: message.to_string(), valid_regions: None, regions: None, attempts: None }
    }
}

/// One failed attempt to have a node answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt<'a> {
    pub region: &'a str,
    /// The node's URL.
    pub node: &'a str,
    pub error: String,
    /// Whether another node or region was worth trying.
    pub retryable: bool,
    pub took_ms: u64,
}

impl RouteError {
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::UnknownRegion { .. } => "unknown_region",
            RouteError::NoHealthyRegion { .. } => "no_healthy_region",
            RouteError::AllRegionsFailed { .. } => "all_regions_failed",
            RouteError::BudgetExhausted { .. } => "retry_budget_exhausted",
            RouteError::Upstream(_) => "upstream_error",
            RouteError::MaybeApplied(_) => "outcome_unknown",
            RouteError::ResidencyUnavailable { .. } => "residency_unavailable",
        }
    }
}

fn attempt(e: &UpstreamError) -> Attempt<'_> {
    Attempt {
        region: &e.region,
        node: &e.node,
        error: e.kind.to_string(),
        retryable: e.is_retryable(),
        took_ms: e.took.as_millis() as u64,
    }
}

impl RouteError {
    pub fn status(&self) -> u16 {
        match self {
            RouteError::UnknownRegion { .. } => 400,
            RouteError::NoHealthyRegion { .. }
            | RouteError::AllRegionsFailed { .. }
            | RouteError::BudgetExhausted { .. }
            | RouteError::ResidencyUnavailable { .. } => 503,
            RouteError::Upstream(e) | RouteError::MaybeApplied(e) if e.is_timeout() => 504,
            RouteError::Upstream(_) | RouteError::MaybeApplied(_) => 502,
        }
    }

    pub fn response(&self) -> Response {
        let mut body = ErrorBody::new(self.code(), self);
        match self {
            RouteError::UnknownRegion { known, .. } => body.valid_regions = Some(known),
            RouteError::NoHealthyRegion { states } | RouteError::ResidencyUnavailable { states, .. } => {
                body.regions = Some(states.iter().map(|(name, s)| (name.as_str(), *s)).collect());
            }
            RouteError::AllRegionsFailed { attempts } => {
                body.attempts = Some(attempts.iter().map(attempt).collect());
            }
            RouteError::BudgetExhausted { last }
            | RouteError::Upstream(last)
            | RouteError::MaybeApplied(last) => {
                body.attempts = Some(vec![attempt(last)]);
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

    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotConfigured => "admin_not_configured",
            AdminError::MissingToken => "missing_token",
            AdminError::WrongToken => "wrong_token",
            AdminError::BadBody(_) => "invalid_body",
            AdminError::UnknownRegion { .. } => "unknown_region",
        }
    }

    pub fn response(&self) -> Response {
        let mut body = ErrorBody::new(self.code(), self);
        if let AdminError::UnknownRegion { known, .. } = self {
            body.valid_regions = Some(known);
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
    Response::json(status, &ErrorBody::new(code, message))
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
