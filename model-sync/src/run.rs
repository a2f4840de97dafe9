//! The retrain loop: ingest live events, build from data + events, evaluate, and publish
//! only if the candidate is not worse than the serving model.
//!
//! One cycle ([`Runner::cycle`]):
//! 1. ingest every region's stream ([`crate::ingest`]); a region that fails is reported and
//!    the cycle goes on with what the others and earlier runs stored;
//! 2. read the serving model's manifest from the primary bucket (its pointer);
//! 3. read `--data` and every ingested event (deduplicated) into one dataset; if its
//!    fingerprint and the build parameters equal the serving model's, or the candidate refused
//!    last time, nothing is new: skip without building;
//! 4. build, evaluate on the time split ([`crate::eval`]), write the candidate directory with
//!    its evaluation in the manifest;
//! 5. publish if its NDCG@10 (user-KNN) is at least the serving one's minus the margin, or if
//!    the serving model has no recorded NDCG@10, or if the serving model still holds users
//!    erased longer ago than the erasure deadline (default 24 h; an erasure must complete);
//!    otherwise keep the serving model. Publishing
//!    is a rollout ([`crate::rollout`], [`Delivery::Rollout`]) or a direct flip
//!    ([`Delivery::Flip`]); a rolled-back candidate is remembered like a refused one.
//!
//! A stop request is honoured between steps and between ingest batches; every step is safe to
//! interrupt anyway (ingest is at-least-once, publishing is idempotent and flips pointers last).

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::build::{self, BuildError};
use crate::dataset::{self, Dataset, DatasetError};
use crate::eval::{self, Protocol};
use crate::ingest::{self, IngestError, IngestOptions, RegionIngest, StreamSource};
use crate::model_dir::{self, ModelDirError};
use crate::publish::{self, PublishError, PublishOptions, Replication};
use crate::rollout::{self, Controller, RolloutError, StartOptions};
use model::manifest::{self, Manifest};
use model::model::BuildParams;
use store::reader::{self, ReadError};
use store::Bucket;

/// The recommender and cutoff whose NDCG decides.
pub const RECOMMENDER: &str = "user-knn";
pub const NDCG_K: usize = 10;
pub const DEFAULT_MAX_NDCG_DROP: f64 = 0.01;
/// Directory under the work dir holding the latest candidate.
pub const CANDIDATE_DIR: &str = "candidate";

/// Where a cycle reads and publishes.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Where the streams are ingested to and models are published from: the primary bucket,
    /// or a residency zone's home store.
    pub primary: Bucket,
    pub regions: Vec<Bucket>,
    pub streams: Vec<StreamSource>,
    /// For a zone's regional model: the primary bucket, whose (shared) events and erasures are
    /// read, never written.
    pub shared: Option<Bucket>,
    /// The regions' nodes and the admin token: regions that missed an erasure are asked to
    /// carry it out after each ingest ([`ingest::propagate`]). `None`: not done.
    pub erasure_nodes: Option<(Vec<ingest::RegionNodes>, String)>,
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Dataset directory merged with the events; `None`: the events alone.
    pub data: Option<PathBuf>,
    pub params: BuildParams,
    pub protocol: Protocol,
    /// Absolute NDCG@10 the candidate may lose against the serving model and still publish.
    pub max_ndcg_drop: f64,
    /// Erasures older than this that the serving model does not honour publish the next
    /// candidate even if it is worse (NDCG@10) or the same data was refused before: a user's
    /// erasure must complete. `None`: never.
    pub erasure_deadline: Option<Duration>,
    /// The candidate is built into `<work_dir>/candidate`.
    pub work_dir: PathBuf,
    pub ingest: IngestOptions,
    pub replication: Replication,
    pub delivery: Delivery,
}

