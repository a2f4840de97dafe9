//! `loadtest scenario rollout`: simulated shoppers on the local cluster while
//! `model-sync rollout` takes candidates through a plan, one after the other, then PASS or
//! FAIL. The candidates, in this order:
//!
//! 1. **bad**, trained on the dataset with its items shuffled: rolled back during its first
//!    split step (the conversion guard);
//! 2. **errors**, a good model whose computations fail 30% of the time: rolled back (the
//!    errors guard, already in shadow);
//! 3. **slow**, a good model 60 ms slower per computation: rolled back (the latency guard);
//! 4. **good**, trained on all the data while the base that serves at the start has half of
//!    it: promoted.
//!
//! Throughout, no shopper's request may fail, every shopper keeps to their arm, and a node
//! with two versions resident stays under twice its size with one plus 100 MiB.
//!
//! [`prepare`] does everything slow before the load starts (five builds, publishing the base,
//! restarting nodes with the drill versions' faults). Shoppers ([`crate::shop`]) each keep to
//! a home region, as real users do, so "a user sees one version for the whole rollout" can be
//! checked. [`watch`] samples what every node serves and its memory; [`judge`] makes the
//! figures and the verdict from the controller's records, the answers and the samples.

pub mod case;
pub mod judge;
pub mod prepare;
pub mod watch;

pub use case::{Case, RolloutSetup};

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch as channel};
use tokio::time::{sleep, Instant};
use tracing::info;

use crate::plan::Bound;
use crate::scenario::action::{model_sync_output, model_sync_status, node_url};
use crate::scenario::ScenarioError;
use crate::shop::engine;
use crate::shop::plan::ShopPlan;
use crate::shop::report::ShopReport;
use crate::shop::taste::World;
use judge::{CaseRun, Evidence, RolloutReport};

