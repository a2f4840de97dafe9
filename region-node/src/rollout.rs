//! Two versions on one node: the serving snapshot and, during a rollout, a candidate beside it
//! (see [`model::rollout`] for the contract), and what the node measures for each.
//!
//! [`Serving`] is what the model slot holds: one immutable pair behind one swap, so a request
//! picks its arm and its snapshot from one consistent view. Each [`ModelSnapshot`] carries its
//! own [`Figures`] (atomics, cumulative since it was loaded here), so a version promoted from
//! candidate to stable keeps counting where it was, and a report is a read of atomics.

use std::sync::Arc;
use std::time::Duration;

use model::rollout::{Arm, Candidate, CandidateReport, Latency, Mode, LATENCY_BUCKETS};

use crate::snapshot::ModelSnapshot;

/// The candidate under rollout, with the pointer's instructions for it.
#[derive(Debug)]
pub struct CandidateSlot {
    pub snapshot: Arc<ModelSnapshot>,
    pub spec: Candidate,
}

/// The versions a node answers with.
#[derive(Debug)]
pub struct Serving {
    pub stable: Arc<ModelSnapshot>,
    pub candidate: Option<CandidateSlot>,
}

impl Serving {
    pub fn stable_only(stable: Arc<ModelSnapshot>) -> Self {
        Self { stable, candidate: None }
    }

    /// The arm and snapshot that answer `user_id`: the candidate for the users of its share in
    /// a split, the stable version otherwise.
    pub fn pick(&self, user_id: &str) -> (Arm, &Arc<ModelSnapshot>) {
        match &self.candidate {
            Some(c) if c.spec.arm(user_id) == Arm::Candidate => (Arm::Candidate, &c.snapshot),
            _ => (Arm::Stable, &self.stable),
        }
    }

    /// The candidate when it is in shadow mode.
    pub fn shadow(&self) -> Option<&CandidateSlot> {
        self.candidate.as_ref().filter(|c| c.spec.mode == Mode::Shadow)
    }

    /// A rollout is on: answers are attributed for conversions.
    pub fn in_rollout(&self) -> bool {
        self.candidate.is_some()
    }

    /// The resident snapshot of `version`, with its arm.
    pub fn version(&self, version: &str) -> Option<(Arm, &ModelSnapshot)> {
        if self.stable.version == version {
            return Some((Arm::Stable, &self.stable));
        }
        self.candidate
            .as_ref()
            .filter(|c| c.snapshot.version == version)
            .map(|c| (Arm::Candidate, &*c.snapshot))
    }

    /// Every resident version (stable first).
    pub fn versions(&self) -> Vec<&str> {
        let mut v = vec![self.stable.version.as_str()];
        v.extend(self.candidate.as_ref().map(|c| c.snapshot.version.as_str()));
        v
    }
}

/// One version of a [`Serving`], held for a whole request. It keeps the pair alive, so a
/// replaced model is freed by the retire thread ([`crate::background::retire`]), never by
/// the request that happened to hold it last.
#[derive(Debug, Clone)]
pub struct Held {
    serving: Arc<Serving>,
    arm: Arm,
}

impl Held {
    /// `arm` of `serving`; the stable version when there is no candidate.
    pub fn new(serving: Arc<Serving>, arm: Arm) -> Self {
        let arm = if serving.candidate.is_some() { arm } else { Arm::Stable };
        Self { serving, arm }
    }

    pub fn arm(&self) -> Arm {
        self.arm
    }

    pub fn serving(&self) -> &Arc<Serving> {
        &self.serving
    }
}

impl std::ops::Deref for Held {
    type Target = ModelSnapshot;

    fn deref(&self) -> &ModelSnapshot {
        match (self.arm, &self.serving.candidate) {
            (Arm::Candidate, Some(c)) => &c.snapshot,
            _ => &self.serving.stable,
        }
    }
}

