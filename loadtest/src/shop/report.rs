//! What a shop run saw, per (model version, arm) as the client saw it: the [`Tally`] the
//! sessions feed, and the [`ShopReport`] made from it (JSON with stable field names, or a
//! text table).
//!
//! A *conversion* is an event the node accepted on a recommended item of the shopper's
//! taste. An answer can convert several times (one per matching item), so conversions per
//! request is not a proportion; the *conversion rate* is the share of answered sessions with
//! at least one conversion, which is, and comes with a 95% Wilson score interval.
//!
//! Arms must be sticky: a user answered by the stable arm of version S and by the candidate
//! arm of version C (S != C) during one run counts as one violation of the pair (S, C). A
//! run that spans a promotion or a new rollout can see such users legitimately; run it
//! within one rollout.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use model::rollout::Arm;
use serde::{Deserialize, Serialize};

use crate::client::ErrorKind;
use crate::shop::plan::ShopPlan;
use crate::shop::taste::World;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `trials`; `None` without trials.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// One session, as the engine hands it to the tally.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Index into [`World::shoppers`].
    pub shopper: usize,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The recommendation request failed, or was not sent (`overload`).
    Failed(ErrorKind),
    Answered(Visit),
}

/// An answered session.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub model_version: String,
    pub arm: Arm,
    /// Items in the answer.
    pub items: u32,
    /// Items of the shopper's taste in the answer.
    pub matched: u32,
    /// Events accepted on matching items.
    pub conversions: u32,
    /// Events accepted on random items.
    pub noise: u32,
    /// Events the node refused or did not answer.
    pub event_failures: Vec<ErrorKind>,
}

#[derive(Debug, Clone, Default)]
struct Row {
    sessions: u64,
    users: HashSet<usize>,
    items: u64,
    matched: u64,
    conversions: u64,
    converted: u64,
    noise: u64,
}

impl Row {
    fn add(&mut self, shopper: usize, v: &Visit) {
        self.sessions += 1;
        self.users.insert(shopper);
        self.items += u64::from(v.items);
        self.matched += u64::from(v.matched);
        self.conversions += u64::from(v.conversions);
        self.converted += u64::from(v.conversions > 0);
        self.noise += u64::from(v.noise);
    }
}

/// Counts as sessions finish.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Sessions started or refused for overload.
    pub sessions: u64,
    rows: HashMap<(String, Arm), Row>,
    recommend_failures: BTreeMap<ErrorKind, u64>,
    event_failures: BTreeMap<ErrorKind, u64>,
    /// Versions each shopper was answered with, by arm: (stable, candidate).
    arms: HashMap<usize, (BTreeSet<String>, BTreeSet<String>)>,
}

impl Tally {
    pub fn record(&mut self, r: SessionRecord) {
        self.sessions += 1;
        match r.outcome {
            Outcome::Failed(kind) => *self.recommend_failures.entry(kind).or_default() += 1,
            Outcome::Answered(v) => {
                self.rows.entry((v.model_version.clone(), v.arm)).or_default().add(r.shopper, &v);
                for &kind in &v.event_failures {
                    *self.event_failures.entry(kind).or_default() += 1;
                }
                let seen = self.arms.entry(r.shopper).or_default();
                match v.arm {
                    Arm::Stable => seen.0.insert(v.model_version),
                    Arm::Candidate => seen.1.insert(v.model_version),
                };
            }
        }
    }
}

/// Counts and the conversion rate of some sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Answered sessions (recommendation requests that succeeded).
    pub sessions: u64,
    /// Distinct shoppers among them.
    pub users: u64,
    /// Items recommended in all.
    pub recommended_items: u64,
    /// Recommended items of the shopper's taste.
    pub matched_items: u64,
    /// Events accepted on recommended items of the shopper's taste.
    pub conversions: u64,
    /// Sessions with at least one conversion.
    pub converted_sessions: u64,
    /// `converted_sessions / sessions`; null without sessions.
    pub conversion_rate: Option<f64>,
    /// 95% Wilson score interval of `conversion_rate`.
    pub conversion_rate_low: Option<f64>,
    pub conversion_rate_high: Option<f64>,
    /// `conversions / sessions`.
    pub conversions_per_session: Option<f64>,
    /// Events accepted on random items.
    pub noise_events: u64,
}

