//! `rollout start|resume|status|abort|promote|report` (see [`crate::rollout`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use crate::rollout::guard::{self, ArmFigures, GuardSettings};
use crate::rollout::nodes::Target;
use crate::rollout::plan::Plan;
use crate::rollout::state::{Phase, Record, Timing};
use crate::rollout::{Controller, StartOptions};
use cluster_config::ClusterConfig;
use store::Credentials;

use super::exit::Exit;
use super::scope::{self, region_buckets};
use super::store::{emit, parse_duration, ReplicationMode};

/// Exit code of `rollout start|resume` (and `run --once`) when the candidate was rolled back.
pub const EXIT_ROLLED_BACK: u8 = 4;

const ROLLOUT_HELP: &str = "Plan syntax: steps TRAFFIC@REGIONS:BAKE separated by commas, in order.
  TRAFFIC  shadow (every request also computed on the candidate, answers from the serving
           version), shadow=PERCENT, or PERCENT (split: that share of users, sticky, answered
           by the candidate); PERCENT like 5%, 0.5%, 100%
  REGIONS  all, or region names joined by +
  BAKE     500ms, 90s, 5m, 1h
Default: shadow@A:5m,5%@A:5m,25%@A+B:10m,100%@all:10m with A, B the first two regions by name.

Guards, judged at every poll on the step's window (all its regions and nodes) and failing early:
  errors       candidate error rate <= stable rate + --error-margin (shadow: shadow errors)
  latency      candidate p99 <= --latency-factor x stable p99 + --latency-allowance-ms
  conversions  (split steps) one-sided two-proportion z-test, pooled standard error, of
               H0: candidate rate >= stable rate - --conversion-margin; fails when z < -z_alpha
               once each arm has --conversion-min-requests (items) and would have
               --conversion-min-conversions at the pooled rate. --confidence holds for the
               whole step: each of its bake/poll looks tests at 1 - (1 - confidence)/looks
               (Bonferroni; 20 looks at 0.95: z_alpha = 2.81)
A failed guard removes the candidate from every region's pointer (the serving version stays).
The record lives in the primary bucket at <prefix>rollouts/<ID>.json (active: rollouts/active.json).

Exit codes of start/resume: 0 promoted, 4 rolled back, 1 error.

Examples:
  model-sync rollout start --model models/shop
  model-sync rollout start --model models/shop --plan 'shadow@us-west:2m,10%@us-west:5m,100%@all:5m'
  model-sync rollout start --model models/shop --hold 50%      # an A/B test until promote/abort
  model-sync rollout status
  model-sync rollout abort --reason 'bad reviews'";

#[derive(Debug, clap::Args)]
#[command(after_long_help = ROLLOUT_HELP)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
    /// Roll out to the regions of this residency zone (`residency` in regions.toml), the
    /// record kept in the zone's home store; default: the shared regions.
    #[arg(long, value_name = "ZONE", global = true)]
    pub zone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Publish a built model without flipping pointers, then walk the plan under the guards.
    Start(Box<StartArgs>),
    /// Continue the active rollout (or ID) where its record says it was, e.g. after a crash.
    Resume(IdArgs),
    /// The rollout's step, phase, last figures and history (from any machine).
    Status(StatusArgs),
    /// Roll back now: every region's pointer loses the candidate; a running controller stops.
    Abort(DecisionArgs),
    /// Skip the rest of the plan: the candidate serves everywhere now.
    Promote(DecisionArgs),
    /// Per arm: users, requests, conversions with 95% Wilson intervals, latency, errors.
    Report(IdArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = ROLLOUT_HELP)]
