//! `[router.rate_limit]`, typed and checked: the router's per-client token buckets, one per
//! request class, and the proxies whose `X-Forwarded-For` it believes.
//!
//! ```toml
//! [router.rate_limit]
//! enabled = true
//! trusted_proxies = ["10.0.0.0/8"]   # a load balancer's subnet
//! max_keys = 100000                  # per class; past it new clients share one bucket
//! sweep_interval_ms = 10000          # forget keys whose bucket is full again
//! reads = { per_second = 50, burst = 100 }
//! events = { per_second = 20, burst = 40 }
//! admin = { per_second = 1, burst = 5 }
//! ```

use std::num::NonZeroU32;
use std::time::Duration;

pub use ipnet::IpNet;

use crate::problem::Problem;
use crate::raw;

/// `[router.rate_limit]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Off: every request passes and no state is kept.
    pub enabled: bool,
    /// Peers whose `X-Forwarded-For` names the client (a load balancer); any other peer's is
    /// ignored, so a client cannot pick its own key by sending the header.
    pub trusted_proxies: Vec<IpNet>,
    /// Distinct client keys tracked per class at most (bounded memory); past it, keys not yet
    /// tracked share one bucket until idle keys are swept.
    pub max_keys: usize,
    /// How often keys whose bucket has filled up again (idle) are forgotten.
    pub sweep_interval: Duration,
    /// `POST /recommendations` and `POST /api/v1/recommendations/user/{id}`.
    pub reads: ClassLimit,
    /// `POST /events`.
    pub events: ClassLimit,
    /// `POST /failover`, `DELETE /users/{id}`.
    pub admin: ClassLimit,
}

/// One token bucket: `per_second` requests a second sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let mut ignored = Vec::new();
        // The defaults are valid: nothing is pushed.
        typed(&raw::RateLimit::default(), &mut ignored)
    }
}

/// Check every value of the `[router.rate_limit]` section (pushing each problem with its key
/// path) and make the typed form; invalid values become placeholders, never used since a
/// problem was reported.
pub(crate) fn typed(raw: &raw::RateLimit, problems: &mut Vec<Problem>) -> RateLimitConfig {
    const KEY: &str = "router.rate_limit";
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.trusted_proxies.iter().enumerate() {
        match parse_cidr(text) {
            Some(net) => trusted_proxies.push(net),
            None => problems.push(Problem::new(
                format!("{KEY}.trusted_proxies[{i}]"),
                format!("invalid CIDR {text:?} (expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)"),
            )),
        }
    }
    if raw.max_keys == 0 {
        problems.push(Problem::new(format!("{KEY}.max_keys"), "must be greater than 0"));
    }
    if raw.sweep_interval_ms < 100 {
        problems.push(Problem::new(format!("{KEY}.sweep_interval_ms"), "must be at least 100"));
    }
    let mut class = |name: &str, c: &raw::ClassLimit| {
        let per_second = NonZeroU32::new(c.per_second).unwrap_or_else(|| {
            problems.push(Problem::new(format!("{KEY}.{name}.per_second"), "must be greater than 0"));
            NonZeroU32::MIN
        });
        let burst = match c.burst {
            None => per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1)),
            Some(b) => NonZeroU32::new(b).unwrap_or_else(|| {
                problems.push(Problem::new(format!("{KEY}.{name}.burst"), "must be greater than 0"));
                NonZeroU32::MIN
            }),
        };
        ClassLimit { per_second, burst }
    };
    let (reads, events, admin) =
        (class("reads", &raw.reads), class("events", &raw.events), class("admin", &raw.admin));
    RateLimitConfig {
        enabled: raw.enabled,
        trusted_proxies,
        max_keys: usize::try_from(raw.max_keys).unwrap_or(usize::MAX),
        sweep_interval: Duration::from_millis(raw.sweep_interval_ms),
        reads,
        events,
        admin,
    }
}

