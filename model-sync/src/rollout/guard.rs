//! Guards: is the candidate doing worse than the stable version in this window?
//!
//! - **errors**: candidate errors / requests <= stable errors / requests + `error_margin`
//!   (in shadow mode: shadow errors / shadow computations), once the candidate has
//!   `min_requests`.
//! - **latency**: candidate p99 <= `latency_factor` x stable p99 + `latency_allowance_ms`
//!   (the allowance absorbs the histogram's bucket granularity; in shadow mode the shadow
//!   latency), once the candidate has `min_requests`.
//! - **conversions** (split mode only): a one-sided two-proportion z-test, pooled standard
//!   error, normal approximation, of H0 "candidate rate >= stable rate - margin". Rate =
//!   conversions of the configured event types / requests, capped at 1. With pooled
//!   p = (x_c + x_s) / (n_c + n_s) and se = sqrt(p (1 - p) (1/n_c + 1/n_s)),
//!   z = (p_c - p_s + margin) / se; the guard fails when z < -z_alpha. It runs only once each
//!   arm has `conversion_min_requests` requests (items, when counted per item) and each arm
//!   would have `conversion_min_conversions` conversions at the pooled rate (the normal
//!   approximation's condition; a candidate that converts nothing is judged as soon as the
//!   stable arm gives enough to compare with).
//!
//!   The controller looks at every poll, and a test repeated at every look would roll back a
//!   candidate that is as good as the stable far more often than 1 - confidence. So the
//!   confidence holds for the whole step: with `looks` = bake / poll interval planned looks,
//!   each look tests at 1 - (1 - confidence) / looks (Bonferroni); at 95% with 20 looks,
//!   z_alpha = 2.81 instead of 1.645. A clearly worse candidate still fails at its first look.

use std::collections::BTreeMap;
use std::time::Duration;

use model::rollout::{Latency, Mode};
use serde::{Deserialize, Serialize};

/// Thresholds, recorded with the rollout so a resumed controller judges alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardSettings {
    /// Absolute error rate the candidate may exceed the stable one by.
    pub error_margin: f64,
    /// Candidate p99 may be at most this multiple of the stable p99 ...
    pub latency_factor: f64,
    /// ... plus this many milliseconds (bucket granularity).
    pub latency_allowance_ms: f64,
    /// Candidate requests (shadow: computations) before errors and latency are judged.
    pub min_requests: u64,
    /// Absolute conversion rate the candidate may lose.
    pub conversion_margin: f64,
    /// One-sided confidence of the conversion test (0.5..1).
    pub confidence: f64,
    /// Requests each arm needs before the conversion test runs.
    pub conversion_min_requests: u64,
    /// Conversions each arm needs before the conversion test runs.
    pub conversion_min_conversions: u64,
    /// Event types that count as conversions; empty: every type.
    pub conversion_events: Vec<String>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            error_margin: 0.01,
            latency_factor: 1.5,
            latency_allowance_ms: 2.0,
            min_requests: 200,
            conversion_margin: 0.005,
            confidence: 0.95,
            conversion_min_requests: 1000,
            conversion_min_conversions: 30,
            conversion_events: Vec::new(),
        }
    }
}

/// What one arm did in a window, summed over nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    pub requests: u64,
    pub users: u64,
    pub errors: u64,
    pub latency: Latency,
    pub conversions: BTreeMap<String, u64>,
    /// Items recommended, and of those the ones acted on (each once): see
    /// `model::rollout::VersionReport`.
    #[serde(default)]
    pub impressions: u64,
    #[serde(default)]
    pub converted_items: u64,
    /// Model computations alone (cache misses).
    #[serde(default)]
    pub compute_latency: Latency,
}

impl ArmFigures {
    /// Conversions of the counted types.
    pub fn converted(&self, events: &[String]) -> u64 {
        self.conversions.iter().filter(|(t, _)| events.is_empty() || events.contains(t)).map(|(_, n)| n).sum()
    }

    /// Conversions of the counted types per request, capped at 1.
    pub fn conversion_rate(&self, events: &[String]) -> f64 {
        ratio(self.converted(events), self.requests).min(1.0)
    }

    /// Failed / attempted: a node counts a request a version answered in `requests` and one
    /// it failed (the stable version answering instead) in `errors`.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests + self.errors)
    }
}

/// Shadow computations in a window, summed over nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShadowFigures {
    pub computed: u64,
    pub skipped: u64,
    pub errors: u64,
    pub latency: Latency,
    pub overlap_sum: f64,
}

