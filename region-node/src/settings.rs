//! What one node needs to know, resolved from `regions.toml` (+ env overrides) and the CLI.
//!
//! `main` is the only place that reads the environment: it passes the loaded
//! [`ClusterConfig`] and the admin token in, and gets back either a complete [`Settings`]
//! or every problem at once. Tests build [`Settings::new`] directly and override fields.

use std::net::SocketAddr;
use std::time::Duration;

use cluster_config::{url_text, ClusterConfig, ConfigError, SwapPriority};

use crate::topology::Topology;

/// Everything a node runs with. Plain data: no I/O happens here.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Region this node serves; names the cache keys, the bucket and `x-served-by`.
    pub region: String,
    /// Address to bind (from `regions.<region>.listen`, or `--listen`).
    pub listen: SocketAddr,
    /// The region's Redis (`redis://host:port[/db]`).
    pub redis_url: String,
    pub cache: CacheSettings,
    pub poll: PollSettings,
    /// CPU priority of swap work (`[model] swap_priority`).
    pub swap_priority: SwapPriority,
    /// Bearer token for `/admin/*`; `None` makes admin routes answer 403.
    pub admin_token: Option<AdminToken>,
    /// Largest request body accepted; bigger ones are rejected before parsing.
    pub max_body_bytes: usize,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// HTTP worker threads; `None` is actix's default (one per core).
    pub workers: Option<usize>,
    /// Faults injected into versions (rollout tests and drills; `--inject-fault`).
    pub faults: Vec<crate::rollout::Fault>,
    /// The region's residency zone (`regions.<region>.residency`), if any.
    pub zone: Option<String>,
    /// The other regions, for `/api/v1/regions/*` and cross-region recommendations.
    pub topology: Topology,
}

/// Redis cache and its breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Base lifetime of a cached answer.
    pub ttl: Duration,
    /// The TTL is randomised by +/- this percentage so keys written together don't expire
    /// together.
    pub ttl_jitter_pct: u8,
    /// Deadline of every Redis call; past it the node answers from the model.
    pub redis_timeout: Duration,
    /// Consecutive Redis failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe may try Redis again.
    pub breaker_cooldown: Duration,
    /// How often the background monitor pings Redis, so health is current and an open
    /// breaker closes again even without traffic.
    pub probe_interval: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            ttl_jitter_pct: 10,
            redis_timeout: Duration::from_millis(50),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
            probe_interval: Duration::from_secs(1),
        }
    }
}

/// Model pointer polling.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSettings {
    /// Nominal time between pointer checks.
    pub interval: Duration,
    /// Each wait is scaled by a random factor in `1 +/- jitter`, so regions (and replicas)
    /// don't hit their buckets in lockstep.
    pub jitter: f64,
    /// Upper bound of the exponential backoff after failed checks.
    pub max_backoff: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self { interval: Duration::from_secs(2), jitter: 0.2, max_backoff: Duration::from_secs(30) }
    }
}

pub use cluster_config::AdminToken;