/// The per-version figures of the resident versions in the Prometheus text format, appended
/// to `/metrics`: made from the snapshots at each scrape, so versions that left leave no
/// series behind.
pub fn prometheus_text(serving: &Serving) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut versions = vec![(Arm::Stable, &serving.stable)];
    versions.extend(serving.candidate.as_ref().map(|c| (Arm::Candidate, &c.snapshot)));
    // One read of each version's counters, so every family shows the same moment.
    let reports: Vec<_> =
        versions.iter().map(|(arm, s)| (*arm, s, s.figures.report(&s.version, 0))).collect();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "georec_version_requests_total",
        "counter",
        "Answers by model version, arm and strategy",
    );
    for (arm, s, r) in &reports {
        for (strategy, n) in &r.strategies {
            let _ = writeln!(
                out,
                "georec_version_requests_total{{arm=\"{}\",strategy=\"{strategy}\",version=\"{}\"}} {n}",
                arm.as_str(),
                s.version
            );
        }
    }
    family(
        &mut out,
        "georec_version_errors_total",
        "counter",
        "Requests a version failed (answered by the stable version instead)",
    );
    for (arm, s, r) in &reports {
        let _ = writeln!(
            out,
            "georec_version_errors_total{{arm=\"{}\",version=\"{}\"}} {}",
            arm.as_str(),
            s.version,
            r.errors
        );
    }
    family(
        &mut out,
        "georec_version_conversions_total",
        "counter",
        "Events on items a version recommended to that user within the attribution window, by type",
    );
    for (arm, s, r) in &reports {
        for (kind, n) in &r.conversions {
            let _ = writeln!(
                out,
                "georec_version_conversions_total{{arm=\"{}\",type=\"{kind}\",version=\"{}\"}} {n}",
                arm.as_str(),
                s.version
            );
        }
    }
    let histogram = |out: &mut String, name: &str, labels: &str, l: &Latency| {
        let mut cumulative = 0;
        for (i, c) in l.counts.iter().enumerate() {
            cumulative += c;
            let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ =
            writeln!(out, "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {cumulative}", l.sum_seconds);
    };
    family(
        &mut out,
        "georec_version_request_duration_seconds",
        "histogram",
        "Recommendation latency on the node by model version and arm",
    );
    for (arm, s) in &versions {
        let labels = format!("arm=\"{}\",version=\"{}\"", arm.as_str(), s.version);
        histogram(&mut out, "georec_version_request_duration_seconds", &labels, &s.figures.latency());
    }
    if let Some(c) = serving.shadow() {
        let sh = c.snapshot.figures.shadow_report();
        let v = &c.snapshot.version;
        family(
            &mut out,
            "georec_shadow_requests_total",
            "counter",
            "Sampled requests computed on the shadow candidate, by outcome",
        );
        for (outcome, n) in [("computed", sh.computed), ("skipped", sh.skipped), ("error", sh.errors)] {
            let _ =
                writeln!(out, "georec_shadow_requests_total{{outcome=\"{outcome}\",version=\"{v}\"}} {n}");
        }
        family(
            &mut out,
            "georec_shadow_overlap_sum",
            "counter",
            "Sum of overlap@10 between the served answer and the shadow candidate's",
        );
        let _ = writeln!(out, "georec_shadow_overlap_sum{{version=\"{v}\"}} {}", sh.overlap_sum);
        family(
            &mut out,
            "georec_shadow_duration_seconds",
            "histogram",
            "Computation time of the shadow candidate",
        );
        histogram(&mut out, "georec_shadow_duration_seconds", &format!("version=\"{v}\""), &sh.latency);
    }
    out
}

impl CandidateSlot {
    pub fn report(&self, users: u64) -> CandidateReport {
        CandidateReport {
            rollout_id: self.spec.rollout_id.clone(),
            mode: self.spec.mode,
            share: self.spec.share,
            figures: self.snapshot.figures.report(&self.snapshot.version, users),
            shadow: self.snapshot.figures.shadow_report(),
        }
    }
}