impl Figures {
    fn of(r: &Row) -> Self {
        let interval = wilson(r.converted, r.sessions);
        let per = |x: u64| (r.sessions > 0).then(|| round4(x as f64 / r.sessions as f64));
        Figures {
            sessions: r.sessions,
            users: r.users.len() as u64,
            recommended_items: r.items,
            matched_items: r.matched,
            conversions: r.conversions,
            converted_sessions: r.converted,
            conversion_rate: per(r.converted),
            conversion_rate_low: interval.map(|i| round4(i.0)),
            conversion_rate_high: interval.map(|i| round4(i.1)),
            conversions_per_session: per(r.conversions),
            noise_events: r.noise,
        }
    }
}

/// One (model version, arm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRow {
    pub model_version: String,
    /// `stable` or `candidate`.
    pub arm: Arm,
    #[serde(flatten)]
    pub figures: Figures,
    /// `users` over all distinct users answered in the run.
    pub users_share: f64,
}

/// Users seen in both arms of one version pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairViolation {
    pub stable_version: String,
    pub candidate_version: String,
    pub users: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    /// Distinct users seen in both arms of some version pair; 0 when arms were sticky.
    pub users: u64,
    pub pairs: Vec<PairViolation>,
    /// Up to 5 such user ids, sorted.
    pub examples: Vec<String>,
}

/// Failed calls by kind (`connect`, `timeout`, `http_4xx`, `http_5xx`, `overload`, `other`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    /// Recommendation requests; `overload`: sessions not started (too many in flight).
    pub recommendations: BTreeMap<String, u64>,
    pub events: BTreeMap<String, u64>,
}

/// The report of a shop run; `--json` prints it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopReport {
    pub target: String,
    pub seed: u64,
    /// Sessions started per second.
    pub rate: f64,
    pub p_match: f64,
    pub p_noise: f64,
    /// Shoppers the sessions were drawn from.
    pub shoppers: u64,
    /// Sessions started (answered, failed or refused for overload).
    pub sessions: u64,
    /// By model version, stable arm first.
    pub arms: Vec<ArmRow>,
    pub totals: Figures,
    pub failures: Failures,
    pub arm_violations: Violations,
}

