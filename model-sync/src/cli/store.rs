//! `publish`, `status`, `rollback` and `gc`: argument parsing, credentials, and tables.
//!
//! This is the one place of the store code that reads the environment (AWS credentials);
//! the library gets them passed in.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::admin::{self, BucketState, VersionCheck};
use crate::publish::{self, PointerChange, PublishError, PublishEvent, PublishOptions, Replication};
use cluster_config::ClusterConfig;
use store::{Bucket, Credentials};

use super::scope::{self, primary_bucket, region_buckets};
use super::units::human_bytes;

mod render;

use render::{gc_table, publish_table, status_json, status_table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicationMode {
    /// model-sync copies primary -> each region (server-side when the endpoint is shared).
    Copy,
    /// The store replicates (S3 CRR, MinIO bucket replication); model-sync waits and verifies.
    External,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Re-running the same publish completes an interrupted or partly failed one.\n\
Example:\n  model-sync publish --model models/ml100k")]
pub struct PublishArgs {
    /// Local model directory written by `build` (manifest.json + the files it lists).
    #[arg(long)]
    pub model: PathBuf,
    /// How the version reaches the region buckets.
    #[arg(long, value_enum, default_value = "copy")]
    pub replication: ReplicationMode,
    /// With --replication external: how long to wait for each region (e.g. 300s, 5m).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
    /// With --replication external: how often to look for the replica.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Publish to this region only (repeatable); default: every region of the scope.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Work on the regions of this residency zone (`residency` in regions.toml), whose data
    /// stays in the zone; default: the shared regions.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exits non-zero when a store is unreachable or a current version is missing or corrupt."
)]
pub struct StatusArgs {
    /// Show this region only (repeatable); default: the primary and every region.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Verify every version's objects (downloads them all), not only the current one's.
    #[arg(long)]
    pub deep: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "The version is verified in every selected bucket before any pointer moves.")]
pub struct RollbackArgs {
    /// Version to serve again (see `status`).
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Roll back this region only (repeatable); default: the primary and every region.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Work on the regions of this residency zone (`residency` in regions.toml), whose data
    /// stays in the zone; default: the shared regions.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Versions to keep per bucket, newest first; current and previous are always kept.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// Write command output to stdout; a closed pipe (`| head`) ends output quietly.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `300`, `300s`, `500ms`, `5m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?} (e.g. 300s, 5m, 500ms)"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration unit in {s:?} (use ms, s, m or h)")),
    }
}

/// The library's [`Replication`] for the `--replication` flags.
pub(crate) fn replication(mode: ReplicationMode, timeout: Duration, poll: Duration) -> Replication {
    match mode {
        ReplicationMode::Copy => Replication::Copy,
        ReplicationMode::External => Replication::External { timeout, poll },
    }
}

