//! A region's model versions over the last minutes, from its nodes' `GET /rollout/metrics`:
//! what `/regions` and the status page show of a rollout (serving version, candidate, mode,
//! share, and per version the request rate, p99 and conversion rate over time).
//!
//! The router reads only the fields it shows (the node's contract is `model::rollout` in the
//! model crate, which the router does not link). Node figures are cumulative since the node
//! loaded the version; one point is the difference of two samples, summed over the region's
//! nodes. A node that restarted (another `instance`) or reloaded a version starts again at 0,
//! so its first sample after that only sets the baseline.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How much history is kept.
pub const WINDOW_MS: u64 = 15 * 60 * 1000;

/// The subset of a node's `GET /rollout/metrics` the router reads.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeReport {
    pub instance: String,
    #[serde(default)]
    pub stable: Option<VersionFigures>,
    #[serde(default)]
    pub candidate: Option<CandidateFigures>,
    #[serde(default)]
    pub candidate_error: Option<String>,
    /// Upper bounds (seconds) of the latency buckets; the last bucket is over the last bound.
    #[serde(default)]
    pub latency_buckets_s: Vec<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionFigures {
    pub version: String,
    pub requests: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub latency: LatencyFigures,
    #[serde(default)]
    pub conversions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatencyFigures {
    #[serde(default)]
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CandidateFigures {
    pub rollout_id: String,
    pub mode: String,
    pub share: f64,
    pub figures: VersionFigures,
}

/// The rollout a region's nodes report.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RegionCandidate)]
pub struct CandidateView {
    pub version: String,
    /// `shadow` or `split`.
    pub mode: String,
    pub share: f64,
    pub rollout_id: String,
}

/// One version in one interval, summed over the region's nodes.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = VersionPoint)]
pub struct VersionPoint {
    pub version: String,
    /// `stable` or `candidate`.
    pub arm: String,
    pub requests: u64,
    pub errors: u64,
    pub conversions: u64,
    pub rps: f64,
    /// Upper bound of the bucket holding the 99th percentile; null without requests.
    #[schema(required = true)]
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = SeriesPoint)]
pub struct Point {
    /// End of the interval.
    pub at_unix_ms: u64,
    pub versions: Vec<VersionPoint>,
}

/// A version's totals over the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = VersionTotals)]
pub struct VersionTotals {
    pub version: String,
    pub arm: String,
    pub requests: u64,
    pub errors: u64,
    pub conversions: u64,
    /// Conversions per answer; null without answers.
    #[schema(required = true)]
    pub conversion_rate: Option<f64>,
}

/// What `/regions` shows of a region's versions.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = RegionRollout)]
pub struct RolloutView {
    /// The serving version the nodes report; null before the first sample.
    #[schema(required = true)]
    pub serving: Option<String>,
    #[schema(required = true)]
    pub candidate: Option<CandidateView>,
    /// Why a node could not load the pointer's candidate.
    #[schema(required = true)]
    pub candidate_error: Option<String>,
    /// Per version over the window, stable first.
    pub versions: Vec<VersionTotals>,
    /// Oldest first, one point per sample.
    pub series: Vec<Point>,
    pub window_ms: u64,
}

#[derive(Debug, Clone)]
struct Cumulative {
    instance: String,
    version: String,
    arm: &'static str,
    requests: u64,
    errors: u64,
    conversions: u64,
    latency: Vec<u64>,
}

/// A region's samples; one per region, updated by its sampler.
#[derive(Debug, Default)]
pub struct Series {
    /// Per node: the last figures per version.
    last: Vec<Vec<Cumulative>>,
    points: VecDeque<Point>,
    current: Option<(Option<String>, Option<CandidateView>, Option<String>)>,
    buckets: Vec<f64>,
}

fn cumulative(instance: &str, arm: &'static str, v: &VersionFigures) -> Cumulative {
    Cumulative {
        instance: instance.to_string(),
        version: v.version.clone(),
        arm,
        requests: v.requests,
        errors: v.errors,
        conversions: v.conversions.values().sum(),
        latency: v.latency.counts.clone(),
    }
}

impl Series {
    /// One sample of every node of the region (`None`: the node did not answer), taken at
    /// `now_ms`.
    pub fn record(&mut self, reports: &[Option<NodeReport>], now_ms: u64) {
        self.last.resize_with(reports.len(), Vec::new);
        let mut sums: Vec<Cumulative> = Vec::new();
        // What the region serves: as its first answering node says.
        if let Some(r) = reports.iter().flatten().next() {
            self.current = Some((
                r.stable.as_ref().map(|s| s.version.clone()),
                r.candidate.as_ref().map(|c| CandidateView {
                    version: c.figures.version.clone(),
                    mode: c.mode.clone(),
                    share: c.share,
                    rollout_id: c.rollout_id.clone(),
                }),
                r.candidate_error.clone(),
            ));
        }
        for (node, report) in reports.iter().enumerate() {
            let Some(r) = report else { continue };
            if !r.latency_buckets_s.is_empty() {
                self.buckets = r.latency_buckets_s.clone();
            }
            let now: Vec<Cumulative> = r
                .stable
                .iter()
                .map(|s| cumulative(&r.instance, "stable", s))
                .chain(r.candidate.iter().map(|c| cumulative(&r.instance, "candidate", &c.figures)))
                .collect();
            for c in &now {
                let before =
                    self.last[node].iter().find(|b| b.version == c.version && b.instance == c.instance);
                // No baseline, or counters went back (a reload): this sample only sets one.
                let Some(b) = before.filter(|b| b.requests <= c.requests) else { continue };
                let latency = c
                    .latency
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.saturating_sub(b.latency.get(i).copied().unwrap_or(0)))
                    .collect::<Vec<_>>();
                // A difference of two samples, in the shape of a sample.
                let delta = Cumulative {
                    instance: String::new(),
                    version: c.version.clone(),
                    arm: c.arm,
                    requests: c.requests - b.requests,
                    errors: c.errors.saturating_sub(b.errors),
                    conversions: c.conversions.saturating_sub(b.conversions),
                    latency,
                };
                match sums.iter_mut().find(|s| s.version == c.version) {
                    Some(s) => {
                        s.requests += delta.requests;
                        s.errors += delta.errors;
                        s.conversions += delta.conversions;
                        if s.latency.len() < delta.latency.len() {
                            s.latency.resize(delta.latency.len(), 0);
                        }
                        for (a, n) in s.latency.iter_mut().zip(&delta.latency) {
                            *a += n;
                        }
                    }
                    None => sums.push(delta),
                }
            }
            self.last[node] = now;
        }
        let since = self.points.back().map(|p| p.at_unix_ms);
        let seconds = since.map(|s| now_ms.saturating_sub(s) as f64 / 1000.0).filter(|s| *s > 0.0);
        let versions = sums
            .into_iter()
            .map(|c| VersionPoint {
                rps: seconds.map_or(0.0, |s| c.requests as f64 / s),
                p99_ms: quantile(&c.latency, &self.buckets, 0.99).map(|s| s * 1000.0),
                version: c.version,
                arm: c.arm.to_string(),
                requests: c.requests,
                errors: c.errors,
                conversions: c.conversions,
            })
            .collect();
        self.points.push_back(Point { at_unix_ms: now_ms, versions });
        while self.points.front().is_some_and(|p| p.at_unix_ms + WINDOW_MS < now_ms) {
            self.points.pop_front();
        }
    }

    pub fn view(&self) -> RolloutView {
        let mut versions: Vec<VersionTotals> = Vec::new();
        for v in self.points.iter().flat_map(|p| &p.versions) {
            match versions.iter_mut().find(|t| t.version == v.version) {
                Some(t) => {
                    t.requests += v.requests;
                    t.errors += v.errors;
                    t.conversions += v.conversions;
                    t.arm.clone_from(&v.arm);
                }
                None => versions.push(VersionTotals {
                    version: v.version.clone(),
                    arm: v.arm.clone(),
                    requests: v.requests,
                    errors: v.errors,
                    conversions: v.conversions,
                    conversion_rate: None,
                }),
            }
        }
        for t in &mut versions {
            t.conversion_rate = (t.requests > 0).then(|| t.conversions as f64 / t.requests as f64);
        }
        versions.sort_by_key(|t| t.arm != "stable");
        let (serving, candidate, candidate_error) = self.current.clone().unwrap_or_default();
        RolloutView {
            serving,
            candidate,
            candidate_error,
            versions,
            series: self.points.iter().cloned().collect(),
            window_ms: WINDOW_MS,
        }
    }
}

