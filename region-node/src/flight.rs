//! Single-flight: concurrent misses for one cache key compute the answer once.
//!
//! The first caller for a key computes; callers arriving while it runs wait for its result
//! instead of computing and writing the same answer again (a stampede on a hot key right
//! after a swap, when every key is new). In-process only: replicas of a region may each
//! compute a key once, which is cheap compared to a cross-node lock in Redis.
//!
//! Cancellation-safe: if the computing caller goes away (client hung up), a waiting caller
//! takes over, and the entry is removed by whoever leaves last.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct SingleFlight<V> {
    calls: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        Self { calls: Mutex::new(HashMap::new()) }
    }
}

/// Removes the key when the last interested caller leaves (or the value is ready).
struct Leave<'a, V> {
    flight: &'a SingleFlight<V>,
    key: &'a str,
    cell: Arc<OnceCell<V>>,
}

impl<V> Drop for Leave<'_, V> {
    fn drop(&mut self) {
        let mut calls = self.flight.calls.lock().unwrap_or_else(|p| p.into_inner());
        let ours = calls.get(self.key).is_some_and(|c| Arc::ptr_eq(c, &self.cell));
        // Count 2 = the map's reference and ours: nobody else is waiting.
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) == 2) {
            calls.remove(self.key);
        }
    }
}

impl<V: Clone> SingleFlight<V> {
    /// The value for `key`: computed by `compute` here, or by a concurrent caller. The flag
    /// says whether this call computed it.
    pub async fn run<F, Fut>(&self, key: &str, compute: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            calls.entry(key.to_string()).or_default().clone()
        };
        let leave = Leave { flight: self, key, cell };
        let mut computed = false;
        let value = leave
            .cell
            .get_or_init(|| {
                computed = true;
                compute()
            })
            .await
            .clone();
        drop(leave);
        (value, computed)
    }

    /// Keys being computed right now (for tests and debugging).
    pub fn in_flight(&self) -> usize {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let (runs, arrived) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (flight, runs, arrived, gate) = (flight.clone(), runs.clone(), arrived.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                // Counted in the same poll that joins the flight, so once all have arrived
                // every task is parked on the key.
                arrived.fetch_add(1, Ordering::SeqCst);
                flight
                    .run("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        7
                    })
                    .await
            }));
        }
        while arrived.load(Ordering::SeqCst) < 16 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let mut computed = 0;
        for t in tasks {
            let (v, c) = t.await.expect("task");
            assert_eq!(v, 7);
            computed += usize::from(c);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(computed, 1);
        assert_eq!(flight.in_flight(), 0, "the key is forgotten once answered");
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let f = flight.clone();
        let leader = tokio::spawn(async move { f.run("k", std::future::pending::<u32>).await });
        while flight.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        let _ = leader.await;
        let (v, computed) = flight.run("k", || async { 3 }).await;
        assert_eq!((v, computed), (3, true));
        assert_eq!(flight.in_flight(), 0);
    }
}
