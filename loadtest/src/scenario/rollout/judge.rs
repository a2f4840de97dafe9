//! The rollout scenario's figures and verdict, as pure functions of what the run saw: how each
//! rollout ended (the controller's record), the shoppers' answers, and the node samples.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use model::rollout::{Arm, Mode};
use serde::{Deserialize, Serialize};

use super::case::Case;
use super::watch::{state_at, Sample};
use crate::scenario::judge::{Check, Verdict};
use crate::shop::report::{violations, wilson, AnswerRecord, Failures, Tally, Violations};
use crate::shop::taste::World;

/// One rollout as it ran.
#[derive(Debug, Clone)]
pub struct CaseRun {
    pub case: Case,
    pub version: String,
    pub rollout_id: String,
    /// When `model-sync rollout start` began and returned, from the run's start.
    pub started: Duration,
    pub ended: Duration,
    pub exit_code: Option<i32>,
    /// `model-sync rollout status ID --json`, when it could be read.
    pub record: Option<serde_json::Value>,
    /// The controller could not be run, or its record not read.
    pub error: Option<String>,
}

impl CaseRun {
    fn field(&self, name: &str) -> Option<&serde_json::Value> {
        self.record.as_ref()?.get(name)
    }

    /// `promoted`, `rolled_back`, `aborted`, `running`; `unknown` without a record.
    pub fn phase(&self) -> &str {
        self.field("phase").and_then(|v| v.as_str()).unwrap_or("unknown")
    }

    pub fn reason(&self) -> Option<&str> {
        self.field("reason").and_then(|v| v.as_str())
    }

    /// The 0-based plan step the rollout ended in.
    pub fn step(&self) -> Option<usize> {
        self.field("step").and_then(serde_json::Value::as_u64).map(|s| s as usize)
    }

    pub fn plan(&self) -> Option<&str> {
        self.field("plan").and_then(|v| v.as_str())
    }
}

/// The steps of a plan text (`TRAFFIC@REGIONS:BAKE,...`).
pub fn plan_steps(plan: &str) -> Vec<&str> {
    plan.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The index of the first split step (traffic not `shadow...`).
pub fn first_split_step(plan: &str) -> Option<usize> {
    plan_steps(plan).iter().position(|s| !s.starts_with("shadow"))
}

/// The guard a rollback reason names (`step 1 failed: errors guard: ...`).
pub fn guard_of(reason: &str) -> Option<&str> {
    let before = reason.split(" guard:").next().filter(|b| b.len() < reason.len())?;
    before.rsplit([' ', ':']).next()
}

/// Whether `run` ended as `case` should, and what was seen.
pub fn outcome_check(run: &CaseRun) -> Check {
    let phase = run.phase();
    let step = run.step();
    let plan = run.plan().unwrap_or_default();
    let at_step = step.and_then(|i| plan_steps(plan).get(i).map(|s| s.to_string())).unwrap_or_default();
    let reason = run.reason().unwrap_or("");
    let (criterion, pass) = match run.case {
        Case::Good => ("good candidate promoted".to_string(), phase == "promoted"),
        Case::Bad => (
            "bad candidate rolled back during its first split step".to_string(),
            phase == "rolled_back" && step.is_some() && step == first_split_step(plan),
        ),
        Case::Errors => (
            "erroring candidate rolled back by the errors guard".to_string(),
            phase == "rolled_back" && guard_of(reason) == Some("errors"),
        ),
        Case::Slow => (
            "slow candidate rolled back by the latency guard".to_string(),
            phase == "rolled_back" && guard_of(reason) == Some("latency"),
        ),
    };
    let mut observed = format!(
        "{} {phase} at step {} ({at_step}) after {:.1} s",
        run.version,
        step.map_or("?".to_string(), |s| (s + 1).to_string()),
        run.ended.saturating_sub(run.started).as_secs_f64()
    );
    if !reason.is_empty() {
        observed += &format!(": {reason}");
    }
    if let Some(e) = &run.error {
        observed += &format!(" [{e}]");
    }
    Check { criterion, observed, pass: pass && run.error.is_none() }
}

/// Conversions of one (version, arm) in a window: items acted on per item recommended, with
/// a 95% Wilson interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmConversion {
    pub model_version: String,
    pub arm: Arm,
    pub sessions: u64,
    pub users: u64,
    pub items: u64,
    pub conversions: u64,
    pub rate: Option<f64>,
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
}

