//! [`CappedStore`]: governor's DashMap state store with a cap on distinct keys, so a flood
//! of made-up API keys or addresses cannot grow the router's memory without limit.
//!
//! Past `max_keys`, a key not yet tracked is counted against one shared bucket,
//! [`ClientKey::Overflow`], with the class's limits: the clients already tracked keep their
//! own buckets, and the newcomers share one until the sweep ([`super::Limiter::sweep`])
//! forgets idle keys and makes room. Memory is then at most `max_keys` + 1 entries per class.

use std::sync::atomic::{AtomicUsize, Ordering};

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{NotKeyed, StateStore};
use prometheus::IntCounter;

use super::key::ClientKey;

pub struct CappedStore {
    map: DashMapStateStore<ClientKey>,
    max_keys: usize,
    /// Keys in `map`: counted up on insert (two workers inserting one key at once may both
    /// count it), set to the exact figure on every sweep. Reading it costs no lock, where
    /// `DashMap::len` locks every shard.
    tracked: AtomicUsize,
    /// Requests counted against the shared bucket.
    overflowed: IntCounter,
}

impl CappedStore {
    pub fn new(max_keys: usize, overflowed: IntCounter) -> Self {
        Self { map: DashMapStateStore::default(), max_keys, tracked: AtomicUsize::new(0), overflowed }
    }
}

impl StateStore for CappedStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // A tracked key: one lookup (its shard's read lock) and the bucket's compare-and-swap.
        if let Some(bucket) = self.map.get(key) {
            return bucket.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.tracked.load(Ordering::Relaxed) >= self.max_keys {
            self.overflowed.inc();
            return self.map.measure_and_replace(&ClientKey::Overflow, f);
        }
        self.tracked.fetch_add(1, Ordering::Relaxed);
        self.map.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<ClientKey> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.retain_recent(drop_below);
        self.tracked.store(self.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
