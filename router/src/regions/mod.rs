//! Live state of every region and its nodes (replicas), and the choice of where a request goes.
//!
//! A region is *drained* (by an operator), else *healthy* while at least one of its nodes is,
//! else *unhealthy*. Routing reads only atomics and the small EWMA locks; the per-region
//! `announced` lock is taken only when a node changes state, to log and count region changes
//! exactly once.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use smallvec::SmallVec;
use tracing::{info, warn};

use crate::ewma::PeakEwma;
use crate::health::{Change, NodeHealth};
use crate::metrics::Metrics;
use crate::settings::{HealthSettings, Settings};
use crate::upstream::connect::Endpoint;

pub mod series;
pub mod state;
pub mod view;

use state::RegionState;

/// The regions one request tries, best first: indices into [`Regions`]. Made for every
/// request, so kept inline (no allocation) for up to 8 regions.
pub type Plan = SmallVec<[usize; 8]>;

/// The regions one request tries, in order ([`Regions::tries`]), worked out as they are
/// needed.
#[derive(Debug)]
pub struct Tries {
    hint: Option<usize>,
    panic: bool,
    /// The region to try next, when known.
    next: Option<usize>,
    /// The regions after it, last first; `None` until ranked (the hint went first unranked).
    rest: Option<Plan>,
}

impl Tries {
    /// Whether the request goes out in panic mode (see [`Regions::panic_plan`]).
    pub fn panic(&self) -> bool {
        self.panic
    }

    /// The region tried first; `None`: there is nothing to try.
    pub fn first(&self) -> Option<usize> {
        self.next
    }

    /// The next region to try.
    pub fn next(&mut self, regions: &Regions) -> Option<usize> {
        match self.next.take() {
            Some(i) => Some(i),
            None => self.rest(regions).pop(),
        }
    }

    /// Whether some region still to try satisfies `f`.
    pub fn any(&mut self, regions: &Regions, f: impl Fn(usize) -> bool) -> bool {
        self.next.is_some_and(&f) || self.rest(regions).iter().any(|&i| f(i))
    }

    /// The regions after the next one, last first, ranked when first asked for.
    fn rest(&mut self, regions: &Regions) -> &mut Plan {
        let hint = self.hint;
        self.rest.get_or_insert_with(|| {
            // Only the hint went first unranked (it could take the request then).
            let mut plan = regions.plan(hint);
            plan.retain(|i| Some(*i) != hint);
            plan.reverse();
            plan
        })
    }
}

/// The outcome of one readiness probe.
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    pub ok: bool,
    pub at: SystemTime,
    pub took: Duration,
    /// `HTTP 200`, or what went wrong.
    pub detail: String,
    pub model_version: Option<String>,
}

/// In [`Region::pick`], a node is preferred only when it is cheaper by both this factor and
/// `P2C_MIN_GAP_NS`: below that, differences are noise and similar nodes should share.
const P2C_MARGIN: f64 = 0.8;
const P2C_MIN_GAP_NS: f64 = 1e6;

#[derive(Debug)]
pub struct Regions {
    list: Vec<Region>,
    /// Failing traffic never ejects a node when that would leave fewer nodes up than this.
    min_up: usize,
    /// In panic mode ([`Regions::panic_plan`]) as the last request found it: logged on change.
    panic: AtomicBool,
}

#[derive(Debug)]
pub struct Region {
    pub name: String,
    /// `name` as a header value (`x-served-by`), made once at load.
    pub name_header: HeaderValue,
    /// Residency zone, and its name as the header value sent with requests that leave it.
    pub zone: Option<String>,
    pub zone_header: Option<HeaderValue>,
    /// Indexes of the regions to fail over to, best first.
    failover: Vec<usize>,
    failover_names: Vec<String>,
    pub nodes: Vec<Node>,
    drained: AtomicBool,
    /// Requests this region answered (any status below 500).
    served: AtomicU64,
    /// The state last logged and counted, to report each change once.
    announced: Mutex<RegionState>,
    last_probe: ArcSwapOption<ProbeRecord>,
    /// Kept apart from `last_probe`: a failed probe does not erase the known version.
    model_version: ArcSwapOption<String>,
    /// Its nodes' per-version figures over the last minutes (updated every few seconds).
    series: Mutex<series::Series>,
}