/// What one rollout did to the shoppers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFigures {
    pub case: String,
    pub model_version: String,
    pub rollout_id: String,
    pub phase: String,
    pub reason: Option<String>,
    /// 1-based step it ended in, and that step's text.
    pub step: Option<usize>,
    pub step_text: Option<String>,
    /// From `rollout start` to its decision.
    pub seconds_to_decision: f64,
    /// From the first node sample showing a split of this version to the decision.
    pub seconds_in_split: Option<f64>,
    /// Answered sessions and distinct users while the rollout ran, and those the candidate
    /// answered.
    pub sessions: u64,
    pub candidate_sessions: u64,
    pub users: u64,
    pub candidate_users: u64,
    pub candidate_session_share: Option<f64>,
    pub candidate_user_share: Option<f64>,
    pub arms: Vec<ArmConversion>,
}

/// Per-arm conversions of the answers in `[from, to)`.
pub fn arm_conversions(answers: &[AnswerRecord], from: Duration, to: Duration) -> Vec<ArmConversion> {
    #[derive(Default)]
    struct Acc {
        sessions: u64,
        users: HashSet<usize>,
        items: u64,
        conversions: u64,
    }
    let mut by: BTreeMap<(String, u8), (Arm, Acc)> = BTreeMap::new();
    for a in answers.iter().filter(|a| a.at >= from && a.at < to) {
        let rank = u8::from(a.arm == Arm::Candidate);
        let (_, acc) = by.entry((a.model_version.clone(), rank)).or_insert_with(|| (a.arm, Acc::default()));
        acc.sessions += 1;
        acc.users.insert(a.shopper);
        acc.items += u64::from(a.items);
        acc.conversions += u64::from(a.conversions.min(a.items));
    }
    let mut rows: Vec<ArmConversion> = by
        .into_iter()
        .map(|((version, _), (arm, acc))| {
            let interval = wilson(acc.conversions, acc.items);
            ArmConversion {
                model_version: version,
                arm,
                sessions: acc.sessions,
                users: acc.users.len() as u64,
                items: acc.items,
                conversions: acc.conversions,
                rate: (acc.items > 0).then(|| round4(acc.conversions as f64 / acc.items as f64)),
                rate_low: interval.map(|i| round4(i.0)),
                rate_high: interval.map(|i| round4(i.1)),
            }
        })
        .collect();
    rows.sort_by_key(|r| (r.arm == Arm::Candidate, std::cmp::Reverse(r.sessions)));
    rows
}

/// The figures of one rollout.
pub fn case_figures(run: &CaseRun, answers: &[AnswerRecord], samples: &[Sample]) -> CaseFigures {
    let within: Vec<&AnswerRecord> =
        answers.iter().filter(|a| a.at >= run.started && a.at < run.ended).collect();
    let on_candidate: Vec<&&AnswerRecord> =
        within.iter().filter(|a| a.model_version == run.version && a.arm == Arm::Candidate).collect();
    let users: HashSet<usize> = within.iter().map(|a| a.shopper).collect();
    let candidate_users: HashSet<usize> = on_candidate.iter().map(|a| a.shopper).collect();
    let share = |x: usize, of: usize| (of > 0).then(|| round4(x as f64 / of as f64));
    let split_from = samples
        .iter()
        .find(|s| s.candidate.as_ref().is_some_and(|c| c.version == run.version && c.mode == Mode::Split))
        .map(|s| s.at);
    let plan = run.plan().unwrap_or_default();
    CaseFigures {
        case: run.case.as_str().to_string(),
        model_version: run.version.clone(),
        rollout_id: run.rollout_id.clone(),
        phase: run.phase().to_string(),
        reason: run.reason().map(str::to_string),
        step: run.step().map(|s| s + 1),
        step_text: run.step().and_then(|i| plan_steps(plan).get(i).map(|s| s.to_string())),
        seconds_to_decision: round1(run.ended.saturating_sub(run.started).as_secs_f64()),
        seconds_in_split: split_from.map(|t| round1(run.ended.saturating_sub(t).as_secs_f64())),
        sessions: within.len() as u64,
        candidate_sessions: on_candidate.len() as u64,
        users: users.len() as u64,
        candidate_users: candidate_users.len() as u64,
        candidate_session_share: share(on_candidate.len(), within.len()),
        candidate_user_share: share(candidate_users.len(), users.len()),
        arms: arm_conversions(answers, run.started, run.ended),
    }
}

