//! Answering questions: the serving snapshot, the cache and single-flight put together.
//!
//! Each request loads the snapshot once and uses it throughout, so the version in its cache
//! key, its answer and its response always agree even if a swap lands mid-request.
//!
//! During a rollout ([`crate::rollout`]) a recommendation is answered by the user's arm: the
//! candidate for the users of its share in a split, else the stable version. A candidate
//! that fails a request (a panic while computing, or an injected fault) is counted against it
//! and the stable version answers instead, so users never see its failures. In shadow mode a
//! sampled share of requests is also computed on the candidate after the answer is sent,
//! at most [`SHADOW_CONCURRENCY`] at a time (the rest are counted as skipped), and compared
//! with what was served. Answers given during a rollout are recorded in Redis so that the
//! user's later events on those items count as conversions for the version that recommended
//! them.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::events::LiveEvent;
use model::manifest;
use model::rollout::Arm;
use prometheus::IntCounterVec;

use crate::answer::{Ranked, RecommendQuery, Source};
use crate::cache::{AppendError, Cache, CacheError, ErasedData, ServedRecord, ATTRIBUTION_WINDOW};
use crate::erasure::Erased;
use crate::flight::SingleFlight;
use crate::rollout::{overlap_at_10, Fault, Held, Serving};
use crate::snapshot::{LiveHistory, ModelSnapshot};
use crate::swap::ModelSlot;
use arc_swap::ArcSwap;

/// Shadow computations running at once on a node; samples beyond are skipped.
pub const SHADOW_CONCURRENCY: usize = 2;
/// An event counts as a conversion only if it is not older than the recommendation by more
/// than this (clients' clocks differ a little).
const CONVERSION_SKEW_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no model is loaded yet; the node is still fetching its first version")]
    NotReady,
    #[error("item {item_id:?} is not in model {version}")]
    UnknownItem { item_id: String, version: String },
    #[error("the events were not stored: the region's Redis did not take them; retry")]
    EventsNotStored(#[source] CacheError),
    #[error("the events may or may not have been stored (Redis did not confirm within {0:?}); a retry stores events that carry an event_id once, others may be stored twice")]
    EventsUnconfirmed(Duration),
    #[error("model {version} failed to compute the answer")]
    Failed { version: String },
    #[error("user_id {user_id:?} was erased on request; events of an erased user are not stored (nothing of this request was)")]
    UserErased { user_id: String },
}

/// `snapshot`'s answer without the erased users of `excluded` (sorted indices), or `None`
/// when computing it panicked (the panic is logged by the hook; the caller falls back to the
/// stable version).
fn compute(
    snapshot: &ModelSnapshot,
    q: &RecommendQuery,
    live: &LiveHistory,
    excluded: &[u32],
) -> Option<Ranked> {
    std::panic::catch_unwind(AssertUnwindSafe(|| snapshot.recommend_without(q, live, excluded))).ok()
}

/// An answer, where it came from, and the snapshot it belongs to.
#[derive(Debug, Clone)]
pub struct Served {
    pub ranked: Arc<Ranked>,
    pub source: Source,
    pub snapshot: Held,
}

impl Served {
    pub fn version(&self) -> &str {
        &self.snapshot.version
    }

    /// Which version answered: `stable` unless a split put the user in the candidate's arm.
    pub fn arm(&self) -> Arm {
        self.snapshot.arm()
    }
}

/// A version could not answer (see the module doc); the stable version answers instead.
#[derive(Debug, Clone, Copy)]
struct Failed;

pub struct Service {
    slot: Arc<ModelSlot>,
    cache: Arc<Cache>,
    /// `None`: the computation failed (every caller waiting on it falls back).
    flight: SingleFlight<Option<Arc<Ranked>>>,
    computations: IntCounterVec,
    faults: Arc<[Fault]>,
    shadows: Arc<AtomicUsize>,
    /// Users erased on request in the region (see [`crate::erasure`]).
    erased: Arc<ArcSwap<Erased>>,
}

impl Service {
    pub fn new(
        slot: Arc<ModelSlot>,
        cache: Arc<Cache>,
        computations: IntCounterVec,
        faults: Vec<Fault>,
    ) -> Self {
        let shadows = Arc::new(AtomicUsize::new(0));
        let faults = faults.into();
        let erased = Arc::new(ArcSwap::from_pointee(Erased::default()));
        Self { slot, cache, flight: SingleFlight::default(), computations, faults, shadows, erased }
    }

    /// The stable snapshot, or [`ServeError::NotReady`].
    pub fn snapshot(&self) -> Result<Held, ServeError> {
        let serving = self.slot.serving().ok_or(ServeError::NotReady)?;
        Ok(Held::new(serving, Arm::Stable))
    }

    /// Both versions during a rollout.
    pub fn serving(&self) -> Option<Arc<Serving>> {
        self.slot.serving()
    }

