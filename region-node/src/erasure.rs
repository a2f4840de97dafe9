//! Users erased on request in this region, as a node holds them: the region's erased set at
//! one erasure generation (both in Redis, see `model::events`), with each resident model's
//! indices of those users worked out once per (generation, version).
//!
//! Until a model built without them serves, an erased user is answered with popular items
//! and never used as anyone's neighbour. The node learns of an erasure from the generation
//! its cache lookups read (one round trip it makes anyway), so every node of the region
//! follows at its next request, and after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::snapshot::ModelSnapshot;

/// The erased users at one generation.
#[derive(Debug, Default)]
pub struct Erased {
    pub gen: u64,
    ids: HashSet<String>,
    /// Per model version: the sorted indices of the erased users it knows.
    indices: Mutex<HashMap<String, Arc<[u32]>>>,
}

impl Erased {
    pub fn new(gen: u64, ids: impl IntoIterator<Item = String>) -> Self {
        Erased { gen, ids: ids.into_iter().collect(), indices: Mutex::default() }
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.ids.contains(user_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The erased users' indices in `snapshot`'s model, sorted (computed once per version).
    pub fn indices(&self, snapshot: &ModelSnapshot) -> Arc<[u32]> {
        if self.ids.is_empty() {
            return Arc::from([]);
        }
        if let Some(found) = self.lock().get(&snapshot.version) {
            return found.clone();
        }
        let mut found: Vec<u32> = self.ids.iter().filter_map(|id| snapshot.model.user_index(id)).collect();
        found.sort_unstable();
        let found: Arc<[u32]> = found.into();
        self.lock().insert(snapshot.version.clone(), found.clone());
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[u32]>>> {
        // The map only caches; a panic elsewhere cannot leave it inconsistent.
        self.indices.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
