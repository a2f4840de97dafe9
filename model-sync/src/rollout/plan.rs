//! A rollout plan: the steps a candidate goes through, each with its traffic, its regions and
//! its bake time.
//!
//! Syntax (`--plan`), steps separated by commas, in order:
//!
//! ```text
//! plan     := step ("," step)*
//! step     := traffic "@" regions ":" bake
//! traffic  := "shadow"               shadow mode, every request also computed on the candidate
//!           | "shadow=" percent      shadow mode on that share of requests
//!           | percent                split mode: that share of users answered by the candidate
//! percent  := e.g. 5%, 25%, 100%, 0.5% (more than 0, at most 100, at most 2 decimals)
//! regions  := "all" | region ("+" region)*
//! bake     := e.g. 500ms, 90s, 5m, 1h
//! ```
//!
//! e.g. `shadow@us-west:5m,5%@us-west:5m,25%@us-west+us-east:10m,100%@all:10m`. A plan prints
//! back in the same syntax ([`fmt::Display`]), so it is stored as text in the rollout record.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use model::rollout::Mode;

/// A traffic share in hundredths of a percent (0..=10 000), so that a printed plan parses back
/// to exactly the same plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Share(u32);

impl Share {
    pub const FULL: Share = Share(10_000);

    /// `basis_points` hundredths of a percent; `None` above 100%.
    pub fn from_basis_points(basis_points: u32) -> Option<Share> {
        (basis_points <= 10_000).then_some(Share(basis_points))
    }

    pub fn basis_points(self) -> u32 {
        self.0
    }

    /// 0..=1, as a pointer's candidate carries it.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// `25%`, `0.5%`, `12.34%`.
    fn parse_percent(s: &str) -> Result<Share, StepProblem> {
        let bad = || StepProblem::Percent(s.to_string());
        let digits = s.strip_suffix('%').ok_or_else(bad)?;
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 2 || whole.len() > 3 {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<2}").parse().map_err(|_| bad())? };
        let bp = whole * 100 + frac;
        if bp == 0 || bp > 10_000 {
            return Err(StepProblem::PercentRange(s.to_string()));
        }
        Ok(Share(bp))
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            n if n % 10 == 0 => write!(f, "{whole}.{}%", n / 10),
            n => write!(f, "{whole}.{n:02}%"),
        }
    }
}

/// Which regions a step covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    All,
    /// In the order written, without duplicates.
    Named(Vec<String>),
}

impl Regions {
    /// The step's regions among `known` (every region of the cluster, in name order).
    pub fn resolve(&self, known: &[String]) -> Vec<String> {
        match self {
            Regions::All => known.to_vec(),
            Regions::Named(names) => names.clone(),
        }
    }
}

impl fmt::Display for Regions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regions::All => f.write_str("all"),
            Regions::Named(names) => f.write_str(&names.join("+")),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub mode: Mode,
    pub share: Share,
    pub regions: Regions,
    pub bake: Duration,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.mode, self.share) {
            (Mode::Shadow, Share::FULL) => f.write_str("shadow")?,
            (Mode::Shadow, s) => write!(f, "shadow={s}")?,
            (Mode::Split, s) => write!(f, "{s}")?,
        }
        write!(f, "@{}:{}", self.regions, DurationText(self.bake))
    }
}

/// The steps of a rollout, in order (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

/// Bake times of the default plan's four steps.
pub const DEFAULT_BAKES: [Duration; 4] =
    [Duration::from_secs(300), Duration::from_secs(300), Duration::from_secs(600), Duration::from_secs(600)];

impl Plan {
    /// Shadow in the first region (name order), 5% of users there, 25% in the first two,
    /// then 100% everywhere: `shadow@A:5m,5%@A:5m,25%@A+B:10m,100%@all:10m`.
    pub fn default_for(regions: &[String]) -> Plan {
        let first: Vec<String> = regions.iter().take(1).cloned().collect();
        let two: Vec<String> = regions.iter().take(2).cloned().collect();
        let step = |mode, bp, regions, bake| Step { mode, share: Share(bp), regions, bake };
        Plan {
            steps: vec![
                step(Mode::Shadow, 10_000, Regions::Named(first.clone()), DEFAULT_BAKES[0]),
                step(Mode::Split, 500, Regions::Named(first), DEFAULT_BAKES[1]),
                step(Mode::Split, 2_500, Regions::Named(two), DEFAULT_BAKES[2]),
                step(Mode::Split, 10_000, Regions::All, DEFAULT_BAKES[3]),
            ],
        }
    }

