//! [`RegionState`]: whether a region takes traffic, as routing, metrics and `GET /regions`
//! name it.

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

/// Whether a region takes traffic: `drained` by an operator, `unhealthy` when none of its
/// nodes passes health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegionState {
    Healthy,
    Unhealthy,
    Drained,
}

impl RegionState {
    pub const ALL: [RegionState; 3] = [RegionState::Healthy, RegionState::Unhealthy, RegionState::Drained];

    pub fn as_str(self) -> &'static str {
        match self {
            RegionState::Healthy => "healthy",
            RegionState::Unhealthy => "unhealthy",
            RegionState::Drained => "drained",
        }
    }
}

impl fmt::Display for RegionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