/// |a ∩ b| / min(10, |a|) over the first 10 of each: how much of the served top 10 the
/// candidate would have shown too (1 when both are empty, 0 when only `a` is).
pub fn overlap_at_10(served: &[&str], candidate: &[&str]) -> f64 {
    let a = &served[..served.len().min(10)];
    let b = &candidate[..candidate.len().min(10)];
    if a.is_empty() {
        return if b.is_empty() { 1.0 } else { 0.0 };
    }
    a.iter().filter(|x| b.contains(x)).count() as f64 / a.len() as f64
}

/// A fault injected into one version's computations, for rollout tests and drills
/// (`GEOREC_INJECT_FAULT="<version>:error=<0..1>,delay_ms=<n>"`, several separated by `;`):
/// the version fails that share of its computations, or takes that much longer. Never set in
/// production.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub version: String,
    pub error_share: f64,
    pub delay: Duration,
}

impl Fault {
    /// The fault injected into `version`, if any.
    pub fn on<'a>(faults: &'a [Fault], version: &str) -> Option<&'a Fault> {
        faults.iter().find(|f| f.version == version)
    }

    /// Faults separated by `;`, at most one per version.
    pub fn parse_list(text: &str) -> Result<Vec<Fault>, String> {
        let mut faults: Vec<Fault> = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let fault = Fault::parse(part)?;
            if faults.iter().any(|f| f.version == fault.version) {
                return Err(format!("{part:?}: version {} has a fault already", fault.version));
            }
            faults.push(fault);
        }
        Ok(faults)
    }

    /// Draws whether this computation fails.
    pub fn fails(&self) -> bool {
        self.error_share > 0.0 && rand::random::<f64>() < self.error_share
    }

    /// Waits the injected delay, if any.
    pub async fn delay(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let (version, spec) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected <version>:error=..,delay_ms=.."))?;
        let mut fault = Fault { version: version.to_string(), error_share: 0.0, delay: Duration::ZERO };
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("error", v)) => {
                    fault.error_share = v
                        .parse::<f64>()
                        .ok()
                        .filter(|x| (0.0..=1.0).contains(x))
                        .ok_or_else(|| format!("{text:?}: error={v} is not within 0..=1"))?;
                }
                Some(("delay_ms", v)) => {
                    let ms = v
                        .parse::<u64>()
                        .map_err(|_| format!("{text:?}: delay_ms={v} is not a whole number"))?;
                    fault.delay = Duration::from_millis(ms);
                }
                _ => return Err(format!("{text:?}: unknown part {part:?} (error=, delay_ms=)")),
            }
        }
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_the_served_top_ten() {
        assert_eq!(overlap_at_10(&["a", "b"], &["b", "c"]), 0.5);
        assert_eq!(overlap_at_10(&[], &[]), 1.0);
        assert_eq!(overlap_at_10(&["a"], &[]), 0.0);
        let long: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        assert_eq!(overlap_at_10(&long, &long[10..]), 0.0);
        assert_eq!(overlap_at_10(&long, &long[5..]), 0.5);
    }

    #[test]
    fn faults_parse_or_say_what_is_wrong() {
        let f = Fault::parse("v2:error=0.5,delay_ms=20").expect("parses");
        assert_eq!((f.version.as_str(), f.error_share, f.delay), ("v2", 0.5, Duration::from_millis(20)));
        assert!(Fault::parse("v2").unwrap_err().contains("expected"));
        assert!(Fault::parse("v2:error=2").unwrap_err().contains("0..=1"));
        assert!(Fault::parse("v2:boom=1").unwrap_err().contains("unknown part"));
        let list = Fault::parse_list("v2:error=1; v3:delay_ms=5;").expect("parses");
        assert_eq!(Fault::on(&list, "v3").map(|f| f.delay), Some(Duration::from_millis(5)));
        assert_eq!(Fault::on(&list, "v4"), None);
        assert!(Fault::parse_list("v2:error=1;v2:delay_ms=5").unwrap_err().contains("already"));
    }
}
