//! The `loadtest` command line: `run` against any target, `scenario NAME` on the local
//! cluster, `shop` (simulated shoppers) against any target. `main.rs` parses, then calls
//! [`execute`] with the environment it needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cluster_config::ClusterConfig;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::out;
use crate::plan::{parse_duration, Bound, Hints, Load, Mix, Plan};
use crate::progress::Progress;
use crate::report::Report;
use crate::scenario::judge::Criteria;
use crate::scenario::{self, AdminToken, Name, Setup};
use crate::shop::plan::ShopPlan;
use crate::shop::report::ShopReport;
use crate::shop::taste::World;
use crate::users::{self, Dist, Sampler, Source};

/// Region-hinted load against a georec router or region node, and failure scenarios on the
/// local cluster that prove latency, failover and hot-swap.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, propagate_version = true)]
pub struct Cli {
    /// Log as JSON lines instead of text (logs go to stderr).
    #[arg(long, global = true, env = "GEOREC_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a router or node and report latency, errors, regions and model versions.
    #[command(
        after_help = "Examples:\n  loadtest run --target http://127.0.0.1:8080 --rate 500 --duration 30s \\\n      --model .georec/model --user-dist zipf --mix us-west=40,eu-west=30,us-east=20,ap-south=10\n  loadtest run --target http://127.0.0.1:8000 --connections 16 --requests 100000 --user-count 10000 --out out/"
    )]
    Run(RunArgs),
    /// Break the local cluster (scripts/up) under load at 10 s, repair at 20 s; PASS or FAIL.
    #[command(
        after_help = "Criteria: zero failed requests; p99 during the event (10-25 s) at most 3x the steady p99 \
(0-10 s); hot-swap: every region on the new version within two poll intervals (node /health/ready and answers).\n\
Exit code 1 on FAIL.\n\nExample:\n  GEOREC_ADMIN_TOKEN=... loadtest scenario drain --region eu-west"
    )]
    Scenario(ScenarioArgs),
    /// Simulated shoppers with hidden tastes: recommendations, then events on what they like;
    /// conversions per model version and arm, and whether arms were sticky.
    #[command(
        after_help = "A shopper is a user of --model; their taste is the category of their history with the \
most weight, plus the second when it weighs at least a third of the first. Each session asks for 10 \
recommendations, posts an event (view 60%, add_to_cart 25%, purchase 15%) on each item of the taste with \
probability --p-match, and one on a random item with probability --p-noise.\n\
Exit code 1 when a user was answered by both arms of a version pair.\n\nExample:\n  \
loadtest shop --target http://127.0.0.1:8080 --model .georec/model --users 2000 --rate 50 --duration 60s"
    )]
    Shop(ShopArgs),
}

