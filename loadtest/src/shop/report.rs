//! What a shop run saw, per (model version, arm) as the client saw it: the [`Tally`] the
//! sessions feed, and the [`ShopReport`] made from it (JSON with stable field names, or a
//! text table).
//!
//! A *conversion* is an event the node accepted on a recommended item of the shopper's
//! taste. An answer can convert several times (one per matching item), so conversions per
//! request is not a proportion; the *conversion rate* is the share of answered sessions with
//! at least one conversion, which is, and comes with a 95% Wilson score interval.
//!
//! Arms must be sticky: once a user is answered by a candidate version C, every later answer
//! to that user comes from C until C is rolled back, and C never comes back to them once it
//! has left. A raised share only moves users into the candidate and a promotion keeps C, so
//! neither is a violation. [`violations`] finds users answered by C, then by another version,
//! then by C again; given when each candidate was rolled back (a scenario knows), it also
//! finds users moved off C before that.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

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
    Answered(Answered),
}

/// An answered session.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// When the answer arrived, from the run's start.
    pub at: Duration,
    /// Of the recommendation request.
    pub latency: Duration,
    /// The region hint the session sent.
    pub region: Option<String>,
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
    fn add(&mut self, shopper: usize, v: &Answered) {
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
    /// Every answer, in the order sessions finished.
    pub answers: Vec<AnswerRecord>,
}

/// One answer, for stickiness and for latency by time window.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRecord {
    pub shopper: usize,
    pub at: Duration,
    pub latency: Duration,
    pub region: Option<String>,
    pub model_version: String,
    pub arm: Arm,
    /// Items recommended, and events accepted on those of the shopper's taste.
    pub items: u32,
    pub conversions: u32,
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
                self.answers.push(AnswerRecord {
                    shopper: r.shopper,
                    at: v.at,
                    latency: v.latency,
                    region: v.region,
                    model_version: v.model_version,
                    arm: v.arm,
                    items: v.items,
                    conversions: v.conversions,
                });
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

/// Users a candidate version was not sticky for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairViolation {
    pub candidate_version: String,
    /// Users answered by the candidate, then by another version, then by it again.
    pub returned: u64,
    /// Users answered by another version after the candidate, before it was rolled back.
    pub left_early: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    /// Distinct users a candidate was not sticky for; 0 when arms were sticky.
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
            arm_violations: violations(tally, world, &BTreeMap::new()),
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
            let _ = writeln!(s, "arm stickiness: ok (no user left a candidate and came back to it)");
        } else {
            let pairs: Vec<String> = v
                .pairs
                .iter()
                .map(|p| {
                    format!(
                        "candidate {}: {} came back, {} left early",
                        p.candidate_version, p.returned, p.left_early
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "arm stickiness: VIOLATED, {} users not kept on their arm ({}; e.g. {})",
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

/// Users a candidate was not sticky for (see the module doc). `rolled_back` says when each
/// rolled-back candidate version left (from the run's start, less the nodes' pointer poll);
/// a user moved off a candidate before then left it early.
pub fn violations(tally: &Tally, world: &World, rolled_back: &BTreeMap<String, Duration>) -> Violations {
    let mut by_user: HashMap<usize, Vec<&AnswerRecord>> = HashMap::new();
    for a in &tally.answers {
        by_user.entry(a.shopper).or_default().push(a);
    }
    // (returned, left early) users per candidate version.
    let mut pairs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut users: Vec<String> = Vec::new();
    for (shopper, mut answers) in by_user {
        answers.sort_by_key(|a| a.at);
        let mut violated = false;
        let mut left: HashSet<&str> = HashSet::new();
        let mut flagged: HashSet<(&str, bool)> = HashSet::new();
        for w in answers.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a.arm == Arm::Candidate && b.model_version != a.model_version {
                left.insert(&a.model_version);
                let early = rolled_back.get(&a.model_version).is_some_and(|&end| b.at < end);
                if early && flagged.insert((&a.model_version, false)) {
                    pairs.entry(a.model_version.clone()).or_default().1 += 1;
                    violated = true;
                }
            }
            if b.arm == Arm::Candidate
                && left.contains(b.model_version.as_str())
                && a.model_version != b.model_version
                && flagged.insert((&b.model_version, true))
            {
                pairs.entry(b.model_version.clone()).or_default().0 += 1;
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
            .map(|(candidate_version, (returned, left_early))| PairViolation {
                candidate_version,
                returned,
                left_early,
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