pub struct StartArgs {
    /// Local model directory written by `build`.
    #[arg(long)]
    pub model: PathBuf,
    /// Rollout plan (see below); default: shadow, 5%, 25% in two regions, 100% everywhere.
    #[arg(long, conflicts_with = "hold")]
    pub plan: Option<String>,
    /// One split step at SHARE (e.g. 50%) in every region that never advances by itself (an A/B
    /// test); errors and latency still roll back; end it with promote or abort.
    #[arg(long, value_name = "SHARE")]
    pub hold: Option<String>,
    /// Rollout id (also reshuffles users' arms); default r<time>-<end of version>.
    #[arg(long)]
    pub id: Option<String>,
    /// How the version reaches the region buckets.
    #[arg(long, value_enum, default_value = "copy")]
    pub replication: ReplicationMode,
    /// With --replication external: how long to wait for each region.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

/// The controller's timing and guards (recorded with the rollout; `resume` reuses them).
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// How often the nodes' reports are read during a step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long every node of a step has to report the candidate loaded.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub load_timeout: Duration,
    /// How long a node may report a candidate load error before the step fails.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub load_error_grace: Duration,
    /// Deadline of one node report request.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// Absolute error rate the candidate may exceed the stable one by.
    #[arg(long, default_value_t = GuardSettings::default().error_margin, value_parser = unit)]
    pub error_margin: f64,
    /// Candidate p99 may be at most this multiple of the stable p99 (plus the allowance).
    #[arg(long, default_value_t = GuardSettings::default().latency_factor, value_parser = positive)]
    pub latency_factor: f64,
    /// Milliseconds added to the latency limit (histogram bucket granularity).
    #[arg(long, default_value_t = GuardSettings::default().latency_allowance_ms, value_parser = positive)]
    pub latency_allowance_ms: f64,
    /// Candidate requests (shadow: computations) before errors and latency are judged.
    #[arg(long, default_value_t = GuardSettings::default().min_requests)]
    pub min_requests: u64,
    /// Absolute conversion rate the candidate may lose before the z-test fails it.
    #[arg(long, default_value_t = GuardSettings::default().conversion_margin, value_parser = unit)]
    pub conversion_margin: f64,
    /// One-sided confidence of the conversion test over a whole step (each look tests at
    /// 1 - (1 - confidence) / looks).
    #[arg(long, default_value_t = GuardSettings::default().confidence, value_parser = confidence)]
    pub confidence: f64,
    /// Requests each arm needs before the conversion test runs.
    #[arg(long, default_value_t = GuardSettings::default().conversion_min_requests)]
    pub conversion_min_requests: u64,
    /// Conversions each arm needs at the pooled rate before the conversion test runs.
    #[arg(long, default_value_t = GuardSettings::default().conversion_min_conversions)]
    pub conversion_min_conversions: u64,
    /// Event types counted as conversions (comma-separated, e.g. click,purchase); default all.
    #[arg(long, value_delimiter = ',')]
    pub conversion_events: Vec<String>,
}

impl ControllerArgs {
    pub fn guards(&self) -> GuardSettings {
        GuardSettings {
            error_margin: self.error_margin,
            latency_factor: self.latency_factor,
            latency_allowance_ms: self.latency_allowance_ms,
            min_requests: self.min_requests,
            conversion_margin: self.conversion_margin,
            confidence: self.confidence,
            conversion_min_requests: self.conversion_min_requests,
            conversion_min_conversions: self.conversion_min_conversions,
            conversion_events: self.conversion_events.clone(),
        }
    }

    pub fn timing(&self) -> Timing {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        Timing {
            poll_ms: ms(self.poll_interval),
            load_timeout_ms: ms(self.load_timeout),
            load_error_grace_ms: ms(self.load_error_grace),
        }
    }
}

fn unit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a number within 0..=1 (absolute rate, e.g. 0.01)")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a non-negative number")),
    }
}

fn confidence(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.5..1.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a confidence within 0.5..1 (e.g. 0.95)")),
    }
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// Rollout id; default: the active rollout.
    pub id: Option<String>,
    /// Deadline of one node report request.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Rollout id; default: the active rollout.
    pub id: Option<String>,
    /// Print the whole record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DecisionArgs {
    /// Rollout id; default: the active rollout.
    pub id: Option<String>,
    /// Why, recorded in the rollout's history.
    #[arg(long, default_value = "operator decision")]
    pub reason: String,
}

