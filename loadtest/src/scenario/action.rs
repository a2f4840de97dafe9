//! What each scenario does to the cluster at 10 s, and undoes at 20 s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cluster_config::errors::error_chain;
use cluster_config::AdminToken;
use serde_json::json;
use tokio::time::{sleep, Instant};
use tracing::info;

use super::judge::SwapEvidence;
use super::setup::{Name, ScenarioError, Setup};
use crate::cluster::{self, Launch, Signal};
use crate::report::Event;
use crate::stats::Stats;

/// Events and failed steps, timed from the measurement start.
#[derive(Debug)]
pub struct Timeline {
    pub epoch: Instant,
    pub events: Vec<Event>,
    pub failures: Vec<String>,
}

impl Timeline {
    pub fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// Record an event; true, for steps that succeeded.
    pub fn mark(&mut self, label: impl Into<String>) -> bool {
        let event = Event::new(self.now(), label);
        info!(t_s = event.t_s, event = %event.label, "scenario event");
        self.events.push(event);
        true
    }

    /// Record a failed step (it fails the scenario); false.
    pub fn fail(&mut self, what: impl Into<String>) -> bool {
        let what = what.into();
        tracing::error!(t_s = self.now().as_secs_f64(), failure = %what, "scenario step failed");
        self.mark(format!("FAILED: {what}"));
        self.failures.push(what);
        false
    }
}

/// How to tell a restarted process is back.
#[derive(Debug, Clone)]
enum Ready {
    /// `GET <url>/health/ready` answers 200.
    Http(String),
    /// A TCP connection is accepted.
    Tcp(String),
}

#[derive(Debug)]
enum Kind {
    /// SIGKILL, then start again from its `.cmd`.
    Kill { process: String, launch: Launch, ready: Ready },
    /// SIGSTOP, then SIGCONT.
    Pause { process: String, pid: u32 },
    /// Publish a prepared model; watch every node pick it up.
    Publish { publish: Vec<String>, version: String, nodes: BTreeMap<String, String>, poll: Duration },
    /// `POST /failover` drain, then restore.
    Drain { url: String, region: String, token: AdminToken },
}

/// One scenario's step, with what has been done so far (so an interrupted run undoes it).
#[derive(Debug)]
pub struct Action {
    kind: Kind,
    setup: Context,
    applied: bool,
    undone: bool,
    swap: Option<(Duration, BTreeMap<String, Option<Duration>>)>,
}

/// What the steps need from the setup.
#[derive(Debug, Clone)]
struct Context {
    cluster: crate::cluster::Cluster,
    model_sync: PathBuf,
    config_path: PathBuf,
    http: reqwest::Client,
}

