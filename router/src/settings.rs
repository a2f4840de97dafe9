//! Router settings: the cluster part of `regions.toml` plus router-only tuning flags.
//!
//! `regions.toml` (owned by the cluster, loaded by `cluster_config`) says where the
//! regions are and how to health-check them. The knobs only the router has (retry budget,
//! latency estimator) are command-line flags with defaults, so the shared file stays
//! about the cluster. [`Settings::new`] checks everything and reports every problem at once.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cluster_config::{url_text, ClusterConfig, Problem, RateLimitConfig};

use crate::upstream::connect::{Connector, Endpoint};

/// `router [--config regions.toml] [--listen ADDR] [tuning flags]`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "router", version, about = "georec front door: region-hinted, latency-aware failover")]
pub struct Cli {
    /// Cluster configuration file.
    #[arg(long, env = "GEOREC_CONFIG", default_value = "regions.toml")]
    pub config: PathBuf,
    /// Address to listen on (overrides `router.listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long = "log-json", env = "GEOREC_LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub json_logs: bool,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// Router-only knobs, not part of `regions.toml`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Tuning {
    /// Retries allowed as a fraction of requests (0.2 = at most one retry per five requests).
    #[arg(long, default_value_t = 0.2)]
    pub retry_budget_ratio: f64,
    /// Retries allowed per second on top of the ratio, so a quiet router can still fail over
    /// the odd request (counted over the budget's window, like the ratio).
    #[arg(long, default_value_t = 10)]
    pub retry_min_per_sec: u32,
    /// The window the retry budget counts requests and retries over.
    #[arg(long, default_value_t = 10_000)]
    pub retry_budget_window_ms: u64,
    /// Failing requests may eject at most this share of all nodes; past it, nodes stay in
    /// rotation until probes find them down (a request that fails everywhere cannot take
    /// every region out).
    #[arg(long, default_value_t = 50)]
    pub max_ejection_percent: u8,
    /// Time constant of the latency EWMA: how long an old observation keeps its weight.
    #[arg(long, default_value_t = 10_000)]
    pub ewma_decay_ms: u64,
    /// Latency recorded for a failed attempt or probe, so a fast-failing region never looks best.
    #[arg(long, default_value_t = 1_000)]
    pub error_penalty_ms: u64,
    /// Latency assumed for a node before anything was observed.
    #[arg(long, default_value_t = 30)]
    pub default_rtt_ms: u64,
    /// Largest request body accepted (bodies are buffered so a retry can replay them).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// HTTP worker threads (default: one per CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Client connections open at once; beyond it new ones wait in the listen backlog
    /// until one closes (keep it under the process's file descriptor limit).
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// An attempt on a node whose latency is known times out after this many times its
    /// latency estimate (never below --attempt-timeout-floor-ms, never above
    /// router.request_timeout_ms), so a hung node costs milliseconds, not the full timeout.
    #[arg(long, default_value_t = 20)]
    pub attempt_timeout_factor: u32,
    /// Shortest adaptive attempt timeout.
    #[arg(long, default_value_t = 100)]
    pub attempt_timeout_floor_ms: u64,
    /// A client's request (head and body) must arrive within this, else 408; a connection
    /// with no request under way is closed after this long.
    #[arg(long, default_value_t = 10_000)]
    pub client_timeout_ms: u64,
    /// A node's streamed answer (over 256 KiB or of unknown length) may pause this long
    /// between pieces, however long the whole takes.
    #[arg(long, default_value_t = 10_000)]
    pub stream_idle_timeout_ms: u64,
    /// PEM certificates to trust for `https://` nodes besides the public roots (a private CA).
    #[arg(long, env = "GEOREC_NODE_CA")]
    pub node_ca: Option<PathBuf>,
}

impl Default for Tuning {
    /// The flags' defaults, from their one definition above.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            tuning: Tuning,
        }
        let mut tuning = <Flags as clap::Parser>::parse_from(["router"]).tuning;
        // `GEOREC_NODE_CA` belongs to the process's environment, not to the defaults.
        tuning.node_ca = None;
        tuning
    }
}

