//! The file's text form of each section: what is deserialized (and checked) before the
//! typed values are made, and what `Serialize` writes back out. Defaults live here only.
//! The sections whose file form is already their type (the stores, the swap priority) are
//! defined here and re-exported.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Router {
    pub listen: String,
    pub request_timeout_ms: u64,
    pub rate_limit: RateLimit,
}

impl Default for Router {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8080".into(), request_timeout_ms: 1000, rate_limit: RateLimit::default() }
    }
}

/// `[router.rate_limit]`: per-client token buckets at the router (off unless `enabled`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub enabled: bool,
    /// CIDRs (or single addresses) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Distinct client keys tracked per class at most.
    pub max_keys: u64,
    /// How often keys whose bucket is full again are forgotten.
    pub sweep_interval_ms: u64,
    pub reads: ClassLimit,
    pub events: ClassLimit,
    pub admin: ClassLimit,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            enabled: false,
            trusted_proxies: Vec::new(),
            max_keys: 100_000,
            sweep_interval_ms: 10_000,
            reads: ClassLimit { per_second: 50, burst: Some(100) },
            events: ClassLimit { per_second: 20, burst: Some(40) },
            admin: ClassLimit { per_second: 1, burst: Some(5) },
        }
    }
}

/// One class's bucket: refilled at `per_second`, holding at most `burst` requests (twice
/// `per_second` when absent, so `GEOREC__ROUTER__RATE_LIMIT__READS__PER_SECOND` alone works).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLimit {
    pub per_second: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub fall: u32,
    pub rise: u32,
    pub eject_after: u32,
}

impl Default for Health {
    fn default() -> Self {
        Self { interval_ms: 1000, timeout_ms: 500, fall: 2, rise: 2, eject_after: 3 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    pub ttl_secs: u64,
    pub ttl_jitter_pct: u8,
    pub redis_timeout_ms: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self { ttl_secs: 300, ttl_jitter_pct: 10, redis_timeout_ms: 50 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Model {
    pub poll_interval_ms: u64,
    pub swap_priority: SwapPriority,
}

impl Default for Model {
    fn default() -> Self {
        Self { poll_interval_ms: 2000, swap_priority: SwapPriority::Low }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub listen: String,
    pub urls: Vec<String>,
    pub redis_url: String,
    pub cloud_region: String,
    #[serde(default)]
    pub failover: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<String>,
    pub s3: RegionStore,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub primary: PrimaryStore,
    pub router: Router,
    pub health: Health,
    pub cache: Cache,
    pub model: Model,
    pub regions: std::collections::BTreeMap<String, Region>,
}

/// The publishing bucket: model-sync uploads here first, then replicates to regions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrimaryStore {
    /// S3 endpoint URL (checked at load; kept as written, which is what the S3 client takes);
    /// absent means the provider's default (AWS S3).
    #[serde(default)]
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// Signing region for this store.
    pub cloud_region: String,
}

/// How a region node's swap work shares the CPUs with its request threads.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SwapPriority {
    /// Linux `SCHED_IDLE`: the swap runs only on CPU time the request threads leave, and a
    /// CPU running it counts as idle, so a woken request thread takes it at once. On a node
    /// whose CPUs are saturated, a swap waits until load drops: opt in where the nodes keep
    /// CPU headroom.
    Idle,
    /// Nice 5 (the default): the swap gets about a third of a request thread's share of a
    /// busy CPU, so it completes in seconds under any load, at the cost of requests now and
    /// then waiting behind it.
    #[default]
    Low,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionStore {
    /// S3 endpoint URL, checked at load and kept as written; absent means AWS S3.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}
