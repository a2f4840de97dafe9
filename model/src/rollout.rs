//! Rolling out a model version: the contract between `model-sync rollout` (the controller),
//! the region nodes and whoever reads their figures.
//!
//! - A region's pointer ([`crate::manifest::Pointer`]) may name a [`Candidate`] beside the
//!   serving version, with a [`Mode`] and a traffic share. Pointers without one (written by
//!   older builds) mean "no rollout"; older nodes ignore the field.
//! - In [`Mode::Split`], a user's [`Arm`] is a pure function of (user id, rollout id, share)
//!   ([`arm_for`]): every node of every region puts a user in the same arm, across restarts,
//!   for the whole rollout, and raising the share only moves users from stable to candidate.
//! - In [`Mode::Shadow`], every answer comes from the serving version; `share` of requests
//!   are also computed on the candidate off the response path and compared.
//! - Each node reports what it measured per resident version as a [`NodeReport`]
//!   (`GET /rollout/metrics`): cumulative counters since the version was loaded on that node,
//!   so a reader takes the difference of two reports to see one window.

use serde::{Deserialize, Serialize};

/// How a candidate takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answers come from the serving version; a sampled share is also computed on the
    /// candidate and compared, never returned.
    Shadow,
    /// A sticky share of users is answered by the candidate.
    Split,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shadow => "shadow",
            Mode::Split => "split",
        }
    }
}

/// Which version answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Stable,
    Candidate,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Candidate => "candidate",
        }
    }
}

/// A version under rollout in one region, named by that region's pointer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The candidate model version (published and verified in the region's bucket).
    pub version: String,
    pub mode: Mode,
    /// 0..=1: in `split` the share of users answered by the candidate, in `shadow` the share
    /// of requests also computed on it.
    pub share: f64,
    /// Names the rollout; part of the arm hash, so a new rollout reshuffles users.
    pub rollout_id: String,
}

/// Why a candidate cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CandidateError {
    #[error("candidate share {0} is not within 0..=1")]
    Share(f64),
    #[error("candidate version {0:?} is not a valid model version")]
    Version(String),
    #[error("rollout id {0:?} must be 1-64 characters of [A-Za-z0-9._-]")]
    RolloutId(String),
    #[error("the candidate {0} is the serving version")]
    SameAsServing(String),
}

impl Candidate {
    /// Checks what a node relies on; `serving` is the pointer's version.
    pub fn check(&self, serving: &str) -> Result<(), CandidateError> {
        if !(0.0..=1.0).contains(&self.share) {
            return Err(CandidateError::Share(self.share));
        }
        if !crate::names::valid_version(&self.version) {
            return Err(CandidateError::Version(self.version.clone()));
        }
        if !crate::names::valid_version(&self.rollout_id) {
            return Err(CandidateError::RolloutId(self.rollout_id.clone()));
        }
        if self.version == serving {
            return Err(CandidateError::SameAsServing(self.version.clone()));
        }
        Ok(())
    }

    /// The arm that answers `user_id`: the candidate in `split` mode for users whose hash
    /// falls under the share, else the serving version.
    pub fn arm(&self, user_id: &str) -> Arm {
        match self.mode {
            Mode::Split => arm_for(user_id, &self.rollout_id, self.share),
            Mode::Shadow => Arm::Stable,
        }
    }
}

/// Where `user_id` falls in the rollout `rollout_id`, uniformly in [0, 1): FNV-1a (64 bit)
/// of `rollout_id`, a 0 byte and `user_id`, then a murmur3 finaliser so that ids differing
/// in their last byte spread over the whole range. Stable across builds and platforms.
pub fn position(user_id: &str, rollout_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in rollout_id.as_bytes().iter().chain(&[0u8]).chain(user_id.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm of `user_id` in a split of `share` (0..=1) for `rollout_id`.
pub fn arm_for(user_id: &str, rollout_id: &str, share: f64) -> Arm {
    if position(user_id, rollout_id) < share {
        Arm::Candidate
    } else {
        Arm::Stable
    }
}

/// Upper bounds (seconds) of the latency histograms nodes report; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0,
];

/// A cumulative latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Latency {
    /// Per bucket (not cumulative), `LATENCY_BUCKETS.len() + 1` entries, the last one over
    /// the largest bound.
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
}

impl Latency {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `self - earlier`, bucket by bucket (saturating: a restarted node starts again at 0).
    pub fn since(&self, earlier: &Latency) -> Latency {
        let counts = (0..self.counts.len())
            .map(|i| self.counts[i].saturating_sub(earlier.counts.get(i).copied().unwrap_or(0)))
            .collect();
        Latency { counts, sum_seconds: (self.sum_seconds - earlier.sum_seconds).max(0.0) }
    }