/// One replica of a region.
#[derive(Debug)]
pub struct Node {
    /// Base URL without a trailing '/'.
    pub url: String,
    /// How requests reach it, decided once from `url`.
    pub endpoint: Endpoint,
    /// Its index among all nodes of all regions: its place in each worker's connection pool.
    pub key: usize,
    pub health: NodeHealth,
    pub ewma: PeakEwma,
    in_flight: AtomicUsize,
}

/// Counts a request in flight on a node for as long as it lives (also when the client
/// goes away and the handler is dropped).
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Regions {
    pub fn new(settings: &Settings) -> Self {
        let index = |name: &str| settings.regions.iter().position(|r| r.name == name);
        let mut keys = 0..;
        let list = settings
            .regions
            .iter()
            .map(|r| Region {
                name: r.name.clone(),
                // Region names are checked to be plain tokens when the configuration loads.
                name_header: HeaderValue::from_str(&r.name).unwrap_or(HeaderValue::from_static("?")),
                zone: r.zone.clone(),
                // Zone names are checked to be plain tokens when the configuration loads.
                zone_header: r.zone.as_deref().and_then(|z| HeaderValue::from_str(z).ok()),
                failover: r.failover.iter().filter_map(|f| index(f)).collect(),
                failover_names: r.failover.clone(),
                nodes: r
                    .nodes
                    .iter()
                    .map(|endpoint| Node {
                        url: endpoint.url.clone(),
                        endpoint: endpoint.clone(),
                        key: keys.next().unwrap_or_default(),
                        health: NodeHealth::default(),
                        ewma: PeakEwma::new(settings.ewma),
                        in_flight: AtomicUsize::new(0),
                    })
                    .collect(),
                drained: AtomicBool::new(false),
                served: AtomicU64::new(0),
                announced: Mutex::new(RegionState::Healthy),
                last_probe: ArcSwapOption::empty(),
                model_version: ArcSwapOption::empty(),
                series: Mutex::default(),
            })
            .collect::<Vec<_>>();
        let total: usize = list.iter().map(|r: &Region| r.nodes.len()).sum();
        let pct = usize::from(settings.health.max_ejection_percent);
        // Like Envoy's max_ejection_percent: at least one node may go when any share is allowed.
        let max_ejected = if pct == 0 { 0 } else { (total * pct / 100).max(1) };
        Self { list, min_up: total - max_ejected.min(total), panic: AtomicBool::new(false) }
    }

    /// Whether failing traffic may eject one more node: not when that would leave fewer nodes
    /// up than the ejection cap keeps (nodes down by probes count as down).
    pub fn may_eject(&self) -> bool {
        let up = self.list.iter().flat_map(|r| &r.nodes).filter(|n| n.health.is_up()).count();
        up > self.min_up
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.list.iter()
    }

    pub fn get(&self, index: usize) -> &Region {
        &self.list[index]
    }

    /// Index of the region called `name`, in any case (a handful of regions: a scan beats
    /// hashing). Names as configured are tried first: a byte compare, where the case-blind one
    /// folds each byte.
    pub fn find(&self, name: &str) -> Option<usize> {
        let list = self.list.iter();
        list.clone()
            .position(|r| r.name == name)
            .or_else(|| list.clone().position(|r| r.name.eq_ignore_ascii_case(name)))
    }

    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|r| r.name.clone()).collect()
    }

    /// Regions to try, best first. Hinted: the hint if available, then its failover list by
    /// expected latency (list order breaks ties), then any other region by latency as a last
    /// resort. Unhinted: every available region by expected latency.
    pub fn plan(&self, hint: Option<usize>) -> Plan {
        self.order(hint, |r| r.cost(false))
    }

    /// The plan when no region passes its health checks (panic mode, as in Envoy): every
    /// region not drained, in the same order, each by the cost of its cheapest node whatever
    /// its health. Probes that time out against an overloaded host mark every region down
    /// at once; answering 503 to everyone then would turn slow into down. A node that is
    /// really gone fails fast, and the request moves on under the retry budget.
    pub fn panic_plan(&self, hint: Option<usize>) -> Plan {
        self.order(hint, |r| r.cost(true))
    }

    /// The regions a request tries: [`Self::plan`], else [`Self::panic_plan`] (then
    /// [`Tries::panic`] says so and `Region::pick` takes any node). Logs entering and leaving
    /// panic mode. A hinted region that can take the request goes first without the others
    /// being ranked: they are ranked, as they are then, only if it fails (nearly every request
    /// is served by its first region, and ranking costs a latency estimate per region and a
    /// sort).
    pub fn tries(&self, hint: Option<usize>) -> Tries {
        if let Some(h) = hint.filter(|&h| self.list[h].state() == RegionState::Healthy) {
            self.set_panic(false);
            return Tries { hint, panic: false, next: Some(h), rest: None };
        }
        let mut plan = self.plan(hint);
        let panic = plan.is_empty() && {
            plan = self.panic_plan(hint);
            !plan.is_empty()
        };
        self.set_panic(panic);
        plan.reverse();
        Tries { hint, panic, next: plan.pop(), rest: Some(plan) }
    }

    /// Log entering and leaving panic mode, once per change.
    fn set_panic(&self, on: bool) {
        if self.panic.load(Ordering::Relaxed) != on
            && self.panic.compare_exchange(!on, on, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            match on {
                true => warn!(
                    "no region passes its health checks: sending to every region not drained (panic mode)"
                ),
                false => info!("a region passes its health checks again: panic mode over"),
            }
        }
    }

    /// Whether requests go out in panic mode now: no region passes its health checks and
    /// some region is not drained.
    pub fn panicking(&self) -> bool {
        let mut states = self.list.iter().map(Region::state);
        !states.clone().any(|s| s == RegionState::Healthy) && states.any(|s| s == RegionState::Unhealthy)
    }

    fn order(&self, hint: Option<usize>, cost: impl Fn(&Region) -> Option<f64>) -> Plan {
        let costs: SmallVec<[Option<f64>; 8]> = self.list.iter().map(cost).collect();
        let mut plan: Plan = (0..self.list.len()).filter(|&i| costs[i].is_some()).collect();
        let by_cost = |a: usize, b: usize| costs[a].partial_cmp(&costs[b]).unwrap_or(CmpOrdering::Equal);
        match hint {
            None => plan.sort_by(|a, b| by_cost(*a, *b)),
            Some(h) => {
                // The hint, then its failover list (equal costs keep the list's order), then
                // the rest (equal costs keep the configuration's order).
                let preferred = &self.list[h].failover;
                let rank = |i: usize| match preferred.iter().position(|&p| p == i) {
                    _ if i == h => (0, 0),
                    Some(pos) => (1, pos),
                    None => (2, i),
                };
                plan.sort_by(|a, b| {
                    let ((ga, oa), (gb, ob)) = (rank(*a), rank(*b));
                    ga.cmp(&gb).then_with(|| by_cost(*a, *b)).then(oa.cmp(&ob))
                });
            }
        }
        plan
    }
}