/// The controller over the configured cluster.
/// The controller of the regions of `zone` (`None`: the shared ones), its records in their home
/// store.
pub async fn controller(
    c: &ClusterConfig,
    zone: Option<&str>,
    node_timeout: Duration,
) -> anyhow::Result<Controller> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let buckets = region_buckets(c, &scope::regions(c, zone, &[])?, &creds)?;
    let targets = buckets
        .into_iter()
        .map(|bucket| {
            let region = bucket.label().to_string();
            let urls = c.region(&region).map(|r| r.urls.clone())?;
            Ok(Target { region, bucket, urls })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Controller::new(scope::home(c, zone, &creds)?, targets, node_timeout))
}

/// The plan of `--plan`, `--hold`, or the default one.
pub fn plan_for(plan: Option<&str>, hold: Option<&str>, regions: &[String]) -> anyhow::Result<(Plan, bool)> {
    let (plan, hold) = match (plan, hold) {
        (_, Some(share)) => {
            let share = format!("{share}@all:0s")
                .parse::<Plan>()
                .map_err(|e| anyhow::anyhow!("--hold {share:?}: {e} (a share like 50% or 12.5%)"))?;
            (Plan::hold(share.steps[0].share), true)
        }
        (Some(p), None) => (p.parse::<Plan>().map_err(|e| anyhow::anyhow!("--plan: {e}"))?, false),
        (None, None) => (Plan::default_for(regions), false),
    };
    plan.check_regions(regions).map_err(|e| anyhow::anyhow!("--plan: {e}"))?;
    Ok((plan, hold))
}

pub async fn rollout(c: &ClusterConfig, a: &RolloutArgs) -> anyhow::Result<()> {
    let zone = a.zone.as_deref();
    match &a.command {
        RolloutCommand::Start(s) => {
            let ctl = controller(c, zone, s.controller.node_timeout).await?;
            let (plan, hold) = plan_for(s.plan.as_deref(), s.hold.as_deref(), &ctl.regions())?;
            let through = super::protect::honours_local(&s.model)?;
            super::protect::protect_before_serving(
                c,
                &ctl.primary,
                &ctl.regions(),
                &s.model.display().to_string(),
                through,
            )
            .await?;
            let replication =
                super::store::replication(s.replication, s.wait_timeout, Duration::from_secs(2));
            let opts = StartOptions {
                plan,
                hold,
                id: s.id.clone(),
                guards: s.controller.guards(),
                timing: s.controller.timing(),
            };
            ended(ctl.start(&s.model, replication, opts).await?)
        }
        RolloutCommand::Resume(s) => {
            ended(controller(c, zone, s.node_timeout).await?.resume(s.id.as_deref()).await?)
        }
        RolloutCommand::Abort(s) => {
            let r =
                controller(c, zone, Duration::from_secs(5)).await?.abort(s.id.as_deref(), &s.reason).await?;
            emit(&format!("rollout {} aborted; every region serves its previous version again\n", r.id))
        }
        RolloutCommand::Promote(s) => {
            let r = controller(c, zone, Duration::from_secs(5))
                .await?
                .promote(s.id.as_deref(), &s.reason)
                .await?;
            emit(&format!("rollout {} promoted: {} serves everywhere\n", r.id, r.version))
        }
        RolloutCommand::Status(s) => {
            let ctl = controller(c, zone, Duration::from_secs(5)).await?;
            let r = crate::rollout::state::load_or_active(&ctl.primary, s.id.as_deref()).await?;
            if s.json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))
            } else {
                emit(&status_text(&r))
            }
        }
        RolloutCommand::Report(s) => {
            let ctl = controller(c, zone, s.node_timeout).await?;
            let r = crate::rollout::state::load_or_active(&ctl.primary, s.id.as_deref()).await?;
            let check = ctl.live_window(&r).await;
            emit(&report_text(&r, check.as_ref()))
        }
    }
}

/// Print how a rollout ended; rolled back or aborted exit non-zero.
fn ended(r: Record) -> anyhow::Result<()> {
    emit(&status_text(&r))?;
    match r.phase {
        Phase::Promoted | Phase::Running => Ok(()),
        Phase::RolledBack | Phase::Aborted => Err(Exit {
            code: EXIT_ROLLED_BACK,
            message: format!(
                "rollout {} {}: {}",
                r.id,
                r.phase.as_str(),
                r.reason.as_deref().unwrap_or("no reason recorded")
            ),
        }
        .into()),
    }
}

