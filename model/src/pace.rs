//! Yield points for long CPU work that shares the cores with latency-sensitive threads.
//!
//! A region node decodes and builds a new model version on background threads while its
//! request threads keep answering. Lowering the background threads' priority is not enough
//! on Linux: the scheduler (EEVDF) may run a low-priority thread while a request thread is
//! runnable but has just used up its share, and with nothing to wake it up again the
//! request thread waits for the next timer tick (4 ms at `HZ=250`), which shows as a
//! request several times slower than usual. Loops that call [`tick`] give the CPU back
//! (`sched_yield`) at least every interval set with [`enable`] on that thread, so a waiting
//! request thread runs within that interval instead.
//!
//! Pacing is per thread and off unless enabled: in the `model-sync` CLI, [`tick`] costs a
//! thread-local read.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// What a request-serving process should use: short against a 4 ms tick, long enough that
/// yielding costs nothing measurable (a `sched_yield` is about a microsecond).
pub const DEFAULT_INTERVAL: Duration = Duration::from_micros(200);

thread_local! {
    /// `(interval, last yield)` when pacing is on for this thread.
    static PACE: Cell<Option<(Duration, Instant)>> = const { Cell::new(None) };
}

/// Yield at least every `interval` from now on, in the loops of this thread that call [`tick`].
pub fn enable(interval: Duration) {
    PACE.with(|p| p.set(Some((interval, Instant::now()))));
}

/// Stop pacing this thread.
pub fn disable() {
    PACE.with(|p| p.set(None));
}

/// Whether this thread is paced.
pub fn enabled() -> bool {
    PACE.with(|p| p.get().is_some())
}

/// A yield point: gives the CPU back if pacing is on and the interval has passed since the
/// last yield. Call it every few microseconds of work (it reads the clock when pacing is on).
#[inline]
pub fn tick() {
    PACE.with(|p| {
        if let Some((interval, last)) = p.get() {
            if last.elapsed() >= interval {
                std::thread::yield_now();
                p.set(Some((interval, Instant::now())));
            }
        }
    });
}

/// `f(i)` for every `i` in `0..n`, with a yield point every `every` iterations.
#[inline]
pub fn each(n: usize, every: usize, mut f: impl FnMut(usize)) {
    let every = every.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + every).min(n);
        for i in start..end {
            f(i);
        }
        tick();
        start = end;
    }
}

/// `pred` holds for every element of `xs`; checked in chunks of `every` with a yield point
/// after each.
pub fn all<T>(xs: &[T], every: usize, mut pred: impl FnMut(&T) -> bool) -> bool {
    xs.chunks(every.max(1)).all(|chunk| {
        let ok = chunk.iter().all(&mut pred);
        tick();
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_per_thread() {
        assert!(!enabled());
        enable(Duration::from_micros(50));
        assert!(enabled());
        std::thread::spawn(|| assert!(!enabled(), "another thread is not paced")).join().expect("joins");
        tick();
        disable();
        assert!(!enabled());
    }

    #[test]
    fn a_paced_thread_yields_once_the_interval_has_passed() {
        enable(Duration::from_millis(1));
        let before = PACE.with(Cell::get).expect("enabled").1;
        tick();
        assert_eq!(PACE.with(Cell::get).expect("enabled").1, before, "too early: no yield");
        std::thread::sleep(Duration::from_millis(2));
        tick();
        assert!(PACE.with(Cell::get).expect("enabled").1 > before, "interval passed: yielded");
        disable();
    }

    #[test]
    fn helpers_visit_everything() {
        let mut seen = Vec::new();
        each(10, 3, |i| seen.push(i));
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(all(&[1, 2, 3, 4, 5], 2, |&x| x > 0));
        assert!(!all(&[1, 2, -3, 4, 5], 2, |&x| x > 0));
        assert!(all::<i32>(&[], 2, |_| false));
    }
}