/// When each rolled-back candidate left: its first sample with no node of any region showing
/// it, less `slack` (an answer can precede the sample that shows the change).
pub fn rollback_times(runs: &[CaseRun], samples: &[Sample], slack: Duration) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    for run in runs.iter().filter(|r| r.phase() == "rolled_back") {
        let shown = |s: &Sample| s.candidate.as_ref().is_some_and(|c| c.version == run.version);
        let Some(last_shown) = samples.iter().filter(|s| shown(s)).map(|s| s.at).max() else {
            continue;
        };
        out.insert(run.version.clone(), last_shown.saturating_sub(slack));
    }
    out
}

/// Resident memory of one region's node: the most with one version, the most with two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub region: String,
    pub one_version_mib: Option<f64>,
    pub two_versions_mib: Option<f64>,
}

pub fn memory(samples: &[Sample], regions: &[String]) -> Vec<Memory> {
    regions
        .iter()
        .map(|r| {
            let max = |two: bool| {
                samples
                    .iter()
                    .filter(|s| &s.region == r && s.stable.is_some() && s.candidate.is_some() == two)
                    .filter_map(|s| s.rss_kib)
                    .max()
                    .map(|k| round1(k as f64 / 1024.0))
            };
            Memory { region: r.clone(), one_version_mib: max(false), two_versions_mib: max(true) }
        })
        .collect()
}

/// Request latency (as the shoppers saw it) of some answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyFigures {
    pub answers: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl LatencyFigures {
    fn of(mut us: Vec<u64>) -> Self {
        us.sort_unstable();
        let q = |p: f64| {
            (!us.is_empty()).then(|| {
                let i = ((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1;
                round1(us[i] as f64 / 100.0) / 10.0
            })
        };
        LatencyFigures { answers: us.len() as u64, p50_ms: q(0.5), p99_ms: q(0.99) }
    }
}

/// Shadow mode's cost in one region: answers there while it shadowed a candidate against
/// answers there while it had no candidate, in the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowLatency {
    pub region: String,
    pub shadow: LatencyFigures,
    pub no_candidate: LatencyFigures,
    /// shadow p99 / no-candidate p99.
    pub p99_ratio: Option<f64>,
}

pub fn shadow_latency(
    answers: &[AnswerRecord],
    samples: &[Sample],
    regions: &[String],
) -> Vec<ShadowLatency> {
    let mut out = Vec::new();
    for r in regions {
        let (mut shadow, mut none) = (Vec::new(), Vec::new());
        for a in answers.iter().filter(|a| a.region.as_deref() == Some(r.as_str())) {
            let us = a.latency.as_micros() as u64;
            match state_at(samples, r, a.at) {
                Some(s) if s.stable.is_some() && s.mode() == Some(Mode::Shadow) => shadow.push(us),
                Some(s) if s.stable.is_some() && s.candidate.is_none() => none.push(us),
                _ => {}
            }
        }
        if shadow.is_empty() {
            continue;
        }
        let (shadow, no_candidate) = (LatencyFigures::of(shadow), LatencyFigures::of(none));
        let p99_ratio = match (shadow.p99_ms, no_candidate.p99_ms) {
            (Some(a), Some(b)) if b > 0.0 => Some(round4(a / b)),
            _ => None,
        };
        out.push(ShadowLatency { region: r.clone(), shadow, no_candidate, p99_ratio });
    }
    out
}

/// The scenario's report (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutReport {
    pub target: String,
    pub plan: String,
    /// Sessions started per second.
    pub rate: f64,
    pub seconds: f64,
    pub base_version: String,
    /// Interactions the base and the full models were built from.
    pub base_rows: u64,
    pub rows: u64,
    pub sessions: u64,
    pub cases: Vec<CaseFigures>,
    pub failures: Failures,
    pub stickiness: Violations,
    pub memory: Vec<Memory>,
    pub shadow_latency: Vec<ShadowLatency>,
    pub verdict: Verdict,
}

