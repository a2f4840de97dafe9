//! What a scenario run is given ([`Setup`], resolved by the CLI), and how it fails.

use std::path::PathBuf;
use std::time::Duration;

use cluster_config::{AdminToken, ClusterConfig};

use super::judge::Criteria;
use crate::cluster::{Cluster, ClusterError};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::run::RunError;
use crate::users::Sampler;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    /// SIGKILL a region's node at 10 s, restart it at 20 s.
    Failover,
    /// SIGSTOP a region's node at 10 s, SIGCONT at 20 s.
    Hang,
    /// Publish a new model at 10 s; every region must be on it within two poll intervals.
    HotSwap,
    /// SIGKILL a region's Redis at 10 s, restart it at 20 s.
    RedisDown,
    /// Drain a region through the router's POST /failover at 10 s, restore it at 20 s.
    Drain,
    /// Shoppers while `model-sync rollout` takes a bad, an erroring, a slow and a good
    /// candidate through a plan: the first three rolled back, the good one promoted.
    Rollout,
}

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Failover => "failover",
            Name::Hang => "hang",
            Name::HotSwap => "hot-swap",
            Name::RedisDown => "redis-down",
            Name::Drain => "drain",
            Name::Rollout => "rollout",
        }
    }
}

/// Everything a scenario run needs, resolved by the CLI.
#[derive(Debug)]
pub struct Setup {
    pub name: Name,
    /// The region broken (all scenarios but hot-swap).
    pub region: String,
    pub cluster: Cluster,
    pub config: ClusterConfig,
    pub config_path: PathBuf,
    /// The model-sync binary (hot-swap).
    pub model_sync: PathBuf,
    /// The router's admin token (drain).
    pub admin_token: Option<AdminToken>,
    pub plan: Plan,
    pub users: Sampler,
    pub criteria: Criteria,
    pub progress: Progress,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("a scenario needs --duration of at least {}s (the event window ends there)", .0.as_secs())]
    TooShort(Duration),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot prepare the scenario: {0}")]
    Prepare(String),
    #[error("load failed")]
    Load(#[from] RunError),
    #[error("the load task failed: {0}")]
    LoadTask(String),
    #[error("interrupted (the event was undone)")]
    Interrupted,
}
