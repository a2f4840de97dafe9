//! Node health: the fall/rise/eject state machine, fed by the prober ([`crate::probe`]) and
//! by real traffic.
//!
//! `fall` failed probes in a row mark a node down, `rise` good ones bring it back. Real
//! traffic counts too: `eject_after` consecutive connect errors, timeouts or 5xx eject the
//! node at once, and an ejected node also needs `rise` good probes to return. Two rules keep
//! one bad request from ejecting everything: only a request's first failure counts (its
//! retries fail elsewhere because of the request, not the node: see [`crate::proxy`]), and
//! ejections stop at `max_ejection_percent` of the nodes
//! ([`crate::regions::Regions::may_eject`]).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::settings::HealthSettings;

/// A node's health counters. Updated from probe tasks and request handlers concurrently;
/// each transition is reported exactly once (the `up` flag flips by compare-and-swap).
#[derive(Debug)]
pub struct NodeHealth {
    up: AtomicBool,
    probe_failures: AtomicU32,
    probe_successes: AtomicU32,
    traffic_failures: AtomicU32,
}

/// A change of a node's state worth logging and re-evaluating its region for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Up,
    /// `fall` probes failed in a row.
    DownByProbes,
    /// `eject_after` real requests failed in a row.
    Ejected,
}

impl Change {
    pub fn cause(self) -> &'static str {
        match self {
            Change::Up => "probes passed",
            Change::DownByProbes => "probes failed",
            Change::Ejected => "requests failed",
        }
    }
}

impl Default for NodeHealth {
    /// Nodes start healthy: the first probe runs at once, and until then a dead node costs
    /// a retry, not an outage.
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
            probe_successes: AtomicU32::new(0),
            traffic_failures: AtomicU32::new(0),
        }
    }
}

impl NodeHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The longer of the current failure streaks (probes or requests).
    pub fn consecutive_failures(&self) -> u32 {
        self.probe_failures.load(Ordering::Relaxed).max(self.traffic_failures.load(Ordering::Relaxed))
    }

    pub fn probe_succeeded(&self, s: &HealthSettings) -> Option<Change> {
        self.probe_failures.store(0, Ordering::Relaxed);
        let oks = self.probe_successes.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if oks >= s.rise && self.flip(true) {
            self.traffic_failures.store(0, Ordering::Relaxed);
            return Some(Change::Up);
        }
        None
    }

    pub fn probe_failed(&self, s: &HealthSettings) -> Option<Change> {
        self.probe_successes.store(0, Ordering::Relaxed);
        let fails = self.probe_failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        (fails >= s.fall && self.flip(false)).then_some(Change::DownByProbes)
    }

    pub fn request_succeeded(&self) {
        // Skip the store when already zero: keeps the hot path free of cache-line writes.
        if self.traffic_failures.load(Ordering::Relaxed) != 0 {
            self.traffic_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed here. After `eject_after` in a row the node is ejected, if it is up
    /// and `may_eject` (the cap on ejected nodes) allows.
    pub fn request_failed(&self, s: &HealthSettings, may_eject: impl FnOnce() -> bool) -> Option<Change> {
        let fails = self.traffic_failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if fails >= s.eject_after && self.is_up() && may_eject() && self.flip(false) {
            // Good probes from before the ejection do not count towards coming back.
            self.probe_successes.store(0, Ordering::Relaxed);
            return Some(Change::Ejected);
        }
        None
    }

    fn flip(&self, to: bool) -> bool {
        self.up.compare_exchange(!to, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: HealthSettings = HealthSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(50),
        fall: 2,
        rise: 3,
        eject_after: 3,
        max_ejection_percent: 50,
    };

    #[test]
    fn falls_after_fall_failed_probes_and_rises_after_rise_good_ones() {
        let h = NodeHealth::default();
        assert_eq!(h.probe_failed(&S), None);
        assert!(h.is_up());
        assert_eq!(h.probe_failed(&S), Some(Change::DownByProbes));
        assert!(!h.is_up());
        assert_eq!(h.probe_failed(&S), None, "reported once");
        assert_eq!(h.probe_succeeded(&S), None);
        assert_eq!(h.probe_succeeded(&S), None);
        assert_eq!(h.probe_succeeded(&S), Some(Change::Up));
        assert!(h.is_up());
    }

    #[test]
    fn a_failed_probe_resets_the_rise_streak() {
        let h = NodeHealth::default();
        h.probe_failed(&S);
        h.probe_failed(&S);
        h.probe_succeeded(&S);
        h.probe_succeeded(&S);
        h.probe_failed(&S);
        assert_eq!(h.probe_succeeded(&S), None);
        assert_eq!(h.probe_succeeded(&S), None);
        assert_eq!(h.probe_succeeded(&S), Some(Change::Up));
    }

    #[test]
    fn request_failures_eject_and_only_later_probes_bring_it_back() {
        let h = NodeHealth::default();
        h.probe_succeeded(&S);
        h.probe_succeeded(&S);
        h.request_failed(&S, || true);
        h.request_succeeded();
        h.request_failed(&S, || true);
        h.request_failed(&S, || true);
        assert!(h.is_up(), "streak was broken by a success");
        assert_eq!(h.request_failed(&S, || false), None, "the cap holds it in");
        assert!(h.is_up());
        assert_eq!(h.request_failed(&S, || true), Some(Change::Ejected));
        assert!(!h.is_up());
        assert_eq!(h.consecutive_failures(), 4);
        assert_eq!(h.probe_succeeded(&S), None, "earlier good probes do not count");
        assert_eq!(h.probe_succeeded(&S), None);
        assert_eq!(h.probe_succeeded(&S), Some(Change::Up));
        assert_eq!(h.consecutive_failures(), 0);
    }
}
