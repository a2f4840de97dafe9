//! What a run does: where it sends, how fast (open or closed loop), for how long, and with
//! which region hints. Built by the CLI, read by [`crate::run`]; no I/O here.

use std::time::Duration;

use rand::RngExt;

/// Everything the engine needs besides the users.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL of a router or region node, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    /// Request path appended to `target`.
    pub path: String,
    pub load: Load,
    pub bound: Bound,
    /// Load sent before the measurement starts (connections warm, caches fill); not counted.
    pub warmup: Duration,
    /// Whole-request deadline (connect, send, answer, body).
    pub timeout: Duration,
    /// `count` in every request body.
    pub count: u32,
    pub hints: Hints,
    /// Seeds user and hint choice, so two runs with the same seed send the same requests.
    pub seed: u64,
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Requests on a fixed schedule, independent of answers; latency counts from the
    /// scheduled send time so a stalled target shows up instead of slowing the schedule.
    Open {
        rate: f64,
        /// Requests still running when the next one is due beyond this count are not sent and
        /// count as `overload` errors: the load generator must not grow without bound.
        max_in_flight: usize,
    },
    /// `connections` workers, each sending its next request when the previous one answered.
    Closed { connections: usize },
}

/// When a run stops; at least one bound is always set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Measured time (after warm-up) during which requests are started.
    pub duration: Option<Duration>,
    /// Measured requests to start.
    pub requests: Option<u64>,
}

impl Bound {
    pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

    /// `duration` and/or `requests`; neither means [`Bound::DEFAULT_DURATION`].
    pub fn new(duration: Option<Duration>, requests: Option<u64>) -> Self {
        match (duration, requests) {
            (None, None) => Bound { duration: Some(Self::DEFAULT_DURATION), requests: None },
            _ => Bound { duration, requests },
        }
    }

    /// True once a request started `elapsed` after the measurement start, as number
    /// `started` (0-based), would exceed the bound.
    pub fn reached(&self, elapsed: Duration, started: u64) -> bool {
        self.duration.is_some_and(|d| elapsed >= d) || self.requests.is_some_and(|n| started >= n)
    }
}

/// The `X-Region-Hint` each request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Hints {
    None,
    Mix(Mix),
}

impl Hints {
    pub fn pick(&self, rng: &mut impl rand::Rng) -> Option<&str> {
        match self {
            Hints::None => None,
            Hints::Mix(mix) => Some(mix.pick(rng)),
        }
    }
}

/// Region names with relative weights (`us-west=40,eu-west=30`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    regions: Vec<(String, u32)>,
    total: u64,
}

impl Mix {
    /// Every region with the same weight.
    pub fn even<S: AsRef<str>>(regions: &[S]) -> Result<Self, PlanError> {
        Self::from_weights(regions.iter().map(|r| (r.as_ref().to_string(), 1)).collect())
    }

    /// Parse `us-west=40,eu-west=30,...`; a region without `=w` weighs 1.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let mut regions = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => {
                    let w = w.trim().parse::<u32>().map_err(|_| PlanError::Mix {
                        text: text.to_string(),
                        reason: format!("weight of {:?} is not a whole number", n.trim()),
                    })?;
                    (n.trim(), w)
                }
                None => (part, 1),
            };
            regions.push((name.to_string(), weight));
        }
        Self::from_weights(regions).map_err(|e| match e {
            PlanError::Mix { reason, .. } => PlanError::Mix { text: text.to_string(), reason },
            other => other,
        })
    }

    fn from_weights(regions: Vec<(String, u32)>) -> Result<Self, PlanError> {
        let bad = |reason: String| PlanError::Mix { text: String::new(), reason };
        if regions.is_empty() {
            return Err(bad("no regions given".into()));
        }
        for (i, (name, _)) in regions.iter().enumerate() {
            if name.is_empty() {
                return Err(bad("empty region name".into()));
            }
            if regions[..i].iter().any(|(n, _)| n == name) {
                return Err(bad(format!("{name} appears twice")));
            }
        }
        let total = regions.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(bad("weights add up to 0".into()));
        }
        Ok(Mix { regions, total })
    }

    pub fn regions(&self) -> impl Iterator<Item = (&str, u32)> {
        self.regions.iter().map(|(n, w)| (n.as_str(), *w))
    }

    /// A region, each with probability weight / total.
    pub fn pick(&self, rng: &mut impl rand::Rng) -> &str {
        let mut ticket = rng.random_range(0..self.total);
        for (name, weight) in &self.regions {
            if ticket < u64::from(*weight) {
                return name;
            }
            ticket -= u64::from(*weight);
        }
        // Unreachable: tickets are below the total of the weights.
        &self.regions[self.regions.len() - 1].0
    }
}

impl Plan {
    /// The full request URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.target.trim_end_matches('/'), self.path.trim_start_matches('/'))
    }

    /// Report every problem at once.
    pub fn validate(&self) -> Result<(), PlanError> {
        let mut problems = Vec::new();
        if !(self.target.starts_with("http://") || self.target.starts_with("https://")) {
            problems.push(format!("--target {:?} must start with http:// or https://", self.target));
        }
        match self.load {
            Load::Open { rate, max_in_flight } => {
                if !(rate.is_finite() && rate > 0.0) {
                    problems.push(format!("--rate {rate} must be a positive number of requests per second"));
                }
                if max_in_flight == 0 {
                    problems.push("--max-in-flight must be at least 1".into());
                }
            }
            Load::Closed { connections: 0 } => problems.push("--connections must be at least 1".into()),
            Load::Closed { .. } => {}
        }
        if self.bound.duration.is_some_and(|d| d.is_zero()) || self.bound.requests == Some(0) {
            problems.push("--duration and --requests must be above 0".into());
        }
        if self.timeout.is_zero() {
            problems.push("--timeout must be above 0".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PlanError::Invalid(problems))
        }
    }
}

/// `30s`, `500ms`, `2m`, `1.5s`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, PlanError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(PlanError::Duration(text.to_string())),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(PlanError::Duration(text.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("invalid duration {0:?} (examples: 30s, 500ms, 2m)")]
    Duration(String),
    #[error("invalid --mix {text:?}: {reason} (example: us-west=40,eu-west=30,us-east=20,ap-south=10)")]
    Mix { text: String, reason: String },
    #[error("invalid load options:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix = Mix::parse("us-west=3, eu-west=1").unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let west = (0..4000).filter(|_| mix.pick(&mut rng) == "us-west").count();
        assert!((2800..3200).contains(&west), "{west}");
        assert!(Mix::parse("us-west=x").is_err());
        assert!(Mix::parse("a=1,a=2").is_err());
        assert!(Mix::parse("a=0").is_err());
        assert!(Mix::parse("").is_err());
    }

    #[test]
    fn bound_defaults_to_ten_seconds() {
        let b = Bound::new(None, None);
        assert!(!b.reached(Duration::from_secs(9), 1_000_000));
        assert!(b.reached(Duration::from_secs(10), 0));
        assert!(Bound::new(None, Some(5)).reached(Duration::ZERO, 5));
    }
}