impl Action {
    /// Check the cluster and get everything ready (for hot-swap: build the next model now,
    /// so the build's CPU use does not disturb the measurement).
    pub async fn prepare(s: &Setup) -> Result<Self, ScenarioError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| ScenarioError::Prepare(format!("HTTP client: {e}")))?;
        let ctx = Context {
            cluster: s.cluster.clone(),
            model_sync: s.model_sync.clone(),
            config_path: s.config_path.clone(),
            http,
        };
        let region = s.config.region(&s.region).map_err(|e| ScenarioError::Prepare(e.to_string()))?;
        let node_url = node_url(region);
        let kind = match s.name {
            Name::Failover => {
                let process = format!("node-{}", s.region);
                let launch = s.cluster.launch_of(&process)?;
                Kind::Kill { process, launch, ready: Ready::Http(node_url) }
            }
            Name::RedisDown => {
                let process = format!("redis-{}", s.region);
                let launch = s.cluster.launch_of(&process)?;
                let redis = &region.redis_url;
                let addr =
                    format!("{}:{}", redis.host_str().unwrap_or_default(), redis.port().unwrap_or(6379));
                Kind::Kill { process, launch, ready: Ready::Tcp(addr) }
            }
            Name::Hang => {
                let process = format!("node-{}", s.region);
                let pid = s.cluster.pid(&process)?;
                Kind::Pause { process, pid }
            }
            Name::Drain => {
                let token = s.admin_token.clone().ok_or_else(|| {
                    ScenarioError::Prepare(
                        "drain needs the router's admin token: export GEOREC_ADMIN_TOKEN (scripts/up prints it)"
                            .into(),
                    )
                })?;
                let url = format!("{}/failover", s.plan.target.trim_end_matches('/'));
                Kind::Drain { url, region: s.region.clone(), token }
            }
            Name::HotSwap => prepare_publish(s, &ctx).await?,
            Name::Rollout => {
                return Err(ScenarioError::Prepare("the rollout scenario runs in scenario::rollout".into()))
            }
        };
        Ok(Action { kind, setup: ctx, applied: false, undone: false, swap: None })
    }

    /// The event at 10 s. Only a step that took effect is undone later: a node that could
    /// not be killed must not be started a second time.
    pub async fn apply(&mut self, t: &mut Timeline) {
        self.applied = match &self.kind {
            Kind::Kill { process, .. } => match self.setup.cluster.signal(process, Signal::Kill) {
                Ok(pid) => t.mark(format!("SIGKILL {process} (pid {pid})")),
                Err(e) => t.fail(format!("SIGKILL {process}: {}", error_chain(&e))),
            },
            Kind::Pause { process, pid } => match cluster::send(*pid, Signal::Stop) {
                Ok(()) => t.mark(format!("SIGSTOP {process} (pid {pid})")),
                Err(e) => t.fail(format!("SIGSTOP {process}: {}", error_chain(&e))),
            },
            // Restoring a region that was not drained is harmless: always undo.
            Kind::Drain { .. } => {
                self.drain(t, "drain").await;
                true
            }
            Kind::Publish { publish, version, nodes, poll } => {
                t.mark(format!("publish {version} started"));
                let log = self.setup.cluster.log_file("loadtest-hot-swap");
                match run_model_sync(&self.setup.model_sync, publish, &self.setup.cluster.root(), &log).await
                {
                    Ok(()) => t.mark(format!("publish {version} done")),
                    Err(e) => t.fail(format!("model-sync publish: {e} (see {})", log.display())),
                };
                let published = t.now();
                let ready = watch_versions(&self.setup.http, nodes, version, t, published + *poll * 3).await;
                if let Some(last) =
                    ready.values().copied().collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max())
                {
                    t.events.push(Event::new(last, format!("all nodes on {version}")));
                }
                self.swap = Some((published + *poll * 2, ready));
                false
            }
        };
    }

    /// The undo at 20 s (also run when interrupted); does nothing twice.
    pub async fn undo(&mut self, t: &mut Timeline) {
        if !self.applied || self.undone {
            return;
        }
        self.undone = true;
        let _done = match &self.kind {
            Kind::Kill { process, launch, ready } => match self.setup.cluster.start(process, launch) {
                Ok(pid) => {
                    t.mark(format!("restarted {process} (pid {pid})"));
                    let deadline = Instant::now() + Duration::from_secs(15);
                    if wait_ready(&self.setup.http, ready, deadline).await {
                        t.mark(format!("{process} ready"))
                    } else {
                        t.fail(format!(
                            "{process} not ready 15 s after its restart (log {})",
                            self.setup.cluster.log_file(process).display()
                        ))
                    }
                }
                Err(e) => t.fail(format!("restart {process}: {}", error_chain(&e))),
            },
            Kind::Pause { process, pid } => match cluster::send(*pid, Signal::Cont) {
                Ok(()) => t.mark(format!("SIGCONT {process} (pid {pid})")),
                Err(e) => t.fail(format!("SIGCONT {process}: {}", error_chain(&e))),
            },
            Kind::Drain { .. } => self.drain(t, "restore").await,
            Kind::Publish { .. } => true,
        };
    }

    async fn drain(&self, t: &mut Timeline, action: &str) -> bool {
        let Kind::Drain { url, region, token } = &self.kind else { return false };
        let sent = self
            .setup
            .http
            .post(url)
            .bearer_auth(token.expose())
            .json(&json!({"region": region, "action": action}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => t.mark(format!("{action} {region} (POST /failover)")),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                t.fail(format!("POST /failover {action} {region}: {status} {}", body.trim()))
            }
            Err(e) => t.fail(format!("POST /failover {action} {region}: {}", error_chain(&e))),
        }
    }

    /// For hot-swap: what the judgement needs, with the answers seen in `stats`.
    pub fn swap_evidence(&self, stats: &Stats) -> Option<SwapEvidence> {
        let Kind::Publish { version, .. } = &self.kind else { return None };
        let (deadline, node_ready) = self.swap.clone().unwrap_or_default();
        Some(SwapEvidence {
            version: version.clone(),
            deadline,
            node_ready,
            answers: stats.versions_by_region.clone(),
        })
    }
}

