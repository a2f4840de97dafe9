//! The result of a run as data ([`Report`], serialisable) and as text: JSON and Markdown
//! (written with the chart to `--out DIR` by [`crate::out`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::ErrorKind;
use crate::plan::{Load, Plan};
use crate::scenario::judge::Verdict;
use crate::stats::{ms, Seen, Stats};

/// Something that happened during the run (a node killed, a model published), marked on the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds from the measurement start.
    pub t_s: f64,
    pub label: String,
}

impl Event {
    pub fn new(at: Duration, label: impl Into<String>) -> Self {
        Event { t_s: round3(at.as_secs_f64()), label: label.into() }
    }
}

/// Percentiles in µs of successful answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: round3(h.mean()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VersionSeen {
    pub count: u64,
    /// Seconds from the measurement start of the first and last answer with this version.
    pub first_seen_s: f64,
    pub last_seen_s: f64,
}

impl From<&Seen> for VersionSeen {
    fn from(s: &Seen) -> Self {
        VersionSeen {
            count: s.count,
            first_seen_s: round3(s.first.as_secs_f64()),
            last_seen_s: round3(s.last.as_secs_f64()),
        }
    }
}

/// One second of the run (by due time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondRow {
    pub t_s: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    /// `open loop, 200 req/s` or `closed loop, 8 connections`.
    pub load: String,
    #[serde(default)]
    pub scenario: Option<String>,
    pub warmup_s: f64,
    /// Measured time: from the measurement start to the last answer.
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub throughput_rps: f64,
    pub latency_us: Latency,
    /// Every kind, zeros included, so consumers need not guess the keys.
    pub errors: BTreeMap<String, u64>,
    pub served_by: BTreeMap<String, u64>,
    /// Answers the router failed over, by the region it failed over from.
    pub failovers: BTreeMap<String, u64>,
    pub model_versions: BTreeMap<String, VersionSeen>,
    pub model_versions_by_region: BTreeMap<String, BTreeMap<String, VersionSeen>>,
    pub timeline: Vec<SecondRow>,
    pub events: Vec<Event>,
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl Report {
    pub fn new(plan: &Plan, stats: &Stats, events: Vec<Event>) -> Self {
        let load = match plan.load {
            Load::Open { rate, .. } => format!("open loop, {rate} req/s"),
            Load::Closed { connections } => format!("closed loop, {connections} connections"),
        };
        let timeline = stats
            .seconds
            .iter()
            .enumerate()
            .map(|(t, s)| SecondRow {
                t_s: t as u64,
                requests: s.requests,
                errors: s.errors,
                p50_us: s.latency.value_at_quantile(0.5),
                p99_us: s.latency.value_at_quantile(0.99),
                max_us: s.latency.max(),
            })
            .collect();
        Report {
            target: plan.url(),
            load,
            scenario: None,
            warmup_s: round3(plan.warmup.as_secs_f64()),
            duration_s: round3(stats.elapsed.as_secs_f64()),
            requests: stats.requests,
            ok: stats.ok,
            failed: stats.failed(),
            throughput_rps: round3(stats.throughput()),
            latency_us: Latency::of(&stats.latency),
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), stats.errors.get(k).copied().unwrap_or(0)))
                .collect(),
            served_by: stats.served_by.clone(),
            failovers: stats.failovers.clone(),
            model_versions: stats.versions.iter().map(|(v, s)| (v.clone(), s.into())).collect(),
            model_versions_by_region: stats
                .versions_by_region
                .iter()
                .map(|(r, vs)| (r.clone(), vs.iter().map(|(v, s)| (v.clone(), s.into())).collect()))
                .collect(),
            timeline,
            events,
            verdict: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let title = self.scenario.as_deref().map_or("Load test".to_string(), |s| format!("Scenario `{s}`"));
        let _ = writeln!(md, "# {title}\n");
        let _ = writeln!(md, "- target: `{}`\n- load: {}", self.target, self.load);
        let _ = writeln!(md, "- measured: {:.1} s after {:.1} s warm-up", self.duration_s, self.warmup_s);
        let _ = writeln!(
            md,
            "- requests: {} ({} ok, {} failed), throughput {:.1} req/s\n",
            self.requests, self.ok, self.failed, self.throughput_rps
        );
        let l = &self.latency_us;
        let _ = writeln!(md, "## Latency (successful answers, from the scheduled send time)\n");
        let _ = writeln!(md, "| p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |\n",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(l.mean as u64)
        );
        table(&mut md, "Errors by kind", "kind", self.errors.iter().filter(|(_, n)| **n > 0));
        table(&mut md, "Served by region (x-served-by)", "region", self.served_by.iter());
        table(&mut md, "Failovers (x-failover-from)", "from region", self.failovers.iter());
        let _ = writeln!(md, "## Model versions seen\n");
        if self.model_versions.is_empty() {
            let _ = writeln!(md, "none\n");
        } else {
            let _ = writeln!(md, "| version | answers | first seen | last seen |\n|---|---|---|---|");
            for (v, s) in &self.model_versions {
                let _ = writeln!(
                    md,
                    "| `{v}` | {} | {:.3} s | {:.3} s |",
                    s.count, s.first_seen_s, s.last_seen_s
                );
            }
            let _ = writeln!(md);
        }
        if !self.events.is_empty() {
            let _ = writeln!(md, "## Events\n");
            for e in &self.events {
                let _ = writeln!(md, "- {:.3} s: {}", e.t_s, e.label);
            }
            let _ = writeln!(md);
        }
        if let Some(v) = &self.verdict {
            let _ = writeln!(md, "## Verdict: {}\n", if v.pass { "PASS" } else { "FAIL" });
            for c in &v.checks {
                let _ =
                    writeln!(md, "- [{}] {}: {}", if c.pass { "x" } else { " " }, c.criterion, c.observed);
            }
            let _ = writeln!(md);
        }
        md
    }
}

fn table<'a>(md: &mut String, title: &str, key: &str, rows: impl Iterator<Item = (&'a String, &'a u64)>) {
    let rows: Vec<_> = rows.collect();
    let _ = writeln!(md, "## {title}\n");
    if rows.is_empty() {
        let _ = writeln!(md, "none\n");
        return;
    }
    let total: u64 = rows.iter().map(|(_, n)| **n).sum();
    let _ = writeln!(md, "| {key} | count | share |\n|---|---|---|");
    for (k, n) in rows {
        let _ = writeln!(md, "| {k} | {n} | {:.1}% |", 100.0 * *n as f64 / total.max(1) as f64);
    }
    let _ = writeln!(md);
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