/// How an accepted candidate reaches users.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Flip every pointer once verified, as `publish` does (the local quick path).
    Flip,
    /// Through a rollout ([`crate::rollout`]); the first version of a cluster (nothing serving
    /// yet) is flipped, there being nothing to compare with.
    Rollout(Box<(Controller, StartOptions)>),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Events(Box<IngestError>),
    #[error("cannot read the serving model's manifest from the primary bucket")]
    Serving(#[source] Box<ReadError>),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot write the candidate model")]
    ModelDir(#[from] ModelDirError),
    #[error(transparent)]
    Publish(Box<PublishError>),
    #[error("the rollout of the candidate failed")]
    Rollout(#[source] Box<RolloutError>),
    #[error("the build thread failed")]
    Join(#[source] tokio::task::JoinError),
}

impl From<IngestError> for RunError {
    fn from(e: IngestError) -> Self {
        RunError::Events(Box::new(e))
    }
}

impl From<PublishError> for RunError {
    fn from(e: PublishError) -> Self {
        RunError::Publish(Box::new(e))
    }
}

fn serving_err(e: ReadError) -> RunError {
    RunError::Serving(Box::new(e))
}

/// The model the primary's pointer names, as its manifest records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Serving {
    pub version: String,
    /// Its recorded NDCG@10, when it was evaluated at build time.
    pub ndcg: Option<f64>,
    pub fingerprint: String,
    pub parameters: serde_json::Value,
    /// Erasures it honours, up to this time (unix seconds; 0: none).
    pub honours_through: i64,
}

impl Serving {
    pub fn from_manifest(m: &Manifest) -> Self {
        Serving {
            version: m.model_version.clone(),
            ndcg: m.evaluation.as_ref().and_then(ndcg_at_10),
            fingerprint: m.input_fingerprint.clone(),
            parameters: m.parameters.clone(),
            honours_through: m.erasures.as_ref().map_or(0, |e| e.through_unix),
        }
    }
}

/// NDCG@10 of user-KNN in an evaluation as the manifest stores it (`eval::Evaluation`).
pub fn ndcg_at_10(evaluation: &serde_json::Value) -> Option<f64> {
    let recs = evaluation.get("recommenders")?.as_array()?;
    let knn = recs.iter().find(|r| r.get("name").and_then(|n| n.as_str()) == Some(RECOMMENDER))?;
    let at = knn.get("at")?.as_array()?;
    let k10 = at.iter().find(|a| a.get("k").and_then(|k| k.as_u64()) == Some(NDCG_K as u64))?;
    k10.get("metrics")?.get("ndcg")?.as_f64()
}

/// Publish or not, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing is served yet.
    NothingServing,
    /// The serving model has no recorded NDCG@10 to compare with.
    ServingUnmeasured { serving: String },
    /// Not worse than the serving model by more than the margin.
    NotWorse { serving: String, serving_ndcg: f64, candidate_ndcg: f64, margin: f64 },
    /// Worse by more than the margin: keep the serving model.
    Worse { serving: String, serving_ndcg: f64, candidate_ndcg: f64, margin: f64 },
    /// The serving model holds users erased longer ago than the deadline: publish anyway.
    ErasuresOverdue { serving: String, users: usize, deadline_secs: u64, quality: Box<Decision> },
}

impl Decision {
    pub fn publishes(&self) -> bool {
        !matches!(self, Decision::Worse { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::NothingServing => write!(f, "no model is served yet"),
            Decision::ServingUnmeasured { serving } => {
                write!(f, "the serving model {serving} has no recorded NDCG@{NDCG_K} to compare with")
            }
            Decision::NotWorse { serving, serving_ndcg, candidate_ndcg, margin } => write!(
                f,
                "candidate NDCG@{NDCG_K} {candidate_ndcg:.4} vs serving {serving} {serving_ndcg:.4} \
                 (change {:+.4}; allowed drop {margin:.4})",
                candidate_ndcg - serving_ndcg
            ),
            Decision::Worse { serving, serving_ndcg, candidate_ndcg, margin } => write!(
                f,
                "candidate NDCG@{NDCG_K} {candidate_ndcg:.4} is {:.4} below the serving model {serving}'s \
                 {serving_ndcg:.4}, more than the allowed drop of {margin:.4}",
                serving_ndcg - candidate_ndcg
            ),
            Decision::ErasuresOverdue { serving, users, deadline_secs, quality } => write!(
                f,
                "the serving model {serving} still holds {users} user(s) erased more than {deadline_secs} s ago: \
                 publishing to complete their erasure ({quality})"
            ),
        }
    }
}

/// Compare a candidate's NDCG@10 with the serving model's; `margin` is absolute.
pub fn decide(candidate_ndcg: f64, serving: Option<&Serving>, margin: f64) -> Decision {
    let Some(s) = serving else { return Decision::NothingServing };
    let Some(serving_ndcg) = s.ndcg else {
        return Decision::ServingUnmeasured { serving: s.version.clone() };
    };
    let serving = s.version.clone();
    // A tiny epsilon so that "exactly the margin" is not lost to float rounding.
    if candidate_ndcg + 1e-12 >= serving_ndcg - margin {
        Decision::NotWorse { serving, serving_ndcg, candidate_ndcg, margin }
    } else {
        Decision::Worse { serving, serving_ndcg, candidate_ndcg, margin }
    }
}

/// The model built in a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub version: String,
    pub dir: PathBuf,
    pub ndcg: f64,
    pub test_users: usize,
    pub users: u64,
    pub items: u64,
    pub interactions: u64,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing new since the serving (or last refused) model: nothing was built.
    Skipped {
        reason: String,
    },
    Published {
        candidate: Candidate,
        decision: Decision,
        /// The rollout that promoted it (`None`: pointers flipped directly).
        rollout: Option<String>,
    },
    /// Accepted offline, then rolled back by its rollout's guards (or aborted).
    RolledBack {
        candidate: Candidate,
        decision: Decision,
        rollout: String,
        reason: String,
    },
    Refused {
        candidate: Candidate,
        decision: Decision,
    },
    /// A stop was requested; the cycle ended after `after`.
    Stopped {
        after: &'static str,
    },
}

/// What one cycle did.
#[derive(Debug)]
pub struct CycleReport {
    pub ingest: Vec<(String, Result<RegionIngest, IngestError>)>,
    /// Events stored by this cycle's ingest.
    pub new_events: u64,
    /// Interactions from `--data` and ingested events (0 when the cycle stopped before).
    pub data_interactions: usize,
    pub live_events: usize,
    pub outcome: Outcome,
    pub seconds: f64,
}

impl CycleReport {
    pub fn failed_regions(&self) -> Vec<&str> {
        self.ingest.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n.as_str()).collect()
    }
}

