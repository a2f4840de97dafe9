//! Prometheus metrics of the router, in a registry of its own (several routers can live in
//! one test process), served on `GET /metrics`.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::front::response::Response;
use crate::regions::state::RegionState;

/// Label used when a request reached no region (bad hint, nothing healthy).
pub const NO_REGION: &str = "none";

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `region` served (or `none`), `status` code returned to the client.
    pub requests: IntCounterVec,
    /// Requests served by another region than hinted, or than first tried.
    pub failovers: IntCounterVec,
    /// Retries, by the region whose failure caused them.
    pub retries: IntCounterVec,
    pub retries_refused: IntCounter,
    /// Requests sent while no region passed its health checks (panic mode).
    pub panic_requests: IntCounter,
    /// Regions user erasures still have to reach.
    pub erasures_pending: IntGauge,
    pub ejections: IntCounterVec,
    pub probes: IntCounterVec,
    pub state_changes: IntCounterVec,
    /// One-hot: 1 for the region's current state.
    pub region_state: IntGaugeVec,
    /// One attempt towards a node, headers (and buffered body) included.
    pub upstream_seconds: HistogramVec,
    /// The whole client request as the router handled it.
    pub request_seconds: Histogram,
    /// Per region (in configuration order), the series every request touches, looked up once:
    /// `requests{status="200"}` and `upstream_seconds`. A labelled lookup takes the vector's
    /// lock and hashes the labels; the worker threads would share that cache line.
    hot: Vec<(String, IntCounter, Histogram)>,
}

impl Metrics {
    pub fn new(regions: &[String]) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let requests = counter(
            "router_requests_total",
            "Client requests by serving region and status",
            &["region", "status"],
        )?;
        let failovers = counter(
            "router_failovers_total",
            "Requests served away from the hinted region",
            &["from", "to"],
        )?;
        let retries = counter("router_retries_total", "Retries, by the region that failed", &["region"])?;
        let ejections = counter(
            "router_ejections_total",
            "Nodes ejected after consecutive request failures",
            &["region"],
        )?;
        let probes = counter("router_probes_total", "Readiness probes by result", &["region", "result"])?;
        let state_changes = counter(
            "router_region_state_changes_total",
            "Region state changes, by new state",
            &["region", "state"],
        )?;
        let retries_refused = IntCounter::new(
            "router_retry_budget_exhausted_total",
            "Retries refused because the retry budget was spent",
        )?;
        registry.register(Box::new(retries_refused.clone()))?;
        let panic_requests = IntCounter::new(
            "router_panic_requests_total",
            "Requests sent to every region not drained because none passed its health checks",
        )?;
        registry.register(Box::new(panic_requests.clone()))?;
        let erasures_pending = IntGauge::new(
            "router_erasures_pending",
            "Regions a user erasure has not reached yet (retried in the background)",
        )?;
        registry.register(Box::new(erasures_pending.clone()))?;
        let region_state = IntGaugeVec::new(
            Opts::new("router_region_state", "Current region state (1 for the state it is in)"),
            &["region", "state"],
        )?;
        registry.register(Box::new(region_state.clone()))?;
        let buckets = exponential_buckets(0.0005, 2.0, 15)?; // 0.5 ms .. ~8 s
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new("router_upstream_duration_seconds", "Latency of attempts towards nodes")
                .buckets(buckets.clone()),
            &["region"],
        )?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        let request_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "router_request_duration_seconds",
                "Client request latency through the router",
            )
            .buckets(buckets),
        )?;
        registry.register(Box::new(request_seconds.clone()))?;

        let hot = regions
            .iter()
            .map(|r| {
                let ok = requests.get_metric_with_label_values(&[r, "200"])?;
                Ok((r.clone(), ok, upstream_seconds.get_metric_with_label_values(&[r])?))
            })
            .collect::<Result<_, prometheus::Error>>()?;
        let metrics = Metrics {
            hot,
            registry,
            requests,
            failovers,
            retries,
            retries_refused,
            panic_requests,
            erasures_pending,
            ejections,
            probes,
            state_changes,
            region_state,
            upstream_seconds,
            request_seconds,
        };
        for r in regions {
            metrics.set_state_gauge(r, RegionState::Healthy);
        }
        Ok(metrics)
    }

    /// A client request answered with `status`, served by `region` (or [`NO_REGION`]).
    pub fn request_served(&self, region: &str, status: u16) {
        if status == 200 {
            if let Some((_, ok, _)) = self.hot.iter().find(|(r, _, _)| r == region) {
                ok.inc();
                return;
            }
        }
        let digits =
            [b'0' + (status / 100 % 10) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
        let status = std::str::from_utf8(&digits).unwrap_or("0");
        self.requests.with_label_values(&[region, status]).inc();
    }

    /// An attempt towards `region` took `seconds`.
    pub fn observe_upstream(&self, region: &str, seconds: f64) {
        match self.hot.iter().find(|(r, _, _)| r == region) {
            Some((_, _, h)) => h.observe(seconds),
            None => self.upstream_seconds.with_label_values(&[region]).observe(seconds),
        }
    }

    pub fn region_state_changed(&self, region: &str, to: RegionState) {
        self.state_changes.with_label_values(&[region, to.as_str()]).inc();
        self.set_state_gauge(region, to);
    }

    fn set_state_gauge(&self, region: &str, current: RegionState) {
        for s in RegionState::ALL {
            self.region_state.with_label_values(&[region, s.as_str()]).set(i64::from(s == current));
        }
    }

    /// Add series defined elsewhere (the rate limiter's, [`crate::limit`]) to this registry.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// `GET /metrics`.
pub fn handler(metrics: &Metrics) -> Response {
    match metrics.render() {
        Ok(text) => Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text),
        Err(e) => Response::new(500, "text/plain; charset=utf-8", format!("cannot encode metrics: {e}")),
    }
}
