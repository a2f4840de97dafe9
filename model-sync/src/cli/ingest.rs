//! `ingest`: drain region event streams into the primary bucket, print what happened.

use std::fmt::Write as _;

use anyhow::bail;

use crate::ingest::{self, describe, IngestError, IngestOptions, RegionIngest, StreamSource, DEFAULT_BATCH};
use cluster_config::ClusterConfig;
use store::Credentials;

use super::store::emit;

#[derive(Debug, clap::Args)]
#[command(after_help = "Each batch is written to <primary prefix>events/<region>/<first id>_<last id>.tsv \
(rejected entries next to it in .rejects.jsonl), verified, then acknowledged and deleted from the stream. \
Exits non-zero when a region could not be drained; the others are still ingested.\n\
Example:\n  model-sync ingest --region eu-west --batch 5000")]
pub struct IngestArgs {
    /// Ingest this region only (repeatable); default: every region.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Work on the regions of this residency zone (`residency` in regions.toml), whose data
    /// stays in the zone; default: the shared regions.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Stream entries per batch object.
    #[arg(long, default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The nodes of the scope's regions and the admin token (`GEOREC_ADMIN_TOKEN`), to send the
/// erasures a region missed; `None` without a token.
pub fn erasure_nodes(
    c: &ClusterConfig,
    zone: Option<&str>,
) -> anyhow::Result<Option<(Vec<ingest::RegionNodes>, String)>> {
    let Some(token) = cluster_config::AdminToken::from_env() else { return Ok(None) };
    let nodes = super::scope::regions(c, zone, &[])?
        .into_iter()
        .map(|region| Ok(ingest::RegionNodes { urls: c.region(&region)?.urls.clone(), region }))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some((nodes, token.expose().to_string())))
}

/// The regions to drain: those named (checked against the configuration and the scope), or
/// every region of the scope (`zone`; `None`: the shared regions).
pub fn sources(c: &ClusterConfig, zone: Option<&str>, names: &[String]) -> anyhow::Result<Vec<StreamSource>> {
    super::scope::regions(c, zone, names)?
        .into_iter()
        .map(|n| Ok(StreamSource { redis_url: c.region(&n)?.redis_url.to_string(), region: n }))
        .collect()
}

pub async fn ingest(c: &ClusterConfig, a: &IngestArgs) -> anyhow::Result<()> {
    let sources = sources(c, a.zone.as_deref(), &a.regions)?;
    let creds = Credentials::from_env(std::env::vars()).await;
    let primary = super::scope::home(c, a.zone.as_deref(), &creds)?;
    let opts = IngestOptions { batch: usize::try_from(a.batch)?, ..IngestOptions::default() };
    let results = ingest::ingest(&primary, &sources, &opts).await;
    // The records ingest just moved, read once.
    let erasures = ingest::read_tombstones(&primary).await.ok();
    // Erasures every serving version honours leave the regions' live sets.
    let names: Vec<String> = sources.iter().map(|s| s.region.clone()).collect();
    if let (Ok(buckets), Some(erasures)) = (super::scope::region_buckets(c, &names, &creds), &erasures) {
        for (region, n) in ingest::release_erasures(erasures, &sources, &buckets).await {
            if let Ok(n @ 1..) = n {
                eprintln!("{region}: {n} completed erasure(s) released from the region's erased set");
            }
        }
    }
    // Regions that missed an erasure (a router restarted while they were down) are asked now.
    if let (Some((nodes, token)), Some(erasures)) = (erasure_nodes(c, a.zone.as_deref())?, &erasures) {
        for (region, p) in ingest::propagate(erasures, &nodes, &token).await {
            if !p.erased.is_empty() {
                eprintln!("{region}: erased {} user(s) it had missed", p.erased.len());
            }
            if let Some((user, why)) = p.failed.first() {
                eprintln!("{region}: {} missed erasure(s) not sent yet (first {user}: {why}); the next ingest retries", p.failed.len());
            }
        }
    }
    if a.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&summary_json(&results))?))?;
    } else {
        emit(&summary_table(&results))?;
    }
    let failed: Vec<&str> = results.iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n.as_str()).collect();
    if !failed.is_empty() {
        bail!(
            "ingest failed in: {} (their events stay in their streams; re-run once fixed)",
            failed.join(", ")
        );
    }
    Ok(())
}

type Results = [(String, Result<RegionIngest, IngestError>)];

pub fn summary_table(results: &Results) -> String {
    let mut out = format!(
        "{:<12} {:>9} {:>8} {:>8} {:>8} {:>10}\n",
        "region", "events", "batches", "rejects", "seconds", "events/s"
    );
    let mut notes = String::new();
    for (region, r) in results {
        match r {
            Ok(r) => {
                let _ = writeln!(
                    out,
                    "{region:<12} {:>9} {:>8} {:>8} {:>8.2} {:>10.0}",
                    r.events,
                    r.batches,
                    r.rejects,
                    r.seconds,
                    r.events_per_sec()
                );
                if r.redelivered > 0 {
                    let _ = writeln!(
                        notes,
                        "{region}: {} entries re-read from an earlier ingest that stopped before acknowledging them \
                         (duplicates are dropped when events are read)",
                        r.redelivered
                    );
                }
                if r.vanished > 0 {
                    let _ = writeln!(
                        notes,
                        "{region}: {} pending entries were already deleted from the stream",
                        r.vanished
                    );
                }
                if r.erasures > 0 || r.erased_events > 0 {
                    let _ = writeln!(
                        notes,
                        "{region}: {} erasure record(s) moved to the primary bucket; {} event(s) of erased users dropped (see `model-sync erasure status`)",
                        r.erasures, r.erased_events
                    );
                }
                if r.rejects > 0 {
                    let _ = writeln!(
                        notes,
                        "{region}: {} entries are not valid events; kept in the .rejects.jsonl objects next to their batch:",
                        r.rejects
                    );
                    for rej in &r.reject_examples {
                        let _ = writeln!(notes, "  {}: {}", rej.id, rej.error);
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(out, "{region:<12} FAILED");
                let _ = writeln!(notes, "{}", describe(e));
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

pub fn summary_json(results: &Results) -> serde_json::Value {
    let regions: Vec<serde_json::Value> = results
        .iter()
        .map(|(region, r)| match r {
            Ok(r) => {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["events_per_sec"] = serde_json::json!(r.events_per_sec());
                v["ok"] = serde_json::json!(true);
                v
            }
            Err(e) => serde_json::json!({"region": region, "ok": false, "error": describe(e)}),
        })
        .collect();
    serde_json::json!({ "regions": regions })
}