/// The file form of `config`.
pub(crate) fn raw(config: &RateLimitConfig) -> raw::RateLimit {
    let class =
        |c: &ClassLimit| raw::ClassLimit { per_second: c.per_second.get(), burst: Some(c.burst.get()) };
    raw::RateLimit {
        enabled: config.enabled,
        trusted_proxies: config.trusted_proxies.iter().map(IpNet::to_string).collect(),
        max_keys: config.max_keys as u64,
        sweep_interval_ms: config.sweep_interval.as_millis() as u64,
        reads: class(&config.reads),
        events: class(&config.events),
        admin: class(&config.admin),
    }
}

/// `10.0.0.0/8`, or one address (`192.0.2.7`, `::1`) as a network of one.
fn parse_cidr(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use crate::ClusterConfig;

    const SHIPPED: &str = include_str!("../../regions.toml");

    /// The shipped file with `env` overrides (the shipped file has a `[router.rate_limit]`).
    fn load(env: &[(&str, &str)]) -> Result<ClusterConfig, crate::ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        ClusterConfig::from_toml_str(SHIPPED, env.collect::<Vec<_>>())
    }

    #[test]
    fn off_by_default_with_documented_limits() {
        let c = load(&[]).expect("valid");
        let r = &c.router.rate_limit;
        assert!(!r.enabled);
        assert_eq!((r.reads.per_second.get(), r.reads.burst.get()), (50, 100));
        assert_eq!((r.events.per_second.get(), r.admin.burst.get()), (20, 5));
        assert_eq!(r.max_keys, 100_000);
    }

    #[test]
    fn environment_turns_it_on_and_sets_limits_and_proxies() {
        let env = [
            ("GEOREC__ROUTER__RATE_LIMIT__ENABLED", "true"),
            ("GEOREC__ROUTER__RATE_LIMIT__READS__PER_SECOND", "7"),
            ("GEOREC__ROUTER__RATE_LIMIT__EVENTS", "{ per_second = 3 }"),
            (
                "GEOREC__ROUTER__RATE_LIMIT__TRUSTED_PROXIES",
                r#"["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]"#,
            ),
        ];
        let c = load(&env).expect("valid");
        let r = &c.router.rate_limit;
        assert!(r.enabled);
        // One key replaced, the file's others kept; a class without a burst gets twice its rate.
        assert_eq!((r.reads.per_second.get(), r.reads.burst.get()), (7, 100));
        assert_eq!((r.events.per_second.get(), r.events.burst.get()), (3, 6));
        let nets: Vec<String> = r.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        let text = toml::to_string(&c).expect("toml");
        assert_eq!(ClusterConfig::from_toml_str(&text, Vec::new()).expect("round trip"), c);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key_path() {
        let typo = [("GEOREC__ROUTER__RATE_LIMIT__EVENTS__BRUST", "9")];
        let text = load(&typo).expect_err("invalid").to_string();
        assert!(text.contains("router.rate_limit.events.brust: unknown field `brust`"), "{text}");
        let env = [
            ("GEOREC__ROUTER__RATE_LIMIT__TRUSTED_PROXIES", r#"["10.0.0.0/33", "lb"]"#),
            ("GEOREC__ROUTER__RATE_LIMIT__MAX_KEYS", "0"),
            ("GEOREC__ROUTER__RATE_LIMIT__SWEEP_INTERVAL_MS", "5"),
            ("GEOREC__ROUTER__RATE_LIMIT__READS", "{ per_second = 0, burst = 0 }"),
        ];
        let text = load(&env).expect_err("invalid").to_string();
        for expected in [
            "router.rate_limit.trusted_proxies[0]: invalid CIDR \"10.0.0.0/33\"",
            "router.rate_limit.trusted_proxies[1]: invalid CIDR \"lb\"",
            "router.rate_limit.max_keys: must be greater than 0",
            "router.rate_limit.sweep_interval_ms: must be at least 100",
            "router.rate_limit.reads.per_second: must be greater than 0",
            "router.rate_limit.reads.burst: must be greater than 0",
            "6 problem(s)",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from: {text}");
        }
    }
}
