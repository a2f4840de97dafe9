//! `erasure status [USER]`: where users erased on request stand, per region.

use std::fmt::Write as _;

use clap::Subcommand;
use cluster_config::ClusterConfig;
use serde::Serialize;
use store::Credentials;

use super::scope::{self, region_buckets};
use super::store::emit;
use crate::ingest::{self, RegionErasure, Tombstone};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  model-sync erasure status\n  model-sync erasure status u1234 --json")]
pub struct ErasureArgs {
    #[command(subcommand)]
    pub command: ErasureCommand,
}

#[derive(Debug, Subcommand)]
pub enum ErasureCommand {
    /// Per region: the erasure recorded and the user's live data gone, the serving model built
    /// without the user; complete when every region has both. Without USER: every erasure the
    /// primary bucket records (after `ingest` moved it there), in short.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// A user erased on request; checks every key and stream entry naming them.
    pub user: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Work on the regions of this residency zone (`residency` in regions.toml), whose data
    /// stays in the zone; default: the shared regions.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
}

/// One user's erasure everywhere.
#[derive(Debug, Serialize)]
struct UserStatus {
    user_id: String,
    erased_at: String,
    recorded_in: String,
    complete: bool,
    regions: Vec<RegionErasure>,
}

pub async fn erasure(c: &ClusterConfig, a: &ErasureArgs) -> anyhow::Result<()> {
    let ErasureCommand::Status(s) = &a.command;
    let creds = Credentials::from_env(std::env::vars()).await;
    let zone = s.zone.as_deref();
    let primary = scope::home(c, zone, &creds)?;
    let erasures = ingest::read_tombstones(&primary).await?;
    let users: Vec<&Tombstone> = match &s.user {
        Some(u) => vec![erasures.by_user.get(u).ok_or_else(|| {
            anyhow::anyhow!(
                "no erasure of {u:?} in the primary bucket: erase with DELETE /users/{{id}} on the router, \
                 then run `model-sync ingest` (it moves the regions' records there)"
            )
        })?],
        None => erasures.by_user.values().collect(),
    };
    let buckets = region_buckets(c, &scope::regions(c, zone, &[])?, &creds)?;
    let mut out = Vec::new();
    for t in users {
        let mut regions = Vec::new();
        for b in &buckets {
            let region = b.label().to_string();
            let redis = c.region(&region)?.redis_url.to_string();
            regions.push(ingest::region_erasure(&region, &redis, b, t, s.user.is_some()).await);
        }
        let complete = regions.iter().all(|r| r.live_gone() && r.model_honours);
        out.push(UserStatus {
            user_id: t.user.clone(),
            erased_at: model::manifest::rfc3339(t.at),
            recorded_in: t.region.clone(),
            complete,
            regions,
        });
    }
    if s.json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(&out)?));
    }
    emit(&text(&out, s.user.is_some()))
}

fn text(out: &[UserStatus], deep: bool) -> String {
    let mut s = String::new();
    if out.is_empty() {
        return "no erasures recorded in the primary bucket\n".into();
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    for u in out {
        let _ = writeln!(
            s,
            "{}: erased {} (recorded in {}); {}",
            u.user_id,
            u.erased_at,
            u.recorded_in,
            if u.complete { "complete" } else { "pending: the next build from ingested events completes it" }
        );
        if !deep {
            continue;
        }
        let _ = writeln!(
            s,
            "  {:<12} {:<16} {:<24} serving",
            "region", "live data gone", "serving model honours"
        );
        for r in &u.regions {
            let live = match r.recorded {
                None => "unknown".to_string(),
                Some(_) if r.live_gone() => "yes".into(),
                Some(false) => "no (not recorded)".into(),
                Some(true) => format!("no ({} keys, {} events)", r.live_keys.len(), r.live_stream_entries),
            };
            let _ = writeln!(
                s,
                "  {:<12} {:<16} {:<24} {}{}",
                r.region,
                live,
                yes(r.model_honours),
                r.serving.as_deref().unwrap_or("-"),
                r.problem.as_deref().map(|p| format!("  [{p}]")).unwrap_or_default()
            );
        }
    }
    s
}
