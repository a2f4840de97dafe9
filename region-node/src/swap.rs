//! Hot-swapping model versions: one immutable snapshot behind one `ArcSwap`.
//!
//! A check reads the region's pointer; a new version is downloaded, verified, decoded,
//! built into a [`ModelSnapshot`] and warmed up entirely off the request path (on the
//! loader's own low-priority runtime thread, see [`crate::background`]), then published with
//! a single `store`. Requests hold the `Arc` they loaded, so in-flight ones finish on their
//! version; the old snapshot is freed on a background thread once the last of them ends.
//!
//! A failed check (store down, corrupt or undecodable version) never touches the serving
//! snapshot: it is recorded for health and metrics and retried with backoff. Start-up is
//! the same loop with an empty slot, so "retry while the store is unreachable" needs no
//! separate code.
//!
//! During a rollout the pointer also names a candidate ([`model::rollout`]); the slot then
//! holds both ([`Serving`]). A candidate is loaded the same way, after the stable version,
//! and a version already resident is reused, never loaded twice (a promotion loads nothing).
//! At most two versions are resident, plus the one being loaded while the other leaves: a
//! candidate that is no longer wanted is dropped before anything else is loaded. A candidate
//! that fails to load leaves the stable version serving everyone; it is recorded
//! ([`SwapStatus::candidate_error`]) and tried again after [`CANDIDATE_RETRY`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use cluster_config::errors::error_chain;
use cluster_config::SwapPriority;
use model::manifest;
use serde::Serialize;
use store::reader::{self, ReadError};
use store::Bucket;

use crate::loader::{self, LoadError};
use crate::metrics::SwapMetrics;
use crate::rollout::{CandidateSlot, Held, Serving};
use crate::settings::PollSettings;
use crate::snapshot::{ModelSnapshot, SnapshotError};

/// The serving versions, if any. The only mutable model state of a node.
#[derive(Default)]
pub struct ModelSlot(ArcSwapOption<Serving>);

impl ModelSlot {
    /// The stable snapshot; hold it for the whole request.
    pub fn current(&self) -> Option<Held> {
        self.serving().map(|s| Held::new(s, model::rollout::Arm::Stable))
    }

    /// Both versions during a rollout; hold it for the whole request.
    pub fn serving(&self) -> Option<Arc<Serving>> {
        self.0.load_full()
    }

    pub fn version(&self) -> Option<String> {
        self.0.load().as_ref().map(|s| s.stable.version.clone())
    }

    /// Serve `serving` from now on; returns what it replaces.
    fn replace(&self, serving: Serving) -> Option<Arc<Serving>> {
        self.0.swap(Some(Arc::new(serving)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("nothing has been published to this region's bucket yet")]
    NothingPublished,
    #[error("cannot read the region's pointer")]
    Pointer(#[source] ReadError),
    #[error("cannot load version {version}")]
    Load {
        version: String,
        #[source]
        source: LoadError,
    },
    #[error("the model loader has stopped (the node is shutting down)")]
    Stopped,
    #[error("version {version} is not servable")]
    Snapshot {
        version: String,
        #[source]
        source: SnapshotError,
    },
    #[error("version {version} failed while building or warming up")]
    Build {
        version: String,
        #[source]
        source: crate::background::Interrupted,
    },
}

impl SwapError {
    /// The version that was rejected, when one was named.
    pub fn version(&self) -> Option<&str> {
        match self {
            SwapError::NothingPublished | SwapError::Pointer(_) | SwapError::Stopped => None,
            SwapError::Load { version, .. }
            | SwapError::Snapshot { version, .. }
            | SwapError::Build { version, .. } => Some(version),
        }
    }
}

/// What one check did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The pointer names the serving version.
    Unchanged { version: String },
    Swapped {
        #[schema(required = true)]
        from: Option<String>,
        to: String,
        took_ms: u64,
    },
}

/// The last failed check, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SwapFailure {
    /// The version that was rejected; null when the pointer itself could not be read.
    #[schema(required = true)]
    pub version: Option<String>,
    /// The error and its causes.
    pub error: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Default, Clone)]