/// Both arms over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub stable: ArmFigures,
    pub candidate: ArmFigures,
    pub shadow: ShadowFigures,
    /// Nodes whose reports are in the window.
    pub nodes: usize,
    /// Nodes that could not be read at this poll (their last report counts).
    pub unreachable: Vec<String>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guard {
    Errors,
    Latency,
    Conversions,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Errors => "errors",
            Guard::Latency => "latency",
            Guard::Conversions => "conversions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not enough data yet.
    Waiting,
    Pass,
    Fail,
}

/// One guard's judgement, with the figures behind it in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub guard: Guard,
    pub status: Status,
    pub detail: String,
}

impl Judgement {
    fn new(guard: Guard, status: Status, detail: String) -> Judgement {
        Judgement { guard, status, detail }
    }
}

/// Every guard that applies to `mode`, judged on `w`, at one of `looks` planned looks at the
/// step (see the module doc).
pub fn judge(mode: Mode, w: &Window, s: &GuardSettings, looks: u64) -> Vec<Judgement> {
    let mut out = vec![errors(mode, w, s), latency(mode, w, s)];
    if mode == Mode::Split {
        out.push(conversions(w, s, looks));
    }
    out
}

/// Planned looks at a step: one per poll over its bake time, at least one.
pub fn looks(bake: Duration, poll: Duration) -> u64 {
    if poll.is_zero() {
        return 1;
    }
    (bake.as_millis().div_ceil(poll.as_millis())).clamp(1, u128::from(u32::MAX)) as u64
}

fn errors(mode: Mode, w: &Window, s: &GuardSettings) -> Judgement {
    // Attempts: answered (computed) plus failed, which nodes count apart.
    let (what, n, e) = match mode {
        Mode::Split => ("candidate", w.candidate.requests + w.candidate.errors, w.candidate.errors),
        Mode::Shadow => ("shadow", w.shadow.computed + w.shadow.errors, w.shadow.errors),
    };
    if n < s.min_requests {
        let detail = format!("{n} {what} requests of the {} needed", s.min_requests);
        return Judgement::new(Guard::Errors, Status::Waiting, detail);
    }
    let (rate, stable) = (ratio(e, n), w.stable.error_rate());
    let limit = stable + s.error_margin;
    let detail = format!(
        "{what} error rate {rate:.4} ({e}/{n}) vs stable {stable:.4} ({}/{}) + margin {} = {limit:.4}",
        w.stable.errors,
        w.stable.requests + w.stable.errors,
        s.error_margin
    );
    Judgement::new(Guard::Errors, if rate <= limit { Status::Pass } else { Status::Fail }, detail)
}

fn latency(mode: Mode, w: &Window, s: &GuardSettings) -> Judgement {
    // Computations (cache misses) against computations where nodes report them: a candidate's
    // cache starts cold, so its answers would look slower than a warm stable's, and the
    // comparison waits for enough computations on both arms rather than judge answers.
    let computed = |a: &ArmFigures| a.compute_latency.total() >= s.min_requests;
    let reports_computations = w.candidate.compute_latency.total() + w.stable.compute_latency.total() > 0;
    let (what, n, lat, stable_lat) = match mode {
        Mode::Split if computed(&w.candidate) && computed(&w.stable) => (
            "candidate computation",
            w.candidate.compute_latency.total(),
            &w.candidate.compute_latency,
            &w.stable.compute_latency,
        ),
        Mode::Split if reports_computations => (
            "candidate computation",
            w.candidate.compute_latency.total().min(w.stable.compute_latency.total()),
            &w.candidate.compute_latency,
            &w.stable.compute_latency,
        ),
        // Nodes that predate computation latencies: answers against answers.
        Mode::Split => ("candidate", w.candidate.requests, &w.candidate.latency, &w.stable.latency),
        Mode::Shadow if computed(&w.stable) => {
            ("shadow", w.shadow.computed, &w.shadow.latency, &w.stable.compute_latency)
        }
        Mode::Shadow => ("shadow", w.shadow.computed, &w.shadow.latency, &w.stable.latency),
    };
    if n < s.min_requests || lat.total() == 0 {
        let detail = format!("{} {what} latencies of the {} needed", lat.total(), s.min_requests);
        return Judgement::new(Guard::Latency, Status::Waiting, detail);
    }
    let (Some(p99), Some(stable)) = (lat.quantile(0.99), stable_lat.quantile(0.99)) else {
        return Judgement::new(Guard::Latency, Status::Waiting, "no stable latencies yet".into());
    };
    let limit = s.latency_factor * stable + s.latency_allowance_ms / 1000.0;
    let ms = |x: f64| x * 1000.0;
    let detail = format!(
        "{what} p99 <= {:.1} ms vs stable p99 <= {:.1} ms x {} + {} ms = {:.1} ms",
        ms(p99),
        ms(stable),
        s.latency_factor,
        s.latency_allowance_ms,
        ms(limit)
    );
    Judgement::new(Guard::Latency, if p99 <= limit { Status::Pass } else { Status::Fail }, detail)
}