impl Region {
    pub fn state(&self) -> RegionState {
        if self.drained.load(Ordering::Acquire) {
            RegionState::Drained
        } else if self.nodes.iter().any(|n| n.health.is_up()) {
            RegionState::Healthy
        } else {
            RegionState::Unhealthy
        }
    }

    /// Expected cost of sending one more request here: the best healthy node's latency
    /// estimate scaled by its queue (in `panic`, the best node's). `None` when the region
    /// takes no traffic.
    fn cost(&self, panic: bool) -> Option<f64> {
        if self.drained.load(Ordering::Acquire) {
            return None;
        }
        self.nodes.iter().filter(|n| panic || n.health.is_up()).map(Node::cost).min_by(f64::total_cmp)
    }

    /// A healthy node (in `panic`, any node) other than `exclude`, by power of two choices:
    /// of two random nodes the clearly cheaper one (see `P2C_MARGIN`), else the first, so
    /// similar nodes share traffic evenly. `None` if no such node is healthy (any more).
    pub fn pick(&self, exclude: Option<usize>, panic: bool) -> Option<usize> {
        if let [only] = &self.nodes[..] {
            return (exclude != Some(0) && (panic || only.health.is_up())).then_some(0);
        }
        let up: SmallVec<[usize; 8]> = (0..self.nodes.len())
            .filter(|&i| Some(i) != exclude && (panic || self.nodes[i].health.is_up()))
            .collect();
        match up.len() {
            0 => None,
            1 => Some(up[0]),
            n => {
                let a = rand::random_range(0..n);
                let b = (a + rand::random_range(1..n)) % n;
                let (a, b) = (up[a], up[b]);
                let (ca, cb) = (self.nodes[a].cost(), self.nodes[b].cost());
                Some(if cb < ca * P2C_MARGIN && ca - cb > P2C_MIN_GAP_NS { b } else { a })
            }
        }
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// A request on `node` got an answer (a node's 4xx included: the node is fine).
    pub fn record_success(&self, node: usize, took: Duration) {
        let n = &self.nodes[node];
        n.ewma.observe(took);
        n.health.request_succeeded();
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// A request on `node` failed in a retryable way; may eject the node if `may_eject` says
    /// the cap allows it.
    pub fn record_failure(
        &self,
        node: usize,
        took: Duration,
        health: &HealthSettings,
        metrics: &Metrics,
        may_eject: impl FnOnce() -> bool,
    ) {
        let n = &self.nodes[node];
        n.ewma.observe_failure(took);
        if let Some(change) = n.health.request_failed(health, may_eject) {
            metrics.ejections.with_label_values(&[self.name.as_str()]).inc();
            warn!(region = %self.name, node = %n.url, failures = health.eject_after, "node ejected");
            self.announce(change.cause(), metrics);
        }
    }

    /// One sample of every node's per-version figures ([`series`]).
    pub fn record_sample(&self, reports: &[Option<series::NodeReport>], now_ms: u64) {
        self.series.lock().unwrap_or_else(|p| p.into_inner()).record(reports, now_ms);
    }

    pub fn rollout(&self) -> series::RolloutView {
        self.series.lock().unwrap_or_else(|p| p.into_inner()).view()
    }

    pub fn record_probe(&self, node: usize, record: ProbeRecord, health: &HealthSettings, metrics: &Metrics) {
        let n = &self.nodes[node];
        let change = if record.ok {
            n.ewma.observe(record.took);
            n.health.probe_succeeded(health)
        } else {
            n.ewma.observe_failure(record.took);
            n.health.probe_failed(health)
        };
        metrics
            .probes
            .with_label_values(&[self.name.as_str(), if record.ok { "ok" } else { "failed" }])
            .inc();
        if let Some(v) = &record.model_version {
            if self.model_version.load().as_deref() != Some(v) {
                self.model_version.store(Some(Arc::new(v.clone())));
            }
        }
        if let Some(change) = change {
            match change {
                Change::Up => info!(region = %self.name, node = %n.url, "node healthy again"),
                _ => warn!(region = %self.name, node = %n.url, detail = %record.detail, "node unhealthy"),
            }
            self.last_probe.store(Some(Arc::new(record)));
            self.announce(change.cause(), metrics);
        } else {
            self.last_probe.store(Some(Arc::new(record)));
        }
    }

    /// Operator drain (`true`) or restore (`false`); returns the resulting state.
    pub fn set_drained(&self, drained: bool, metrics: &Metrics) -> RegionState {
        self.drained.store(drained, Ordering::Release);
        self.announce(if drained { "drained by operator" } else { "restored by operator" }, metrics);
        self.state()
    }

    /// Log and count a region state change, once, if the current state differs from the
    /// last announced one.
    pub fn announce(&self, cause: &str, metrics: &Metrics) {
        let mut last = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.state();
        if *last != now {
            info!(region = %self.name, from = %*last, to = %now, cause, "region state changed");
            metrics.region_state_changed(&self.name, now);
            *last = now;
        }
    }
}

impl Node {
    fn cost(&self) -> f64 {
        self.ewma.estimate().as_nanos() as f64 * (self.in_flight.load(Ordering::Relaxed) + 1) as f64
    }

    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(&self.in_flight)
    }
}

#[cfg(test)]
mod tests;
