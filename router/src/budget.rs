//! Retry budget: over a sliding window (10 s by default), retries may add at most `ratio` of
//! the requests plus `min_per_sec` a second, so a full outage, or one request that fails
//! everywhere sent again and again, does not multiply traffic onto the regions still
//! standing. Finagle's and linkerd's retry budgets work the same way; the window makes the
//! floor a rate, so it limits retries that come one after another as well as concurrent ones.
//!
//! The window is kept in ten buckets of atomic counters, indexed by time: taking a retry is a
//! handful of loads and one add, with no lock between the worker threads. Counts may be off
//! by a request or two when a bucket is recycled, which a budget can afford.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::settings::BudgetSettings;

const BUCKETS: usize = 10;

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    /// Retries the floor allows over a whole window.
    floor: f64,
    bucket_span: Duration,
    epoch: Instant,
    buckets: [Bucket; BUCKETS],
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which bucket-span since `epoch` the counts belong to.
    period: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            ratio: settings.ratio,
            floor: f64::from(settings.min_per_sec) * settings.window.as_secs_f64(),
            bucket_span: (settings.window / BUCKETS as u32).max(Duration::from_millis(1)),
            epoch: Instant::now(),
            buckets: Default::default(),
        }
    }

    fn period(&self) -> u64 {
        (self.epoch.elapsed().as_nanos() / self.bucket_span.as_nanos()) as u64
    }

    /// The current bucket, emptied first if it still holds an older period's counts.
    fn current(&self) -> &Bucket {
        let now = self.period();
        let bucket = &self.buckets[now as usize % BUCKETS];
        let held = bucket.period.load(Ordering::Acquire);
        if held != now
            && bucket.period.compare_exchange(held, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            bucket.requests.store(0, Ordering::Release);
            bucket.retries.store(0, Ordering::Release);
        }
        bucket
    }

    /// Requests and retries within the window.
    fn totals(&self) -> (u64, u64) {
        let now = self.period();
        self.buckets
            .iter()
            .filter(|b| now.saturating_sub(b.period.load(Ordering::Acquire)) < BUCKETS as u64)
            .fold((0, 0), |(req, ret), b| {
                (req + b.requests.load(Ordering::Acquire), ret + b.retries.load(Ordering::Acquire))
            })
    }

    /// A request arrived: it earns the budget `ratio` of a retry.
    pub fn deposit(&self) {
        self.current().requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Ask to retry; `false` when the window's retries already reach what it allows.
    pub fn try_retry(&self) -> bool {
        if self.available() < 1.0 {
            return false;
        }
        self.current().retries.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Retries funded right now, for /regions and tests.
    pub fn available(&self) -> f64 {
        let (requests, retries) = self.totals();
        (self.floor + self.ratio * requests as f64 - retries as f64).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_sec: u32, window_ms: u64) -> RetryBudget {
        RetryBudget::new(BudgetSettings { ratio, min_per_sec, window: Duration::from_millis(window_ms) })
    }

    #[test]
    fn retries_are_limited_to_the_ratio_of_requests() {
        let b = budget(0.2, 0, 60_000);
        for _ in 0..10 {
            b.deposit();
        }
        assert_eq!(std::iter::from_fn(|| b.try_retry().then_some(())).take(100).count(), 2);
    }

    #[test]
    fn the_floor_limits_sequential_retries_too() {
        // Two a second over a minute: 120 retries, however they are spread.
        let b = budget(0.0, 2, 60_000);
        let mut granted = 0;
        for _ in 0..1_000 {
            b.deposit();
            if b.try_retry() {
                granted += 1;
            }
        }
        assert_eq!(granted, 120);
        assert!(!b.try_retry());
    }

    #[test]
    fn retries_and_requests_leave_the_window() {
        let b = budget(0.0, 0, 50);
        assert!(!b.try_retry());
        let b = budget(1.0, 0, 50);
        b.deposit();
        assert!(b.try_retry());
        assert!(!b.try_retry(), "spent");
        std::thread::sleep(Duration::from_millis(60));
        b.deposit();
        assert!(b.try_retry(), "the old retry left the window with its request");
    }
}