pub fn status_text(r: &Record) -> String {
    let mut out = String::new();
    let steps = r.plan.parse::<Plan>().map(|p| p.steps.len()).unwrap_or(0);
    let _ = writeln!(out, "rollout {}: candidate {} ({})", r.id, r.version, r.phase.as_str());
    let _ = writeln!(out, "plan: {}{}", r.plan, if r.hold { " (hold)" } else { "" });
    let _ = writeln!(
        out,
        "step {} of {steps}, {:?}; started {}, updated {}",
        r.step + 1,
        r.stage,
        r.started_at,
        r.updated_at
    );
    let serving: Vec<String> = r.serving.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "serving before: {}", serving.join(", "));
    if let Some(reason) = &r.reason {
        let _ = writeln!(out, "reason: {reason}");
    }
    if let Some(c) = &r.last_check {
        let _ = writeln!(out, "last check ({}, step {}):", c.at, c.step + 1);
        for j in &c.judgements {
            let _ = writeln!(
                out,
                "  {:<12} {:<8} {}",
                j.guard.as_str(),
                format!("{:?}", j.status).to_lowercase(),
                j.detail
            );
        }
    }
    let _ = writeln!(out, "history:");
    for e in &r.history {
        let _ = writeln!(out, "  {} {}", e.at, e.what);
    }
    out
}

/// Per arm figures with 95% Wilson score intervals for conversion rates.
pub fn report_text(r: &Record, check: Option<&crate::rollout::state::Check>) -> String {
    let mut out = format!("rollout {}: candidate {} ({})\n", r.id, r.version, r.phase.as_str());
    let Some(c) = check else {
        out.push_str("no figures yet (the first step has not started baking)\n");
        return out;
    };
    let _ = writeln!(
        out,
        "window: step {} from its start to {} over {} node(s); conversion rates per request with 95% Wilson \
         score intervals",
        c.step + 1,
        c.at,
        c.window.nodes
    );
    let arm = |out: &mut String, name: &str, a: &ArmFigures| {
        let ms = |q: f64| a.latency.quantile(q).map_or("-".into(), |s| format!("{:.1} ms", s * 1000.0));
        let _ = writeln!(
            out,
            "{name}: {} users, {} requests, {} errors ({:.4}), latency p50 <= {} p99 <= {}",
            a.users,
            a.requests,
            a.errors,
            a.error_rate(),
            ms(0.5),
            ms(0.99)
        );
        let mut types: Vec<&String> = a.conversions.keys().collect();
        types.sort();
        for t in types {
            let x = a.conversions[t].min(a.requests);
            let (lo, hi) = guard::wilson(x, a.requests, 1.96);
            let rate = if a.requests == 0 { 0.0 } else { x as f64 / a.requests as f64 };
            let _ = writeln!(out, "  {t:<12} {x:>8}  rate {rate:.4}  95% CI [{lo:.4}, {hi:.4}]");
        }
        let ev = &r.guards.conversion_events;
        let (x, n) = (a.converted(ev).min(a.requests), a.requests);
        let (lo, hi) = guard::wilson(x, n, 1.96);
        let _ = writeln!(
            out,
            "  {:<12} {x:>8}  rate {:.4}  95% CI [{lo:.4}, {hi:.4}]",
            "counted",
            a.conversion_rate(ev)
        );
    };
    arm(&mut out, "stable", &c.window.stable);
    arm(&mut out, "candidate", &c.window.candidate);
    let s = &c.window.shadow;
    if s.computed > 0 {
        let p99 = s.latency.quantile(0.99).map_or("-".into(), |x| format!("{:.1} ms", x * 1000.0));
        let _ = writeln!(
            out,
            "shadow: {} computed, {} skipped, {} errors, p99 <= {p99}, mean overlap@10 {:.3}",
            s.computed,
            s.skipped,
            s.errors,
            s.overlap_sum / s.computed as f64
        );
    }
    for j in &c.judgements {
        let _ = writeln!(out, "{}: {:?}: {}", j.guard.as_str(), j.status, j.detail);
    }
    out
}
