//! `run`: the retrain loop (see [`crate::run`]), once for cron or every interval until stopped.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::watch;

use crate::eval::Protocol;
use crate::ingest::{describe, IngestOptions, DEFAULT_BATCH};
use crate::publish::Replication;
use crate::rollout::StartOptions;
use crate::run::{self, CycleReport, Delivery, Outcome, RunSettings, Runner, Targets, DEFAULT_MAX_NDCG_DROP};
use cluster_config::ClusterConfig;
use store::Credentials;

use super::exit::Exit;
use super::ingest::sources;
use super::model::ParamArgs;
use super::rollout::{ControllerArgs, EXIT_ROLLED_BACK};
use super::scope::{self, region_buckets};
use super::store::{emit, parse_duration, ReplicationMode};

/// `run --once` exit code when the candidate was refused as worse than the serving model.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code after a second SIGINT/SIGTERM (the first one stops at the next step).
pub const EXIT_SIGNAL: i32 = 130;

const RUN_HELP: &str = "Each cycle: ingest every region's events, build from --data + all ingested events, \
evaluate on the time split, and publish only if the candidate's NDCG@10 (user-KNN) is not worse than the \
serving model's (recorded in its manifest) by more than --max-ndcg-drop. A cycle without new events or data \
changes since the serving (or last refused) model is skipped without building.

An accepted candidate is rolled out (model-sync rollout, --rollout-plan, default: shadow, 5%, 25% in two \
regions, 100% everywhere, guarded by the nodes' errors, latency and conversions); --flip flips every pointer \
at once instead (the local quick path). The first model of a cluster is always flipped.

Exit codes with --once: 0 published, or nothing new to do; 3 refused as worse than the serving model; \
4 rolled back by its rollout; 1 error (including a region whose events could not be ingested: the cycle still uses the others').

SIGINT/SIGTERM: the loop stops at the next step (waits end at once); a second signal exits immediately \
(code 130), which is safe: ingest is at-least-once and publishing is idempotent.

Examples:
  model-sync run --data data/shop --every 1h
  model-sync run --data data/shop --once          # from cron";

#[derive(Debug, clap::Args)]
#[command(after_long_help = RUN_HELP)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["once", "every"])))]
pub struct RunArgs {
    /// Run one cycle and exit: 0 published or nothing new, 3 refused as worse, 1 error.
    #[arg(long)]
    pub once: bool,
    /// Run a cycle every DURATION, start to start (e.g. 30m, 1h), until SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// Dataset directory the events are added to; without it the events alone are the dataset.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Stream entries per batch object.
    #[arg(long, default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
    /// Largest absolute drop in NDCG@10 against the serving model that still publishes.
    #[arg(long, default_value_t = DEFAULT_MAX_NDCG_DROP, value_parser = margin)]
    pub max_ndcg_drop: f64,
    /// Erasures pending longer than this (the serving model still holds the user) publish the
    /// next candidate even when it is worse by NDCG@10; 0 turns this off.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub erasure_deadline: Duration,
    /// Build the regional model of this residency zone (`residency` in regions.toml): the
    /// shared data and events plus the zone's own events, published to the zone's regions only;
    /// run it where the zone's data lives. Default: the shared model, for the shared regions.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Working directory; the candidate model is written to <DIR>/candidate.
    #[arg(long, default_value = ".georec/run")]
    pub work_dir: PathBuf,
    /// How a published version reaches the region buckets.
    #[arg(long, value_enum, default_value = "copy")]
    pub replication: ReplicationMode,
    /// With --replication external: how long to wait for each region.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// Flip every pointer as soon as the candidate is verified, instead of a rollout.
    #[arg(long, conflicts_with = "rollout_plan")]
    pub flip: bool,
    /// Rollout plan for accepted candidates (syntax: model-sync rollout --help); default:
    /// shadow, 5%, 25% in two regions, 100% everywhere.
    #[arg(long, value_name = "PLAN")]
    pub rollout_plan: Option<String>,
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// With --once: print the cycle's result as JSON.
    #[arg(long, requires = "once")]
    pub json: bool,
    #[command(flatten)]
    pub params: ParamArgs,
}

fn margin(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m.is_finite() && m >= 0.0 => Ok(m),
        _ => Err(format!("{s:?} is not a non-negative number (absolute NDCG, e.g. 0.01)")),
    }
}

pub async fn run(c: &ClusterConfig, a: &RunArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let zone = a.zone.as_deref();
    let targets = Targets {
        primary: scope::home(c, zone, &creds)?,
        regions: region_buckets(c, &scope::regions(c, zone, &[])?, &creds)?,
        streams: sources(c, zone, &[])?,
        shared: zone.map(|_| scope::primary_bucket(c, &creds)),
        erasure_nodes: super::ingest::erasure_nodes(c, zone)?,
    };
    let replication = match a.replication {
        ReplicationMode::Copy => Replication::Copy,
        ReplicationMode::External => {
            Replication::External { timeout: a.wait_timeout, poll: Duration::from_secs(2) }
        }
    };
    let delivery = if a.flip {
        Delivery::Flip
    } else {
        let controller = super::rollout::controller(c, zone, a.controller.node_timeout).await?;
        let (plan, _) = super::rollout::plan_for(a.rollout_plan.as_deref(), None, &controller.regions())?;
        let opts = StartOptions {
            plan,
            hold: false,
            id: None,
            guards: a.controller.guards(),
            timing: a.controller.timing(),
        };
        Delivery::Rollout(Box::new((controller, opts)))
    };
    let settings = RunSettings {
        delivery,
        data: a.data.clone(),
        params: a.params.resolve_and_say(a.data.as_deref())?,
        protocol: Protocol::default(),
        max_ndcg_drop: a.max_ndcg_drop,
        erasure_deadline: (!a.erasure_deadline.is_zero()).then_some(a.erasure_deadline),
        work_dir: a.work_dir.clone(),
        ingest: IngestOptions { batch: usize::try_from(a.batch)?, ..IngestOptions::default() },
        replication,
    };
    let mut runner = Runner::new(targets, settings);
    let stop = stop_on_signals()?;
    let Some(every) = a.every else { return once(&mut runner, &stop, a.json).await };
    if every.is_zero() {
        bail!("--every must be longer than 0 (e.g. 30m, 1h)");
    }
    tracing::info!(every_secs = every.as_secs(), max_ndcg_drop = a.max_ndcg_drop, "retrain loop starting");
    run::run_every(&mut runner, every, stop).await;
    Ok(())
}

async fn once(runner: &mut Runner, stop: &watch::Receiver<bool>, json: bool) -> anyhow::Result<()> {
    let report = runner.cycle(stop).await?;
    run::log_cycle(&report);
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&report_json(&report))?))?;
    } else {
        emit(&render(runner, &report))?;
    }
    let failed = report.failed_regions();
    if !failed.is_empty() {
        bail!("ingest failed in: {} (their events stay in their streams)", failed.join(", "));
    }
    match &report.outcome {
        Outcome::Refused { .. } => Err(Exit {
            code: EXIT_REFUSED,
            message: "the candidate was refused (see above); the serving model stays".into(),
        }
        .into()),
        Outcome::Stopped { after } => bail!("stopped by a signal after {after}; nothing was published"),
        Outcome::RolledBack { rollout, reason, .. } => Err(Exit {
            code: EXIT_ROLLED_BACK,
            message: format!(
                "rollout {rollout} rolled the candidate back: {reason}; the serving model stays"
            ),
        }
        .into()),
        Outcome::Skipped { .. } | Outcome::Published { .. } => Ok(()),
    }
}