/// Runs cycles, remembering the last refused input so it is not rebuilt until something changes.
pub struct Runner {
    pub targets: Targets,
    pub settings: RunSettings,
    refused: Option<(String, serde_json::Value, String)>,
}

impl Runner {
    pub fn new(targets: Targets, settings: RunSettings) -> Self {
        Self { targets, settings, refused: None }
    }

    pub async fn cycle(&mut self, stop: &watch::Receiver<bool>) -> Result<CycleReport, RunError> {
        let started = Instant::now();
        let stopped = || *stop.borrow();
        let (t, s) = (&self.targets, &self.settings);
        let opts = IngestOptions { stop: Some(stop.clone()), ..s.ingest.clone() };
        let ingested = ingest::ingest(&t.primary, &t.streams, &opts).await;
        // The records ingest just moved, read once: erasures every serving version honours
        // leave the regions' live sets, regions that missed one are asked (best effort: the
        // next cycle retries), and the build leaves the users out.
        let mut erasures = ingest::read_tombstones(&t.primary).await?;
        ingest::release_erasures(&erasures, &t.streams, &t.regions).await;
        if let Some((nodes, token)) = &t.erasure_nodes {
            ingest::propagate(&erasures, nodes, token).await;
        }
        let new_events = ingested.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|r| r.events).sum();
        let mut report = CycleReport {
            ingest: ingested,
            new_events,
            data_interactions: 0,
            live_events: 0,
            outcome: Outcome::Stopped { after: "ingest" },
            seconds: 0.0,
        };
        let done = |mut report: CycleReport, outcome: Outcome| -> Result<CycleReport, RunError> {
            report.outcome = outcome;
            report.seconds = started.elapsed().as_secs_f64();
            Ok(report)
        };
        if stopped() {
            return done(report, Outcome::Stopped { after: "ingest" });
        }