pub struct SwapStatus {
    pub swap_count: u64,
    pub last_error: Option<SwapFailure>,
    /// Failed checks in a row (drives the poll backoff).
    pub consecutive_failures: u32,
    /// The pointer's candidate could not be loaded or is invalid: the stable version serves
    /// everyone meanwhile.
    pub candidate_error: Option<SwapFailure>,
}

/// How long a replaced snapshot waits for the requests still using it before it is freed.
const RETIRE_PATIENCE: Duration = Duration::from_secs(60);

/// A candidate version that failed to load is not downloaded again before this.
pub const CANDIDATE_RETRY: Duration = Duration::from_secs(30);

/// Checks and swaps; all of its work runs on the loader's runtime (see [`Swapper`]).
pub struct Swapper {
    checker: Arc<Checker>,
    runtime: crate::background::Runtime,
}

impl Swapper {
    /// Starts the loader's runtime thread; nothing is checked until [`Self::spawn_poll`] or
    /// [`Self::check_now`].
    pub fn new(
        bucket: Bucket,
        slot: Arc<ModelSlot>,
        metrics: SwapMetrics,
        priority: SwapPriority,
    ) -> std::io::Result<Self> {
        let status = Mutex::new(SwapStatus::default());
        let checking = tokio::sync::Mutex::new(());
        let failed_candidate = Mutex::new(None);
        let checker =
            Arc::new(Checker { bucket, slot, status, metrics, checking, priority, failed_candidate });
        Ok(Self { checker, runtime: crate::background::Runtime::start("loader", priority)? })
    }

    pub fn status(&self) -> SwapStatus {
        self.checker.status()
    }

    /// Read the pointer now and swap if it names another version (on the loader's runtime;
    /// this only waits for it). Outcomes are recorded in the status and metrics whoever
    /// calls this.
    pub async fn check_now(&self) -> Result<CheckOutcome, SwapError> {
        let checker = self.checker.clone();
        self.runtime.spawn(async move { checker.check_now().await }).await.unwrap_or(Err(SwapError::Stopped))
    }

    /// Check at once, then forever on the loader's runtime (see [`Checker::poll`]).
    pub fn spawn_poll(&self, settings: PollSettings) -> tokio::task::JoinHandle<()> {
        let checker = self.checker.clone();
        self.runtime.spawn(async move { checker.poll(settings).await })
    }
}

struct Checker {
    bucket: Bucket,
    slot: Arc<ModelSlot>,
    status: Mutex<SwapStatus>,
    metrics: SwapMetrics,
    /// One check at a time: the poller and `/admin/model/reload` must not build the same
    /// version twice (and hold two extra copies of it in memory).
    checking: tokio::sync::Mutex<()>,
    /// Of every thread that decodes, builds or frees a model.
    priority: SwapPriority,
    /// The candidate version that last failed to load, and when.
    failed_candidate: Mutex<Option<(String, Instant)>>,
}

