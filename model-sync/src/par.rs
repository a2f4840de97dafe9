//! Data-parallel loops for the build: the same answer whatever the number of cores.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

/// `f(0..n)` on every core, in blocks taken in turn; the results come back in order, so they
/// do not depend on the number of threads.
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    const BLOCK: usize = 256;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let blocks = n.div_ceil(BLOCK);
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<T>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(blocks).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let b = next.fetch_add(1, AtomicOrdering::Relaxed);
                        if b >= blocks {
                            return out;
                        }
                        out.push((b, (b * BLOCK..((b + 1) * BLOCK).min(n)).map(&f).collect()));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker thread panicked")).collect()
    });
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().flat_map(|d| d.1).collect()
}
