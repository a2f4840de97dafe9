//! A circuit breaker, so a dead or stalled Redis costs a few timeouts, not one per request.
//!
//! Closed: calls go through; `threshold` consecutive failures open it. Open: calls are
//! refused at once (the node answers from the model) until `cooldown` has passed. Then one
//! call, the probe, is let through (half-open): success closes the breaker, failure opens it
//! for another cooldown. Time is passed in, so the state machine is tested without sleeping.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; everyone else is refused until it reports.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
}

/// Permission for one call. Report its outcome with [`Attempt::succeeded`] or
/// [`Attempt::failed`]; a probe dropped without a report (its request was cancelled) lets
/// the next caller probe instead of leaving the breaker half-open forever.
#[derive(Debug)]
#[must_use = "report the call's outcome"]
pub struct Attempt<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { state: Mutex::new(State::Closed { failures: 0 }), threshold: threshold.max(1), cooldown }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is always valid between statements, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// May a call be made now? `None`: no, skip Redis.
    pub fn try_acquire(&self, now: Instant) -> Option<Attempt<'_>> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => return None,
        };
        Some(Attempt { breaker: self, probe, reported: false })
    }
}

impl Attempt<'_> {
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn succeeded(mut self) {
        self.reported = true;
        let mut state = self.breaker.lock();
        match *state {
            State::Closed { .. } => *state = State::Closed { failures: 0 },
            State::HalfOpen if self.probe => *state = State::Closed { failures: 0 },
            // A call that started before the breaker opened proves little: keep waiting
            // for the probe.
            _ => {}
        }
    }

    pub fn failed(mut self, now: Instant) {
        self.reported = true;
        let b = self.breaker;
        let mut state = b.lock();
        match *state {
            State::Closed { failures } if failures + 1 >= b.threshold => {
                *state = State::Open { until: now + b.cooldown }
            }
            State::Closed { failures } => *state = State::Closed { failures: failures + 1 },
            State::HalfOpen if self.probe => *state = State::Open { until: now + b.cooldown },
            _ => {}
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = self.breaker.lock();
            if matches!(*state, State::HalfOpen) {
                *state = State::Open { until: Instant::now() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = Breaker::new(3, COOL);
        let t = Instant::now();
        b.try_acquire(t).expect("closed").failed(t);
        b.try_acquire(t).expect("closed").failed(t);
        b.try_acquire(t).expect("closed").succeeded();
        b.try_acquire(t).expect("closed").failed(t);
        b.try_acquire(t).expect("closed").failed(t);
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire(t).expect("closed").failed(t);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire(t + COOL / 2).is_none());
    }

    #[test]
    fn one_probe_after_cooldown_closes_or_reopens() {
        let b = Breaker::new(1, COOL);
        let t = Instant::now();
        b.try_acquire(t).expect("closed").failed(t);
        let probe = b.try_acquire(t + COOL).expect("probe allowed");
        assert!(probe.is_probe());
        assert!(b.try_acquire(t + COOL).is_none(), "only one probe at a time");
        probe.failed(t + COOL);
        assert!(b.try_acquire(t + COOL + COOL / 2).is_none(), "reopened for a full cooldown");
        let probe = b.try_acquire(t + 2 * COOL).expect("second probe");
        probe.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.try_acquire(t + 2 * COOL).expect("closed").is_probe());
    }

    #[test]
    fn a_dropped_probe_lets_the_next_caller_probe() {
        let b = Breaker::new(1, COOL);
        let t = Instant::now();
        b.try_acquire(t).expect("closed").failed(t);
        drop(b.try_acquire(t + COOL).expect("probe"));
        assert!(b.try_acquire(Instant::now() + COOL).expect("probe again").is_probe());
    }

    #[test]
    fn stragglers_do_not_override_the_probe() {
        let b = Breaker::new(1, COOL);
        let t = Instant::now();
        let straggler = b.try_acquire(t).expect("closed");
        b.try_acquire(t).expect("closed").failed(t);
        straggler.succeeded();
        assert_eq!(b.state(), BreakerState::Open);
    }
}