/// The upper bound of the bucket holding quantile `q` (seconds): `None` without
/// observations, the last bound when it falls past it.
fn quantile(counts: &[u64], bounds: &[f64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || bounds.is_empty() {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(bounds.get(i).or(bounds.last()).copied().unwrap_or(0.0));
        }
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, stable: (&str, u64, u64), candidate: Option<(&str, u64, u64)>) -> NodeReport {
        let figures = |(version, requests, conversions): (&str, u64, u64)| VersionFigures {
            version: version.into(),
            requests,
            errors: 0,
            latency: LatencyFigures { counts: vec![0, requests, 0] },
            conversions: BTreeMap::from([("purchase".to_string(), conversions)]),
        };
        NodeReport {
            instance: instance.into(),
            stable: Some(figures(stable)),
            candidate: candidate.map(|c| CandidateFigures {
                rollout_id: "r".into(),
                mode: "split".into(),
                share: 0.25,
                figures: figures(c),
            }),
            candidate_error: None,
            latency_buckets_s: vec![0.001, 0.002],
        }
    }

    #[test]
    fn points_are_differences_summed_over_nodes_and_restarts_reset_the_baseline() {
        let mut s = Series::default();
        s.record(&[Some(report("a", ("v1", 100, 5), Some(("v2", 10, 1)))), None], 0);
        s.record(
            &[Some(report("a", ("v1", 200, 9), Some(("v2", 40, 4)))), Some(report("b", ("v1", 50, 0), None))],
            10_000,
        );
        // Node b restarted: its counters start again and only set a baseline.
        s.record(
            &[Some(report("a", ("v1", 300, 10), Some(("v2", 70, 7)))), Some(report("c", ("v1", 5, 0), None))],
            20_000,
        );
        let v = s.view();
        let cand = v.candidate.as_ref().expect("candidate");
        assert_eq!(
            (v.serving.as_deref(), cand.version.as_str(), cand.mode.as_str()),
            (Some("v1"), "v2", "split")
        );
        let p = &v.series[1];
        let stable = p.versions.iter().find(|x| x.version == "v1").expect("v1");
        assert_eq!((stable.requests, stable.conversions, stable.rps), (100, 4, 10.0));
        assert_eq!(stable.p99_ms, Some(2.0));
        let totals: Vec<(&str, &str, u64, u64)> = v
            .versions
            .iter()
            .map(|t| (t.version.as_str(), t.arm.as_str(), t.requests, t.conversions))
            .collect();
        assert_eq!(totals, [("v1", "stable", 200, 5), ("v2", "candidate", 60, 6)]);
        assert_eq!(v.versions[1].conversion_rate, Some(0.1));
    }

    #[test]
    fn points_older_than_the_window_leave() {
        let mut s = Series::default();
        for i in 0..5 {
            s.record(&[Some(report("a", ("v1", i * 10, 0), None))], i * WINDOW_MS / 2);
        }
        assert_eq!(s.view().series.len(), 3);
    }
}
