//! What a rollout scenario runs: its candidates ([`Case`]) and its setup ([`RolloutSetup`]),
//! resolved by the CLI and read by every step of the scenario.

use std::path::PathBuf;
use std::time::Duration;

use cluster_config::ClusterConfig;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;

/// A candidate of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    Bad,
    Errors,
    Slow,
    Good,
}

impl Case {
    pub const ALL: [Case; 4] = [Case::Bad, Case::Errors, Case::Slow, Case::Good];

    pub fn as_str(self) -> &'static str {
        match self {
            Case::Bad => "bad",
            Case::Errors => "errors",
            Case::Slow => "slow",
            Case::Good => "good",
        }
    }

    /// The fault nodes inject into this candidate's version (`GEOREC_INJECT_FAULT`).
    pub fn fault(self) -> Option<&'static str> {
        match self {
            Case::Errors => Some("error=0.3"),
            Case::Slow => Some("delay_ms=60"),
            Case::Bad | Case::Good => None,
        }
    }
}

/// Everything a rollout scenario needs, resolved by the CLI.
#[derive(Debug, Clone)]
pub struct RolloutSetup {
    pub cluster: Cluster,
    pub config: ClusterConfig,
    pub config_path: PathBuf,
    pub model_sync: PathBuf,
    /// Where shoppers send (the router).
    pub target: String,
    /// Shopping sessions started per second.
    pub rate: f64,
    /// The rollout plan every candidate walks.
    pub plan: String,
    /// Controller flags added to `rollout start` (guards, poll interval).
    pub controller_args: Vec<String>,
    /// Load with no candidate before the first rollout and between rollouts.
    pub gap: Duration,
    pub cases: Vec<Case>,
    pub seed: u64,
    pub p_match: f64,
    pub p_noise: f64,
    pub out: PathBuf,
}

impl RolloutSetup {
    /// The default plan for `regions` (sorted): shadow in the first, 10% in the first two,
    /// 50% everywhere, 100% everywhere.
    pub fn default_plan(regions: &[String]) -> String {
        let a = regions.first().cloned().unwrap_or_else(|| "all".into());
        let ab = if regions.len() > 1 { format!("{a}+{}", regions[1]) } else { a.clone() };
        format!("shadow@{a}:20s,10%@{ab}:45s,50%@all:30s,100%@all:15s")
    }

    /// The controller flags the scenario uses unless told otherwise: a 2 s poll; the guards'
    /// defaults.
    pub fn default_controller_args() -> Vec<String> {
        ["--poll-interval", "2s", "--load-timeout", "120s"].map(str::to_string).to_vec()
    }
}