    /// `rollout start --hold SHARE`: one split step in every region that never ends by itself.
    pub fn hold(share: Share) -> Plan {
        Plan { steps: vec![Step { mode: Mode::Split, share, regions: Regions::All, bake: Duration::ZERO }] }
    }

    /// Every region a step names must be one of `known`.
    pub fn check_regions(&self, known: &[String]) -> Result<(), PlanError> {
        let unknown: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| match &s.regions {
                Regions::All => None,
                Regions::Named(n) => Some(n),
            })
            .flatten()
            .filter(|r| !known.contains(*r))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(PlanError::UnknownRegions { unknown, known: known.to_vec() })
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self.steps.iter().map(Step::to_string).collect();
        f.write_str(&steps.join(","))
    }
}

/// What is wrong with one step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepProblem {
    #[error("expected TRAFFIC@REGIONS:BAKE, e.g. 5%@us-west:5m")]
    Shape,
    #[error("traffic {0:?} is neither `shadow`, `shadow=PERCENT` nor a percentage like 5% or 0.5%")]
    Percent(String),
    #[error("traffic {0:?} must be more than 0% and at most 100%")]
    PercentRange(String),
    #[error("no regions (write `all` or region names joined by `+`)")]
    NoRegions,
    #[error("region {0:?} is not a valid region name")]
    RegionName(String),
    #[error("region {0:?} is named twice")]
    DuplicateRegion(String),
    #[error("bake time {0:?} is not a duration like 500ms, 90s, 5m or 1h")]
    Bake(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan has no steps (e.g. shadow@us-west:5m,5%@us-west:5m,100%@all:10m)")]
    Empty,
    #[error("plan step {number} {text:?}: {problem}")]
    Step {
        /// 1-based.
        number: usize,
        text: String,
        #[source]
        problem: StepProblem,
    },
    #[error("the plan names unknown region(s) {} (known: {})", unknown.join(", "), known.join(", "))]
    UnknownRegions { unknown: Vec<String>, known: Vec<String> },
}

