//! `model-sync rollout`: a version reaches users step by step, guarded by what the region
//! nodes measure, instead of every pointer flipping at once.
//!
//! 1. The version is published to every bucket and verified as `publish` does, but no pointer
//!    moves ([`crate::publish::PublishOptions::flip`]).
//! 2. Each step of the [`plan::Plan`] writes the candidate ({version, mode, share, rollout id})
//!    into the pointers of its regions (the others get none), then waits until every node of
//!    those regions reports it loaded ([`nodes`]); a persisting `candidate_error` or the wait
//!    running out fails the step.
//! 3. During the bake every node's report is read each poll; the window since the step began
//!    is judged by the [`guard`]s. A failed guard rolls back at once: every pointer loses its
//!    candidate, the serving version is unchanged.
//! 4. After the last step the candidate serves everywhere (`previous` = the old version).
//!
//! Everything is recorded in the primary bucket ([`state`]) after each change, so a crashed
//! controller resumes where it was, and `status`, `abort`, `promote` work from anywhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use model::manifest::{self, Pointer};
use model::rollout::{Candidate, CandidateError, Mode, NodeReport};
use store::reader::{self, ReadError};
use store::{Bucket, StoreError};

use crate::publish::{self, PublishError, PublishOptions, Replication};

pub mod guard;
pub mod nodes;
pub mod plan;
pub mod state;

use guard::{GuardSettings, Status};
use nodes::{Nodes, Target};
use plan::{DurationText, Plan, PlanError, Step};
use state::{Check, Phase, Record, Stage, StateError, Timing};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("publishing the candidate failed; no pointer was touched")]
    Publish(#[source] Box<PublishError>),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("invalid rollout")]
    Candidate(#[from] CandidateError),
    #[error("{region}: cannot read its pointer")]
    ReadPointer {
        region: String,
        #[source]
        source: ReadError,
    },
    #[error("{region}: cannot write its pointer")]
    WritePointer {
        region: String,
        #[source]
        source: StoreError,
    },
    #[error("{region} serves no version yet: publish a first version with `model-sync publish`")]
    NothingServing { region: String },
    #[error("{region} already serves {version}")]
    AlreadyServing { region: String, version: String },
    #[error(
        "{region} serves {found} now, not {expected} as when rollout {id} started; the rollout was rolled back"
    )]
    ServingChanged { id: String, region: String, expected: String, found: String },
    #[error("rollout {id} is still running: resume, abort or promote it first")]
    Active { id: String },
    #[error("a rollout with id {id} exists already; choose another --id")]
    IdTaken { id: String },
    #[error("rollout {id} has already ended ({})", phase.as_str())]
    Ended { id: String, phase: Phase },
}

impl From<PublishError> for RolloutError {
    fn from(e: PublishError) -> Self {
        RolloutError::Publish(Box::new(e))
    }
}

/// How a new rollout should go.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub plan: Plan,
    /// One step that never advances by itself (an A/B test); see [`Plan::hold`].
    pub hold: bool,
    /// Default: `r<time>-<end of the version>`.
    pub id: Option<String>,
    pub guards: GuardSettings,
    pub timing: Timing,
}

/// Drives rollouts over the primary bucket (records) and every region (pointers, nodes).
#[derive(Debug, Clone)]
pub struct Controller {
    pub primary: Bucket,
    /// Every region, in name order.
    pub targets: Vec<Target>,
    nodes: Nodes,
}

/// How a bake ended.
enum Bake {
    Passed(Check),
    Failed(String, Option<Check>),
    /// Someone else ended the rollout (`abort`, `promote`): the record as they left it.
    Ended(Box<Record>),
}

impl Controller {
    pub fn new(primary: Bucket, targets: Vec<Target>, node_timeout: Duration) -> Controller {
        Controller { primary, targets, nodes: Nodes::new(node_timeout) }
    }