    /// Cache-aside with live fold-in, answered by the user's arm (see the module doc).
    pub async fn recommend(&self, q: RecommendQuery, force_refresh: bool) -> Result<Served, ServeError> {
        let started = Instant::now();
        let serving = self.slot.serving().ok_or(ServeError::NotReady)?;
        let (arm, _) = serving.pick(&q.user_id);
        let held = Held::new(serving.clone(), arm);
        let served = match self.recommend_on(held.clone(), &q, force_refresh).await {
            Ok(served) => served,
            Err(Failed) => {
                held.figures.failed();
                tracing::warn!(version = %held.version, arm = arm.as_str(), user_id = %q.user_id, "version failed a request; the stable version answers");
                let stable = Held::new(serving.clone(), Arm::Stable);
                match self.recommend_on(stable.clone(), &q, force_refresh).await {
                    Ok(served) => served,
                    Err(Failed) => {
                        // The stable version itself failed (only an injected fault can).
                        stable.figures.failed();
                        return Err(ServeError::Failed { version: stable.version.clone() });
                    }
                }
            }
        };
        served.snapshot.figures.answered(
            served.ranked.strategy,
            served.ranked.items.len(),
            started.elapsed(),
        );
        if serving.in_rollout() && !q.transit {
            self.record_served(&q.user_id, &served);
        }
        if serving.shadow().is_some() {
            self.shadow(serving, q, &served);
        }
        Ok(served)
    }

    /// [`Self::recommend`] on one version; `Err` when it failed.
    async fn recommend_on(
        &self,
        snapshot: Held,
        q: &RecommendQuery,
        force_refresh: bool,
    ) -> Result<Served, Failed> {
        let fault = Fault::on(&self.faults, &snapshot.version);
        if fault.is_some_and(Fault::fails) {
            return Err(Failed);
        }
        let keys = self.cache.recommendation_keys(&snapshot.version, q);
        let lookup = self.cache.lookup(&keys, &q.user_id, force_refresh).await;
        if let Some(ranked) = lookup.cached {
            return Ok(Served { ranked: Arc::new(ranked), source: Source::Cache, snapshot });
        }
        let erased = self.erased_at(lookup.gen).await;
        if lookup.erased || erased.contains(&q.user_id) {
            // Nothing of the user's history, nothing cached or recorded about them.
            let ranked = Arc::new(snapshot.recommend_erased(q));
            return Ok(Served { ranked, source: Source::Model, snapshot });
        }
        let excluded = erased.indices(&snapshot);
        let (head, gen) = (lookup.head, lookup.gen);
        let (keys_ref, snapshot_ref, head_ref, excluded_ref) = (&keys, &snapshot, &head, &excluded);
        let work = move || async move {
            // Without the events the answer would not match the head: compute, don't cache.
            let events = match head_ref {
                Some(_) => self.cache.recent(keys_ref, &q.user_id).await,
                None => Some(Vec::new()),
            };
            let live = LiveHistory::new(&snapshot_ref.model, events.as_deref().unwrap_or_default());
            let kind = if live.folds_in() { "recommend-live" } else { "recommend" };
            self.computations.with_label_values(&[kind]).inc();
            let started = Instant::now();
            // An injected delay slows the model's computations, as a slow model would.
            if let Some(f) = fault {
                f.delay().await;
            }
            let ranked = compute(snapshot_ref, q, &live, excluded_ref);
            snapshot_ref.figures.computed(started.elapsed());
            let ranked = Arc::new(ranked?);
            if let (Some(_), Some(gen), false) = (&events, gen, q.transit) {
                self.cache.put_recommendation(keys_ref, head_ref.as_deref(), gen, &ranked).await;
            }
            Some(ranked)
        };
        let ranked = if force_refresh {
            work().await
        } else {
            let head = head.as_deref().unwrap_or_default();
            let flight = format!("{}\0{}\0{head}\0{}", keys.hash, keys.field, gen.unwrap_or(0));
            self.flight.run(&flight, work).await.0
        };
        let ranked = ranked.ok_or(Failed)?;
        Ok(Served { ranked, source: Source::Model, snapshot })
    }

    /// Remember what was recommended, off the response path (see [`Cache::record_served`]).
    fn record_served(&self, user_id: &str, served: &Served) {
        let cache = self.cache.clone();
        let user_id = user_id.to_string();
        let items: Vec<String> = served.ranked.items.iter().map(|i| i.item_id.clone()).collect();
        let record = ServedRecord {
            version: served.version().to_string(),
            arm: served.arm(),
            at: manifest::now_unix(),
            converted: false,
        };
        tokio::spawn(async move {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            cache.record_served(&user_id, &items, &record).await;
        });
    }

