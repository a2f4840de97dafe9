//! `loadtest scenario NAME`: load on the local cluster while something breaks at 10 s (and
//! is repaired at 20 s), then PASS or FAIL against stated criteria.
//!
//! - [`action`]: what each scenario does to the cluster, with a timeline of events.
//! - [`judge`]: the criteria and the verdict, as pure functions.

pub mod action;
pub mod judge;

use std::path::PathBuf;
use std::time::Duration;

use cluster_config::ClusterConfig;
use tokio::time::{sleep_until, Instant};

use crate::cluster::{Cluster, ClusterError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::Report;
use crate::run::{self, RunError};
use crate::users::Sampler;
use action::{Action, Timeline};
use judge::{judge, Criteria, Evidence};

/// When the event happens and when it is undone, from the measurement start.
pub const EVENT_AT: Duration = Duration::from_secs(10);
pub const UNDO_AT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// SIGKILL a region's node at 10 s, restart it at 20 s.
    Failover,
    /// SIGSTOP a region's node at 10 s, SIGCONT at 20 s.
    Hang,
    /// Publish a new model at 10 s; every region must be on it within two poll intervals.
    HotSwap,
    /// SIGKILL a region's Redis at 10 s, restart it at 20 s.
    RedisDown,
    /// Drain a region through the router's POST /failover at 10 s, restore it at 20 s.
    Drain,
}

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Failover => "failover",
            Name::Hang => "hang",
            Name::HotSwap => "hot-swap",
            Name::RedisDown => "redis-down",
            Name::Drain => "drain",
        }
    }
}

pub use cluster_config::AdminToken;

/// Everything a scenario run needs, resolved by the CLI.
#[derive(Debug)]
pub struct Setup {
    pub name: Name,
    /// The region broken (all scenarios but hot-swap).
    pub region: String,
    pub cluster: Cluster,
    pub config: ClusterConfig,
    pub config_path: PathBuf,
    /// The model-sync binary (hot-swap).
    pub model_sync: PathBuf,
    /// The router's admin token (drain).
    pub admin_token: Option<AdminToken>,
    pub plan: Plan,
    pub users: Sampler,
    pub criteria: Criteria,
    pub progress: Progress,
}

/// Run the scenario; the report carries the events and the verdict.
pub async fn run(setup: Setup) -> Result<Report, ScenarioError> {
    let needed = setup.criteria.event.end.max(UNDO_AT);
    match setup.plan.bound.duration {
        Some(d) if d >= needed => {}
        _ => return Err(ScenarioError::TooShort(needed)),
    }
    let mut action = Action::prepare(&setup).await?;
    let Setup { plan, users, progress, criteria, name, .. } = setup;
    let epoch = Instant::now() + plan.warmup;
    let load = {
        let plan = plan.clone();
        tokio::spawn(async move { run::execute(&plan, users, epoch, progress).await })
    };
    let mut timeline = Timeline { epoch, events: Vec::new(), failures: Vec::new() };
    let script = async {
        sleep_until(epoch + EVENT_AT).await;
        action.apply(&mut timeline).await;
        sleep_until(epoch + UNDO_AT).await;
        action.undo(&mut timeline).await;
    };
    let interrupted = tokio::select! {
        _ = script => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        action.undo(&mut timeline).await;
        load.abort();
        return Err(ScenarioError::Interrupted);
    }
    let stats = load.await.map_err(|e| ScenarioError::LoadTask(e.to_string()))??;
    let mut evidence = Evidence::from_stats(&stats, &criteria);
    evidence.swap = action.swap_evidence(&stats);
    evidence.step_failures = timeline.failures.clone();
    let mut events = timeline.events;
    events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let mut report = Report::new(&plan, &stats, events);
    report.scenario = Some(name.as_str().to_string());
    report.verdict = Some(judge(&evidence, &criteria));
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("a scenario needs --duration of at least {}s (the event window ends there)", .0.as_secs())]
    TooShort(Duration),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot prepare the scenario: {0}")]
    Prepare(String),
    #[error("load failed")]
    Load(#[from] RunError),
    #[error("the load task failed: {0}")]
    LoadTask(String),
    #[error("interrupted (the event was undone)")]
    Interrupted,
}