        let serving = match reader::read_pointer(&t.primary).await.map_err(serving_err)? {
            Some(p) => Some(Serving::from_manifest(
                &reader::read_manifest(&t.primary, &p.version).await.map_err(serving_err)?,
            )),
            None => None,
        };
        let mut log = ingest::read_events(&t.primary).await?;
        if let Some(shared) = &t.shared {
            log = ingest::read_events(shared).await?.then(log);
            erasures.extend(ingest::read_tombstones(shared).await?);
        }
        report.live_events = log.events.len();
        let honoured = erasures.honoured();
        let overdue = s.erasure_deadline.zip(serving.as_ref()).map_or(0, |(deadline, sv)| {
            let before = manifest::now_unix() - i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX);
            erasures.by_user.values().filter(|t| t.at > sv.honours_through && t.at <= before).count()
        });
        let data_dir = s.data.clone();
        let (data, fingerprint) = blocking(move || {
            let base = match &data_dir {
                Some(d) => dataset::read_dir(d)?,
                None => Dataset::default(),
            };
            // Users erased on request leave the data and the events; a new erasure changes
            // the fingerprint, so the next cycle builds.
            let (data, _) = ingest::without_erased(ingest::merge(base, &log.events), &erasures);
            let fingerprint = build::fingerprint(&data);
            Ok::<_, RunError>((data, fingerprint))
        })
        .await?;
        report.data_interactions = data.events.len() - report.live_events.min(data.events.len());
        let params = serde_json::to_value(&s.params).unwrap_or_default();
        if let Some(sv) =
            serving.as_ref().filter(|sv| sv.fingerprint == fingerprint && sv.parameters == params)
        {
            let reason = format!(
                "no new events and the data did not change since the serving model {} was built",
                sv.version
            );
            return done(report, Outcome::Skipped { reason });
        }
        if let Some((_, _, version)) =
            self.refused.as_ref().filter(|(f, p, _)| *f == fingerprint && *p == params && overdue == 0)
        {
            let reason =
                format!("no new events and the data did not change since candidate {version} was refused");
            return done(report, Outcome::Skipped { reason });
        }
        if stopped() {
            return done(report, Outcome::Stopped { after: "reading the data" });
        }

        let candidate = self.build_candidate(data, honoured).await?;
        if stopped() {
            return done(report, Outcome::Stopped { after: "building the candidate" });
        }
        let (t, s) = (&self.targets, &self.settings);
        let mut decision = decide(candidate.ndcg, serving.as_ref(), s.max_ndcg_drop);
        if let (Some(sv), Some(deadline), 1..) = (serving.as_ref(), s.erasure_deadline, overdue) {
            decision = Decision::ErasuresOverdue {
                serving: sv.version.clone(),
                users: overdue,
                deadline_secs: deadline.as_secs(),
                quality: Box::new(decision),
            };
        }
        if !decision.publishes() {
            tracing::warn!(version = %candidate.version, reason = %decision, "candidate refused; keeping the serving model");
            self.refused = Some((fingerprint, params, candidate.version.clone()));
            return done(report, Outcome::Refused { candidate, decision });
        }
        tracing::info!(version = %candidate.version, reason = %decision, "publishing the candidate");
        if let (Delivery::Rollout(how), false) = (&s.delivery, decision == Decision::NothingServing) {
            let (controller, opts) = how.as_ref();
            let record = controller
                .start(&candidate.dir, s.replication.clone(), opts.clone())
                .await
                .map_err(|e| RunError::Rollout(Box::new(e)))?;
            if record.phase != rollout::state::Phase::Promoted {
                let reason = record.reason.clone().unwrap_or_default();
                self.refused = Some((fingerprint, params, candidate.version.clone()));
                let rollout = record.id;
                return done(report, Outcome::RolledBack { candidate, decision, rollout, reason });
            }
            self.refused = None;
            return done(report, Outcome::Published { candidate, decision, rollout: Some(record.id) });
        }
        let opts = PublishOptions { replication: s.replication.clone(), on_event: None, flip: true };
        publish::publish(&t.primary, &t.regions, &candidate.dir, opts).await?;
        self.refused = None;
        done(report, Outcome::Published { candidate, decision, rollout: None })
    }

    /// Build on everything, evaluate on the time split, write `<work>/candidate`.
    async fn build_candidate(
        &self,
        data: Dataset,
        honoured: manifest::Erasures,
    ) -> Result<Candidate, RunError> {
        let (params, protocol) = (self.settings.params.clone(), self.settings.protocol.clone());
        let dir = self.settings.work_dir.join(CANDIDATE_DIR);
        blocking(move || {
            let t = Instant::now();
            let built = build::build(&data, &params)?;
            let evaluation = eval::evaluate(&data, &params, &protocol)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|source| ModelDirError::Io { path: dir.clone(), source })?;
            }
            let written = model_dir::write(&dir, &built, &params, None, Some(&evaluation), Some(&honoured))?;
            let ndcg = evaluation.recommender(RECOMMENDER).and_then(|r| r.at(NDCG_K)).map_or(0.0, |m| m.ndcg);
            let m = &written.manifest;
            Ok(Candidate {
                version: m.model_version.clone(),
                dir,
                ndcg,
                test_users: evaluation.test_users,
                users: m.counts.users,
                items: m.counts.items,
                interactions: m.counts.interactions,
                build_seconds: t.elapsed().as_secs_f64(),
            })
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f).await.map_err(RunError::Join)?
}