/// Everything the router runs with, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub workers: usize,
    /// Per-attempt deadline towards a node, covering connect, headers and a buffered body.
    pub request_timeout: Duration,
    /// Adaptive per-attempt timeout: `factor` x the node's latency estimate, at least `floor`.
    pub attempt_timeout_factor: u32,
    pub attempt_timeout_floor: Duration,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// See [`Tuning::client_timeout_ms`].
    pub client_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// Opens connections to the nodes (TLS roots included).
    pub connector: Connector,
    pub health: HealthSettings,
    pub budget: BudgetSettings,
    pub ewma: EwmaSettings,
    /// Regions in name order.
    pub regions: Vec<RegionSettings>,
    /// `[router.rate_limit]`, checked when the file was loaded.
    pub rate_limit: RateLimitConfig,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthSettings {
    /// Mean time between probes of one node (each wait is jittered by +/-10%).
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed probes before a node is unhealthy.
    pub fall: u32,
    /// Consecutive good probes before an unhealthy or ejected node serves again.
    pub rise: u32,
    /// Consecutive failures on real traffic that eject a node at once.
    pub eject_after: u32,
    /// Largest share of all nodes (percent) failing traffic may hold ejected.
    pub max_ejection_percent: u8,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    pub ratio: f64,
    pub min_per_sec: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaSettings {
    pub decay: Duration,
    pub error_penalty: Duration,
    pub default_rtt: Duration,
}

#[derive(Debug, Clone)]
pub struct RegionSettings {
    pub name: String,
    /// The nodes, from their base URLs.
    pub nodes: Vec<Endpoint>,
    /// Regions to fail over to, best first (may be empty: then latency alone decides).
    pub failover: Vec<String>,
    /// Residency zone: its events never leave the zone's regions (see `crate::proxy`).
    pub zone: Option<String>,
}

impl Settings {
    /// How often each region's nodes are asked for their per-version figures (five probe
    /// intervals: 5 s by default).
    pub fn sample_every(&self) -> Duration {
        self.health.interval * 5
    }

    /// Combine the loaded cluster file, an optional `--listen` override and the tuning flags.
    pub fn new(
        cluster: &ClusterConfig,
        listen: Option<&str>,
        tuning: &Tuning,
    ) -> Result<Self, SettingsError> {
        let mut problems = Vec::new();
        let listen = match listen {
            Some(text) => text.parse::<SocketAddr>().map_err(|_| {
                problems.push(Problem::new("--listen", format!("invalid socket address {text:?}")));
            }),
            None => Ok(cluster.router.listen),
        };
        if !(0.0..=1.0).contains(&tuning.retry_budget_ratio) {
            problems.push(Problem::new(
                "--retry-budget-ratio",
                format!("{} is not within 0..=1", tuning.retry_budget_ratio),
            ));
        }
        for (flag, value) in [
            ("--ewma-decay-ms", tuning.ewma_decay_ms),
            ("--error-penalty-ms", tuning.error_penalty_ms),
            ("--default-rtt-ms", tuning.default_rtt_ms),
            ("--max-body-bytes", tuning.max_body_bytes as u64),
            ("--max-connections", tuning.max_connections as u64),
            ("--client-timeout-ms", tuning.client_timeout_ms),
            ("--stream-idle-timeout-ms", tuning.stream_idle_timeout_ms),
            ("--retry-budget-window-ms", tuning.retry_budget_window_ms),
        ] {
            if value == 0 {
                problems.push(Problem::new(flag, "must be greater than 0"));
            }
        }
        if tuning.workers == Some(0) {
            problems.push(Problem::new("--workers", "must be greater than 0"));
        }
        if tuning.max_ejection_percent > 100 {
            problems.push(Problem::new(
                "--max-ejection-percent",
                format!("{} is not within 0..=100", tuning.max_ejection_percent),
            ));
        }
        let connector = Connector::new(tuning.node_ca.as_deref())
            .map_err(|e| problems.push(Problem::new("--node-ca (GEOREC_NODE_CA)", e.to_string())));
        let mut regions = Vec::new();
        for (name, r) in &cluster.regions {
            let mut nodes = Vec::new();
            for (i, url) in r.urls.iter().enumerate() {
                match Endpoint::parse(url_text(url)) {
                    Ok(e) => nodes.push(e),
                    Err(e) => problems.push(Problem::new(format!("regions.{name}.urls[{i}]"), e)),
                }
            }
            regions.push(RegionSettings {
                name: name.clone(),
                nodes,
                failover: r.failover.clone(),
                zone: r.residency.clone(),
            });
        }
        let (Ok(listen), Ok(connector), true) = (listen, connector, problems.is_empty()) else {
            return Err(SettingsError { problems });
        };

        let h = &cluster.health;
        let ms = Duration::from_millis;
        Ok(Settings {
            listen,
            workers: tuning
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            request_timeout: cluster.router.request_timeout,
            attempt_timeout_factor: tuning.attempt_timeout_factor,
            attempt_timeout_floor: ms(tuning.attempt_timeout_floor_ms),
            max_body_bytes: tuning.max_body_bytes,
            max_connections: tuning.max_connections,
            client_timeout: ms(tuning.client_timeout_ms),
            stream_idle_timeout: ms(tuning.stream_idle_timeout_ms),
            connector,
            health: HealthSettings {
                interval: h.interval,
                timeout: h.timeout,
                fall: h.fall,
                rise: h.rise,
                eject_after: h.eject_after,
                max_ejection_percent: tuning.max_ejection_percent,
            },
            budget: BudgetSettings {
                ratio: tuning.retry_budget_ratio,
                min_per_sec: tuning.retry_min_per_sec,
                window: ms(tuning.retry_budget_window_ms),
            },
            ewma: EwmaSettings {
                decay: ms(tuning.ewma_decay_ms),
                error_penalty: ms(tuning.error_penalty_ms),
                default_rtt: ms(tuning.default_rtt_ms),
            },
            regions,
            rate_limit: cluster.router.rate_limit.clone(),
        })
    }
}

/// Every problem with the router-only settings, each naming its key or flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) with the router settings:", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../regions.toml");

    fn cluster() -> ClusterConfig {
        ClusterConfig::from_toml_str(SHIPPED, Vec::new()).expect("shipped regions.toml is valid")
    }

    #[test]
    fn shipped_config_gives_documented_defaults() {
        let s = Settings::new(&cluster(), None, &Tuning::default()).expect("valid");
        assert_eq!(s.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(s.request_timeout, Duration::from_millis(1000));
        assert_eq!(s.health.interval, Duration::from_secs(1));
        assert_eq!((s.health.fall, s.health.rise, s.health.eject_after), (2, 2, 3));
        assert_eq!(s.budget, BudgetSettings { ratio: 0.2, min_per_sec: 10, window: Duration::from_secs(10) });
        assert_eq!(s.health.max_ejection_percent, 50);
        let names: Vec<_> = s.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ap-south", "eu-west", "us-east", "us-west"]);
        assert_eq!(s.regions[3].failover, ["us-east", "eu-west", "ap-south"]);
    }

    #[test]
    fn every_bad_flag_is_reported_at_once() {
        let tuning = Tuning {
            retry_budget_ratio: 1.5,
            ewma_decay_ms: 0,
            workers: Some(0),
            max_connections: 0,
            max_ejection_percent: 101,
            ..Tuning::default()
        };
        let err = Settings::new(&cluster(), Some("nowhere"), &tuning).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("6 problem(s)"), "{text}");
        assert!(text.contains("--max-ejection-percent"), "{text}");
        assert!(text.contains("--listen: invalid socket address \"nowhere\""), "{text}");
        assert!(text.contains("--retry-budget-ratio"), "{text}");
        assert!(text.contains("--ewma-decay-ms: must be greater than 0"), "{text}");
        assert!(text.contains("--workers"), "{text}");
        assert!(text.contains("--max-connections"), "{text}");
    }

    #[test]
    fn listen_flag_overrides_the_file_and_urls_lose_trailing_slash() {
        let text =
            SHIPPED.replace(r#"urls = ["http://127.0.0.1:8000"]"#, r#"urls = ["http://127.0.0.1:8000/"]"#);
        let c = ClusterConfig::from_toml_str(&text, Vec::new()).expect("valid");
        let s = Settings::new(&c, Some("0.0.0.0:9999"), &Tuning::default()).expect("valid");
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.regions[3].nodes[0].url, "http://127.0.0.1:8000");
    }
}
