//! Cache-aside in the region's Redis, bounded by timeouts and a breaker.
//!
//! Keys name the region, the model version and the request shape, so a swap never serves
//! the previous model's answers and one region's clear never touches another's keys:
//!
//! ```text
//! georec:<region>:<version>:rec:<shape hash>:<user id>
//! georec:<region>:<version>:sim:<count>:<item id>
//! ```
//!
//! Redis is an optimisation, never a dependency: every call has a deadline, failures only
//! make the caller compute from the model, and the [`Breaker`] stops paying deadlines while
//! Redis is down. A background [`Cache::monitor`] pings on an interval, which keeps health
//! current and closes the breaker again when Redis is back, even without traffic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError};

use crate::answer::{Ranked, RecommendQuery};
use crate::breaker::{Breaker, BreakerState};
use crate::metrics::CacheMetrics;
use crate::settings::CacheSettings;

/// Keys per SCAN step of a clear: large enough to finish quickly, small enough that each
/// step blocks Redis for well under a millisecond.
const SCAN_BATCH: usize = 1000;
/// Deadline of each step of an admin clear: not on the request path, and SCAN over a big
/// keyspace is slower than a GET.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis URL {url:?}")]
    Url {
        url: String,
        #[source]
        source: RedisError,
    },
    #[error("Redis is considered down (breaker open); retrying by itself")]
    BreakerOpen,
    #[error("Redis {op} did not answer within {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("Redis {op} failed")]
    Redis {
        op: &'static str,
        #[source]
        source: RedisError,
    },
}

pub struct Cache {
    /// Reconnects by itself; created lazily, so a node starts even with Redis down.
    conn: ConnectionManager,
    breaker: Breaker,
    settings: CacheSettings,
    /// `georec:<region>:`
    prefix: String,
    /// The last call succeeded (health says "down" after any failure until one succeeds).
    last_ok: AtomicBool,
    metrics: CacheMetrics,
}

impl Cache {
    /// Must be called inside a Tokio runtime: the connection manager's reconnects run there.
    pub fn new(
        region: &str,
        redis_url: &str,
        settings: CacheSettings,
        metrics: CacheMetrics,
    ) -> Result<Self, CacheError> {
        let url_err = |source| CacheError::Url { url: redis_url.to_string(), source };
        let client = redis::Client::open(redis_url).map_err(url_err)?;
        // Our own deadline wraps every call; the manager's own limits only bound its
        // background reconnects, which should be quick and few (the breaker paces retries).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(ADMIN_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(url_err)?;
        let breaker = Breaker::new(settings.breaker_failures, settings.breaker_cooldown);
        metrics.redis_up.set(0);
        Ok(Self {
            conn,
            breaker,
            settings,
            prefix: format!("georec:{region}:"),
            last_ok: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn recommendation_key(&self, version: &str, q: &RecommendQuery) -> String {
        format!("{}{version}:rec:{:016x}:{}", self.prefix, q.shape_hash(), q.user_id)
    }

    pub fn similar_key(&self, version: &str, item_id: &str, count: usize) -> String {
        format!("{}{version}:sim:{count}:{item_id}", self.prefix)
    }

    /// Redis answers and the breaker is closed.
    pub fn is_up(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed) && self.breaker.state() == BreakerState::Closed
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The cached answer under `key`; `None` when absent, unreadable, or Redis is unusable.
    pub async fn get(&self, key: &str) -> Option<Ranked> {
        let found: Option<Vec<u8>> = self.call("GET", redis::cmd("GET").arg(key), None).await.ok().flatten();
        let ranked = found.and_then(|bytes| match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                // Written by another build with a different shape: recompute and overwrite.
                tracing::warn!(key, error = %e, "unreadable cache entry");
                self.metrics.errors.inc();
                None
            }
        });
        match ranked {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        }
        ranked
    }

    /// Store `value` with the jittered TTL. Best effort: a failure is counted and ignored.
    pub async fn put(&self, key: &str, value: &Ranked) {
        let Ok(bytes) = serde_json::to_vec(value) else { return };
        let ttl = self.ttl().as_secs().max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes).arg("EX").arg(ttl);
        let _ = self.call::<()>("SET", &cmd, None).await;
    }

    /// The configured TTL scaled by a random factor in `1 +/- jitter`.
    fn ttl(&self) -> Duration {
        let pct = f64::from(self.settings.ttl_jitter_pct) / 100.0;
        let factor = if pct > 0.0 { rand::random_range(1.0 - pct..=1.0 + pct) } else { 1.0 };
        self.settings.ttl.mul_f64(factor)
    }

    /// Delete every key of this region (all versions) with SCAN + UNLINK: Redis stays
    /// responsive (no `KEYS`, no blocking `DEL` of big values). Returns the keys removed.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0u64;
        let mut removed = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.call("SCAN", &scan, Some(ADMIN_TIMEOUT)).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                removed += self.call::<u64>("UNLINK", &unlink, Some(ADMIN_TIMEOUT)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        self.call::<String>("PING", &redis::cmd("PING"), None).await.map(drop)
    }

    /// Ping forever, every `probe_interval`. While the breaker is open, the ping after the
    /// cooldown is the probe that closes it again.
    pub async fn monitor(&self) {
        loop {
            let was_up = self.is_up();
            let result = self.ping().await;
            match (&result, was_up, self.is_up()) {
                (Err(e), true, false) => tracing::warn!(error = %e, "Redis down: answering from the model"),
                (Ok(()), false, true) => tracing::info!("Redis up: caching again"),
                _ => {}
            }
            tokio::time::sleep(self.settings.probe_interval).await;
        }
    }

    /// One Redis call through the breaker and under a deadline.
    async fn call<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
        timeout: Option<Duration>,
    ) -> Result<T, CacheError> {
        let Some(attempt) = self.breaker.try_acquire(Instant::now()) else {
            return Err(CacheError::BreakerOpen);
        };
        let timeout = timeout.unwrap_or(self.settings.redis_timeout);
        let mut conn = self.conn.clone();
        let result = match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(CacheError::Redis { op, source }),
            Err(_) => Err(CacheError::Timeout { op, timeout }),
        };
        match &result {
            Ok(_) => {
                attempt.succeeded();
                self.last_ok.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                attempt.failed(Instant::now());
                self.last_ok.store(false, Ordering::Relaxed);
                self.metrics.errors.inc();
                tracing::debug!(op, error = %e, "Redis call failed");
            }
        }
        self.metrics.redis_up.set(i64::from(self.is_up()));
        result
    }
}