    /// In shadow mode, compute the sampled share of requests on the candidate too, after
    /// the answer, and compare.
    fn shadow(&self, serving: Arc<Serving>, q: RecommendQuery, served: &Served) {
        let Some(candidate) = serving.shadow() else { return };
        if self.erased.load().contains(&q.user_id) {
            return;
        }
        if rand::random::<f64>() >= candidate.spec.share {
            return;
        }
        let figures_of = Held::new(serving.clone(), Arm::Candidate);
        if self.shadows.fetch_add(1, Ordering::AcqRel) >= SHADOW_CONCURRENCY {
            self.shadows.fetch_sub(1, Ordering::AcqRel);
            figures_of.figures.shadow_skipped();
            return;
        }
        let (cache, shadows, faults) = (self.cache.clone(), self.shadows.clone(), self.faults.clone());
        let erased = self.erased.load_full();
        let served_ids: Vec<String> = served.ranked.items.iter().map(|i| i.item_id.clone()).collect();
        tokio::spawn(async move {
            let candidate = figures_of;
            let keys = cache.recommendation_keys(&candidate.version, &q);
            let events = cache.recent(&keys, &q.user_id).await.unwrap_or_default();
            let started = Instant::now();
            let injected = Fault::on(&faults, &candidate.version);
            if let Some(f) = injected {
                f.delay().await;
            }
            let fails = injected.is_some_and(Fault::fails);
            let live = LiveHistory::new(&candidate.model, &events);
            let excluded = erased.indices(&candidate);
            match compute(&candidate, &q, &live, &excluded).filter(|_| !fails) {
                Some(ranked) => {
                    let a: Vec<&str> = served_ids.iter().map(String::as_str).collect();
                    let b: Vec<&str> = ranked.items.iter().map(|i| i.item_id.as_str()).collect();
                    candidate.figures.shadow_computed(started.elapsed(), overlap_at_10(&a, &b));
                }
                None => candidate.figures.shadow_failed(),
            }
            shadows.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// The erased users at generation `gen` (read by a lookup): reloaded from Redis when the
    /// region has had an erasure this node has not seen; the last known set otherwise.
    async fn erased_at(&self, gen: Option<u64>) -> Arc<Erased> {
        let known = self.erased.load_full();
        match gen {
            Some(g) if g > known.gen => self.refresh_erased().await.unwrap_or(known),
            _ => known,
        }
    }

    /// Read the region's erased users now.
    pub async fn refresh_erased(&self) -> Option<Arc<Erased>> {
        match self.cache.erased_users().await {
            Ok((gen, ids)) => {
                let fresh = Arc::new(Erased::new(gen, ids));
                tracing::info!(gen, users = fresh.len(), "erased users loaded");
                self.erased.store(fresh.clone());
                Some(fresh)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the erased users; using the last known");
                None
            }
        }
    }

    /// Erase `user_id`'s live data in the region (see [`Cache::erase_user`]); this node
    /// stops using them at once, the region's other nodes at their next request.
    pub async fn erase(&self, user_id: &str) -> Result<ErasedData, CacheError> {
        let data = self.cache.erase_user(user_id, manifest::now_unix()).await?;
        self.refresh_erased().await;
        Ok(data)
    }

    /// Append validated events to the region's stream and their users' recent lists, and
    /// drop those users' cached answers. Returns the event ids and, per event, whether it
    /// was a duplicate of one stored before (same user and `event_id`: nothing stored, the
    /// original id returned). Works before a model is loaded: events do not need one.
    pub async fn record_events(
        &self,
        events: &[LiveEvent],
        timeout: Duration,
    ) -> Result<(Vec<String>, Vec<bool>), ServeError> {
        let serving = self.slot.serving();
        let versions = serving.as_ref().map(|s| s.versions()).unwrap_or_default();
        let appended = self.cache.append_events(events, &versions, timeout).await.map_err(|e| match e {
            AppendError::Cache(CacheError::Timeout { timeout, .. }) => ServeError::EventsUnconfirmed(timeout),
            AppendError::Cache(e) => ServeError::EventsNotStored(e),
            AppendError::Erased { user_id } => ServeError::UserErased { user_id },
        })?;
        // Hourly counts for measured trends: best effort, off the response path, and only
        // events stored now (not duplicates of earlier ones).
        let fresh: Vec<LiveEvent> =
            events.iter().zip(&appended.duplicate).filter(|(_, d)| !**d).map(|(e, _)| e.clone()).collect();
        let cache = self.cache.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::trend::record(&cache, &fresh, manifest::now_unix()).await {
                tracing::debug!(error = %e, "trend counts not recorded");
            }
        });
        if let Some(serving) = serving {
            let now = manifest::now_unix();
            for (e, record) in events.iter().zip(&appended.served) {
                let Some(r) = record else { continue };
                let fresh =
                    now - r.at <= ATTRIBUTION_WINDOW.as_secs() as i64 && e.ts + CONVERSION_SKEW_SECS >= r.at;
                if let Some((_, snapshot)) = serving.version(&r.version).filter(|_| fresh) {
                    snapshot.figures.converted(e.kind, !r.converted);
                }
            }
        }
        Ok((appended.ids, appended.duplicate))
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
        snapshot: Held,
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
            Some(ranked)
        };
        let ranked = if force_refresh { work().await } else { self.flight.run(&key, work).await.0 };
        // `work` never yields `None`: the similar-items path has no failure to fall back from.
        let ranked = ranked.unwrap_or_else(|| {
            Arc::new(Ranked { strategy: crate::answer::Strategy::ItemCosine, items: Vec::new() })
        });
        Served { ranked, source: Source::Model, snapshot }
    }
}