fn conversions(w: &Window, s: &GuardSettings, looks: u64) -> Judgement {
    let ev = &s.conversion_events;
    let (c, st) = (&w.candidate, &w.stable);
    // With every event type counted and nodes that report impressions, the proportion is
    // recommended items acted on / items recommended (each item converts once); else
    // conversions per answer, capped at 1.
    let per_item = ev.is_empty() && c.impressions > 0 && st.impressions > 0;
    let ((xc, nc), (xs, ns), unit) = if per_item {
        (
            (c.converted_items, c.impressions),
            (st.converted_items, st.impressions),
            "items acted on/recommended",
        )
    } else {
        (
            (c.converted(ev).min(c.requests), c.requests),
            (st.converted(ev).min(st.requests), st.requests),
            "conversions/requests",
        )
    };
    // Conversions each arm would have at the pooled rate.
    let expected = ratio(xc + xs, nc + ns).min(1.0) * nc.min(ns) as f64;
    let enough = nc.min(ns) >= s.conversion_min_requests && expected >= s.conversion_min_conversions as f64;
    if !enough {
        let detail = format!(
            "candidate {xc}/{nc} and stable {xs}/{ns} {unit}; each arm needs {} and {} conversions \
             expected at the pooled rate ({expected:.1})",
            s.conversion_min_requests, s.conversion_min_conversions
        );
        return Judgement::new(Guard::Conversions, Status::Waiting, detail);
    }
    let looks = looks.max(1);
    let per_look = 1.0 - (1.0 - s.confidence) / looks as f64;
    let t = z_test(xc, nc, xs, ns, s.conversion_margin, per_look);
    let detail = format!(
        "one-sided two-proportion z-test (pooled) of {unit}: candidate {:.4} ({xc}/{nc}) vs stable {:.4} \
         ({xs}/{ns}), margin {}: z = {:.3}, fails below -{:.3} ({}% confidence over {looks} looks)",
        t.candidate_rate,
        t.stable_rate,
        s.conversion_margin,
        t.z,
        t.z_alpha,
        s.confidence * 100.0
    );
    Judgement::new(Guard::Conversions, if t.rejects { Status::Fail } else { Status::Pass }, detail)
}

/// The conversion test's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    pub candidate_rate: f64,
    pub stable_rate: f64,
    pub z: f64,
    pub z_alpha: f64,
    /// H0 "candidate rate >= stable rate - margin" is rejected: the candidate is worse.
    pub rejects: bool,
}

/// One-sided two-proportion z-test with a pooled standard error of H0
/// "p_c >= p_s - margin" (see the module documentation).
pub fn z_test(xc: u64, nc: u64, xs: u64, ns: u64, margin: f64, confidence: f64) -> ZTest {
    let (pc, ps) = (ratio(xc, nc).min(1.0), ratio(xs, ns).min(1.0));
    let pooled = ratio(xc + xs, nc + ns).min(1.0);
    let se = (pooled * (1.0 - pooled) * (1.0 / nc.max(1) as f64 + 1.0 / ns.max(1) as f64)).sqrt();
    let diff = pc - ps + margin;
    let z = if se > 0.0 {
        diff / se
    } else if diff < 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    let z_alpha = normal_quantile(confidence);
    ZTest { candidate_rate: pc, stable_rate: ps, z, z_alpha, rejects: z < -z_alpha }
}

