//! Retry budget: retries may add at most `ratio` of the request load, so a full outage
//! does not multiply traffic onto the regions still standing (Finagle / linkerd style).
//!
//! Every first attempt deposits `ratio` of a token; a retry spends one whole token. With the
//! balance spent, up to `min_concurrent` retries may still be in flight at once, so a quiet
//! router (few deposits) can still fail over the odd request.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use crate::settings::BudgetSettings;

/// Fixed-point unit: one retry costs this many milli-tokens.
const TOKEN: i64 = 1_000;
/// Saved-up retries are capped so a long quiet spell cannot fund an unbounded burst.
const MAX_SAVED_RETRIES: i64 = 100;

#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    min_concurrent: u32,
    balance: AtomicI64,
    /// Retries in flight (spent or not), for the concurrency floor.
    in_flight: Arc<AtomicU32>,
}

/// Held for the duration of one retry.
#[derive(Debug)]
pub struct RetryPermit {
    in_flight: Arc<AtomicU32>,
}

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self {
            deposit: (settings.ratio * TOKEN as f64).round() as i64,
            min_concurrent: settings.min_concurrent,
            balance: AtomicI64::new(0),
            in_flight: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A request arrived: it earns the budget a fraction of a retry.
    pub fn deposit(&self) {
        let cap = MAX_SAVED_RETRIES * TOKEN;
        let _ = self.balance.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
            (b < cap).then(|| (b + self.deposit).min(cap))
        });
    }

    /// Ask to retry; `None` when the budget is spent and the concurrency floor is reached.
    pub fn try_retry(&self) -> Option<RetryPermit> {
        let spent = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| (b >= TOKEN).then_some(b - TOKEN))
            .is_ok();
        if spent {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            return Some(RetryPermit { in_flight: self.in_flight.clone() });
        }
        let floor = self.min_concurrent;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < floor).then_some(n + 1))
            .ok()
            .map(|_| RetryPermit { in_flight: self.in_flight.clone() })
    }

    /// Retries currently funded, for /regions and tests.
    pub fn available(&self) -> f64 {
        self.balance.load(Ordering::Acquire) as f64 / TOKEN as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_concurrent: u32) -> RetryBudget {
        RetryBudget::new(BudgetSettings { ratio, min_concurrent })
    }

    #[test]
    fn retries_are_limited_to_the_ratio_of_requests() {
        let b = budget(0.2, 0);
        for _ in 0..10 {
            b.deposit();
        }
        let permits: Vec<_> = std::iter::from_fn(|| b.try_retry()).take(100).collect();
        assert_eq!(permits.len(), 2);
    }

    #[test]
    fn the_floor_allows_some_concurrent_retries_without_savings() {
        let b = budget(0.2, 3);
        let held: Vec<_> = std::iter::from_fn(|| b.try_retry()).take(10).collect();
        assert_eq!(held.len(), 3);
        drop(held);
        assert!(b.try_retry().is_some(), "permits are returned on drop");
    }

    #[test]
    fn savings_are_capped() {
        let b = budget(1.0, 0);
        for _ in 0..1_000 {
            b.deposit();
        }
        assert_eq!(b.available(), MAX_SAVED_RETRIES as f64);
    }
}