    pub fn add(&mut self, other: &Latency) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_seconds += other.sum_seconds;
    }

    /// The upper bound of the bucket holding quantile `q` (seconds); `None` without
    /// observations, infinity when it falls in the last bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// What one node measured for one resident version, cumulative since it was loaded there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionReport {
    pub version: String,
    /// Answers given by this version (`POST /recommendations` and its FastAPI form).
    pub requests: u64,
    /// Distinct users answered by this version in this region (HyperLogLog in the region's
    /// Redis, so about 1% off; every node of a region reports the same figure).
    pub users: u64,
    /// Requests this version failed (an internal error while computing).
    pub errors: u64,
    pub latency: Latency,
    /// Answers by strategy (`user-knn`, `user-knn-live`, `popular`).
    pub strategies: std::collections::BTreeMap<String, u64>,
    /// Events on an item this version recommended to that user within the attribution window,
    /// by event type (`view`, `add_to_cart`, `purchase`).
    pub conversions: std::collections::BTreeMap<String, u64>,
    /// Items this version recommended (the sum of its answers' lengths).
    #[serde(default)]
    pub impressions: u64,
    /// Of those, items the user then acted on within the window, each counted once (at its
    /// first event): `converted / impressions` is a proportion, unlike conversions per answer.
    #[serde(default)]
    pub converted: u64,
    /// Time of this version's model computations alone (answers not found in the cache):
    /// comparable between versions whose caches are not equally warm.
    #[serde(default)]
    pub compute_latency: Latency,
}

/// A candidate computed beside the serving version in shadow mode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShadowReport {
    /// Requests computed on the candidate.
    pub computed: u64,
    /// Sampled requests not computed because the shadow work was already at its limit.
    pub skipped: u64,
    pub errors: u64,
    pub latency: Latency,
    /// Sum over computed requests of |served top 10 ∩ candidate top 10| / min(10, served
    /// length); the mean overlap@10 is `overlap_sum / computed`.
    pub overlap_sum: f64,
}

/// `GET /rollout/metrics` on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeReport {
    pub region: String,
    /// Changes when the node restarts: counters then start again from 0.
    pub instance: String,
    /// RFC 3339.
    pub at: String,
    /// The serving version; null before the first load.
    pub stable: Option<VersionReport>,
    /// The candidate the pointer names, once loaded and verified here.
    pub candidate: Option<CandidateReport>,
    /// The pointer's candidate could not be loaded here (the error), so the stable version
    /// answers everyone.
    pub candidate_error: Option<String>,
    /// Conversion attribution window (seconds).
    pub attribution_window_s: u64,
    /// [`LATENCY_BUCKETS`], so readers that do not link this crate can read the histograms.
    #[serde(default)]
    pub latency_buckets_s: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CandidateReport {
    pub rollout_id: String,
    pub mode: Mode,
    pub share: f64,
    pub figures: VersionReport,
    pub shadow: ShadowReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_are_stable_and_near_the_share() {
        let users: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        for share in [0.0, 0.05, 0.25, 0.5, 1.0] {
            let n = users.iter().filter(|u| arm_for(u, "r1", share) == Arm::Candidate).count();
            let got = n as f64 / users.len() as f64;
            assert!((got - share).abs() < 0.01, "share {share}: {got}");
        }
        // Raising the share only moves users into the candidate arm.
        for u in &users {
            if arm_for(u, "r1", 0.05) == Arm::Candidate {
                assert_eq!(arm_for(u, "r1", 0.25), Arm::Candidate, "{u}");
            }
        }
        // A fixed point, so a change of hash is noticed (nodes of two builds would disagree).
        assert_eq!(format!("{:.6}", position("42", "20261207T000000Z-rollout")), "0.611418");
        // Another rollout reshuffles.
        let same = users.iter().filter(|u| arm_for(u, "r1", 0.5) == arm_for(u, "r2", 0.5)).count();
        assert!((same as f64 / users.len() as f64 - 0.5).abs() < 0.02, "{same}");
    }

    #[test]
    fn candidates_are_checked() {
        let c = Candidate { version: "v2".into(), mode: Mode::Split, share: 0.25, rollout_id: "r".into() };
        assert_eq!(c.check("v1"), Ok(()));
        assert!(matches!(c.check("v2"), Err(CandidateError::SameAsServing(_))));
        assert!(matches!(Candidate { share: 1.5, ..c.clone() }.check("v1"), Err(CandidateError::Share(_))));
        assert!(matches!(
            Candidate { share: f64::NAN, ..c.clone() }.check("v1"),
            Err(CandidateError::Share(_))
        ));
        assert!(Candidate { rollout_id: "a b".into(), ..c.clone() }.check("v1").is_err());
        let shadow = Candidate { mode: Mode::Shadow, share: 1.0, ..c };
        assert_eq!(shadow.arm("anyone"), Arm::Stable);
    }

    #[test]
    fn latency_quantiles_and_windows() {
        let mut l = Latency { counts: vec![0; LATENCY_BUCKETS.len() + 1], sum_seconds: 0.0 };
        l.counts[3] = 98; // <= 1 ms
        l.counts[8] = 2; // <= 10 ms
        assert_eq!(l.quantile(0.5), Some(0.001));
        assert_eq!(l.quantile(0.99), Some(0.01));
        let earlier = Latency { counts: vec![0, 0, 0, 90], sum_seconds: 0.0 };
        let w = l.since(&earlier);
        assert_eq!(w.total(), 10);
        assert_eq!((w.quantile(0.5), w.quantile(0.9)), (Some(0.001), Some(0.01)));
        assert_eq!(Latency::default().quantile(0.99), None);
    }
}