/// Wilson score interval of `x` successes in `n` trials at quantile `z` (1.96: 95%).
pub fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, (x as f64 / n as f64).min(1.0));
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The standard normal quantile (inverse CDF) at `p` in (0, 1): Acklam's rational
/// approximation, relative error below 1.2e-9.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::rollout::LATENCY_BUCKETS;
    use proptest::prelude::*;

    fn latency_at(bucket: usize, n: u64) -> Latency {
        let mut counts = vec![0; LATENCY_BUCKETS.len() + 1];
        counts[bucket] = n;
        Latency { counts, sum_seconds: 0.0 }
    }

    fn arm(requests: u64, errors: u64, clicks: u64, bucket: usize) -> ArmFigures {
        ArmFigures {
            requests,
            users: requests / 2,
            errors,
            latency: latency_at(bucket, requests),
            conversions: [("click".to_string(), clicks), ("view".to_string(), clicks * 3)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn conversions_are_items_acted_on_per_item_recommended_when_nodes_count_them() {
        let s = GuardSettings {
            conversion_min_requests: 1000,
            conversion_min_conversions: 30,
            ..Default::default()
        };
        let items = |impressions: u64, converted_items: u64| ArmFigures {
            requests: impressions / 10,
            impressions,
            converted_items,
            // More conversions than answers: per answer this would be capped at 1 for both.
            conversions: [("view".to_string(), impressions)].into(),
            ..Default::default()
        };
        let w = |c: u64| Window {
            stable: items(20_000, 3_000),
            candidate: items(20_000, c),
            ..Default::default()
        };
        let j = conversions(&w(1_000), &s, 1);
        assert_eq!(j.status, Status::Fail, "{}", j.detail);
        assert!(j.detail.contains("items acted on/recommended"), "{}", j.detail);
        assert_eq!(conversions(&w(3_000), &s, 1).status, Status::Pass);
        // A filter by event type falls back to conversions per answer.
        let typed = GuardSettings { conversion_events: vec!["view".into()], ..s };
        assert!(conversions(&w(1_000), &typed, 1).detail.contains("conversions/requests"));
    }

    fn status(js: &[Judgement], g: Guard) -> Status {
        js.iter().find(|j| j.guard == g).map(|j| j.status).expect("judged")
    }

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.95) - 1.644_853_6).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.01) + 2.326_347_9).abs() < 1e-6);
        assert!((normal_quantile(0.999) - 3.090_232_3).abs() < 1e-6);
    }

    #[test]
    fn wilson_intervals() {
        let (lo, hi) = wilson(10, 100, 1.96);
        // Known values for 10/100 at 95%.
        assert!((lo - 0.055_2).abs() < 1e-3 && (hi - 0.174_4).abs() < 1e-3, "{lo} {hi}");
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
        let (lo, hi) = wilson(0, 50, 1.96);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.1);
    }

    #[test]
    fn error_guard() {
        let s = GuardSettings { min_requests: 100, ..GuardSettings::default() };
        // Nodes count answers and failures apart: attempts are their sum.
        let w = |errors| Window {
            stable: arm(9_990, 10, 0, 3),
            candidate: arm(500 - errors, errors, 0, 3),
            ..Window::default()
        };
        // Stable 10/10,000 = 0.001 + 0.01 = 0.011: 5/500 = 0.01 passes, 6/500 = 0.012 fails.
        assert_eq!(status(&judge(Mode::Split, &w(5), &s, 1), Guard::Errors), Status::Pass);
        let fail = judge(Mode::Split, &w(6), &s, 1);
        assert_eq!(status(&fail, Guard::Errors), Status::Fail);
        assert!(fail[0].detail.contains("0.0120 (6/500)"), "{}", fail[0].detail);
        let few = Window { candidate: arm(40, 40, 0, 3), ..w(0) };
        assert_eq!(status(&judge(Mode::Split, &few, &s, 1), Guard::Errors), Status::Waiting);
        // Shadow mode judges the shadow computations, not the (empty) candidate arm.
        let shadow = Window {
            shadow: ShadowFigures {
                computed: 1000,
                errors: 100,
                latency: latency_at(3, 1000),
                ..Default::default()
            },
            ..w(0)
        };
        let js = judge(Mode::Shadow, &shadow, &s, 1);
        assert_eq!((js.len(), status(&js, Guard::Errors)), (2, Status::Fail));
    }

    #[test]
    fn latency_guard() {
        let s = GuardSettings { min_requests: 100, ..GuardSettings::default() };
        // Stable p99 <= 2 ms (bucket 4): limit 1.5 x 2 + 2 = 5 ms.
        let w = |bucket| Window {
            stable: arm(10_000, 0, 0, 4),
            candidate: arm(500, 0, 0, bucket),
            ..Window::default()
        };
        assert_eq!(status(&judge(Mode::Split, &w(5), &s, 1), Guard::Latency), Status::Pass, "3 ms");
        assert_eq!(status(&judge(Mode::Split, &w(7), &s, 1), Guard::Latency), Status::Fail, "7.5 ms");
        // Nodes that report computations are judged on them: a cold candidate's slow answers
        // (bucket 9) wait until it has computed enough, then its computations are compared.
        let with_computations = |a: ArmFigures, n: u64| ArmFigures { compute_latency: latency_at(4, n), ..a };
        let cold = Window {
            stable: with_computations(arm(10_000, 0, 0, 4), 1_000),
            candidate: with_computations(arm(500, 0, 0, 9), 50),
            ..Window::default()
        };
        assert_eq!(status(&judge(Mode::Split, &cold, &s, 1), Guard::Latency), Status::Waiting);
        let warm = Window { candidate: with_computations(arm(500, 0, 0, 9), 200), ..cold.clone() };
        let js = judge(Mode::Split, &warm, &s, 1);
        assert_eq!(status(&js, Guard::Latency), Status::Pass);
        assert!(js[1].detail.starts_with("candidate computation p99"), "{}", js[1].detail);
    }

    #[test]
    fn conversion_guard_is_a_one_sided_z_test() {
        let s = GuardSettings {
            conversion_min_requests: 1000,
            conversion_min_conversions: 30,
            conversion_margin: 0.0,
            conversion_events: vec!["click".into()],
            ..GuardSettings::default()
        };
        let w = |cand_clicks| Window {
            stable: arm(20_000, 0, 2_000, 3),
            candidate: arm(2_000, 0, cand_clicks, 3),
            ..Window::default()
        };
        // 10% vs 10%: z = 0.
        assert_eq!(status(&judge(Mode::Split, &w(200), &s, 1), Guard::Conversions), Status::Pass);
        // 8% vs 10%: pooled p = 2160/22000, se = 0.00697, z = -2.87 < -1.645.
        let js = judge(Mode::Split, &w(160), &s, 1);
        assert_eq!(status(&js, Guard::Conversions), Status::Fail);
        let t = z_test(160, 2000, 2000, 20_000, 0.0, 0.95);
        assert!((t.z + 2.87).abs() < 0.01, "{}", t.z);
        // 9.5%: z = -0.71, not significant.
        assert_eq!(status(&judge(Mode::Split, &w(190), &s, 1), Guard::Conversions), Status::Pass);
        // A margin of 0.03 forgives 8%.
        let lenient = GuardSettings { conversion_margin: 0.03, ..s.clone() };
        assert_eq!(status(&judge(Mode::Split, &w(160), &lenient, 1), Guard::Conversions), Status::Pass);
        // A candidate that converts next to nothing is judged once it has the requests...
        assert_eq!(status(&judge(Mode::Split, &w(20), &s, 1), Guard::Conversions), Status::Fail);
        // ... and not before.
        let early = Window { candidate: arm(900, 0, 0, 3), ..w(0) };
        assert_eq!(status(&judge(Mode::Split, &early, &s, 1), Guard::Conversions), Status::Waiting);
        // Too few conversions expected at the pooled rate (20 in 22,000): waiting, whatever the rates.
        let rare = Window { stable: arm(20_000, 0, 20, 3), candidate: arm(2_000, 0, 0, 3), ..w(0) };
        assert_eq!(status(&judge(Mode::Split, &rare, &s, 1), Guard::Conversions), Status::Waiting);
        // Over 20 planned looks each look tests at 1 - 0.05/20: z = -2.87 still fails, -2.5 not.
        assert_eq!(status(&judge(Mode::Split, &w(160), &s, 20), Guard::Conversions), Status::Fail);
        let t = z_test(166, 2000, 2000, 20_000, 0.0, 0.95);
        assert!(t.rejects && t.z > -2.81, "{}", t.z);
        assert_eq!(status(&judge(Mode::Split, &w(166), &s, 20), Guard::Conversions), Status::Pass);
        assert_eq!(
            (
                looks(Duration::from_secs(40), Duration::from_secs(2)),
                looks(Duration::ZERO, Duration::from_secs(5))
            ),
            (20, 1)
        );
        // All event types count when none are configured (views are 3x clicks here).
        let all = GuardSettings { conversion_events: vec![], ..s.clone() };
        assert_eq!(w(100).candidate.converted(&all.conversion_events), 400);
        // Rates are capped at 1.
        assert_eq!(arm(10, 0, 50, 3).conversion_rate(&[]), 1.0);
    }

    proptest! {
        #[test]
        fn a_candidate_at_least_as_good_never_fails(
            ns in 1000u64..100_000, nc in 1000u64..100_000, rate in 0.01f64..0.9, better in 0.0f64..0.1,
        ) {
            let xs = (ns as f64 * rate) as u64;
            let xc = ((nc as f64 * (rate + better)).ceil() as u64).min(nc);
            prop_assert!(!z_test(xc, nc, xs, ns, 0.0, 0.95).rejects);
        }

        #[test]
        fn wilson_contains_the_rate(n in 1u64..100_000, frac in 0.0f64..=1.0) {
            let x = (n as f64 * frac) as u64;
            let (lo, hi) = wilson(x, n, 1.96);
            let p = x as f64 / n as f64;
            prop_assert!(lo <= p + 1e-12 && p <= hi + 1e-12 && 0.0 <= lo && hi <= 1.0);
        }
    }
}
