//! Tallies of a run: latency histograms (overall and per second), errors by kind, who
//! served, failovers and model versions. Filled one [`Sample`] at a time by one task.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::client::{ErrorKind, Outcome};

/// One measured request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was due (open loop: its scheduled time, closed loop: when it was
    /// sent), from the measurement start.
    pub at: Duration,
    /// From `at` until the answer was read (or the request failed).
    pub latency: Duration,
    pub outcome: Outcome,
}

impl Sample {
    /// When the answer was seen, from the measurement start.
    pub fn done(&self) -> Duration {
        self.at + self.latency
    }
}

/// First and last sighting of something, from the measurement start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    pub count: u64,
    pub first: Duration,
    pub last: Duration,
}

impl Seen {
    fn at(t: Duration) -> Self {
        Seen { count: 1, first: t, last: t }
    }

    fn add(&mut self, t: Duration) {
        self.count += 1;
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }
}

/// One second of the run, by due time.
#[derive(Debug, Clone)]
pub struct Second {
    pub requests: u64,
    pub errors: u64,
    /// Latency of successful answers, µs (2 significant digits: enough for a chart and
    /// for window percentiles, and small enough to keep one per second).
    pub latency: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Second { requests: 0, errors: 0, latency: histogram(2) }
    }
}

/// Everything a run measured. Latency is in microseconds and covers successful answers;
/// failures are counted by kind instead (and a scenario fails on any).
#[derive(Debug, Clone)]
pub struct Stats {
    pub latency: Histogram<u64>,
    pub seconds: Vec<Second>,
    /// Measured requests due, including those refused as `overload`.
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Answers by `x-served-by`.
    pub served_by: BTreeMap<String, u64>,
    /// Answers carrying `x-failover-from`, by that region.
    pub failovers: BTreeMap<String, u64>,
    /// Successful answers by `model_version`.
    pub versions: BTreeMap<String, Seen>,
    /// The same, per serving region.
    pub versions_by_region: BTreeMap<String, BTreeMap<String, Seen>>,
    /// From the measurement start to the last answer.
    pub elapsed: Duration,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            latency: histogram(3),
            seconds: Vec::new(),
            requests: 0,
            ok: 0,
            errors: BTreeMap::new(),
            served_by: BTreeMap::new(),
            failovers: BTreeMap::new(),
            versions: BTreeMap::new(),
            versions_by_region: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn record(&mut self, s: &Sample) {
        let o = &s.outcome;
        let done = s.done();
        self.requests += 1;
        self.elapsed = self.elapsed.max(done);
        let second = s.at.as_secs() as usize;
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, Second::new);
        }
        let slot = &mut self.seconds[second];
        slot.requests += 1;
        if let Some(region) = &o.served_by {
            *self.served_by.entry(region.clone()).or_default() += 1;
        }
        if let Some(from) = &o.failover_from {
            *self.failovers.entry(from.clone()).or_default() += 1;
        }
        match o.error {
            Some(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                slot.errors += 1;
            }
            None => {
                self.ok += 1;
                let us = micros(s.latency);
                record(&mut self.latency, us);
                record(&mut slot.latency, us);
                if let Some(v) = &o.model_version {
                    see(&mut self.versions, v, done);
                    if let Some(region) = &o.served_by {
                        see(self.versions_by_region.entry(region.clone()).or_default(), v, done);
                    }
                }
            }
        }
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency of requests due in `[from, to)`, at per-second precision.
    pub fn window(&self, from: Duration, to: Duration) -> Histogram<u64> {
        let mut h = histogram(2);
        let (a, b) = (from.as_secs() as usize, to.as_secs_f64().ceil() as usize);
        for s in self.seconds.iter().take(b).skip(a) {
            // Both auto-resize, so adding cannot run out of range.
            let _ = h.add(&s.latency);
        }
        h
    }

    /// Requests per second over the measured time.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.ok + self.failed()) as f64 / secs
        } else {
            0.0
        }
    }
}

fn see(map: &mut BTreeMap<String, Seen>, key: &str, t: Duration) {
    match map.get_mut(key) {
        Some(seen) => seen.add(t),
        None => {
            map.insert(key.to_string(), Seen::at(t));
        }
    }
}

/// Whole microseconds, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// Record `us`, growing the histogram as needed (`saturating_record` would clamp to the
/// current range instead: an auto-resizing histogram only grows through `record`).
pub fn record(h: &mut Histogram<u64>, us: u64) {
    // Values are capped at an hour, far beyond any timeout, so growth stays bounded.
    let us = us.min(3_600_000_000);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// An auto-resizing histogram of µs values.
pub fn histogram(sigfig: u8) -> Histogram<u64> {
    // Only a sigfig above 5 makes `new` fail; callers pass 2 or 3.
    Histogram::new(sigfig.min(5)).unwrap_or_else(|_| unreachable!("sigfig {sigfig} is within 0..=5"))
}

/// µs as milliseconds with µs precision.
pub fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(at_ms: u64, lat_ms: u64, region: &str, version: &str) -> Sample {
        Sample {
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(lat_ms),
            outcome: Outcome {
                served_by: Some(region.into()),
                model_version: Some(version.into()),
                status: Some(200),
                ..Outcome::default()
            },
        }
    }

    #[test]
    fn windows_and_versions() {
        let mut s = Stats::new();
        s.record(&ok(100, 1, "a", "v1"));
        s.record(&ok(1500, 100, "a", "v2"));
        s.record(&ok(2500, 2, "b", "v2"));
        s.record(&Sample {
            at: Duration::from_millis(2600),
            latency: Duration::ZERO,
            outcome: Outcome::failed(ErrorKind::Overload),
        });
        assert_eq!(s.requests, 4);
        assert_eq!(s.failed(), 1);
        assert_eq!(s.seconds.len(), 3);
        assert!(s.window(Duration::from_secs(1), Duration::from_secs(2)).max() >= 99_000);
        assert!(s.window(Duration::from_secs(2), Duration::from_secs(3)).max() < 3_000);
        assert_eq!(s.versions["v2"].count, 2);
        assert_eq!(s.versions["v2"].first, Duration::from_millis(1600));
        assert_eq!(s.versions_by_region["b"]["v2"].count, 1);
    }
}
