//! Per-client rate limits (`[router.rate_limit]`): one token bucket per client and request
//! class, so one client cannot starve the others. Off unless `enabled`.
//!
//! - [`class`]: what a request counts as (reads, events, admin).
//! - [`key`]: who a request is counted against (`X-Api-Key`, else the address; the address in
//!   `X-Forwarded-For` only from trusted proxies).
//! - [`store`]: governor's keyed GCRA state with a cap on distinct keys.
//! - [`top`]: the clients refused most, for `/regions` and the status page.
//!
//! A request over its class's limit gets `429` with the router's JSON error body
//! (`rate_limited`), `Retry-After` (whole seconds until one request is allowed again) and
//! the `RateLimit-Policy` / `RateLimit` fields of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers): `"reads";q=100;w=2` says a full bucket holds 100
//! requests and refills in 2 s; `"reads";r=0;t=1` says none is left and when one is.
//! Served requests carry neither: nothing is added to the path of a request under its limit.
//!
//! One [`Limiter`] serves every worker thread (it lives in the shared state), so a client
//! whose connections land on several workers still gets its limit once, not once per worker.
//! Its maps are sharded (DashMap) and a check is a lookup and one compare-and-swap.
//! Keys whose bucket is full again are forgotten every `sweep_interval_ms` ([`spawn_sweeper`]).
//!
//! The answers are built here rather than in `crate::error` so that the whole feature is
//! this module and one call in the crate root's routing.

pub mod class;
pub mod key;
pub mod store;
pub mod top;

pub use self::class::Class;

use std::hash::RandomState;
use std::sync::Arc;

use cluster_config::rate_limit::{ClassLimit, IpNet, RateLimitConfig};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use utoipa::ToSchema;

use self::key::ClientKey;
use self::store::CappedStore;
use self::top::{LimitedClient, TopLimited};
use crate::front::request::Request;
use crate::front::response::Response;
use crate::metrics::Metrics;

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Clients listed on `/regions`.
const TOP_SHOWN: usize = 10;

type KeyedLimiter = RateLimiter<ClientKey, CappedStore, DefaultClock>;

/// One class's buckets and what its answers say.
struct Bucket {
    class: Class,
    limit: ClassLimit,
    limiter: KeyedLimiter,
    /// `RateLimit-Policy` of every refusal, made once.
    policy: Option<HeaderValue>,
    limited: IntCounter,
}

/// Every class's buckets; shared by all worker threads.
pub struct Limiter {
    buckets: [Bucket; 3],
    trusted_proxies: Vec<IpNet>,
    /// Hashes API keys ([`ClientKey::of`]).
    hasher: RandomState,
    max_keys: usize,
    top: TopLimited,
    sweep_interval: std::time::Duration,
    /// Keys tracked per class (set by each sweep).
    keys: IntGaugeVec,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("max_keys", &self.max_keys).finish_non_exhaustive()
    }
}

impl Limiter {
    /// The limiter `config` describes, its series registered in `metrics`; `None` when
    /// limiting is off.
    pub fn new(config: &RateLimitConfig, metrics: &Metrics) -> Result<Option<Arc<Self>>, prometheus::Error> {
        if !config.enabled {
            return Ok(None);
        }
        let limited = IntCounterVec::new(
            Opts::new(
                "router_rate_limited_total",
                "Requests refused with 429 by the per-client limits, by class",
            ),
            &["class"],
        )?;
        let overflow = IntCounterVec::new(
            Opts::new(
                "router_rate_limit_overflow_total",
                "Requests of clients not tracked while a class tracked max_keys others, counted \
                 against one shared bucket",
            ),
            &["class"],
        )?;
        let keys = IntGaugeVec::new(
            Opts::new("router_rate_limit_keys", "Client keys tracked per class (at the last sweep)"),
            &["class"],
        )?;
        metrics.register(Box::new(limited.clone()))?;
        metrics.register(Box::new(overflow.clone()))?;
        metrics.register(Box::new(keys.clone()))?;
        let bucket = |class: Class, limit: ClassLimit| -> Result<Bucket, prometheus::Error> {
            let name = class.as_str();
            let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
            let store = CappedStore::new(config.max_keys, overflow.get_metric_with_label_values(&[name])?);
            let refill = limit.burst.get().div_ceil(limit.per_second.get());
            let policy = field(format!("\"{name}\";q={};w={refill}", limit.burst));
            keys.with_label_values(&[name]).set(0);
            Ok(Bucket {
                class,
                limit,
                limiter: RateLimiter::new(quota, store, DefaultClock::default()),
                policy,
                limited: limited.get_metric_with_label_values(&[name])?,
            })
        };
        Ok(Some(Arc::new(Self {
            buckets: [
                bucket(Class::Reads, config.reads)?,
                bucket(Class::Events, config.events)?,
                bucket(Class::Admin, config.admin)?,
            ],
            trusted_proxies: config.trusted_proxies.clone(),
            hasher: RandomState::new(),
            max_keys: config.max_keys,
            top: TopLimited::default(),
            sweep_interval: config.sweep_interval,
            keys,
        })))
    }

