//! What a node measures for one model version, as atomics: answers, errors, latency,
//! strategies, conversions, and shadow computations. Each [`crate::snapshot::ModelSnapshot`]
//! owns one [`Figures`], cumulative since this node loaded it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::events::EventType;
use model::rollout::{Latency, ShadowReport, VersionReport, LATENCY_BUCKETS};

use crate::answer::Strategy;

/// A latency histogram of atomics over [`LATENCY_BUCKETS`].
#[derive(Debug)]
pub struct AtomicLatency {
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for AtomicLatency {
    fn default() -> Self {
        Self { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_nanos: AtomicU64::new(0) }
    }
}

impl AtomicLatency {
    pub fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|&b| s <= b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    pub fn read(&self) -> Latency {
        Latency {
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

const STRATEGIES: [Strategy; 4] =
    [Strategy::UserKnn, Strategy::UserKnnLive, Strategy::Popular, Strategy::ItemCosine];

fn strategy_index(s: Strategy) -> usize {
    STRATEGIES.iter().position(|&x| x == s).unwrap_or(0)
}

/// What a node measured for one version since it loaded it.
#[derive(Debug, Default)]
pub struct Figures {
    requests: AtomicU64,
    impressions: AtomicU64,
    converted: AtomicU64,
    errors: AtomicU64,
    latency: AtomicLatency,
    compute_latency: AtomicLatency,
    strategies: [AtomicU64; 4],
    conversions: [AtomicU64; EventType::ALL.len()],
    shadow: ShadowFigures,
}

#[derive(Debug, Default)]
struct ShadowFigures {
    computed: AtomicU64,
    skipped: AtomicU64,
    errors: AtomicU64,
    latency: AtomicLatency,
    /// Sum of overlaps, in millionths.
    overlap_micros: AtomicU64,
}

impl Figures {
    /// One answer of `items` items given by this version.
    pub fn answered(&self, strategy: Strategy, items: usize, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.impressions.fetch_add(items as u64, Ordering::Relaxed);
        self.strategies[strategy_index(strategy)].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    /// One model computation (a cache miss) took `took`.
    pub fn computed(&self, took: Duration) {
        self.compute_latency.observe(took);
    }

    /// This version failed a request (the stable version answered it instead).
    pub fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// An event on an item this version recommended; `first`: the first on that item since.
    pub fn converted(&self, kind: EventType, first: bool) {
        if first {
            self.converted.fetch_add(1, Ordering::Relaxed);
        }
        let i = EventType::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.conversions[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn shadow_computed(&self, took: Duration, overlap: f64) {
        self.shadow.computed.fetch_add(1, Ordering::Relaxed);
        self.shadow.latency.observe(took);
        self.shadow.overlap_micros.fetch_add((overlap.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn shadow_failed(&self) {
        self.shadow.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn shadow_skipped(&self) {
        self.shadow.skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self, version: &str, users: u64) -> VersionReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        VersionReport {
            version: version.to_string(),
            requests: load(&self.requests),
            users,
            errors: load(&self.errors),
            latency: self.latency.read(),
            strategies: STRATEGIES
                .iter()
                .zip(&self.strategies)
                .filter(|(_, n)| load(n) > 0)
                .map(|(s, n)| (s.as_str().to_string(), load(n)))
                .collect(),
            impressions: load(&self.impressions),
            converted: load(&self.converted),
            compute_latency: self.compute_latency.read(),
            conversions: EventType::ALL
                .iter()
                .zip(&self.conversions)
                .filter(|(_, n)| load(n) > 0)
                .map(|(k, n)| (k.as_str().to_string(), load(n)))
                .collect(),
        }
    }

    /// The answers' latency histogram.
    pub fn latency(&self) -> Latency {
        self.latency.read()
    }

    pub fn shadow_report(&self) -> ShadowReport {
        let s = &self.shadow;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShadowReport {
            computed: load(&s.computed),
            skipped: load(&s.skipped),
            errors: load(&s.errors),
            latency: s.latency.read(),
            overlap_sum: load(&s.overlap_micros) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_its_bucket() {
        let l = AtomicLatency::default();
        l.observe(Duration::from_micros(800));
        l.observe(Duration::from_secs(5));
        let r = l.read();
        assert_eq!(r.counts[3], 1);
        assert_eq!(r.counts[LATENCY_BUCKETS.len()], 1);
        assert_eq!(r.quantile(0.5), Some(0.001));
    }
}
