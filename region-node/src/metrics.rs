//! Prometheus metrics of one node, in its own registry (tests run several nodes per process,
//! which the global default registry would not allow).
//!
//! Subsystems get clones of just the handles they update ([`CacheMetrics`],
//! [`SwapMetrics`]); prometheus handles are shared atomics, so this costs nothing and keeps
//! the cache and swap code free of the HTTP layer.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Latency by route pattern, 100 us .. ~3 s.
    pub latency: HistogramVec,
    /// Answers computed from the model, by kind; single-flight followers are not counted.
    pub computations: IntCounterVec,
    /// Events by outcome: `accepted` (stored), `duplicate` (stored before under the same
    /// user and `event_id`: nothing new stored), `not_stored` (Redis refused or timed out).
    pub events: IntCounterVec,
    pub cache: CacheMetrics,
    pub swap: SwapMetrics,
}

#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: IntCounter,
    /// Lookups that did not produce an answer: absent, failed or skipped by the breaker.
    pub misses: IntCounter,
    /// Redis calls that failed or timed out.
    pub errors: IntCounter,
    /// 1 while the breaker lets calls through, 0 while it is open.
    pub redis_up: IntGauge,
}

impl CacheMetrics {
    /// `hits / (hits + misses)`, 0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        let (h, m) = (self.hits.get() as f64, self.misses.get() as f64);
        if h + m == 0.0 {
            0.0
        } else {
            h / (h + m)
        }
    }
}

#[derive(Clone)]
pub struct SwapMetrics {
    pub swaps: IntCounter,
    pub failures: IntCounter,
    /// Download + verify + decode + build + warm-up of one version.
    pub duration: Histogram,
    /// `georec_model_info{version="..."} 1` for the serving version.
    pub info: IntGaugeVec,
    pub loaded_at: IntGauge,
}

impl SwapMetrics {
    pub fn serving(&self, version: &str, loaded_at: i64) {
        self.info.reset();
        self.info.with_label_values(&[version]).set(1);
        self.loaded_at.set(loaded_at);
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("georec_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("georec_http_request_duration_seconds", "HTTP request latency by route")
                .buckets(exponential_buckets(0.0001, 2.0, 16)?),
            &["route"],
        )?;
        let computations = IntCounterVec::new(
            Opts::new("georec_model_computations_total", "Answers computed from the model, by kind"),
            &["kind"],
        )?;
        let events = IntCounterVec::new(
            Opts::new("georec_events_total", "Events received by POST /events, by outcome"),
            &["outcome"],
        )?;
        let cache = CacheMetrics {
            hits: IntCounter::new("georec_cache_hits_total", "Answers served from Redis")?,
            misses: IntCounter::new("georec_cache_misses_total", "Lookups that found no usable answer")?,
            errors: IntCounter::new("georec_cache_errors_total", "Redis calls that failed or timed out")?,
            redis_up: IntGauge::new(
                "georec_redis_up",
                "1 when Redis is in use, 0 while the breaker is open",
            )?,
        };
        let swap = SwapMetrics {
            swaps: IntCounter::new("georec_model_swaps_total", "Model versions swapped in")?,
            failures: IntCounter::new(
                "georec_model_swap_failures_total",
                "Pointer checks or versions that failed to load (the serving model was kept)",
            )?,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "georec_model_swap_duration_seconds",
                    "Download, verify, decode, build and warm-up of one version",
                )
                .buckets(exponential_buckets(0.01, 2.0, 14)?),
            )?,
            info: IntGaugeVec::new(
                Opts::new("georec_model_info", "The serving model version (value is always 1)"),
                &["version"],
            )?,
            loaded_at: IntGauge::new(
                "georec_model_loaded_timestamp_seconds",
                "Unix time the serving model was loaded",
            )?,
        };
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(computations.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(cache.hits.clone()))?;
        registry.register(Box::new(cache.misses.clone()))?;
        registry.register(Box::new(cache.errors.clone()))?;
        registry.register(Box::new(cache.redis_up.clone()))?;
        registry.register(Box::new(swap.swaps.clone()))?;
        registry.register(Box::new(swap.failures.clone()))?;
        registry.register(Box::new(swap.duration.clone()))?;
        registry.register(Box::new(swap.info.clone()))?;
        registry.register(Box::new(swap.loaded_at.clone()))?;
        Ok(Self { registry, requests, latency, computations, events, cache, swap })
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_and_the_serving_version() {
        let m = Metrics::new().expect("metrics");
        m.swap.serving("v1", 10);
        m.swap.serving("v2", 20);
        m.cache.hits.inc();
        m.cache.misses.inc();
        m.requests.with_label_values(&["/x", "GET", "200"]).inc();
        let text = m.render().expect("renders");
        assert!(text.contains("georec_model_info{version=\"v2\"} 1"), "{text}");
        assert!(!text.contains("version=\"v1\""), "{text}");
        assert!(text.contains("georec_http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 1"));
        assert_eq!(m.cache.hit_ratio(), 0.5);
    }
}