/// Everything the verdict is made from.
#[derive(Debug)]
pub struct Evidence<'a> {
    pub runs: &'a [CaseRun],
    pub tally: &'a Tally,
    pub failures: Failures,
    pub world: &'a World,
    pub samples: &'a [Sample],
    pub regions: &'a [String],
}

/// The checks: each rollout ended as its case should; no request of a shopper failed; arms
/// were sticky; two resident versions stayed under twice one plus 100 MiB.
pub fn judge(e: &Evidence<'_>) -> (Verdict, Violations, Vec<Memory>) {
    let mut checks: Vec<Check> = e.runs.iter().map(outcome_check).collect();
    let failed = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let (rec, ev) = (failed(&e.failures.recommendations), failed(&e.failures.events));
    let kinds = |m: &BTreeMap<String, u64>| m.iter().map(|(k, n)| format!(" {k}={n}")).collect::<String>();
    checks.push(Check {
        criterion: "zero failed requests (recommendations and events)".into(),
        observed: format!(
            "{rec} of {} recommendation requests failed{}; {ev} events failed{}",
            e.tally.sessions,
            kinds(&e.failures.recommendations),
            kinds(&e.failures.events)
        ),
        pass: rec == 0 && ev == 0,
    });
    let ended = rollback_times(e.runs, e.samples, Duration::from_millis(500));
    let v = violations(e.tally, e.world, &ended);
    checks.push(Check {
        criterion: "sticky arms: nobody left a candidate before its rollback or came back to it".into(),
        observed: if v.users == 0 {
            format!(
                "0 of {} shoppers",
                e.tally.answers.iter().map(|a| a.shopper).collect::<HashSet<_>>().len()
            )
        } else {
            let pairs: Vec<String> = v
                .pairs
                .iter()
                .map(|p| {
                    format!("{}: {} came back, {} left early", p.candidate_version, p.returned, p.left_early)
                })
                .collect();
            format!("{} shoppers ({}; e.g. {})", v.users, pairs.join(", "), v.examples.join(", "))
        },
        pass: v.users == 0,
    });
    let mem = memory(e.samples, e.regions);
    let over: Vec<String> = mem
        .iter()
        .filter_map(|m| match (m.one_version_mib, m.two_versions_mib) {
            (Some(one), Some(two)) if two > 2.0 * one + 100.0 => {
                Some(format!("{} {two} MiB > 2 x {one} + 100", m.region))
            }
            _ => None,
        })
        .collect();
    let seen: Vec<String> = mem
        .iter()
        .map(|m| {
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x}"));
            format!("{} {} -> {}", m.region, f(m.one_version_mib), f(m.two_versions_mib))
        })
        .collect();
    checks.push(Check {
        criterion: "node memory with two versions <= 2 x one version + 100 MiB".into(),
        observed: if over.is_empty() { format!("MiB {}", seen.join(", ")) } else { over.join(", ") },
        pass: over.is_empty() && mem.iter().any(|m| m.two_versions_mib.is_some()),
    });
    let pass = checks.iter().all(|c| c.pass);
    (Verdict { pass, checks }, v, mem)
}