/// Log a cycle's outcome.
pub fn log_cycle(r: &CycleReport) {
    // Each failed region was logged with its error by the ingest itself.
    let failed = r.failed_regions();
    let (new_events, live_events, seconds) = (r.new_events, r.live_events, r.seconds);
    match &r.outcome {
        Outcome::Skipped { reason } => {
            tracing::info!(new_events, live_events, seconds, ?failed, reason = %reason, "cycle skipped")
        }
        Outcome::RolledBack { candidate, rollout, reason, .. } => tracing::warn!(
            new_events, live_events, seconds, ?failed, version = %candidate.version, rollout = %rollout,
            reason = %reason, "cycle's candidate was rolled back by its rollout"
        ),
        Outcome::Published { candidate, decision, .. } => tracing::info!(
            new_events, live_events, seconds, ?failed, version = %candidate.version, ndcg = candidate.ndcg,
            reason = %decision, "cycle published a new model"
        ),
        Outcome::Refused { candidate, decision } => tracing::warn!(
            new_events, live_events, seconds, ?failed, version = %candidate.version, ndcg = candidate.ndcg,
            reason = %decision, "cycle refused its candidate"
        ),
        Outcome::Stopped { after } => tracing::info!(new_events, seconds, after, "cycle stopped"),
    }
}

/// Run a cycle every `every` (measured start to start) until `stop` turns true. A failed
/// cycle is logged and the next one runs on time.
pub async fn run_every(runner: &mut Runner, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let started = tokio::time::Instant::now();
        tracing::info!("cycle starting");
        match runner.cycle(&stop).await {
            Ok(report) => log_cycle(&report),
            Err(e) => {
                tracing::error!(error = %ingest::describe(&e), "cycle failed; trying again at the next one")
            }
        }
        if *stop.borrow() {
            break;
        }
        let next = started + every;
        tracing::info!(
            in_secs = next.saturating_duration_since(tokio::time::Instant::now()).as_secs(),
            "next cycle"
        );
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    tracing::info!("stopped");
}

/// Resolves when `stop` turns true; never if its sender is gone without asking.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(ndcg: Option<f64>) -> Serving {
        Serving {
            version: "v1".into(),
            ndcg,
            fingerprint: "f".into(),
            parameters: serde_json::Value::Null,
            honours_through: 0,
        }
    }

    #[test]
    fn decisions_use_an_absolute_margin() {
        assert_eq!(decide(0.1, None, 0.01), Decision::NothingServing);
        assert!(matches!(decide(0.1, Some(&serving(None)), 0.01), Decision::ServingUnmeasured { .. }));
        assert!(decide(0.30, Some(&serving(Some(0.30))), 0.01).publishes());
        assert!(decide(0.29, Some(&serving(Some(0.30))), 0.01).publishes(), "exactly the margin");
        assert!(decide(0.35, Some(&serving(Some(0.30))), 0.0).publishes());
        let worse = decide(0.2, Some(&serving(Some(0.30))), 0.01);
        assert!(!worse.publishes());
        let text = worse.to_string();
        assert!(text.contains("0.2000") && text.contains("0.3000") && text.contains("0.0100"), "{text}");
    }

    #[test]
    fn ndcg_is_read_from_a_stored_evaluation() {
        let e = serde_json::json!({"recommenders": [
            {"name": "popularity", "at": [{"k": 10, "metrics": {"ndcg": 0.1}}]},
            {"name": "user-knn", "at": [{"k": 20, "metrics": {"ndcg": 0.3}}, {"k": 10, "metrics": {"ndcg": 0.25}}]}
        ]});
        assert_eq!(ndcg_at_10(&e), Some(0.25));
        assert_eq!(ndcg_at_10(&serde_json::json!({"other": 1})), None);
    }
}