    pub fn regions(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.region.clone()).collect()
    }

    /// Publish `model_dir` everywhere, verified, without moving a pointer, then start and
    /// drive a rollout of it to its end.
    pub async fn start(
        &self,
        model_dir: &Path,
        replication: Replication,
        opts: StartOptions,
    ) -> Result<Record, RolloutError> {
        if let Some(id) = state::active(&self.primary).await? {
            if state::load(&self.primary, &id).await.is_ok_and(|r| r.is_running()) {
                return Err(RolloutError::Active { id });
            }
        }
        let buckets: Vec<Bucket> = self.targets.iter().map(|t| t.bucket.clone()).collect();
        let opts_publish = PublishOptions { replication, on_event: None, flip: false };
        let report = publish::publish(&self.primary, &buckets, model_dir, opts_publish).await?;
        let record = self.begin(&report.version, opts).await?;
        self.drive(record).await
    }

    /// Record a new rollout of `version` (published everywhere) and mark it active.
    pub async fn begin(&self, version: &str, opts: StartOptions) -> Result<Record, RolloutError> {
        opts.plan.check_regions(&self.regions())?;
        let id = match opts.id {
            Some(id) => {
                if state::load(&self.primary, &id).await.is_ok() {
                    return Err(RolloutError::IdTaken { id });
                }
                id
            }
            None => self.new_id(version).await?,
        };
        if let Some(active) = state::active(&self.primary).await? {
            if state::load(&self.primary, &active).await.is_ok_and(|r| r.is_running()) {
                return Err(RolloutError::Active { id: active });
            }
        }
        let mut serving = BTreeMap::new();
        for t in &self.targets {
            let p = self.pointer(t).await?;
            let c =
                Candidate { version: version.into(), mode: Mode::Split, share: 1.0, rollout_id: id.clone() };
            c.check(&p.version).map_err(|e| match e {
                CandidateError::SameAsServing(v) => {
                    RolloutError::AlreadyServing { region: t.region.clone(), version: v }
                }
                e => e.into(),
            })?;
            serving.insert(t.region.clone(), p.version);
        }
        let mut record = Record {
            id: id.clone(),
            version: version.to_string(),
            serving,
            plan: opts.plan.to_string(),
            hold: opts.hold,
            guards: opts.guards,
            timing: opts.timing,
            phase: Phase::Running,
            step: 0,
            stage: Stage::Applying,
            bake_started_ms: None,
            baseline: BTreeMap::new(),
            last_check: None,
            reason: None,
            history: Vec::new(),
            started_at: state::now_text(),
            updated_at: String::new(),
        };
        let what = if opts.hold { "hold (A/B test)" } else { "plan" };
        record.note(None, format!("started: candidate {version}, {what} {}", record.plan), None);
        state::save(&self.primary, &mut record).await?;
        state::set_active(&self.primary, &id).await?;
        Ok(record)
    }

    /// `r<time>-<last 8 characters of the version>`, with `-2`, `-3`... if taken.
    async fn new_id(&self, version: &str) -> Result<String, RolloutError> {
        let base = format!(
            "r{}-{}",
            manifest::compact_time(manifest::now_unix()),
            &version[version.len().saturating_sub(8)..]
        );
        for n in 1..1000 {
            let id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            match state::load(&self.primary, &id).await {
                Err(StateError::NotFound(_)) => return Ok(id),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        Err(RolloutError::IdTaken { id: base })
    }

    /// Continue a rollout where its record says it is (the active one when `id` is `None`).
    pub async fn resume(&self, id: Option<&str>) -> Result<Record, RolloutError> {
        let mut record = state::load_or_active(&self.primary, id).await?;
        if !record.is_running() {
            return Err(RolloutError::Ended { id: record.id, phase: record.phase });
        }
        let stage = match record.stage {
            Stage::Applying => "applying",
            Stage::Baking => "baking",
        };
        record.note(Some(record.step), format!("resumed at step {} ({stage})", record.step + 1), None);
        state::save(&self.primary, &mut record).await?;
        if record.stage == Stage::Baking {
            // Re-apply the step's pointers (idempotent: unchanged ones are not rewritten); the
            // bake goes on from its recorded start and baseline.
            let (_, regions, candidate) = self.current_step(&record, &record.plan.parse()?);
            match self.apply(&record, &regions, &candidate).await {
                Ok(rewritten) if rewritten.is_empty() => {}
                Ok(rewritten) => {
                    let what =
                        format!("step {}: pointers re-applied in {}", record.step + 1, rewritten.join(", "));
                    record.note(Some(record.step), what, None);
                    state::save(&self.primary, &mut record).await?;
                }
                Err(e) => {
                    let reason =
                        format!("step {} could not be re-applied: {}", record.step + 1, error_text(&e));
                    self.finish(record, Phase::RolledBack, reason, None).await?;
                    return Err(e);
                }
            }
        }
        self.drive(record).await
    }

    /// The record's current step, its regions and the candidate their pointers carry.
    fn current_step(&self, record: &Record, plan: &Plan) -> (Step, Vec<String>, Candidate) {
        let step = plan.steps[record.step.min(plan.steps.len().saturating_sub(1))].clone();
        let regions = step.regions.resolve(&self.regions());
        let candidate = Candidate {
            version: record.version.clone(),
            mode: step.mode,
            share: step.share.fraction(),
            rollout_id: record.id.clone(),
        };
        (step, regions, candidate)
    }

    /// Roll back now: every region's pointer loses its candidate; recorded as aborted. A
    /// running controller notices at its next poll and stops.
    pub async fn abort(&self, id: Option<&str>, reason: &str) -> Result<Record, RolloutError> {
        let mut record = state::load_or_active(&self.primary, id).await?;
        if record.phase == Phase::Promoted {
            return Err(RolloutError::Ended { id: record.id, phase: record.phase });
        }
        record.phase = Phase::Aborted;
        record.reason = Some(format!("aborted: {reason}"));
        record.note(Some(record.step), format!("aborted: {reason}"), None);
        state::save(&self.primary, &mut record).await?;
        self.settle(&record).await?;
        // A controller that read the record just before our write may have written its own
        // (running) over it: write ours again, which it will see at its next poll.
        if state::load(&self.primary, &record.id).await?.phase != Phase::Aborted {
            state::save(&self.primary, &mut record).await?;
            self.settle(&record).await?;
        }
        state::clear_active(&self.primary, &record.id).await?;
        Ok(record)
    }

    /// Skip the rest of the plan: the candidate serves everywhere now (a person's decision,
    /// recorded with `reason`).
    pub async fn promote(&self, id: Option<&str>, reason: &str) -> Result<Record, RolloutError> {
        let record = state::load_or_active(&self.primary, id).await?;
        if !record.is_running() {
            return Err(RolloutError::Ended { id: record.id, phase: record.phase });
        }
        self.finish(record, Phase::Promoted, format!("promoted by hand: {reason}"), None).await
    }

    /// Walk the plan from where `record` is until the rollout ends.
    pub async fn drive(&self, mut record: Record) -> Result<Record, RolloutError> {
        let plan: Plan = record.plan.parse()?;
        loop {
            let (step, regions, candidate) = self.current_step(&record, &plan);
            if record.stage == Stage::Applying {
                if let Some(ended) = self.ended_elsewhere(&record).await? {
                    return Ok(ended);
                }
                if let Err(e) = self.apply(&record, &regions, &candidate).await {
                    let reason = format!("step {} could not be applied: {}", record.step + 1, error_text(&e));
                    self.finish(record, Phase::RolledBack, reason, None).await?;
                    return Err(e);
                }
                record.note(
                    Some(record.step),
                    format!("step {} ({step}): candidate written to {}", record.step + 1, regions.join(", ")),
                    None,
                );
                if let Some(ended) = self.save_unless_ended(&mut record).await? {
                    return Ok(ended);
                }
                match self.await_loaded(&record, &regions, &candidate).await? {
                    Ok(baseline) => {
                        record.baseline = baseline;
                        record.bake_started_ms = Some(state::now_ms());
                        record.stage = Stage::Baking;
                        let bake = if record.hold {
                            "until stopped".into()
                        } else {
                            DurationText(step.bake).to_string()
                        };
                        record.note(
                            Some(record.step),
                            format!(
                                "step {}: every node loaded the candidate; baking {bake}",
                                record.step + 1
                            ),
                            None,
                        );
                        if let Some(ended) = self.save_unless_ended(&mut record).await? {
                            return Ok(ended);
                        }
                    }
                    Err(reason) => {
                        let reason = format!("step {} failed: {reason}", record.step + 1);
                        return self.finish(record, Phase::RolledBack, reason, None).await;
                    }
                }
            }
            match self.bake(&mut record, &step, &regions).await? {
                Bake::Ended(ended) => return Ok(*ended),
                Bake::Failed(reason, check) => {
                    let reason = format!("step {} failed: {reason}", record.step + 1);
                    return self.finish(record, Phase::RolledBack, reason, check).await;
                }
                Bake::Passed(check) => {
                    let what = format!("step {} ({step}) passed", record.step + 1);
                    if record.step + 1 >= plan.steps.len() {
                        return self
                            .finish(record, Phase::Promoted, format!("{what}; plan complete"), Some(check))
                            .await;
                    }
                    record.note(Some(record.step), what, Some(check));
                    record.step += 1;
                    record.stage = Stage::Applying;
                    record.bake_started_ms = None;
                    record.baseline.clear();
                    if let Some(ended) = self.save_unless_ended(&mut record).await? {
                        return Ok(ended);
                    }
                }
            }
        }
    }

    /// The record as stored, when someone else ended the rollout (its pointers settled).
    async fn ended_elsewhere(&self, record: &Record) -> Result<Option<Record>, RolloutError> {
        let stored = state::load(&self.primary, &record.id).await?;
        if stored.is_running() {
            return Ok(None);
        }
        tracing::warn!(rollout = %record.id, phase = stored.phase.as_str(), "the rollout was ended elsewhere; stopping");
        // What this controller wrote since may have re-added a candidate: settle again.
        self.settle(&stored).await?;
        Ok(Some(stored))
    }

    async fn save_unless_ended(&self, record: &mut Record) -> Result<Option<Record>, RolloutError> {
        if let Some(ended) = self.ended_elsewhere(record).await? {
            return Ok(Some(ended));
        }
        state::save(&self.primary, record).await?;
        Ok(None)
    }

    async fn pointer(&self, t: &Target) -> Result<Pointer, RolloutError> {
        let read = |source| RolloutError::ReadPointer { region: t.region.clone(), source };
        reader::read_pointer(&t.bucket)
            .await
            .map_err(read)?
            .ok_or_else(|| RolloutError::NothingServing { region: t.region.clone() })
    }

    async fn write_pointer(&self, t: &Target, p: &Pointer) -> Result<(), RolloutError> {
        let key = manifest::pointer_key(t.bucket.prefix());
        t.bucket
            .put_bytes(&key, p.to_json().into())
            .await
            .map_err(|source| RolloutError::WritePointer { region: t.region.clone(), source })
    }

    /// The step's regions get `candidate`, the others none; serving versions stay. Returns the
    /// regions whose pointer had to be rewritten.
    async fn apply(
        &self,
        record: &Record,
        regions: &[String],
        candidate: &Candidate,
    ) -> Result<Vec<String>, RolloutError> {
        let mut rewritten = Vec::new();
        for t in &self.targets {
            let p = self.pointer(t).await?;
            let expected = record.serving.get(&t.region).cloned().unwrap_or_default();
            if p.version != expected {
                let (id, region, found) = (record.id.clone(), t.region.clone(), p.version);
                return Err(RolloutError::ServingChanged { id, region, expected, found });
            }
            let want = regions.contains(&t.region).then(|| candidate.clone());
            if let Some(c) = &want {
                c.check(&p.version)?;
            }
            if p.candidate != want {
                let updated_at = manifest::rfc3339(manifest::now_unix());
                self.write_pointer(t, &Pointer { candidate: want, updated_at, ..p }).await?;
                rewritten.push(t.region.clone());
            }
        }
        Ok(rewritten)
    }

    /// Wait until every node of `regions` reports `candidate` loaded; their reports then are
    /// the bake's baseline. `Err(reason)` when a node keeps failing to load it or time runs out.
    async fn await_loaded(
        &self,
        record: &Record,
        regions: &[String],
        candidate: &Candidate,
    ) -> Result<Result<BTreeMap<String, NodeReport>, String>, RolloutError> {
        let targets = self.step_targets(regions);
        let timing = &record.timing;
        let started = tokio::time::Instant::now();
        let mut failing_since: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        loop {
            let now = tokio::time::Instant::now();
            let mut loaded = BTreeMap::new();
            let mut pending = Vec::new();
            for (url, got) in self.nodes.reports(&targets).await {
                match got {
                    Ok(r) if nodes::has_loaded(&r, candidate) => {
                        failing_since.remove(&url);
                        loaded.insert(url, r);
                    }
                    Ok(r) => match &r.candidate_error {
                        Some(e) => {
                            let since = *failing_since.entry(url.clone()).or_insert(now);
                            if now.duration_since(since) >= Duration::from_millis(timing.load_error_grace_ms)
                            {
                                return Ok(Err(format!(
                                    "{url} ({}) cannot load the candidate: {e}",
                                    r.region
                                )));
                            }
                            pending.push(format!("{url}: candidate error: {e}"));
                        }
                        None => {
                            failing_since.remove(&url);
                            pending.push(format!("{url}: candidate not loaded yet"));
                        }
                    },
                    Err(e) => pending.push(error_text(&e)),
                }
            }
            if pending.is_empty() {
                return Ok(Ok(loaded));
            }
            if now.duration_since(started) >= Duration::from_millis(timing.load_timeout_ms) {
                let waited = DurationText(Duration::from_millis(timing.load_timeout_ms));
                return Ok(Err(format!(
                    "not every node loaded the candidate within {waited}: {}",
                    pending.join("; ")
                )));
            }
            if let Some(ended) = self.ended_elsewhere(record).await? {
                tracing::info!(rollout = %ended.id, "ended while waiting for nodes");
                return Ok(Err(format!("ended elsewhere ({})", ended.phase.as_str())));
            }
            tokio::time::sleep(Duration::from_millis(timing.poll_ms)).await;
        }
    }

    fn step_targets(&self, regions: &[String]) -> Vec<&Target> {
        self.targets.iter().filter(|t| regions.contains(&t.region)).collect()
    }

    /// Poll and judge until the bake time passed (never with `hold`), a guard failed, or the
    /// rollout was ended elsewhere.
    async fn bake(&self, record: &mut Record, step: &Step, regions: &[String]) -> Result<Bake, RolloutError> {
        let targets = self.step_targets(regions);
        let started = record.bake_started_ms.unwrap_or_else(state::now_ms);
        let mut latest = record.baseline.clone();
        loop {
            tokio::time::sleep(Duration::from_millis(record.timing.poll_ms)).await;
            let mut unreachable = Vec::new();
            for (url, got) in self.nodes.reports(&targets).await {
                match got {
                    Ok(r) => {
                        latest.insert(url, r);
                    }
                    Err(e) => {
                        tracing::warn!(node = %url, error = %error_text(&e), "node report unreadable; using its last one");
                        unreachable.push(url);
                    }
                }
            }
            let mut window =
                nodes::window(&targets, &record.serving, &record.version, &record.baseline, &latest);
            window.unreachable = unreachable;
            let looks = guard::looks(step.bake, Duration::from_millis(record.timing.poll_ms));
            let judgements = guard::judge(step.mode, &window, &record.guards, looks);
            let check = Check { at: state::now_text(), step: record.step, window, judgements };
            if let Some(ended) = self.ended_elsewhere(record).await? {
                return Ok(Bake::Ended(Box::new(ended)));
            }
            // A hold is an A/B test: conversions are measured, only errors and latency roll back.
            let failed = check
                .judgements
                .iter()
                .find(|j| j.status == Status::Fail && !(record.hold && j.guard == guard::Guard::Conversions));
            if let Some(j) = failed {
                let reason = format!("{} guard: {}", j.guard.as_str(), j.detail);
                return Ok(Bake::Failed(reason, Some(check)));
            }
            record.last_check = Some(check.clone());
            state::save(&self.primary, record).await?;
            let baked = state::now_ms().saturating_sub(started);
            if !record.hold && u128::try_from(baked).unwrap_or(0) >= step.bake.as_millis() {
                return Ok(Bake::Passed(check));
            }
        }
    }

    /// End the rollout as `phase`: record it first (so a running controller stops), then
    /// settle the pointers, then forget it as active.
    async fn finish(
        &self,
        mut record: Record,
        phase: Phase,
        reason: String,
        check: Option<Check>,
    ) -> Result<Record, RolloutError> {
        if phase != Phase::Promoted {
            tracing::warn!(rollout = %record.id, reason = %reason, "rolling back");
        }
        record.phase = phase;
        record.note(Some(record.step), reason.clone(), check.clone());
        if check.is_some() {
            record.last_check = check;
        }
        record.reason = Some(reason);
        state::save(&self.primary, &mut record).await?;
        self.settle(&record).await?;
        if phase == Phase::Promoted {
            publish::set_pointer(&self.primary, &record.version)
                .await
                .map_err(|source| RolloutError::ReadPointer { region: "primary".into(), source })?;
        }
        state::clear_active(&self.primary, &record.id).await?;
        Ok(record)
    }

    /// Make every region's pointer match an ended rollout (idempotent): promoted, the
    /// candidate serves with the old version as `previous`; otherwise no candidate, the
    /// serving version unchanged.
    pub async fn settle(&self, record: &Record) -> Result<(), RolloutError> {
        let mut first_error = None;
        for t in &self.targets {
            let outcome = async {
                let p = self.pointer(t).await?;
                let updated_at = manifest::rfc3339(manifest::now_unix());
                let next = match record.phase {
                    Phase::Running => return Ok(()),
                    Phase::Promoted if p.version == record.version && p.candidate.is_none() => return Ok(()),
                    Phase::Promoted if p.version == record.version => {
                        Pointer { candidate: None, updated_at, ..p }
                    }
                    Phase::Promoted => Pointer {
                        version: record.version.clone(),
                        previous: Some(p.version),
                        updated_at,
                        candidate: None,
                    },
                    Phase::RolledBack | Phase::Aborted if p.candidate.is_none() => return Ok(()),
                    Phase::RolledBack | Phase::Aborted => Pointer { candidate: None, updated_at, ..p },
                };
                self.write_pointer(t, &next).await
            }
            .await;
            if let Err(e) = outcome {
                tracing::error!(region = %t.region, error = %error_text(&e), "pointer not settled");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The window of the current step up to now, read from the nodes (the last recorded one
    /// when the rollout is not baking or the nodes cannot be read).
    pub async fn live_window(&self, record: &Record) -> Option<Check> {
        if record.is_running() && record.stage == Stage::Baking {
            let plan: Plan = record.plan.parse().ok()?;
            let step = plan.steps.get(record.step)?;
            let regions = step.regions.resolve(&self.regions());
            let targets = self.step_targets(&regions);
            let mut latest = record.baseline.clone();
            for (url, got) in self.nodes.reports(&targets).await {
                if let Ok(r) = got {
                    latest.insert(url, r);
                }
            }
            let window = nodes::window(&targets, &record.serving, &record.version, &record.baseline, &latest);
            let looks = guard::looks(step.bake, Duration::from_millis(record.timing.poll_ms));
            let judgements = guard::judge(step.mode, &window, &record.guards, looks);
            return Some(Check { at: state::now_text(), step: record.step, window, judgements });
        }
        record.last_check.clone()
    }
}

fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    cluster_config::errors::error_chain(e)
}
