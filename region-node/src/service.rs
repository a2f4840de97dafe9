//! Answering questions: the serving snapshot, the cache and single-flight put together.
//!
//! Each request loads the snapshot once and uses it throughout, so the version in its cache
//! key, its answer and its response always agree even if a swap lands mid-request.

use std::sync::Arc;
use std::time::Duration;

use model::events::LiveEvent;
use prometheus::IntCounterVec;

use crate::answer::{Ranked, RecommendQuery, Source};
use crate::cache::{Cache, CacheError};
use crate::flight::SingleFlight;
use crate::snapshot::{LiveHistory, ModelSnapshot};
use crate::swap::ModelSlot;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no model is loaded yet; the node is still fetching its first version")]
    NotReady,
    #[error("item {item_id:?} is not in model {version}")]
    UnknownItem { item_id: String, version: String },
    #[error("the events were not stored: the region's Redis did not take them; retry")]
    EventsNotStored(#[source] CacheError),
    #[error("the events may or may not have been stored (Redis did not confirm within {0:?}); retrying may store them twice")]
    EventsUnconfirmed(Duration),
}

/// An answer, where it came from, and the snapshot it belongs to.
#[derive(Debug, Clone)]
pub struct Served {
    pub ranked: Arc<Ranked>,
    pub source: Source,
    pub snapshot: Arc<ModelSnapshot>,
}

impl Served {
    pub fn version(&self) -> &str {
        &self.snapshot.version
    }
}

pub struct Service {
    slot: Arc<ModelSlot>,
    cache: Arc<Cache>,
    flight: SingleFlight<Arc<Ranked>>,
    computations: IntCounterVec,
}

impl Service {
    pub fn new(slot: Arc<ModelSlot>, cache: Arc<Cache>, computations: IntCounterVec) -> Self {
        Self { slot, cache, flight: SingleFlight::default(), computations }
    }

    /// The serving snapshot, or [`ServeError::NotReady`].
    pub fn snapshot(&self) -> Result<Arc<ModelSnapshot>, ServeError> {
        self.slot.current().ok_or(ServeError::NotReady)
    }

    /// Cache-aside with live fold-in: one round trip reads the cached answer and the head of
    /// the user's recent events; on a miss, a user with recent events gets them folded into
    /// their vector ([`ModelSnapshot::recommend_live`]). Concurrent misses for one key and
    /// head compute once.
    pub async fn recommend(&self, q: RecommendQuery, force_refresh: bool) -> Result<Served, ServeError> {
        let snapshot = self.snapshot()?;
        let keys = self.cache.recommendation_keys(&snapshot.version, &q);
        let lookup = self.cache.lookup(&keys, force_refresh).await;
        if let Some(ranked) = lookup.cached {
            return Ok(Served { ranked: Arc::new(ranked), source: Source::Cache, snapshot });
        }
        let head = lookup.head;
        let (keys_ref, snapshot_ref, q_ref, head_ref) = (&keys, &snapshot, &q, &head);
        let work = move || async move {
            // Without the events the answer would not match the head: compute, don't cache.
            let events = match head_ref {
                Some(_) => self.cache.recent(keys_ref, &q_ref.user_id).await,
                None => Some(Vec::new()),
            };
            let live = LiveHistory::new(&snapshot_ref.model, events.as_deref().unwrap_or_default());
            let kind = if live.folds_in() { "recommend-live" } else { "recommend" };
            self.computations.with_label_values(&[kind]).inc();
            let ranked = Arc::new(snapshot_ref.recommend_live(q_ref, &live));
            if events.is_some() {
                self.cache.put_recommendation(keys_ref, head_ref.as_deref(), &ranked).await;
            }
            ranked
        };
        let ranked = if force_refresh {
            work().await
        } else {
            let flight = format!("{}\0{}\0{}", keys.hash, keys.field, head.as_deref().unwrap_or_default());
            self.flight.run(&flight, work).await.0
        };
        Ok(Served { ranked, source: Source::Model, snapshot })
    }

    /// Append validated events to the region's stream and their users' recent lists, and
    /// drop those users' cached answers. Returns the event ids. Works before a model is
    /// loaded: events do not need one.
    pub async fn record_events(
        &self,
        events: &[LiveEvent],
        timeout: Duration,
    ) -> Result<Vec<String>, ServeError> {
        let version = self.slot.current().map(|s| s.version.clone());
        self.cache.append_events(events, version.as_deref(), timeout).await.map_err(|e| match e {
            CacheError::Timeout { timeout, .. } => ServeError::EventsUnconfirmed(timeout),
            e => ServeError::EventsNotStored(e),
        })
    }

    pub async fn similar(
        &self,
        item_id: &str,
        count: usize,
        force_refresh: bool,
    ) -> Result<Served, ServeError> {
        let snapshot = self.snapshot()?;
        let Some(item) = snapshot.model.item_index(item_id) else {
            let version = snapshot.version.clone();
            return Err(ServeError::UnknownItem { item_id: item_id.to_string(), version });
        };
        let key = self.cache.similar_key(&snapshot.version, item_id, count);
        Ok(self.cached(key, force_refresh, "similar", snapshot, move |s| s.similar(item, count)).await)
    }

    /// Not cached: one pass over item popularity costs less than a Redis round trip.
    pub fn trending(&self, count: usize, category: Option<&str>) -> Result<Served, ServeError> {
        let snapshot = self.snapshot()?;
        self.computations.with_label_values(&["trending"]).inc();
        let ranked = Arc::new(snapshot.trending(count, category));
        Ok(Served { ranked, source: Source::Model, snapshot })
    }

    /// Cache-aside: Redis first (unless `force_refresh`), else compute once per key across
    /// concurrent callers and write the result back.
    async fn cached(
        &self,
        key: String,
        force_refresh: bool,
        kind: &'static str,
        snapshot: Arc<ModelSnapshot>,
        compute: impl FnOnce(&ModelSnapshot) -> Ranked,
    ) -> Served {
        if !force_refresh {
            if let Some(ranked) = self.cache.get(&key).await {
                return Served { ranked: Arc::new(ranked), source: Source::Cache, snapshot };
            }
        }
        let (key_ref, snapshot_ref) = (&key, &snapshot);
        let work = move || async move {
            self.computations.with_label_values(&[kind]).inc();
            let ranked = Arc::new(compute(snapshot_ref));
            self.cache.put(key_ref, &ranked).await;
            ranked
        };
        let ranked = if force_refresh { work().await } else { self.flight.run(&key, work).await.0 };
        Served { ranked, source: Source::Model, snapshot }
    }
}