/// One invalid setting and where it came from (the type every binary reports with).
pub use cluster_config::Problem;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Region(#[from] ConfigError),
    #[error("{} invalid setting(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

impl Settings {
    /// Defaults for everything but the region and its Redis; bound to `127.0.0.1:0`; knows
    /// no other region.
    pub fn new(region: impl Into<String>, redis_url: impl Into<String>) -> Self {
        let region = region.into();
        Self {
            topology: Topology::single(&region, ""),
            region,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            redis_url: redis_url.into(),
            cache: CacheSettings::default(),
            poll: PollSettings::default(),
            swap_priority: SwapPriority::default(),
            admin_token: None,
            max_body_bytes: 64 * 1024,
            shutdown_timeout: Duration::from_secs(15),
            workers: None,
            faults: Vec::new(),
            zone: None,
        }
    }

    /// Settings of `region` from the cluster file; `listen` overrides the file's address.
    pub fn from_cluster(
        cluster: &ClusterConfig,
        region: &str,
        listen: Option<&str>,
        admin_token: Option<AdminToken>,
    ) -> Result<Self, SettingsError> {
        let r = cluster.region(region)?;
        let mut s = Settings::new(region, url_text(&r.redis_url));
        let mut problems = Vec::new();
        s.listen = r.listen;
        s.zone = r.residency.clone();
        if let Some(addr) = listen {
            match addr.parse() {
                Ok(a) => s.listen = a,
                Err(e) => problems.push(Problem::new("--listen", format!("invalid address {addr:?}: {e}"))),
            }
        }
        let c = &cluster.cache;
        s.cache.ttl = c.ttl;
        s.cache.ttl_jitter_pct = c.ttl_jitter_pct;
        s.cache.redis_timeout = c.redis_timeout;
        s.poll.interval = cluster.poll_interval();
        s.swap_priority = cluster.model.swap_priority;
        s.admin_token = admin_token;
        s.topology = Topology {
            regions: cluster
                .regions
                .iter()
                .map(|(name, r)| {
                    let urls = r.urls.iter().map(|u| url_text(u).trim_end_matches('/').to_string());
                    (name.clone(), urls.collect())
                })
                .collect(),
            failover: r.failover.clone(),
            probe_timeout: cluster.health.timeout,
            peer_timeout: cluster.router.request_timeout,
        };
        s.validate(&mut problems);
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(SettingsError::Invalid { problems })
        }
    }

    /// Checks of what the node adds to the file (whose values `cluster_config` checked at
    /// load: TTL, Redis deadline, poll interval).
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: &str| problems.push(Problem::new(key, message));
        if !(0.0..1.0).contains(&self.poll.jitter) {
            bad("poll.jitter", "must be in [0, 1)");
        }
        if self.max_body_bytes == 0 {
            bad("max_body_bytes", "must be positive");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../regions.toml");

    fn cluster(env: Vec<(String, String)>) -> ClusterConfig {
        ClusterConfig::from_toml_str(SHIPPED, env).expect("shipped regions.toml is valid")
    }

    #[test]
    fn region_settings_come_from_the_file_and_env() {
        let env = vec![("GEOREC__CACHE__REDIS_TIMEOUT_MS".to_string(), "80".to_string())];
        let s = Settings::from_cluster(&cluster(env), "eu-west", None, None).expect("valid");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8002");
        assert_eq!(s.redis_url, "redis://127.0.0.1:6382");
        assert_eq!(s.cache.redis_timeout, Duration::from_millis(80));
        assert_eq!(s.poll.interval, Duration::from_secs(2));
        assert_eq!(s.swap_priority, SwapPriority::Low);
        assert_eq!(s.topology.endpoint("ap-south"), "http://127.0.0.1:8003");
        assert_eq!(s.topology.failover, ["us-east", "us-west", "ap-south"]);
        assert_eq!(s.topology.regions.len(), 4);
        let env = vec![("GEOREC__MODEL__SWAP_PRIORITY".to_string(), "idle".to_string())];
        let s = Settings::from_cluster(&cluster(env), "eu-west", None, None).expect("valid");
        assert_eq!(s.swap_priority, SwapPriority::Idle);
    }

    #[test]
    fn an_unknown_swap_priority_is_reported_with_the_choices() {
        let env = vec![("GEOREC__MODEL__SWAP_PRIORITY".to_string(), "realtime".to_string())];
        let e = ClusterConfig::from_toml_str(SHIPPED, env).expect_err("not a priority");
        let text = e.to_string();
        assert!(text.contains("realtime") && text.contains("idle") && text.contains("low"), "{text}");
    }

    #[test]
    fn bad_listen_and_unknown_region_are_reported() {
        let c = cluster(Vec::new());
        let e = Settings::from_cluster(&c, "us-west", Some("nowhere"), None).expect_err("bad");
        assert!(e.to_string().contains("--listen: invalid address \"nowhere\""), "{e}");
        let e = Settings::from_cluster(&c, "mars", None, None).expect_err("unknown");
        assert!(e.to_string().contains("unknown region \"mars\""), "{e}");
    }
}