    /// `None` when `req` may go on; else the 429 to answer with.
    pub fn check(&self, req: &Request) -> Option<Response> {
        let class = Class::of(&req.method, req.path())?;
        let bucket = &self.buckets[class as usize];
        let key = ClientKey::of(req, &self.trusted_proxies, &self.hasher);
        let not_until = bucket.limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(bucket.limiter.clock().now());
        // Whole seconds, rounded up, at least 1: a client retrying on time is served.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        bucket.limited.inc();
        self.top.record(&key, class);
        tracing::debug!(client = %key, class = class.as_str(), retry_after_s = secs, "rate limited");
        Some(bucket.refusal(secs))
    }

    /// Forget keys whose bucket is full again, give the memory back, update the key gauges.
    pub fn sweep(&self) {
        for b in &self.buckets {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
            self.keys.with_label_values(&[b.class.as_str()]).set(b.limiter.len() as i64);
        }
        self.top.forget_old();
    }

    /// What `/regions` shows.
    pub fn view(&self) -> RateLimitView {
        let class = |c: Class| {
            let b = &self.buckets[c as usize];
            ClassView {
                per_second: b.limit.per_second.get(),
                burst: b.limit.burst.get(),
                keys: b.limiter.len(),
            }
        };
        RateLimitView {
            enabled: true,
            max_keys: self.max_keys,
            reads: Some(class(Class::Reads)),
            events: Some(class(Class::Events)),
            admin: Some(class(Class::Admin)),
            top_limited: self.top.top(TOP_SHOWN),
        }
    }
}

impl Bucket {
    fn refusal(&self, retry_after: u64) -> Response {
        let (per_second, burst) = (self.limit.per_second, self.limit.burst);
        let message = format!(
            "too many {} requests from this client: {per_second} a second are allowed (bursts of \
             {burst}); retry in {retry_after} s",
            self.class.as_str()
        );
        let body = serde_json::json!({ "error": "rate_limited", "message": message });
        let mut resp = Response::json(429, &body).with_header(RETRY_AFTER, HeaderValue::from(retry_after));
        let state = field(format!("\"{}\";r=0;t={retry_after}", self.class.as_str()));
        for (name, value) in [(RATELIMIT_POLICY, self.policy.clone()), (RATELIMIT, state)] {
            if let Some(v) = value {
                resp = resp.with_header(name, v);
            }
        }
        resp
    }
}

/// A `RateLimit-Policy` or `RateLimit` value: a class name and numbers, so always a valid
/// header value (`None` would only drop the field, never the 429).
fn field(text: String) -> Option<HeaderValue> {
    HeaderValue::try_from(text).ok()
}

/// `rate_limit` in `GET /regions`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateLimitView {
    pub enabled: bool,
    pub max_keys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<ClassView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<ClassView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<ClassView>,
    /// The clients refused most often recently, most first.
    pub top_limited: Vec<LimitedClient>,
}

impl RateLimitView {
    /// Limiting is off.
    pub fn off() -> Self {
        Self { enabled: false, max_keys: 0, reads: None, events: None, admin: None, top_limited: Vec::new() }
    }
}

/// One class's limits and how many clients it tracks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassView {
    pub per_second: u32,
    pub burst: u32,
    pub keys: usize,
}

/// Sweep `limiter` every `sweep_interval_ms` until aborted.
pub fn spawn_sweeper(limiter: Arc<Limiter>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(limiter.sweep_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            limiter.sweep();
        }
    })
}

#[cfg(test)]
mod tests;
