//! The rollout record: every step, decision and the figures behind it, in the primary bucket.
//!
//! ```text
//! <prefix>rollouts/<id>.json     the record, rewritten after every change
//! <prefix>rollouts/active.json   {"id": ...} while a rollout runs; deleted when it ends
//! ```
//!
//! A controller that crashed resumes from the record; `status`, `abort` and `promote` work
//! from any machine that can read the primary bucket. Writes are last-writer-wins (S3 has no
//! compare-and-swap here): a running controller re-reads the record before each write and at
//! every poll, and stops when someone else ended the rollout.

use std::collections::BTreeMap;

use model::manifest;
use model::rollout::NodeReport;
use serde::{Deserialize, Serialize};
use store::{Bucket, StoreError};

use super::guard::{GuardSettings, Judgement, Window};

pub const ROLLOUTS_DIR: &str = "rollouts/";
pub const ACTIVE_FILE: &str = "active.json";

pub fn record_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{ROLLOUTS_DIR}{id}.json")
}

pub fn active_key(prefix: &str) -> String {
    format!("{prefix}{ROLLOUTS_DIR}{ACTIVE_FILE}")
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A controller is (or should be) walking the plan.
    Running,
    /// The candidate serves everywhere.
    Promoted,
    /// A guard failed (or a step could not start): every candidate was removed.
    RolledBack,
    /// A person ended it: every candidate was removed.
    Aborted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled back",
            Phase::Aborted => "aborted",
        }
    }
}

/// Within a step: pointers being written and nodes awaited, or baking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Applying,
    Baking,
}

/// Timing of the controller, recorded so a resumed one behaves alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Between reads of the nodes' reports.
    pub poll_ms: u64,
    /// How long every node of a step's regions has to report the candidate loaded.
    pub load_timeout_ms: u64,
    /// How long a node may report `candidate_error` before the step fails.
    pub load_error_grace_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing { poll_ms: 5_000, load_timeout_ms: 300_000, load_error_grace_ms: 60_000 }
    }
}

/// One line of the rollout's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    /// 0-based step, when the entry belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub what: String,
    /// The window and judgements that led to a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<Check>,
}

/// The latest look at the nodes during a bake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub at: String,
    pub step: usize,
    pub window: Window,
    pub judgements: Vec<Judgement>,
}

/// `<prefix>rollouts/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The candidate version.
    pub version: String,
    /// Each region's serving version when the rollout started; it serves on rollback.
    pub serving: BTreeMap<String, String>,
    /// The plan, in `--plan` syntax.
    pub plan: String,
    /// `--hold`: the one step never ends by itself.
    pub hold: bool,
    pub guards: GuardSettings,
    pub timing: Timing,
    pub phase: Phase,
    /// 0-based index of the current step.
    pub step: usize,
    pub stage: Stage,
    /// Unix milliseconds when the current step's bake began (its baseline was read).
    #[serde(default)]
    pub bake_started_ms: Option<i64>,
    /// Each node's report (by URL) when the bake began: windows are measured from here.
    #[serde(default)]
    pub baseline: BTreeMap<String, NodeReport>,
    #[serde(default)]
    pub last_check: Option<Check>,
    /// Why it ended: the guard and its figures, the failed step, the plan completed, or the
    /// operator's reason.
    #[serde(default)]
    pub reason: Option<String>,
    pub history: Vec<Entry>,
    pub started_at: String,
    pub updated_at: String,
}

impl Record {
    pub fn note(&mut self, step: Option<usize>, what: impl Into<String>, figures: Option<Check>) {
        let what = what.into();
        tracing::info!(rollout = %self.id, step = ?step.map(|s| s + 1), "{what}");
        self.history.push(Entry { at: now_text(), step, what, figures });
    }

    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }
}

pub fn now_text() -> String {
    manifest::rfc3339(manifest::now_unix())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read or write the rollout record in the primary bucket")]
    Store(#[from] StoreError),
    #[error("{key} in the primary bucket is not a valid rollout record")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no rollout {0:?} in the primary bucket")]
    NotFound(String),
    #[error("no rollout is active (give an id to read an ended one)")]
    NoneActive,
}

#[derive(Serialize, Deserialize)]
struct Active {
    id: String,
}

/// Write `r` (stamping `updated_at`).
pub async fn save(primary: &Bucket, r: &mut Record) -> Result<(), StateError> {
    r.updated_at = now_text();
    let mut bytes = serde_json::to_vec_pretty(r)
        .map_err(|source| StateError::Corrupt { key: record_key(primary.prefix(), &r.id), source })?;
    bytes.push(b'\n');
    primary.put_bytes(&record_key(primary.prefix(), &r.id), bytes.into()).await?;
    Ok(())
}

pub async fn load(primary: &Bucket, id: &str) -> Result<Record, StateError> {
    let key = record_key(primary.prefix(), id);
    let bytes = primary.get(&key).await?.ok_or_else(|| StateError::NotFound(id.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { key, source })
}

/// The id `active.json` names, if any.
pub async fn active(primary: &Bucket) -> Result<Option<String>, StateError> {
    let key = active_key(primary.prefix());
    let Some(bytes) = primary.get(&key).await? else { return Ok(None) };
    let a: Active = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { key, source })?;
    Ok(Some(a.id))
}

pub async fn set_active(primary: &Bucket, id: &str) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(&Active { id: id.to_string() }).unwrap_or_default();
    primary.put_bytes(&active_key(primary.prefix()), bytes.into()).await?;
    Ok(())
}

/// Forget the active rollout if it is `id`.
pub async fn clear_active(primary: &Bucket, id: &str) -> Result<(), StateError> {
    if active(primary).await.ok().flatten().as_deref() == Some(id) {
        primary.delete(&[active_key(primary.prefix())]).await?;
    }
    Ok(())
}

/// `id`, or the active rollout's.
pub async fn load_or_active(primary: &Bucket, id: Option<&str>) -> Result<Record, StateError> {
    match id {
        Some(id) => load(primary, id).await,
        None => load(primary, &active(primary).await?.ok_or(StateError::NoneActive)?).await,
    }
}
