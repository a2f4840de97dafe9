//! Peak-sensitive, time-decayed moving average of latency (as in linkerd2-proxy / tower's
//! `PeakEwma`).
//!
//! A slower observation replaces the estimate at once (a region that just got slow must stop
//! looking good immediately); faster ones pull it down with weight `1 - exp(-elapsed/decay)`,
//! so recovery is judged over the decay window, not on one lucky request. Failures are
//! recorded as at least the error penalty, so a node that fails fast never looks fastest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::EwmaSettings;

/// The estimate for one node; cheap to update from many threads.
#[derive(Debug)]
pub struct PeakEwma {
    settings: EwmaSettings,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// Estimate in nanoseconds; `None` until the first observation.
    estimate_ns: Option<f64>,
    stamp: Instant,
}

impl PeakEwma {
    pub fn new(settings: EwmaSettings) -> Self {
        Self { settings, state: Mutex::new(State { estimate_ns: None, stamp: Instant::now() }) }
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
        let decay = self.settings.decay.as_nanos() as f64;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = match s.estimate_ns {
            None => rtt,
            Some(prev) if rtt > prev => rtt,
            Some(prev) => {
                let elapsed = now.saturating_duration_since(s.stamp).as_nanos() as f64;
                let w = (-elapsed / decay).exp();
                prev * w + rtt * (1.0 - w)
            }
        };
        *s = State { estimate_ns: Some(next), stamp: now };
    }

    /// Current estimate; the configured default before anything was observed.
    pub fn estimate(&self) -> Duration {
        self.observed().unwrap_or(self.settings.default_rtt)
    }

    /// Current estimate, `None` before the first observation.
    pub fn observed(&self) -> Option<Duration> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.estimate_ns.map(|ns| Duration::from_nanos(ns as u64))
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
}