impl FromStr for Plan {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Plan, PlanError> {
        if s.trim().is_empty() {
            return Err(PlanError::Empty);
        }
        let steps = s
            .split(',')
            .enumerate()
            .map(|(i, text)| {
                parse_step(text.trim()).map_err(|problem| PlanError::Step {
                    number: i + 1,
                    text: text.trim().to_string(),
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan { steps })
    }
}

fn parse_step(text: &str) -> Result<Step, StepProblem> {
    let (traffic, rest) = text.split_once('@').ok_or(StepProblem::Shape)?;
    let (regions, bake) = rest.rsplit_once(':').ok_or(StepProblem::Shape)?;
    let (mode, share) = match traffic.trim() {
        "shadow" => (Mode::Shadow, Share::FULL),
        t => match t.strip_prefix("shadow=") {
            Some(p) => (Mode::Shadow, Share::parse_percent(p.trim())?),
            None => (Mode::Split, Share::parse_percent(t)?),
        },
    };
    let regions = match regions.trim() {
        "" => return Err(StepProblem::NoRegions),
        "all" => Regions::All,
        list => {
            let mut names: Vec<String> = Vec::new();
            for name in list.split('+').map(str::trim) {
                let valid = !name.is_empty()
                    && name.len() <= 63
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
                if !valid || name == "all" {
                    return Err(StepProblem::RegionName(name.to_string()));
                }
                if names.iter().any(|n| n == name) {
                    return Err(StepProblem::DuplicateRegion(name.to_string()));
                }
                names.push(name.to_string());
            }
            Regions::Named(names)
        }
    };
    let bake = parse_duration(bake.trim()).ok_or_else(|| StepProblem::Bake(bake.trim().to_string()))?;
    Ok(Step { mode, share, regions, bake })
}

/// `500ms`, `90s`, `5m`, `1h` (a number and a unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// A duration in the largest unit that shows it exactly.
pub struct DurationText(pub Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            ms if ms % 1000 != 0 => write!(f, "{ms}ms"),
            ms if ms == 0 || ms % 60_000 != 0 => write!(f, "{}s", ms / 1000),
            ms if ms % 3_600_000 != 0 => write!(f, "{}m", ms / 60_000),
            ms => write!(f, "{}h", ms / 3_600_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn regions(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_documented_example_parses() {
        let text = "shadow@us-west:5m,5%@us-west:5m,25%@us-west+us-east:10m,100%@all:10m";
        let plan: Plan = text.parse().expect("parses");
        assert_eq!(plan.steps.len(), 4);
        assert_eq!((plan.steps[0].mode, plan.steps[0].share), (Mode::Shadow, Share::FULL));
        assert_eq!(plan.steps[1].share.fraction(), 0.05);
        assert_eq!(plan.steps[2].regions, Regions::Named(regions(&["us-west", "us-east"])));
        assert_eq!(plan.steps[3].regions, Regions::All);
        assert_eq!(plan.steps[3].bake, Duration::from_secs(600));
        assert_eq!(plan.to_string(), text);
        let four = regions(&["ap-south", "eu-west", "us-east", "us-west"]);
        assert_eq!(
            Plan::default_for(&four).to_string(),
            "shadow@ap-south:5m,5%@ap-south:5m,25%@ap-south+eu-west:10m,100%@all:10m"
        );
        assert_eq!(
            "shadow=12.5%@a:1500ms".parse::<Plan>().expect("parses").steps[0].share.basis_points(),
            1250
        );
    }

    #[test]
    fn errors_name_the_step_and_the_problem() {
        let err = |s: &str| s.parse::<Plan>().expect_err(s);
        assert_eq!(err(""), PlanError::Empty);
        let e = err("5%@us-west:5m,30@us-east:5m");
        assert!(matches!(&e, PlanError::Step { number: 2, problem: StepProblem::Percent(_), .. }), "{e:?}");
        assert!(e.to_string().contains("step 2 \"30@us-east:5m\""), "{e}");
        assert!(matches!(err("0%@a:1s"), PlanError::Step { problem: StepProblem::PercentRange(_), .. }));
        assert!(matches!(err("101%@a:1s"), PlanError::Step { problem: StepProblem::PercentRange(_), .. }));
        assert!(matches!(err("1.234%@a:1s"), PlanError::Step { problem: StepProblem::Percent(_), .. }));
        assert!(matches!(err("5%@a:5 minutes"), PlanError::Step { problem: StepProblem::Bake(_), .. }));
        assert!(matches!(err("5%@:5m"), PlanError::Step { problem: StepProblem::NoRegions, .. }));
        assert!(matches!(err("5%@a+a:5m"), PlanError::Step { problem: StepProblem::DuplicateRegion(_), .. }));
        assert!(matches!(err("5%@US:5m"), PlanError::Step { problem: StepProblem::RegionName(_), .. }));
        assert!(matches!(err("5%us-west"), PlanError::Step { problem: StepProblem::Shape, .. }));
        let plan: Plan = "5%@mars+us-west:1s,100%@all:1s".parse().expect("syntax is fine");
        let e = plan.check_regions(&regions(&["us-east", "us-west"])).expect_err("mars");
        assert!(e.to_string().contains("unknown region(s) mars (known: us-east, us-west)"), "{e}");
    }

    fn step() -> impl Strategy<Value = Step> {
        let name = prop::sample::select(vec!["us-west", "us-east", "eu-west", "ap-south", "x1"]);
        let regions = prop_oneof![
            Just(Regions::All),
            prop::collection::btree_set(name, 1..4)
                .prop_map(|s| Regions::Named(s.into_iter().map(String::from).collect())),
        ];
        let bake = prop_oneof![
            (0u64..100_000).prop_map(Duration::from_millis),
            (0u64..200).prop_map(|m| Duration::from_secs(m * 60)),
        ];
        let mode = prop_oneof![Just(Mode::Shadow), Just(Mode::Split)];
        (mode, 1u32..=10_000, regions, bake).prop_map(|(mode, bp, regions, bake)| Step {
            mode,
            share: Share(bp),
            regions,
            bake,
        })
    }

    proptest! {
        #[test]
        fn plans_print_and_parse_back(steps in prop::collection::vec(step(), 1..6)) {
            let plan = Plan { steps };
            let text = plan.to_string();
            prop_assert_eq!(text.parse::<Plan>(), Ok(plan), "{}", text);
        }
    }
}