fn render(runner: &Runner, r: &CycleReport) -> String {
    let mut out = String::from("ingest:");
    for (region, outcome) in &r.ingest {
        match outcome {
            Ok(i) if i.rejects > 0 => {
                let _ = write!(out, " {region} {} events ({} rejected)", i.events, i.rejects);
            }
            Ok(i) => {
                let _ = write!(out, " {region} {} events", i.events);
            }
            Err(_) => {
                let _ = write!(out, " {region} FAILED");
            }
        }
        out.push(',');
    }
    out.pop();
    out.push('\n');
    for (_, outcome) in &r.ingest {
        if let Err(e) = outcome {
            let _ = writeln!(out, "  {}", describe(e));
        }
    }
    if !matches!(r.outcome, Outcome::Stopped { .. }) {
        let data = runner.settings.data.as_ref().map_or("no --data".into(), |d| d.display().to_string());
        let _ = writeln!(
            out,
            "data: {} interactions ({data}) + {} ingested events",
            r.data_interactions, r.live_events
        );
    }
    let candidate = |out: &mut String, c: &run::Candidate| {
        let _ = writeln!(
            out,
            "candidate {}: NDCG@10 {:.4} over {} test users; {} users, {} items, {} interactions; built and \
             evaluated in {:.1}s",
            c.version, c.ndcg, c.test_users, c.users, c.items, c.interactions, c.build_seconds
        );
    };
    match &r.outcome {
        Outcome::Skipped { reason } => {
            let _ = writeln!(out, "skipped: {reason}");
        }
        Outcome::Published { candidate: c, decision, rollout } => {
            candidate(&mut out, c);
            let regions = runner.targets.regions.len();
            let _ =
                writeln!(out, "published {} to the primary and {regions} region(s): {decision}", c.version);
            if let Some(id) = rollout {
                let _ = writeln!(out, "rolled out through rollout {id} (model-sync rollout status {id})");
            }
        }
        Outcome::RolledBack { candidate: c, decision, rollout, reason } => {
            candidate(&mut out, c);
            let _ = writeln!(out, "accepted offline: {decision}");
            let _ = writeln!(out, "rolled back by rollout {rollout}: {reason}; the serving model stays");
        }
        Outcome::Refused { candidate: c, decision } => {
            candidate(&mut out, c);
            let _ = writeln!(out, "refused: {decision}; the serving model stays");
        }
        Outcome::Stopped { after } => {
            let _ = writeln!(out, "stopped after {after}");
        }
    }
    out
}

fn report_json(r: &CycleReport) -> serde_json::Value {
    let ingest: Vec<serde_json::Value> = r
        .ingest
        .iter()
        .map(|(region, o)| match o {
            Ok(i) => {
                serde_json::json!({"region": region, "ok": true, "events": i.events, "rejects": i.rejects})
            }
            Err(e) => serde_json::json!({"region": region, "ok": false, "error": describe(e)}),
        })
        .collect();
    serde_json::json!({
        "ingest": ingest,
        "new_events": r.new_events,
        "data_interactions": r.data_interactions,
        "live_events": r.live_events,
        "result": r.outcome,
        "seconds": r.seconds,
    })
}

/// The first SIGINT/SIGTERM asks the loop to stop; a second one exits at once.
fn stop_on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if *tx.borrow() {
                tracing::warn!(signal = name, "second signal: exiting now");
                std::process::exit(EXIT_SIGNAL);
            }
            tracing::warn!(signal = name, "stopping after the current step (signal again to exit now)");
            let _ = tx.send(true);
        }
    });
    Ok(rx)
}