pub async fn publish(c: &ClusterConfig, a: &PublishArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let zone = a.zone.as_deref();
    let primary = scope::home(c, zone, &creds)?;
    let names = scope::regions(c, zone, &a.regions)?;
    let regions = region_buckets(c, &names, &creds)?;
    let through = super::protect::honours_local(&a.model)?;
    super::protect::protect_before_serving(c, &primary, &names, &a.model.display().to_string(), through)
        .await?;
    let replication = match a.replication {
        ReplicationMode::Copy => Replication::Copy,
        ReplicationMode::External => Replication::External { timeout: a.wait_timeout, poll: a.poll_interval },
    };
    let bars = std::io::stderr().is_terminal().then(|| progress(&regions));
    let on_event = bars.as_ref().map(|(_, bars)| {
        let bars = bars.clone();
        Arc::new(move |e: PublishEvent| on_progress(&bars, e)) as publish::EventSink
    });
    let result =
        publish::publish(&primary, &regions, &a.model, PublishOptions { replication, on_event, flip: true })
            .await;
    if let Some((multi, _)) = bars {
        let _ = multi.clear();
    }
    match result {
        Ok(report) => emit(&publish_table(&report)),
        Err(PublishError::RegionsFailed { report }) => {
            emit(&publish_table(&report))?;
            let failed = report.failed_regions().join(", ");
            eprintln!(
                "hint: once {failed} is reachable again: model-sync publish --model {}",
                a.model.display()
            );
            Err(PublishError::RegionsFailed { report }.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn progress(regions: &[Bucket]) -> (MultiProgress, Arc<HashMap<String, ProgressBar>>) {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:12} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let labels = std::iter::once("primary").chain(regions.iter().map(Bucket::label));
    let bars = labels
        .map(|l| {
            let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
            bar.set_prefix(l.to_string());
            bar.set_message(if l == "primary" { "uploading" } else { "waiting for primary" });
            bar.enable_steady_tick(Duration::from_millis(120));
            (l.to_string(), bar)
        })
        .collect();
    (multi, Arc::new(bars))
}

fn on_progress(bars: &HashMap<String, ProgressBar>, e: PublishEvent) {
    match e {
        PublishEvent::PrimaryFile { file, bytes, skipped } => {
            let verb = if skipped { "already there" } else { "uploaded" };
            if let Some(b) = bars.get("primary") {
                b.set_message(format!("{file} ({}) {verb}; verifying", human_bytes(bytes)));
            }
        }
        PublishEvent::PrimaryDone => {
            bars.get("primary").into_iter().for_each(|b| b.finish_with_message("done"))
        }
        PublishEvent::RegionStep { region, step } => {
            bars.get(&region).into_iter().for_each(|b| b.set_message(step))
        }
        PublishEvent::RegionDone { region, ok } => {
            let msg = if ok { "done" } else { "FAILED" };
            bars.get(&region).into_iter().for_each(|b| b.finish_with_message(msg));
        }
    }
}

pub async fn status(c: &ClusterConfig, a: &StatusArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let names = if a.regions.is_empty() { c.region_names() } else { a.regions.clone() };
    let regions = region_buckets(c, &names, &creds)?;
    let primary = a.regions.is_empty().then(|| primary_bucket(c, &creds));
    let report = admin::status(primary.as_ref(), &regions, a.deep).await;
    if a.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&status_json(&report))?))?;
    } else {
        emit(&status_table(&report))?;
    }
    let troubled: Vec<&str> =
        report.buckets.iter().filter(|b| !bucket_healthy(&b.state)).map(|b| b.label.as_str()).collect();
    if !troubled.is_empty() {
        bail!("problems found in: {}", troubled.join(", "));
    }
    Ok(())
}

fn bucket_healthy(state: &Result<BucketState, store::StoreError>) -> bool {
    let Ok(s) = state else { return false };
    s.pointer_error.is_none()
        && s.dangling_pointer.is_none()
        && s.versions.iter().all(|v| matches!(v.check, None | Some(VersionCheck::Intact)))
}

pub async fn rollback(c: &ClusterConfig, a: &RollbackArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let zone = a.zone.as_deref();
    let names = scope::regions(c, zone, &a.regions)?;
    let mut buckets = region_buckets(c, &names, &creds)?;
    let primary = scope::home(c, zone, &creds)?;
    if a.regions.is_empty() {
        buckets.insert(0, primary.clone());
    }
    // Erased users the older version still holds stay out of answers while it serves.
    let target = buckets.first().ok_or_else(|| anyhow::anyhow!("no bucket to roll back"))?;
    let through = match store::reader::read_manifest(target, &a.to).await {
        Ok(m) => m.erasures.map_or(0, |e| e.through_unix),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read the manifest of {}", a.to))),
    };
    super::protect::protect_before_serving(c, &primary, &names, &a.to, through).await?;
    let report = admin::rollback(&buckets, &a.to).await?;
    let mut out = String::new();
    for (label, change) in &report.buckets {
        out += &match change {
            PointerChange::Flipped { previous } => {
                format!("{label:<12} now {} (was {})\n", report.to, previous.as_deref().unwrap_or("-"))
            }
            PointerChange::Unchanged | PointerChange::NotFlipped => {
                format!("{label:<12} already at {}\n", report.to)
            }
        };
    }
    emit(&out)
}

pub async fn gc(c: &ClusterConfig, a: &GcArgs) -> anyhow::Result<()> {
    let creds = Credentials::from_env(std::env::vars()).await;
    let mut buckets = region_buckets(c, &c.region_names(), &creds)?;
    buckets.insert(0, primary_bucket(c, &creds));
    for z in c.zones() {
        buckets.insert(1, scope::home(c, Some(&z), &creds)?);
    }
    let keep = usize::try_from(a.keep).unwrap_or(usize::MAX);
    let report = admin::gc(&buckets, keep, a.dry_run).await;
    emit(&gc_table(&report))?;
    let failed: Vec<&str> =
        report.buckets.iter().filter(|b| b.outcome.is_err()).map(|b| b.label.as_str()).collect();
    if !failed.is_empty() {
        bail!("gc failed in: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