/// Run the scenario; the report carries the figures and the verdict.
pub async fn run(s: RolloutSetup) -> Result<RolloutReport, ScenarioError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .map_err(|e| ScenarioError::Prepare(format!("HTTP client: {e}")))?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let prepared = prepare::prepare(&s, stamp, &http).await?;
    let good = prepared.candidates.get(&Case::Good).map_or(&prepared.base, |b| b);
    // Tastes come from the model with all the data: what shoppers really like.
    let world = World::load(&good.dir, None, s.seed).map_err(|e| ScenarioError::Prepare(e.to_string()))?;
    let regions: Vec<String> = s.config.regions.keys().cloned().collect();
    let shop = ShopPlan {
        target: s.target.clone(),
        rate: s.rate,
        bound: Bound::new(Some(Duration::from_secs(3 * 3600)), None),
        max_in_flight: 1000,
        timeout: Duration::from_secs(2),
        count: 10,
        p_match: s.p_match,
        p_noise: s.p_noise,
        seed: s.seed,
        region: None,
        homes: regions.clone(),
    };
    shop.validate().map_err(|e| ScenarioError::Prepare(e.to_string()))?;

    let start = Instant::now();
    let (stop_shop, stopped) = oneshot::channel::<()>();
    let load = {
        let (shop, world) = (shop.clone(), world.clone());
        tokio::spawn(async move {
            engine::run_until(&shop, &world, start, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let (stop_watch, watching) = channel::channel(false);
    let nodes: Vec<watch::Node> = s
        .config
        .regions
        .iter()
        .map(|(r, c)| watch::Node { region: r.clone(), url: node_url(c), process: format!("node-{r}") })
        .collect();
    let watcher = tokio::spawn(watch::watch(
        http.clone(),
        s.cluster.clone(),
        nodes,
        start,
        Duration::from_millis(250),
        watching,
    ));

    let script = async {
        let mut runs = Vec::new();
        sleep(s.gap).await;
        for &case in &s.cases {
            let Some(built) = prepared.candidates.get(&case) else { continue };
            runs.push(rollout(&s, case, &built.version, &built.dir, stamp, start).await);
            sleep(s.gap).await;
        }
        runs
    };
    let runs = tokio::select! {
        runs = script => runs,
        _ = tokio::signal::ctrl_c() => {
            abort_active(&s).await;
            let _ = stop_shop.send(());
            load.abort();
            return Err(ScenarioError::Interrupted);
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let _ = stop_shop.send(());
    let _ = stop_watch.send(true);
    let tally = load.await.map_err(|e| ScenarioError::LoadTask(e.to_string()))?.map_err(|e| {
        ScenarioError::Prepare(format!("shoppers: {}", cluster_config::errors::error_chain(&e)))
    })?;
    let samples = watcher.await.map_err(|e| ScenarioError::LoadTask(e.to_string()))?;

    let shop_report = ShopReport::new(&shop, &world, &tally);
    let evidence = Evidence {
        runs: &runs,
        tally: &tally,
        failures: shop_report.failures.clone(),
        world: &world,
        samples: &samples,
        regions: &regions,
    };
    let (verdict, stickiness, memory) = judge::judge(&evidence);
    let report = RolloutReport {
        target: s.target.clone(),
        plan: s.plan.clone(),
        rate: s.rate,
        seconds: (seconds * 10.0).round() / 10.0,
        base_version: prepared.base.version.clone(),
        base_rows: prepared.base_rows,
        rows: prepared.rows,
        sessions: tally.sessions,
        cases: runs.iter().map(|r| judge::case_figures(r, &tally.answers, &samples)).collect(),
        failures: shop_report.failures,
        stickiness,
        memory,
        shadow_latency: judge::shadow_latency(&tally.answers, &samples, &regions),
        verdict,
    };
    write(&s.out, &report, &runs).map_err(|e| ScenarioError::Prepare(format!("{}: {e}", s.out.display())))?;
    Ok(report)
}

/// One `model-sync rollout start`, to its end, and its record.
async fn rollout(
    s: &RolloutSetup,
    case: Case,
    version: &str,
    dir: &Path,
    stamp: u64,
    start: Instant,
) -> CaseRun {
    let id = format!("ro{stamp}-{}", case.as_str());
    let config = std::fs::canonicalize(&s.config_path).unwrap_or_else(|_| s.config_path.clone());
    let config = config.display().to_string();
    let mut args = vec![
        "--config".to_string(),
        config.clone(),
        "rollout".into(),
        "start".into(),
        "--model".into(),
        dir.display().to_string(),
        "--plan".into(),
        s.plan.clone(),
        "--id".into(),
        id.clone(),
    ];
    args.extend(s.controller_args.iter().cloned());
    let log = s.cluster.log_file("loadtest-rollout");
    info!(case = case.as_str(), version, id = %id, "rollout starts");
    let started = start.elapsed();
    let status = model_sync_status(&s.model_sync, &args, &s.cluster.root(), &log).await;
    let ended = start.elapsed();
    let status_args =
        vec!["--config".to_string(), config, "rollout".into(), "status".into(), id.clone(), "--json".into()];
    let record = model_sync_output(&s.model_sync, &status_args, &s.cluster.root(), &log)
        .await
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string()));
    let (exit_code, mut error) = match status {
        Ok(st) => (st.code(), None),
        Err(e) => (None, Some(e)),
    };
    let record = match record {
        Ok(r) => Some(r),
        Err(e) => {
            error.get_or_insert(format!("rollout status: {e}"));
            None
        }
    };
    let run = CaseRun {
        case,
        version: version.to_string(),
        rollout_id: id,
        started,
        ended,
        exit_code,
        record,
        error,
    };
    info!(case = case.as_str(), phase = run.phase(), reason = run.reason().unwrap_or(""), "rollout ended");
    run
}

/// Interrupted: end whatever rollout is running, so no candidate stays behind.
async fn abort_active(s: &RolloutSetup) {
    let args = vec![
        "--config".to_string(),
        s.config_path.display().to_string(),
        "rollout".into(),
        "abort".into(),
        "--reason".into(),
        "loadtest scenario interrupted".into(),
    ];
    let log = s.cluster.log_file("loadtest-rollout");
    let _ = model_sync_status(&s.model_sync, &args, &s.cluster.root(), &log).await;
}

/// report.json, report.md and each rollout's record.
fn write(dir: &Path, report: &RolloutReport, runs: &[CaseRun]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    std::fs::write(dir.join("report.md"), report.to_markdown())?;
    for r in runs {
        if let Some(record) = &r.record {
            let text = serde_json::to_string_pretty(record).unwrap_or_default();
            std::fs::write(dir.join(format!("rollout-{}.json", r.case.as_str())), text)?;
        }
    }
    Ok(())
}