impl Checker {
    fn status(&self) -> SwapStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn check_now(&self) -> Result<CheckOutcome, SwapError> {
        let _one_at_a_time = self.checking.lock().await;
        let result = self.check().await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(outcome) => {
                status.consecutive_failures = 0;
                // Serving what the pointer names: an older failure no longer matters (the
                // operator rolled back, or a later version replaced the bad one).
                status.last_error = None;
                if matches!(outcome, CheckOutcome::Swapped { .. }) {
                    status.swap_count += 1;
                }
            }
            Err(e) => {
                status.consecutive_failures = status.consecutive_failures.saturating_add(1);
                status.last_error = Some(SwapFailure {
                    version: e.version().map(str::to_string),
                    error: error_chain(e),
                    at: manifest::rfc3339(manifest::now_unix()),
                });
                self.metrics.failures.inc();
            }
        }
        result
    }

    async fn check(&self) -> Result<CheckOutcome, SwapError> {
        let pointer = reader::read_pointer(&self.bucket).await.map_err(SwapError::Pointer)?;
        let pointer = pointer.ok_or(SwapError::NothingPublished)?;
        let version = pointer.version;
        let current = self.slot.serving();
        let from = current.as_ref().map(|s| s.stable.version.clone());
        let wanted = pointer.candidate.filter(|c| match c.check(&version) {
            Ok(()) => true,
            Err(e) => {
                self.candidate_failed(Some(&c.version), &e.to_string());
                false
            }
        });
        // A resident candidate that is no longer wanted leaves before anything is loaded.
        let keep = |c: &CandidateSlot| {
            wanted.as_ref().is_some_and(|w| w.version == c.snapshot.version) || c.snapshot.version == version
        };
        if let Some(cur) = current.as_ref() {
            if cur.candidate.as_ref().is_some_and(|c| !keep(c)) {
                self.publish(Serving::stable_only(cur.stable.clone()));
                tracing::info!(candidate = ?cur.candidate.as_ref().map(|c| &c.snapshot.version), "candidate dropped");
            }
        }
        drop(current);
        let current = self.slot.serving();
        let mut outcome = CheckOutcome::Unchanged { version: version.clone() };
        let stable = match current.as_deref().and_then(|s| resident(s, &version)) {
            Some(s) if from.as_deref() == Some(version.as_str()) => s,
            Some(promoted) => {
                // The candidate becomes the serving version: nothing to load.
                self.swapped(from.as_deref(), &promoted, Duration::ZERO);
                outcome = CheckOutcome::Swapped { from: from.clone(), to: version.clone(), took_ms: 0 };
                promoted
            }
            None => {
                // At most two versions resident: a candidate leaves while a new stable version
                // loads (and is loaded again after, if still wanted).
                if let Some(cur) = current.as_ref().filter(|c| c.candidate.is_some()) {
                    self.publish(Serving::stable_only(cur.stable.clone()));
                }
                // Nothing here may keep the candidate alive while the new version loads.
                drop(current);
                let started = Instant::now();
                tracing::info!(from = ?from, to = %version, "loading model version");
                let snapshot = self.load(&version).await?;
                let took = started.elapsed();
                self.publish(Serving::stable_only(snapshot.clone()));
                self.swapped(from.as_deref(), &snapshot, took);
                outcome = CheckOutcome::Swapped {
                    from: from.clone(),
                    to: version.clone(),
                    took_ms: took.as_millis() as u64,
                };
                snapshot
            }
        };
        let Some(spec) = wanted else {
            if self.slot.serving().is_some_and(|s| s.candidate.is_some() || !Arc::ptr_eq(&s.stable, &stable))
            {
                self.publish(Serving::stable_only(stable));
            }
            self.clear_candidate_error();
            return Ok(outcome);
        };
        let current = self.slot.serving();
        let snapshot = match current.as_deref().and_then(|s| resident(s, &spec.version)) {
            Some(s) => s,
            None => {
                let retry_later = self
                    .failed_candidate
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .is_some_and(|(v, at)| *v == spec.version && at.elapsed() < CANDIDATE_RETRY);
                if retry_later {
                    return Ok(outcome);
                }
                tracing::info!(candidate = %spec.version, mode = spec.mode.as_str(), share = spec.share, "loading candidate");
                match self.load(&spec.version).await {
                    Ok(s) => s,
                    Err(e) => {
                        *self.failed_candidate.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((spec.version.clone(), Instant::now()));
                        tracing::warn!(candidate = %spec.version, error = %error_chain(&e), "candidate not loaded");
                        self.candidate_failed(Some(&spec.version), &error_chain(&e));
                        return Ok(outcome);
                    }
                }
            }
        };
        let unchanged = self.slot.serving().is_some_and(|s| {
            Arc::ptr_eq(&s.stable, &stable)
                && s.candidate.as_ref().is_some_and(|c| Arc::ptr_eq(&c.snapshot, &snapshot) && c.spec == spec)
        });
        if !unchanged {
            tracing::info!(candidate = %spec.version, mode = spec.mode.as_str(), share = spec.share, rollout = %spec.rollout_id, "candidate serving");
            self.publish(Serving { stable, candidate: Some(CandidateSlot { snapshot, spec }) });
        }
        self.clear_candidate_error();
        Ok(outcome)
    }

    /// Download, verify, decode, build and warm up `version` off the request path.
    async fn load(&self, version: &str) -> Result<Arc<ModelSnapshot>, SwapError> {
        let started = Instant::now();
        let (manifest, model) = loader::load_version(&self.bucket, version, self.priority)
            .await
            .map_err(|source| SwapError::Load { version: version.to_string(), source })?;
        let loaded = started.elapsed();
        let v = version.to_string();
        let built = crate::background::run("snapshot", self.priority, move || {
            let snapshot = ModelSnapshot::new(manifest, model, manifest::now_unix())?;
            let built = Instant::now();
            snapshot.warm_up();
            Ok::<_, SnapshotError>((snapshot, built))
        })
        .await
        .map_err(|source| SwapError::Build { version: v, source })?;
        let (snapshot, built) =
            built.map_err(|source| SwapError::Snapshot { version: version.to_string(), source })?;
        let warm_up = built.elapsed();
        let took = started.elapsed();
        tracing::info!(
            version,
            took_ms = took.as_millis() as u64,
            download_decode_ms = loaded.as_millis() as u64,
            build_ms = (took.saturating_sub(loaded + warm_up)).as_millis() as u64,
            warm_up_ms = warm_up.as_millis() as u64,
            "model version loaded"
        );
        Ok(Arc::new(snapshot))
    }

    /// Make `serving` live; what it replaces is freed off the request path once unused.
    fn publish(&self, serving: Serving) {
        if let Some(old) = self.slot.replace(serving) {
            crate::background::retire(old, RETIRE_PATIENCE, self.priority);
        }
    }

    fn swapped(&self, from: Option<&str>, to: &ModelSnapshot, took: Duration) {
        self.metrics.swaps.inc();
        self.metrics.duration.observe(took.as_secs_f64());
        self.metrics.serving(&to.version, to.loaded_at);
        tracing::info!(from = ?from, to = %to.version, took_ms = took.as_millis() as u64, "model swapped");
    }

    fn candidate_failed(&self, version: Option<&str>, error: &str) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.candidate_error = Some(SwapFailure {
            version: version.map(str::to_string),
            error: error.to_string(),
            at: manifest::rfc3339(manifest::now_unix()),
        });
    }

    fn clear_candidate_error(&self) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).candidate_error = None;
    }
    /// Check at once, then forever: every jittered interval while healthy, backing off
    /// exponentially (up to `max_backoff`) while checks fail.
    async fn poll(&self, settings: PollSettings) {
        loop {
            if let Err(e) = self.check_now().await {
                let serving = self.slot.version();
                tracing::warn!(serving = ?serving, error = %error_chain(&e), "model check failed");
            }
            let failures = self.status().consecutive_failures;
            tokio::time::sleep(next_delay(&settings, failures, rand::random_range(-1.0..=1.0))).await;
        }
    }
}

