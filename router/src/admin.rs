//! Operator endpoints: `POST /failover` (drain or restore a region; bearer token) and
//! `GET /regions` (the live view the status page polls; read-only, so open).

use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::front::request::Request;
use crate::front::response::Response;
use crate::limit::RateLimitView;
use crate::regions::state::RegionState;
use crate::regions::view::RegionView;

pub use cluster_config::AdminToken;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin endpoints are disabled: GEOREC_ADMIN_TOKEN is not set on the router")]
    NotConfigured,
    #[error("missing bearer token: send `Authorization: Bearer <GEOREC_ADMIN_TOKEN>`")]
    MissingToken,
    #[error("wrong admin token")]
    WrongToken,
    #[error(
        "invalid request body (expected {{\"region\": NAME, \"action\": \"drain\" | \"restore\"}}): {0}"
    )]
    BadBody(#[source] serde_json::Error),
    #[error("unknown region {name:?}; valid regions: {}", known.join(", "))]
    UnknownRegion { name: String, known: Vec<String> },
}

/// `drain`: no new requests (those in flight finish); `restore`: take traffic again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drain,
    Restore,
}

/// Drain or restore one region.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    pub region: String,
    pub action: Action,
}

/// The region's state after the command.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailoverResponse<'a> {
    region: &'a str,
    action: Action,
    state: RegionState,
}

pub(crate) fn authorize(state: &AppState, req: &Request) -> Result<(), AdminError> {
    let Some(token) = &state.admin_token else { return Err(AdminError::NotConfigured) };
    let presented = req
        .header_str("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(AdminError::MissingToken)?;
    if token.matches(presented) {
        Ok(())
    } else {
        Err(AdminError::WrongToken)
    }
}

/// `POST /failover` with `{"region": "us-west", "action": "drain" | "restore"}`.
pub fn failover(state: &AppState, req: &Request) -> Response {
    match drain_or_restore(state, req) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn drain_or_restore(state: &AppState, req: &Request) -> Result<Response, AdminError> {
    authorize(state, req)?;
    let cmd: FailoverRequest = serde_json::from_slice(&req.body).map_err(AdminError::BadBody)?;
    let regions = &state.regions;
    let idx = regions
        .find(&cmd.region)
        .ok_or_else(|| AdminError::UnknownRegion { name: cmd.region.clone(), known: regions.names() })?;
    let region = regions.get(idx);
    info!(region = %region.name, action = ?cmd.action, "operator failover command");
    let new_state = region.set_drained(cmd.action == Action::Drain, &state.metrics);
    Ok(Response::json(200, &FailoverResponse { region: &region.name, action: cmd.action, state: new_state }))
}

/// Everything `GET /regions` returns.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Regions)]
pub struct RegionsView {
    pub regions: Vec<RegionView>,
    /// Requests answered by any region since start, for traffic shares.
    pub total_served: u64,
    /// Retries the budget would fund right now.
    pub retry_budget: f64,
    pub probe_interval_ms: u64,
    /// No region passes its health checks, so requests go to every region not drained
    /// (panic mode) instead of being refused.
    pub panic: bool,
    /// Per-client limits: each class's, keys tracked and the clients refused most.
    pub rate_limit: RateLimitView,
}

/// `GET /regions`.
pub fn regions(state: &AppState) -> Response {
    let regions: Vec<RegionView> = state.regions.iter().map(|r| r.view()).collect();
    let view = RegionsView {
        total_served: regions.iter().map(|r| r.requests_served).sum(),
        regions,
        retry_budget: state.budget.available(),
        probe_interval_ms: state.settings.health.interval.as_millis() as u64,
        panic: state.regions.panicking(),
        rate_limit: state.limiter.as_ref().map_or_else(RateLimitView::off, |l| l.view()),
    };
    Response::json(200, &view)
        .with_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_and_stay_secret() {
        let t = AdminToken::new("s3cret").expect("non-empty");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cret!"));
        assert!(!t.matches("S3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(AdminToken::new("  ").is_none());
    }
}
