//! Peak-sensitive, time-decayed moving average of latency (as in linkerd2-proxy / tower's
//! `PeakEwma`).
//!
//! A slower observation replaces the estimate at once (a region that just got slow must stop
//! looking good immediately); faster ones pull it down with weight `1 - exp(-elapsed/decay)`,
//! so recovery is judged over the decay window, not on one lucky request. Failures are
//! recorded as at least the error penalty, so a node that fails fast never looks fastest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::settings::EwmaSettings;

/// The estimate for one node, updated from every worker thread without a lock: estimate
/// and time stamp are packed into one atomic word and replaced together (compare and swap),
/// so a worker descheduled mid-update never holds up the others.
#[derive(Debug)]
pub struct PeakEwma {
    settings: EwmaSettings,
    /// Time stamps are milliseconds since this instant, wrapping every 49 days (only the
    /// time between two observations matters, and probes observe every few seconds).
    base: Instant,
    /// High 32 bits: the estimate in nanoseconds as `f32` bits ([`NONE`] before the first
    /// observation); low 32 bits: the time stamp of the last observation.
    state: AtomicU64,
}

/// `f32` bits of a NaN no computation here produces: nothing observed yet.
const NONE: u32 = 0x7fc0_dead;

fn pack(estimate_ns: f32, stamp_ms: u32) -> u64 {
    (u64::from(estimate_ns.to_bits()) << 32) | u64::from(stamp_ms)
}

fn unpack(word: u64) -> (Option<f32>, u32) {
    let bits = (word >> 32) as u32;
    ((bits != NONE).then(|| f32::from_bits(bits)), word as u32)
}

impl PeakEwma {
    pub fn new(settings: EwmaSettings) -> Self {
        Self { settings, base: Instant::now(), state: AtomicU64::new(pack(f32::from_bits(NONE), 0)) }
    }

    /// Record a successful exchange that took `rtt`.
    pub fn observe(&self, rtt: Duration) {
        self.observe_at(rtt, Instant::now());
    }

    /// Record a failed exchange: counts as at least the error penalty.
    pub fn observe_failure(&self, rtt: Duration) {
        self.observe_at(rtt.max(self.settings.error_penalty), Instant::now());
    }

    fn observe_at(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let decay_ms = self.settings.decay.as_secs_f64() * 1e3;
        // Truncation wraps, as the stamp format says.
        let now_ms = now.saturating_duration_since(self.base).as_millis() as u32;
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = match unpack(current) {
                (None, _) => rtt,
                (Some(prev), _) if rtt > f64::from(prev) => rtt,
                (Some(prev), stamp) => {
                    let elapsed_ms = f64::from(now_ms.wrapping_sub(stamp));
                    let w = (-elapsed_ms / decay_ms).exp();
                    f64::from(prev) * w + rtt * (1.0 - w)
                }
            };
            let word = pack(next as f32, now_ms);
            match self.state.compare_exchange_weak(current, word, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Current estimate; the configured default before anything was observed.
    pub fn estimate(&self) -> Duration {
        self.observed().unwrap_or(self.settings.default_rtt)
    }

    /// Current estimate, `None` before the first observation.
    pub fn observed(&self) -> Option<Duration> {
        let (estimate, _) = unpack(self.state.load(Ordering::Acquire));
        estimate.map(|ns| Duration::from_nanos(ns as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ewma() -> PeakEwma {
        PeakEwma::new(EwmaSettings {
            decay: Duration::from_secs(1),
            error_penalty: Duration::from_millis(500),
            default_rtt: Duration::from_millis(30),
        })
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn default_until_first_observation() {
        let e = ewma();
        assert_eq!(e.estimate(), Duration::from_millis(30));
        assert_eq!(e.observed(), None);
        e.observe(Duration::from_millis(5));
        assert_eq!(e.estimate(), Duration::from_millis(5));
    }

    #[test]
    fn peaks_are_taken_at_once_and_decay_with_time() {
        let e = ewma();
        let t0 = Instant::now();
        e.observe_at(Duration::from_millis(10), t0);
        e.observe_at(Duration::from_millis(100), t0 + Duration::from_millis(1));
        assert_eq!(e.estimate(), Duration::from_millis(100));
        // One decay period later, a 10 ms observation moves it 1 - 1/e of the way down.
        e.observe_at(Duration::from_millis(10), t0 + Duration::from_millis(1001));
        let expected = 100.0 * (-1.0f64).exp() + 10.0 * (1.0 - (-1.0f64).exp());
        assert!((ms(e.estimate()) - expected).abs() < 0.01, "{:?}", e.estimate());
        // Observations within the same millisecond leave the estimate where it was.
        e.observe_at(Duration::from_millis(10), t0 + Duration::from_micros(1_001_400));
        assert!((ms(e.estimate()) - expected).abs() < 0.01, "{:?}", e.estimate());
        // Observations close together barely move it.
        e.observe_at(Duration::from_millis(10), t0 + Duration::from_millis(1002));
        assert!(ms(e.estimate()) > expected - 0.1);
    }

    #[test]
    fn failures_cost_at_least_the_penalty() {
        let e = ewma();
        e.observe(Duration::from_millis(2));
        e.observe_failure(Duration::from_micros(300));
        assert_eq!(e.estimate(), Duration::from_millis(500));
    }

    #[test]
    fn concurrent_observations_all_land() {
        let e = ewma();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let e = &e;
                s.spawn(move || {
                    for i in 0..10_000 {
                        e.observe(Duration::from_micros(100 + (i * 7 + t) % 50));
                    }
                });
            }
        });
        let settled = e.estimate().as_micros();
        assert!((100..150).contains(&settled), "between the smallest and largest observation: {settled} us");
        e.observe(Duration::from_millis(9));
        assert_eq!(e.estimate(), Duration::from_millis(9), "a peak replaces the estimate");
    }
}