/// The snapshot of `version` when `serving` holds it.
fn resident(serving: &Serving, version: &str) -> Option<Arc<ModelSnapshot>> {
    if serving.stable.version == version {
        return Some(serving.stable.clone());
    }
    serving.candidate.as_ref().filter(|c| c.snapshot.version == version).map(|c| c.snapshot.clone())
}

/// `interval * 2^failures` (capped at `max_backoff`, never below `interval`), scaled by
/// `1 + jitter * unit` for `unit` in [-1, 1].
pub fn next_delay(p: &PollSettings, failures: u32, unit: f64) -> Duration {
    let base = p.interval.saturating_mul(1u32 << failures.min(16));
    let capped = base.min(p.max_backoff.max(p.interval));
    capped.mul_f64((1.0 + p.jitter * unit.clamp(-1.0, 1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_jittered_and_backs_off_to_a_cap() {
        let p = PollSettings {
            interval: Duration::from_secs(2),
            jitter: 0.2,
            max_backoff: Duration::from_secs(30),
        };
        assert_eq!(next_delay(&p, 0, 0.0), Duration::from_secs(2));
        assert_eq!(next_delay(&p, 0, -1.0), Duration::from_millis(1600));
        assert_eq!(next_delay(&p, 0, 1.0), Duration::from_millis(2400));
        assert_eq!(next_delay(&p, 2, 0.0), Duration::from_secs(8));
        assert_eq!(next_delay(&p, 10, 0.0), Duration::from_secs(30));
        assert_eq!(next_delay(&p, u32::MAX, 1.0), Duration::from_secs(36));
    }
}