impl RolloutReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# loadtest scenario rollout: {}\n", self.verdict.label());
        let _ = writeln!(
            s,
            "{} shopping sessions at {}/s against {} over {:.0} s; base {} (built on {} of {} interactions); plan `{}`\n",
            self.sessions, self.rate, self.target, self.seconds, self.base_version, self.base_rows, self.rows, self.plan
        );
        let _ = writeln!(s, "| candidate | version | outcome | step | decided after | in split | candidate sessions | candidate users |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for c in &self.cases {
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1}%", x * 100.0));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.1} s | {} | {}/{} ({}) | {}/{} ({}) |",
                c.case,
                c.model_version,
                c.phase,
                c.step_text.as_deref().unwrap_or("-"),
                c.seconds_to_decision,
                c.seconds_in_split.map_or("-".to_string(), |x| format!("{x:.1} s")),
                c.candidate_sessions,
                c.sessions,
                pct(c.candidate_session_share),
                c.candidate_users,
                c.users,
                pct(c.candidate_user_share)
            );
        }
        let _ = writeln!(s, "\nReasons:\n");
        for c in &self.cases {
            let _ = writeln!(s, "- {}: {}", c.case, c.reason.as_deref().unwrap_or("(promoted)"));
        }
        let _ = writeln!(s, "\nConversions per arm while each rollout ran (items acted on / items recommended, 95% Wilson):\n");
        let _ = writeln!(
            s,
            "| candidate | version | arm | sessions | users | items | acted on | rate | 95% interval |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for c in &self.cases {
            for a in &c.arms {
                let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | [{}, {}] |",
                    c.case,
                    a.model_version,
                    a.arm.as_str(),
                    a.sessions,
                    a.users,
                    a.items,
                    a.conversions,
                    f(a.rate),
                    f(a.rate_low),
                    f(a.rate_high)
                );
            }
        }
        let _ = writeln!(
            s,
            "\nNode memory (VmRSS, MiB):\n\n| region | one version | two versions |\n|---|---|---|"
        );
        for m in &self.memory {
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
            let _ = writeln!(s, "| {} | {} | {} |", m.region, f(m.one_version_mib), f(m.two_versions_mib));
        }
        let _ = writeln!(
            s,
            "\nShadow mode's cost (request latency seen by shoppers of the region, same run):\n\n\
             | region | shadow answers | p50 | p99 | no-candidate answers | p50 | p99 | p99 ratio |\n|---|---|---|---|---|---|---|---|"
        );
        for l in &self.shadow_latency {
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2} ms"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                l.region,
                l.shadow.answers,
                f(l.shadow.p50_ms),
                f(l.shadow.p99_ms),
                l.no_candidate.answers,
                f(l.no_candidate.p50_ms),
                f(l.no_candidate.p99_ms),
                l.p99_ratio.map_or("-".to_string(), |x| format!("{x:.2}"))
            );
        }
        let _ = writeln!(s, "\n## Verdict: {}\n", self.verdict.label());
        for c in &self.verdict.checks {
            let _ = writeln!(s, "- {} {}: {}", if c.pass { "ok" } else { "FAIL" }, c.criterion, c.observed);
        }
        s
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::rollout::Candidate;
    use serde_json::json;

    fn run(case: Case, phase: &str, step: usize, reason: &str) -> CaseRun {
        CaseRun {
            case,
            version: format!("v-{}", case.as_str()),
            rollout_id: "r1".into(),
            started: Duration::from_secs(10),
            ended: Duration::from_secs(40),
            exit_code: Some(if phase == "promoted" { 0 } else { 4 }),
            record: Some(json!({
                "phase": phase, "step": step, "reason": reason,
                "plan": "shadow@us-west:20s,10%@us-west+us-east:40s,100%@all:10s"
            })),
            error: None,
        }
    }

    #[test]
    fn outcomes_are_judged_by_case() {
        assert_eq!(first_split_step("shadow@a:1s,shadow=10%@b:1s,5%@a:1s"), Some(2));
        assert!(outcome_check(&run(Case::Bad, "rolled_back", 1, "conversions guard: z")).pass);
        assert!(!outcome_check(&run(Case::Bad, "rolled_back", 2, "conversions guard: z")).pass, "too late");
        assert!(!outcome_check(&run(Case::Bad, "promoted", 2, "")).pass);
        assert!(outcome_check(&run(Case::Errors, "rolled_back", 0, "step 1 failed: errors guard: 0.3")).pass);
        assert!(!outcome_check(&run(Case::Errors, "rolled_back", 0, "step 1 failed: latency guard: x")).pass);
        assert!(outcome_check(&run(Case::Slow, "rolled_back", 0, "step 1 failed: latency guard: x")).pass);
        assert_eq!(guard_of("latency guard: p99"), Some("latency"));
        assert_eq!(guard_of("step 2 failed: conversions guard: z = -3"), Some("conversions"));
        assert_eq!(guard_of("operator decision"), None);
        let good = outcome_check(&run(Case::Good, "promoted", 2, ""));
        assert!(
            good.pass && good.observed.contains("promoted at step 3 (100%@all:10s) after 30.0 s"),
            "{good:?}"
        );
        let mut lost = run(Case::Good, "promoted", 2, "");
        lost.error = Some("cannot read the record".into());
        assert!(!outcome_check(&lost).pass);
    }

    fn answer(shopper: usize, at: u64, version: &str, arm: Arm, conversions: u32) -> AnswerRecord {
        AnswerRecord {
            shopper,
            at: Duration::from_secs(at),
            latency: Duration::from_micros(1000 + at),
            region: Some("us-west".into()),
            model_version: version.into(),
            arm,
            items: 10,
            conversions,
        }
    }

    fn sample(at: u64, candidate: Option<(&str, Mode)>, rss: u64) -> Sample {
        Sample {
            at: Duration::from_secs(at),
            region: "us-west".into(),
            stable: Some("v1".into()),
            candidate: candidate.map(|(v, mode)| Candidate {
                version: v.into(),
                mode,
                share: 0.1,
                rollout_id: "r1".into(),
            }),
            rss_kib: Some(rss),
        }
    }

    #[test]
    fn exposure_conversions_memory_and_shadow_cost() {
        let r = run(Case::Bad, "rolled_back", 1, "conversions guard: z");
        let answers = vec![
            answer(1, 5, "v1", Arm::Stable, 3),
            answer(1, 12, "v1", Arm::Stable, 3),
            answer(2, 15, "v-bad", Arm::Candidate, 0),
            answer(2, 20, "v-bad", Arm::Candidate, 1),
            answer(3, 25, "v1", Arm::Stable, 2),
            answer(1, 45, "v1", Arm::Stable, 3),
        ];
        let samples = vec![
            sample(0, None, 30 * 1024),
            sample(11, Some(("v-bad", Mode::Shadow)), 40 * 1024),
            sample(14, Some(("v-bad", Mode::Split)), 41 * 1024),
            sample(40, None, 31 * 1024),
        ];
        let f = case_figures(&r, &answers, &samples);
        assert_eq!((f.sessions, f.candidate_sessions, f.users, f.candidate_users), (4, 2, 3, 1));
        assert_eq!((f.candidate_session_share, f.candidate_user_share), (Some(0.5), Some(0.3333)));
        assert_eq!((f.seconds_to_decision, f.seconds_in_split), (30.0, Some(26.0)));
        assert_eq!(f.step_text.as_deref(), Some("10%@us-west+us-east:40s"));
        let stable = &f.arms[0];
        assert_eq!(
            (stable.arm, stable.items, stable.conversions, stable.rate),
            (Arm::Stable, 20, 5, Some(0.25))
        );
        let cand = &f.arms[1];
        assert_eq!((cand.model_version.as_str(), cand.conversions, cand.rate), ("v-bad", 1, Some(0.05)));
        assert!(cand.rate_low.unwrap() < 0.05 && cand.rate_high.unwrap() > 0.05);

        let ended = rollback_times(&[r], &samples, Duration::from_millis(500));
        assert_eq!(ended.get("v-bad"), Some(&Duration::from_millis(13_500)));

        let mem = memory(&samples, &["us-west".to_string()]);
        assert_eq!((mem[0].one_version_mib, mem[0].two_versions_mib), (Some(31.0), Some(41.0)));

        // Answers at 12 s (shadow) against those at 5 and 45 s (no candidate).
        let lat = shadow_latency(&answers, &samples, &["us-west".to_string()]);
        assert_eq!((lat[0].shadow.answers, lat[0].no_candidate.answers), (1, 2));
        assert_eq!(lat[0].shadow.p99_ms, Some(1.01));
    }
}
