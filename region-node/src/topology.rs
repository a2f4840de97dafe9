//! The cluster as one node sees it: every region's URLs and this region's failover order,
//! from `regions.toml`. Read by the FastAPI-layout `/api/v1/regions/*` routes and by
//! cross-region recommendations ([`crate::peers`]).

use std::collections::BTreeMap;
use std::time::Duration;

/// Plain data resolved by [`crate::Settings::from_cluster`]; tests build it directly.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Every region (this one too) and the base URLs of its nodes, without a trailing '/'.
    pub regions: BTreeMap<String, Vec<String>>,
    /// The regions this one fails over to, best first (`regions.<name>.failover`).
    pub failover: Vec<String>,
    /// Deadline of one probe of another region's `/health/ready` (`[health] timeout_ms`).
    pub probe_timeout: Duration,
    /// Deadline of one request to another region's node (`[router] request_timeout_ms`).
    pub peer_timeout: Duration,
}

impl Topology {
    /// Only `region`, at `url`: a node that knows no other region.
    pub fn single(region: &str, url: &str) -> Self {
        Self {
            regions: BTreeMap::from([(region.to_string(), vec![url.to_string()])]),
            failover: Vec::new(),
            probe_timeout: Duration::from_millis(500),
            peer_timeout: Duration::from_secs(1),
        }
    }

    /// The first URL of `region`, or `""` when it has none.
    pub fn endpoint(&self, region: &str) -> &str {
        self.regions.get(region).and_then(|u| u.first()).map_or("", String::as_str)
    }
}