impl ShopReport {
    pub fn new(plan: &ShopPlan, world: &World, tally: &Tally) -> Self {
        let mut total = Row::default();
        for row in tally.rows.values() {
            total.sessions += row.sessions;
            total.users.extend(&row.users);
            total.items += row.items;
            total.matched += row.matched;
            total.conversions += row.conversions;
            total.converted += row.converted;
            total.noise += row.noise;
        }
        let all_users = total.users.len().max(1) as f64;
        let mut arms: Vec<ArmRow> = tally
            .rows
            .iter()
            .map(|((version, arm), row)| ArmRow {
                model_version: version.clone(),
                arm: *arm,
                figures: Figures::of(row),
                users_share: round4(row.users.len() as f64 / all_users),
            })
            .collect();
        arms.sort_by(|a, b| {
            a.model_version.cmp(&b.model_version).then(arm_rank(a.arm).cmp(&arm_rank(b.arm)))
        });
        ShopReport {
            target: plan.target.clone(),
            seed: plan.seed,
            rate: plan.rate,
            p_match: plan.p_match,
            p_noise: plan.p_noise,
            shoppers: world.shoppers.len() as u64,
            sessions: tally.sessions,
            arms,
            totals: Figures::of(&total),
            failures: Failures {
                recommendations: by_name(&tally.recommend_failures),
                events: by_name(&tally.event_failures),
            },
            arm_violations: violations(tally, world),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The text table printed by default.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "loadtest shop: {} sessions against {} ({} shoppers, {}/s, seed {}, p_match {}, p_noise {})\n",
            self.sessions, self.target, self.shoppers, self.rate, self.seed, self.p_match, self.p_noise
        );
        let _ = writeln!(
            s,
            "{:<24} {:<9} {:>8} {:>6} {:>6} {:>7} {:>7} {:>11} {:>9} {:>7}  {:<16} {:>5}",
            "version",
            "arm",
            "sessions",
            "users",
            "share",
            "items",
            "matched",
            "conversions",
            "converted",
            "rate",
            "95% CI",
            "noise"
        );
        for row in &self.arms {
            line(&mut s, &row.model_version, row.arm.as_str(), &row.figures, Some(row.users_share));
        }
        line(&mut s, "total", "", &self.totals, None);
        let _ = writeln!(
            s,
            "\nfailures: recommendations {}; events {}",
            kinds(&self.failures.recommendations),
            kinds(&self.failures.events)
        );
        let v = &self.arm_violations;
        if v.users == 0 {
            let _ = writeln!(s, "arm stickiness: ok (no user seen in both arms of a version pair)");
        } else {
            let pairs: Vec<String> = v
                .pairs
                .iter()
                .map(|p| {
                    format!("{} stable / {} candidate: {}", p.stable_version, p.candidate_version, p.users)
                })
                .collect();
            let _ = writeln!(
                s,
                "arm stickiness: VIOLATED, {} users seen in both arms ({}; e.g. {})",
                v.users,
                pairs.join(", "),
                v.examples.join(", ")
            );
        }
        s
    }
}

fn line(s: &mut String, version: &str, arm: &str, f: &Figures, share: Option<f64>) {
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
    let ci = match (f.conversion_rate_low, f.conversion_rate_high) {
        (Some(lo), Some(hi)) => format!("[{lo:.4}, {hi:.4}]"),
        _ => "-".to_string(),
    };
    let _ = writeln!(
        s,
        "{:<24} {:<9} {:>8} {:>6} {:>6} {:>7} {:>7} {:>11} {:>9} {:>7}  {:<16} {:>5}",
        version,
        arm,
        f.sessions,
        f.users,
        share.map_or("-".to_string(), |x| format!("{x:.3}")),
        f.recommended_items,
        f.matched_items,
        f.conversions,
        f.converted_sessions,
        opt(f.conversion_rate),
        ci,
        f.noise_events
    );
}

/// Keyed by [`ErrorKind::as_str`], as `loadtest run` reports errors.
fn by_name(m: &BTreeMap<ErrorKind, u64>) -> BTreeMap<String, u64> {
    m.iter().map(|(k, n)| (k.as_str().to_string(), *n)).collect()
}

fn kinds(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" ")
}

fn violations(tally: &Tally, world: &World) -> Violations {
    let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut users: Vec<String> = Vec::new();
    for (&shopper, (stable, candidate)) in &tally.arms {
        let mut violated = false;
        for s in stable {
            for c in candidate.iter().filter(|c| *c != s) {
                *pairs.entry((s.clone(), c.clone())).or_default() += 1;
                violated = true;
            }
        }
        if violated {
            users.push(
                world.shoppers.get(shopper).map_or_else(|| format!("#{shopper}"), |s| s.user_id.clone()),
            );
        }
    }
    users.sort_unstable();
    Violations {
        users: users.len() as u64,
        pairs: pairs
            .into_iter()
            .map(|((stable_version, candidate_version), users)| PairViolation {
                stable_version,
                candidate_version,
                users,
            })
            .collect(),
        examples: users.into_iter().take(5).collect(),
    }
}

fn arm_rank(arm: Arm) -> u8 {
    match arm {
        Arm::Stable => 0,
        Arm::Candidate => 1,
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
