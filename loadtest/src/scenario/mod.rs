//! `loadtest scenario NAME`: load on the local cluster while something breaks at 10 s (and
//! is repaired at 20 s), then PASS or FAIL against stated criteria.
//!
//! - [`action`]: what each scenario does to the cluster, with a timeline of events.
//! - [`judge`]: the criteria and the verdict, as pure functions.
//! - [`setup`]: which scenario, and everything its run needs.

pub mod action;
pub mod judge;
pub mod rollout;
pub mod setup;

pub use cluster_config::AdminToken;
pub use setup::{Name, ScenarioError, Setup};

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::report::Report;
use crate::run;
use action::{Action, Timeline};
use judge::{judge, Evidence};

/// When the event happens and when it is undone, from the measurement start.
pub const EVENT_AT: Duration = Duration::from_secs(10);
pub const UNDO_AT: Duration = Duration::from_secs(20);

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
