//! What a shop run does: where it sends, how fast, for how long, how shoppers act. Built by
//! the CLI, read by [`crate::shop::engine`]; no I/O here.

use std::time::Duration;

use crate::plan::Bound;

/// Everything a shop run needs besides the shoppers.
#[derive(Debug, Clone)]
pub struct ShopPlan {
    /// Base URL of a router or region node.
    pub target: String,
    /// Sessions started per second.
    pub rate: f64,
    /// `duration` and/or `requests` (sessions, one recommendation request each).
    pub bound: Bound,
    pub max_in_flight: usize,
    /// Per-call deadline.
    pub timeout: Duration,
    /// Recommendations asked for per session.
    pub count: u32,
    /// Chance of an event on each recommended item of the shopper's taste.
    pub p_match: f64,
    /// Chance, per session, of one event on a random item of the model.
    pub p_noise: f64,
    /// Seeds shopper choice and every draw of every session.
    pub seed: u64,
    /// `X-Region-Hint` on every call, and `region` of every event.
    pub region: Option<String>,
    /// Instead of `region`: each shopper's home region, one of these chosen by a hash of the
    /// user id, so a user keeps to one region as real users do.
    pub homes: Vec<String>,
}

impl ShopPlan {
    pub fn validate(&self) -> Result<(), PlanError> {
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            return Err(PlanError::Target(self.target.clone()));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(PlanError::Rate(self.rate));
        }
        for (name, value) in [("--p-match", self.p_match), ("--p-noise", self.p_noise)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(PlanError::Probability { name, value });
            }
        }
        if self.max_in_flight == 0 {
            return Err(PlanError::MaxInFlight);
        }
        if self.bound.requests == Some(0) {
            return Err(PlanError::Sessions);
        }
        if self.region.is_some() && !self.homes.is_empty() {
            return Err(PlanError::RegionAndHomes);
        }
        if self.homes.iter().any(String::is_empty) {
            return Err(PlanError::EmptyHome);
        }
        Ok(())
    }

    /// The region `user_id` shops in: `region`, else its home among `homes`, else none (the
    /// router chooses).
    pub fn region_of(&self, user_id: &str) -> Option<&str> {
        if let Some(r) = &self.region {
            return Some(r);
        }
        if self.homes.is_empty() {
            return None;
        }
        // FNV-1a: stable across runs and builds, unlike the std hasher.
        let h = user_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Some(&self.homes[(h % self.homes.len() as u64) as usize])
    }
}

/// Why a plan cannot run; names the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{name} {value} must be a probability within 0..=1")]
    Probability { name: &'static str, value: f64 },
    #[error("--rate {0} must be a positive number of sessions per second")]
    Rate(f64),
    #[error("--max-in-flight must be at least 1")]
    MaxInFlight,
    #[error("--sessions must be at least 1")]
    Sessions,
    #[error("invalid --target {0:?}: expected http://host:port")]
    Target(String),
    #[error("--region and --homes exclude each other")]
    RegionAndHomes,
    #[error("--homes names an empty region")]
    EmptyHome,
}
