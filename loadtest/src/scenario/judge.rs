//! PASS or FAIL: a scenario's measurements against its stated criteria. Pure functions over
//! plain data, so the judgement is tested without a cluster.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::ErrorKind;
use crate::stats::ms;
use crate::stats::{Seen, Stats};

/// One criterion, what was observed, and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub criterion: String,
    pub observed: String,
    pub pass: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        if self.pass {
            "PASS"
        } else {
            "FAIL"
        }
    }
}

/// What a scenario must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    /// Before the event: the reference latency.
    pub steady: Range<Duration>,
    /// The event and its aftermath.
    pub event: Range<Duration>,
    /// Event-window p99 may be at most this multiple of the steady p99.
    pub max_p99_ratio: f64,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            steady: Duration::ZERO..Duration::from_secs(10),
            event: Duration::from_secs(10)..Duration::from_secs(25),
            max_p99_ratio: 3.0,
        }
    }
}

/// A hot swap's observations.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapEvidence {
    /// The version published during the run.
    pub version: String,
    /// Publish finished (pointers flipped) plus two poll intervals, from the measurement start.
    pub deadline: Duration,
    /// Per configured region: when its node first reported `version` on `/health/ready`.
    pub node_ready: BTreeMap<String, Option<Duration>>,
    /// Per serving region (`x-served-by`): model versions in its answers.
    pub answers: BTreeMap<String, BTreeMap<String, Seen>>,
}

/// Everything the judgement reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    pub requests: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// p99 (µs) of the steady and event windows; `None` when a window had no answers.
    pub steady_p99_us: Option<u64>,
    pub event_p99_us: Option<u64>,
    pub swap: Option<SwapEvidence>,
    /// Scenario steps (kill, restart, publish...) that could not be carried out.
    pub step_failures: Vec<String>,
}

impl Evidence {
    pub fn from_stats(stats: &Stats, criteria: &Criteria) -> Self {
        let p99 = |w: &Range<Duration>| {
            let h = stats.window(w.start, w.end);
            (!h.is_empty()).then(|| h.value_at_quantile(0.99))
        };
        Evidence {
            requests: stats.requests,
            errors: stats.errors.clone(),
            steady_p99_us: p99(&criteria.steady),
            event_p99_us: p99(&criteria.event),
            swap: None,
            step_failures: Vec::new(),
        }
    }
}

/// Judge `e` against `c`.
pub fn judge(e: &Evidence, c: &Criteria) -> Verdict {
    let mut checks = vec![failed_requests(e), p99_ratio(e, c)];
    if let Some(swap) = &e.swap {
        checks.extend(swap_checks(swap));
    }
    if !e.step_failures.is_empty() {
        checks.push(Check {
            criterion: "every scenario step carried out".into(),
            observed: e.step_failures.join("; "),
            pass: false,
        });
    }
    Verdict { pass: checks.iter().all(|c| c.pass), checks }
}

fn failed_requests(e: &Evidence) -> Check {
    let failed: u64 = e.errors.values().sum();
    let kinds = e.errors.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>();
    let observed = match (e.requests, failed) {
        (0, _) => "no requests were measured".to_string(),
        (n, 0) => format!("0 of {n} failed"),
        (n, f) => format!("{f} of {n} failed ({})", kinds.join(", ")),
    };
    Check { criterion: "zero failed requests".into(), observed, pass: e.requests > 0 && failed == 0 }
}

fn p99_ratio(e: &Evidence, c: &Criteria) -> Check {
    let secs = |r: &Range<Duration>| format!("{}-{} s", r.start.as_secs_f64(), r.end.as_secs_f64());
    let criterion = format!(
        "p99 during the event ({}) at most {}x the steady p99 ({})",
        secs(&c.event),
        c.max_p99_ratio,
        secs(&c.steady)
    );
    let (observed, pass) = match (e.steady_p99_us, e.event_p99_us) {
        (Some(steady), Some(event)) => {
            let ratio = event as f64 / steady.max(1) as f64;
            (
                format!("event p99 {} vs steady p99 {} ({ratio:.2}x)", ms(event), ms(steady)),
                ratio <= c.max_p99_ratio,
            )
        }
        (None, _) => ("no successful answers in the steady window".into(), false),
        (_, None) => ("no successful answers in the event window".into(), false),
    };
    Check { criterion, observed, pass }
}

fn swap_checks(s: &SwapEvidence) -> Vec<Check> {
    let deadline = format!("{:.1} s", s.deadline.as_secs_f64());
    let late: Vec<String> = s
        .node_ready
        .iter()
        .filter_map(|(r, t)| match t {
            Some(t) if *t <= s.deadline => None,
            Some(t) => Some(format!("{r} at {:.1} s", t.as_secs_f64())),
            None => Some(format!("{r} never")),
        })
        .collect();
    let nodes = Check {
        criterion: format!(
            "every node reports {} on /health/ready within two poll intervals of the publish (by {deadline})",
            s.version
        ),
        observed: if s.node_ready.is_empty() {
            "no regions to check".into()
        } else if late.is_empty() {
            let last = s.node_ready.values().flatten().max().copied().unwrap_or_default();
            format!("all {} regions by {:.1} s", s.node_ready.len(), last.as_secs_f64())
        } else {
            format!("late: {}", late.join(", "))
        },
        pass: !s.node_ready.is_empty() && late.is_empty(),
    };
    let mut problems = Vec::new();
    for region in s.node_ready.keys() {
        let Some(versions) = s.answers.get(region) else {
            problems.push(format!("{region}: no answers"));
            continue;
        };
        match versions.get(&s.version) {
            Some(seen) if seen.first <= s.deadline => {}
            Some(seen) => problems.push(format!("{region}: first at {:.1} s", seen.first.as_secs_f64())),
            None => problems.push(format!("{region}: never answered with it")),
        }
        for (v, seen) in versions.iter().filter(|(v, _)| **v != s.version) {
            if seen.last > s.deadline {
                problems.push(format!("{region}: still answered {v} at {:.1} s", seen.last.as_secs_f64()));
            }
        }
    }
    let answers = Check {
        criterion: format!(
            "answers from every region carry {} by {deadline}, and no older version after",
            s.version
        ),
        observed: if problems.is_empty() { "yes".into() } else { problems.join("; ") },
        pass: !s.node_ready.is_empty() && problems.is_empty(),
    };
    vec![nodes, answers]
}