#[derive(Debug, Args)]
pub struct ShopArgs {
    /// Base URL of a router or region node.
    #[arg(long)]
    pub target: String,
    /// Model directory (or model.bin) whose users shop; their tastes come from their history in it.
    #[arg(long)]
    pub model: PathBuf,
    /// Simulate this many of the model's users (a seeded choice); default: every user with a taste.
    #[arg(long, value_name = "N")]
    pub users: Option<usize>,
    /// Time during which sessions start (default 10s when --sessions is not given either).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Sessions to start at most (one recommendation request each).
    #[arg(long)]
    pub sessions: Option<u64>,
    /// Sessions started per second, on a fixed schedule (open loop).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Sessions still running beyond this are not started and count as `overload` failures.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// Per-call deadline.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Seed of the shopper choice and every draw of the sessions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Chance of an event on each recommended item of the shopper's taste.
    #[arg(long, default_value_t = 0.3)]
    pub p_match: f64,
    /// Chance per session of one event on a random item of the model.
    #[arg(long, default_value_t = 0.05)]
    pub p_noise: f64,
    /// X-Region-Hint on every call (and `region` of every event).
    #[arg(long, conflicts_with = "homes")]
    pub region: Option<String>,
    /// Give each shopper a home region among these (by a hash of the user id) and send it as
    /// X-Region-Hint, e.g. us-west,us-east,eu-west,ap-south.
    #[arg(long, value_delimiter = ',')]
    pub homes: Vec<String>,
    /// Print the JSON report instead of the text table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Base URL of a router or region node.
    #[arg(long)]
    pub target: String,
    /// Measured time (default 10s when --requests is not given either).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured requests to send.
    #[arg(long)]
    pub requests: Option<u64>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub users: UserArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[arg(value_enum)]
    pub name: Name,
    /// Region whose node, Redis or routing is broken.
    #[arg(long, default_value = "us-west")]
    pub region: String,
    /// State directory of scripts/up (pids, commands, logs, data, model).
    #[arg(long, env = "GEOREC_STATE", default_value = ".georec")]
    pub state: PathBuf,
    /// Cluster configuration.
    #[arg(long, env = "GEOREC_CONFIG", default_value = "regions.toml")]
    pub config: PathBuf,
    /// Where to send load; default: the router (`router.listen`).
    #[arg(long)]
    pub target: Option<String>,
    /// model-sync binary for hot-swap; default: target/release/model-sync beside the state directory.
    #[arg(long, value_name = "BIN")]
    pub model_sync: Option<PathBuf>,
    /// Measured time; at least 25s.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Allowed ratio of event-window p99 to steady p99.
    #[arg(long, default_value_t = 3.0)]
    pub max_p99_ratio: f64,
    #[command(flatten)]
    pub rollout: RolloutScenarioArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub users: UserArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Only for `scenario rollout` (its shoppers start `--rate` sessions per second, default 80).
#[derive(Debug, Args)]
pub struct RolloutScenarioArgs {
    /// Plan every candidate walks; default shadow@A:20s,10%@A+B:45s,50%@all:30s,100%@all:15s
    /// with A, B the first two regions by name.
    #[arg(long, value_name = "PLAN")]
    pub rollout_plan: Option<String>,
    /// Candidates, in order (default bad,errors,slow,good).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub cases: Vec<crate::scenario::rollout::Case>,
    /// Load with no candidate before the first rollout and between rollouts.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub gap: Duration,
    /// Extra `model-sync rollout start` flags, replacing the scenario's
    /// (--poll-interval 2s --load-timeout 120s), e.g. '--poll-interval 1s'.
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub controller_flags: Option<String>,
    /// Chance a shopper acts on a recommended item of their taste.
    #[arg(long, default_value_t = 0.3)]
    pub shop_p_match: f64,
    /// Chance, per session, of an event on a random item.
    #[arg(long, default_value_t = 0.1)]
    pub shop_p_noise: f64,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Open loop: requests per second on a fixed schedule (default 100 for run, 200 for scenario).
    #[arg(long, conflicts_with = "connections")]
    pub rate: Option<f64>,
    /// Closed loop: this many connections, each sending when its last request answered.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open loop: requests in flight beyond this are not sent and count as `overload` errors.
    #[arg(long, default_value_t = 1000)]
    pub max_in_flight: usize,
    /// Load before the measurement starts (not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Per-request deadline.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Recommendations asked for per request.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    #[arg(long, default_value = "/recommendations")]
    pub path: String,
    /// Region hints with weights, e.g. us-west=40,eu-west=30,us-east=20,ap-south=10.
    /// Default: no hint for run, every region evenly for scenario.
    #[arg(long, conflicts_with = "no_hint")]
    pub mix: Option<String>,
    /// Send no X-Region-Hint.
    #[arg(long)]
    pub no_hint: bool,
    /// Seed of user and region choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// Model directory (or model.bin): request its users (scenario default: <state>/model).
    #[arg(long, conflicts_with_all = ["users_file", "user_count"])]
    pub model: Option<PathBuf>,
    /// File of user ids, one per line.
    #[arg(long = "users", value_name = "FILE", conflicts_with = "user_count")]
    pub users_file: Option<PathBuf>,
    /// Generated ids: prefix...
    #[arg(long, default_value = "u")]
    pub user_prefix: String,
    /// ...this many of them...
    #[arg(long)]
    pub user_count: Option<u64>,
    /// ...zero-padded to this width (u0000123).
    #[arg(long, default_value_t = 7)]
    pub user_width: usize,
    #[arg(long, value_enum, default_value = "uniform")]
    pub user_dist: DistArg,
    /// Zipf exponent (higher: hotter head).
    #[arg(long, default_value_t = 1.1)]
    pub zipf_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistArg {
    Uniform,
    Zipf,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write report.json, report.md and latency.svg here (scenario default: <state>/loadtest/<name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the JSON report instead of Markdown.
    #[arg(long)]
    pub json: bool,
}

impl UserArgs {
    fn source(&self, fallback_model: Option<PathBuf>) -> anyhow::Result<Source> {
        Ok(match (&self.model, &self.users_file, self.user_count) {
            (Some(m), _, _) => Source::Model(m.clone()),
            (None, Some(f), _) => Source::File(f.clone()),
            (None, None, Some(count)) => {
                Source::Generated { prefix: self.user_prefix.clone(), count, width: self.user_width }
            }
            (None, None, None) => match fallback_model {
                Some(m) => Source::Model(m),
                None => anyhow::bail!("no users: pass --model DIR, --users FILE or --user-count N"),
            },
        })
    }

    fn sampler(&self, fallback_model: Option<PathBuf>, seed: u64) -> anyhow::Result<Sampler> {
        let source = self.source(fallback_model)?;
        let dist = match self.user_dist {
            DistArg::Uniform => Dist::Uniform,
            DistArg::Zipf => Dist::Zipf { s: self.zipf_s },
        };
        let sampler = users::sampler(&source, dist, seed)
            .with_context(|| format!("users from {}", source.describe()))?;
        tracing::info!(users = sampler.len(), source = %source.describe(), dist = ?dist, "users loaded");
        Ok(sampler)
    }
}

impl LoadArgs {
    fn plan(&self, target: String, bound: Bound, default_rate: f64, hints: Hints) -> anyhow::Result<Plan> {
        let load = match (self.rate, self.connections) {
            (_, Some(connections)) => Load::Closed { connections },
            (rate, None) => {
                Load::Open { rate: rate.unwrap_or(default_rate), max_in_flight: self.max_in_flight }
            }
        };
        let hints = match (&self.mix, self.no_hint) {
            (Some(mix), _) => Hints::Mix(Mix::parse(mix)?),
            (None, true) => Hints::None,
            (None, false) => hints,
        };
        let plan = Plan {
            target,
            path: self.path.clone(),
            load,
            bound,
            warmup: self.warmup,
            timeout: self.timeout,
            count: self.count,
            hints,
            seed: self.seed,
        };
        plan.validate()?;
        Ok(plan)
    }
}

/// Run the parsed command; `env` is the process environment (for regions.toml overrides and
/// the admin token). Returns the exit code: 1 when a scenario fails.
pub async fn execute(cli: Cli, env: BTreeMap<String, String>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run(a).await,
        Command::Scenario(a) => scenario(a, env).await,
        Command::Shop(a) => shop(a).await,
    }
}

async fn shop(a: ShopArgs) -> anyhow::Result<ExitCode> {
    let plan = ShopPlan {
        target: a.target.clone(),
        rate: a.rate,
        bound: Bound::new(a.duration, a.sessions),
        max_in_flight: a.max_in_flight,
        timeout: a.timeout,
        count: 10,
        p_match: a.p_match,
        p_noise: a.p_noise,
        seed: a.seed,
        region: a.region.clone(),
        homes: a.homes.clone(),
    };
    plan.validate()?;
    let world = World::load(&a.model, a.users, a.seed)?;
    tracing::info!(shoppers = world.shoppers.len(), model = %a.model.display(), "shoppers loaded");
    let tally = crate::shop::engine::run(&plan, &world).await?;
    let report = ShopReport::new(&plan, &world, &tally);
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.arm_violations.users == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let plan = a.load.plan(a.target.clone(), Bound::new(a.duration, a.requests), 100.0, Hints::None)?;
    let users = a.users.sampler(None, plan.seed)?;
    let stats = crate::run::execute(&plan, users, Instant::now() + plan.warmup, Progress::auto()).await?;
    let report = Report::new(&plan, &stats, Vec::new());
    emit(&report, &a.output, None)?;
    Ok(ExitCode::SUCCESS)
}

async fn scenario(a: ScenarioArgs, env: BTreeMap<String, String>) -> anyhow::Result<ExitCode> {
    let config = ClusterConfig::load(&a.config, env.clone())?;
    config.region(&a.region)?;
    let cluster = Cluster::new(a.state.clone());
    let target = a.target.clone().unwrap_or_else(|| format!("http://{}", config.router.listen));
    if a.name == Name::Rollout {
        return rollout_scenario(a, config, cluster, target).await;
    }
    let hints = Hints::Mix(Mix::even(&config.region_names())?);
    let plan = a.load.plan(target, Bound::new(Some(a.duration), None), 200.0, hints)?;
    let users = a.users.sampler(users::model_in(&a.state.join("model")), plan.seed)?;
    let model_sync = a.model_sync.clone().unwrap_or_else(|| cluster.root().join("target/release/model-sync"));
    let criteria = Criteria { max_p99_ratio: a.max_p99_ratio, ..Criteria::default() };
    let out = a.output.out.clone().unwrap_or_else(|| a.state.join("loadtest").join(a.name.as_str()));
    let setup = Setup {
        name: a.name,
        region: a.region.clone(),
        cluster,
        config,
        config_path: a.config.clone(),
        model_sync,
        admin_token: env.get("GEOREC_ADMIN_TOKEN").cloned().and_then(AdminToken::new),
        plan,
        users,
        criteria,
        progress: Progress::auto(),
    };
    let report = scenario::run(setup).await?;
    emit(&report, &a.output, Some(&out))?;
    let Some(verdict) = &report.verdict else { return Ok(ExitCode::FAILURE) };
    let mut summary = format!("\nscenario {}: {}\n", a.name.as_str(), verdict.label());
    for c in &verdict.checks {
        summary += &format!("  {} {}: {}\n", if c.pass { "ok  " } else { "FAIL" }, c.criterion, c.observed);
    }
    // Last on stdout, where it is seen; on stderr with --json, so stdout stays one JSON document.
    if a.output.json {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(if verdict.pass { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn rollout_scenario(
    a: ScenarioArgs,
    config: ClusterConfig,
    cluster: Cluster,
    target: String,
) -> anyhow::Result<ExitCode> {
    use crate::scenario::rollout::{self as ro, Case, RolloutSetup};
    let regions: Vec<String> = config.regions.keys().cloned().collect();
    let r = &a.rollout;
    for (name, p) in [("--shop-p-match", r.shop_p_match), ("--shop-p-noise", r.shop_p_noise)] {
        anyhow::ensure!((0.0..=1.0).contains(&p), "{name} {p} must be a probability within 0..=1");
    }
    let model_sync = a.model_sync.clone().unwrap_or_else(|| cluster.root().join("target/release/model-sync"));
    let setup = RolloutSetup {
        config_path: a.config.clone(),
        model_sync,
        target,
        rate: a.load.rate.unwrap_or(80.0),
        plan: r.rollout_plan.clone().unwrap_or_else(|| RolloutSetup::default_plan(&regions)),
        controller_args: match &r.controller_flags {
            Some(flags) => flags.split_whitespace().map(str::to_string).collect(),
            None => RolloutSetup::default_controller_args(),
        },
        gap: r.gap,
        cases: if r.cases.is_empty() { Case::ALL.to_vec() } else { r.cases.clone() },
        seed: a.load.seed,
        p_match: r.shop_p_match,
        p_noise: r.shop_p_noise,
        out: a.output.out.clone().unwrap_or_else(|| a.state.join("loadtest").join("rollout")),
        cluster,
        config,
    };
    anyhow::ensure!(setup.rate > 0.0 && setup.rate.is_finite(), "--rate must be a positive number");
    let out = setup.out.clone();
    let report = ro::run(setup).await?;
    if a.output.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_markdown());
    }
    eprintln!("report written to {}/ (report.json, report.md, rollout-<case>.json)", out.display());
    let verdict = &report.verdict;
    let mut summary = format!("\nscenario rollout: {}\n", verdict.label());
    for c in &verdict.checks {
        summary += &format!("  {} {}: {}\n", if c.pass { "ok  " } else { "FAIL" }, c.criterion, c.observed);
    }
    if a.output.json {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(if verdict.pass { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Print the report (Markdown, or JSON with --json) and write the files.
fn emit(report: &Report, o: &OutputArgs, default_out: Option<&Path>) -> anyhow::Result<()> {
    if o.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_markdown());
    }
    if let Some(dir) = o.out.as_deref().or(default_out) {
        out::write(report, dir)?;
        eprintln!("report written to {}/ (report.json, report.md, latency.svg)", dir.display());
    }
    Ok(())
}