async fn prepare_publish(s: &Setup, ctx: &Context) -> Result<Kind, ScenarioError> {
    let state = s.cluster.state();
    let data = state.join("data");
    if !data.is_dir() {
        return Err(ScenarioError::Prepare(format!(
            "no dataset in {} (scripts/up writes it)",
            data.display()
        )));
    }
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let version = format!("hotswap-{stamp}");
    let out = state.join("model-next");
    let _ = std::fs::remove_dir_all(&out);
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let config = abs(ctx.config_path.clone()).display().to_string();
    let build = vec![
        "--config".into(),
        config.clone(),
        "build".into(),
        "--data".into(),
        abs(data).display().to_string(),
        "--out".into(),
        abs(state.to_path_buf()).join("model-next").display().to_string(),
        "--seed".into(),
        stamp.to_string(),
        "--model-version".into(),
        version.clone(),
    ];
    let log = s.cluster.log_file("loadtest-hot-swap");
    info!(version = %version, log = %log.display(), "building the next model before the load starts");
    run_model_sync(&ctx.model_sync, &build, &s.cluster.root(), &log)
        .await
        .map_err(|e| ScenarioError::Prepare(format!("model-sync build: {e} (see {})", log.display())))?;
    let publish = vec![
        "--config".into(),
        config,
        "publish".into(),
        "--model".into(),
        abs(state.to_path_buf()).join("model-next").display().to_string(),
    ];
    let nodes = s.config.regions.iter().map(|(name, r)| (name.clone(), node_url(r))).collect();
    Ok(Kind::Publish { publish, version, nodes, poll: s.config.poll_interval() })
}

/// Run model-sync with `args` in `cwd`, output appended to `log`.
pub(crate) async fn run_model_sync(
    bin: &PathBuf,
    args: &[String],
    cwd: &PathBuf,
    log: &PathBuf,
) -> Result<(), String> {
    let status = model_sync_status(bin, args, cwd, log).await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", bin.display()))
    }
}

/// [`run_model_sync`], returning how it exited.
pub(crate) async fn model_sync_status(
    bin: &PathBuf,
    args: &[String],
    cwd: &PathBuf,
    log: &PathBuf,
) -> Result<std::process::ExitStatus, String> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = model_sync_command(bin, args, cwd);
    cmd.stdout(file).stderr(err);
    cmd.status().await.map_err(|e| format!("cannot run {}: {e}", bin.display()))
}

/// Run model-sync and return what it printed on stdout (stderr appended to `log`).
pub(crate) async fn model_sync_output(
    bin: &PathBuf,
    args: &[String],
    cwd: &PathBuf,
    log: &PathBuf,
) -> Result<String, String> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let mut cmd = model_sync_command(bin, args, cwd);
    cmd.stdout(std::process::Stdio::piped()).stderr(file);
    let out = cmd.output().await.map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{} {} exited with {}", bin.display(), args.join(" "), out.status))
    }
}

fn model_sync_command(bin: &PathBuf, args: &[String], cwd: &PathBuf) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).current_dir(cwd).stdin(std::process::Stdio::null()).kill_on_drop(true);
    // The local store's credentials, as scripts/up sets them, unless the caller has others.
    for (k, v) in [("AWS_ACCESS_KEY_ID", "georec-local"), ("AWS_SECRET_ACCESS_KEY", "georec-local-secret")] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Poll every node's `/health/ready` until all report `version` or `until` (from the epoch).
async fn watch_versions(
    http: &reqwest::Client,
    nodes: &BTreeMap<String, String>,
    version: &str,
    t: &Timeline,
    until: Duration,
) -> BTreeMap<String, Option<Duration>> {
    let mut ready: BTreeMap<String, Option<Duration>> = nodes.keys().map(|r| (r.clone(), None)).collect();
    while t.now() <= until && ready.values().any(Option::is_none) {
        for (region, url) in nodes {
            if ready[region].is_none() && node_version(http, url).await.as_deref() == Some(version) {
                ready.insert(region.clone(), Some(t.now()));
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    ready
}

/// The `model_version` a node reports on `/health/ready`.
pub async fn node_version(http: &reqwest::Client, base: &str) -> Option<String> {
    let url = format!("{}/health/ready", base.trim_end_matches('/'));
    let body: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
    body.get("model_version")?.as_str().map(str::to_string)
}

/// Whether the node at `base` answers `GET /health/ready` with 200 before `deadline`.
pub(crate) async fn wait_node_ready(http: &reqwest::Client, base: &str, deadline: Instant) -> bool {
    wait_ready(http, &Ready::Http(base.to_string()), deadline).await
}

async fn wait_ready(http: &reqwest::Client, ready: &Ready, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        let ok = match ready {
            Ready::Http(base) => {
                let url = format!("{}/health/ready", base.trim_end_matches('/'));
                http.get(url).send().await.is_ok_and(|r| r.status().is_success())
            }
            Ready::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
        };
        if ok {
            return true;
        }
        sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The base URL of a region's first node (its listen address when it names none).
pub(crate) fn node_url(region: &cluster_config::RegionConfig) -> String {
    region
        .urls
        .first()
        .map_or_else(|| format!("http://{}", region.listen), |u| cluster_config::url_text(u).to_string())
}
