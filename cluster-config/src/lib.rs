//! `regions.toml`: the one typed cluster configuration every georec binary loads.
//!
//! Loading is file -> environment overrides -> typed sections -> semantic checks. Every
//! problem found on the way is collected with its key path and reported together, so an
//! operator fixes the file in one pass instead of one error per restart.
//!
//! Environment overrides: `GEOREC__<SECTION>__<KEY>[__<KEY>]`, case-insensitive, with `_`
//! standing for `-` in region names (`GEOREC__REGIONS__EU_WEST__REDIS_URL`). Values are read
//! as TOML when they parse (`1500`, `true`, `["a","b"]`), else as plain strings. This module
//! never reads the process environment itself: binaries pass `std::env::vars()` in.
//!
//! Beside the configuration: the admin token every binary checks or sends ([`AdminToken`]),
//! the log set-up they share ([`telemetry`]) and one-line error chains ([`errors`]). This crate is all the router needs of the
//! cluster, so it stays free of the model, storage and pipeline crates.

pub mod errors;
mod problem;
pub mod rate_limit;
pub mod telemetry;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
pub use url::Url;

pub use crate::problem::Problem;
pub use crate::rate_limit::RateLimitConfig;

/// Prefix of environment variables that override keys of the file.
pub const ENV_PREFIX: &str = "GEOREC__";

/// The whole cluster, as read from `regions.toml`: every value parsed once, at load, into its
/// type (addresses, URLs, durations), so binaries never parse configuration text again.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub primary: PrimaryStore,
    pub router: RouterConfig,
    pub health: HealthConfig,
    pub cache: CacheConfig,
    pub model: ModelPollConfig,
    /// Regions by name, in name order.
    pub regions: BTreeMap<String, RegionConfig>,
}

/// `[router]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    pub listen: SocketAddr,
    /// Per-attempt timeout towards a region node (`request_timeout_ms`).
    pub request_timeout: Duration,
    /// `[router.rate_limit]`: per-client limits (off by default).
    pub rate_limit: RateLimitConfig,
}

/// `[health]`: how the router probes region nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between probes of one node (`interval_ms`).
    pub interval: Duration,
    /// Deadline of one probe (`timeout_ms`).
    pub timeout: Duration,
    /// Consecutive failed probes before a region is unhealthy.
    pub fall: u32,
    /// Consecutive good probes before an unhealthy region is healthy again.
    pub rise: u32,
    /// Consecutive failures on real traffic that eject a region at once.
    pub eject_after: u32,
}

/// `[cache]`: the region nodes' Redis cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Base lifetime of a cached answer (`ttl_secs`).
    pub ttl: Duration,
    /// The TTL is randomised by +/- this percentage (at most 50).
    pub ttl_jitter_pct: u8,
    /// Deadline of every Redis call (`redis_timeout_ms`).
    pub redis_timeout: Duration,
}

/// `[model]`: how nodes follow their region's model pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPollConfig {
    /// How often a node checks its region's pointer, jittered (`poll_interval_ms`).
    pub poll_interval: Duration,
    /// CPU priority of a node's swap work (download, decode, build, freeing the old model).
    pub swap_priority: SwapPriority,
}

/// Request header the router sets when it sends a request to a region outside the residency
/// zone of the region that should have served it; its value names that zone. A node outside
/// the zone answers without storing anything about the user (no cached answer, no served
/// record) and says so in the answer. Clients' own values are dropped by the router.
pub const RESIDENCY_HEADER: &str = "x-georec-residency-zone";

/// One region: its node(s), its Redis and its bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionConfig {
    /// Address the region node binds.
    pub listen: SocketAddr,
    /// Base URLs of the region's node replicas, as the router reaches them (`http` or
    /// `https`, with a host).
    pub urls: Vec<Url>,
    /// The region's Redis (`redis` or `rediss`, with a host).
    pub redis_url: Url,
    /// Cloud provider region name (e.g. `eu-west-1`), also the S3 signing region.
    pub cloud_region: String,
    /// Regions to fail over to, best first (each a region of the file).
    pub failover: Vec<String>,
    /// Residency zone (e.g. `eu`): the region's users' data stays in the zone's regions. Its
    /// event batches are kept in its own bucket, the shared model is built without them, a
    /// regional model is built and served in the zone, and the router keeps its events there.
    pub residency: Option<String>,
    pub s3: RegionStore,
}

/// A URL as written in the file: without the `/` path the parser adds to `http://host:port`.
pub fn url_text(url: &Url) -> &str {
    let s = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        s.strip_suffix('/').unwrap_or(s)
    } else {
        s
    }
}

mod raw;

pub use raw::{PrimaryStore, RegionStore, SwapPriority};

impl ClusterConfig {
    pub fn region(&self, name: &str) -> Result<&RegionConfig, ConfigError> {
        self.regions.get(name).ok_or_else(|| ConfigError::UnknownRegion {
            name: name.to_string(),
            known: self.regions.keys().cloned().collect(),
        })
    }

    /// Load `path`, apply `GEOREC__*` overrides from `env`, check everything.
    pub fn load(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, env).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => {
                ConfigError::Invalid { origin: path.display().to_string(), problems }
            }
            other => other,
        })
    }

    /// Parse configuration text (see [`ClusterConfig::load`]).
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid { origin: "<config>".into(), problems };
        let mut root: toml::Table = toml::from_str(text)
            .map_err(|e| invalid(vec![Problem::new("", format!("not valid TOML: {e}"))]))?;
        let mut problems = Vec::new();
        apply_env_overrides(&mut root, env, &mut problems);

        for key in root.keys() {
            if !["primary", "router", "health", "cache", "model", "regions"].contains(&key.as_str()) {
                problems.push(Problem::new(
                    key,
                    "unknown key (expected one of primary, router, health, cache, model, regions)",
                ));
            }
        }
        let primary: Option<PrimaryStore> = match root.get("primary") {
            Some(v) => section(v, "primary", &mut problems),
            None => {
                problems.push(Problem::new("primary", "missing section: where models are published"));
                None
            }
        };
        let router = optional_section::<raw::Router>(&root, "router", &mut problems);
        let health = optional_section::<raw::Health>(&root, "health", &mut problems);
        let cache = optional_section::<raw::Cache>(&root, "cache", &mut problems);
        let model = optional_section::<raw::Model>(&root, "model", &mut problems);

        let mut regions = BTreeMap::new();
        match root.get("regions") {
            Some(toml::Value::Table(t)) => {
                for (name, value) in t {
                    let key = format!("regions.{name}");
                    if let Some(r) = section::<raw::Region>(value, &key, &mut problems) {
                        regions.insert(name.clone(), r);
                    }
                }
            }
            Some(_) => problems.push(Problem::new("regions", "must be a table of regions")),
            None => problems.push(Problem::new("regions", "missing section: no regions defined")),
        }

        if let (Some(primary), Some(router), Some(health), Some(cache), Some(model)) =
            (primary, router, health, cache, model)
        {
            let raw = raw::Cluster { primary, router, health, cache, model, regions };
            if let Some(config) = Self::typed(&raw, &mut problems) {
                if problems.is_empty() {
                    return Ok(config);
                }
            }
        }
        Err(invalid(problems))
    }

    /// Check every value of `raw` and make the typed configuration; every problem is pushed,
    /// none stops the others. `None` when any value is wrong.
    fn typed(raw: &raw::Cluster, problems: &mut Vec<Problem>) -> Option<Self> {
        let before = problems.len();
        check_endpoint(raw.primary.endpoint.as_deref(), "primary.endpoint", problems);
        check_bucket(&raw.primary.bucket, "primary.bucket", problems);
        check_prefix(&raw.primary.prefix, "primary.prefix", problems);
        let router_listen = addr(&raw.router.listen, "router.listen", problems);
        let ms = |value: u64, key: &str, problems: &mut Vec<Problem>| {
            check_positive(value, key, problems);
            Duration::from_millis(value)
        };
        let router = RouterConfig {
            listen: router_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            request_timeout: ms(raw.router.request_timeout_ms, "router.request_timeout_ms", problems),
            rate_limit: rate_limit::typed(&raw.router.rate_limit, problems),
        };
        let h = &raw.health;
        let health = HealthConfig {
            interval: ms(h.interval_ms, "health.interval_ms", problems),
            timeout: ms(h.timeout_ms, "health.timeout_ms", problems),
            fall: h.fall,
            rise: h.rise,
            eject_after: h.eject_after,
        };
        check_positive(h.fall.into(), "health.fall", problems);
        check_positive(h.rise.into(), "health.rise", problems);
        check_positive(h.eject_after.into(), "health.eject_after", problems);
        let c = &raw.cache;
        check_positive(c.ttl_secs, "cache.ttl_secs", problems);
        if c.ttl_jitter_pct > 50 {
            problems.push(Problem::new("cache.ttl_jitter_pct", "must be at most 50"));
        }
        let cache = CacheConfig {
            ttl: Duration::from_secs(c.ttl_secs),
            ttl_jitter_pct: c.ttl_jitter_pct,
            redis_timeout: ms(c.redis_timeout_ms, "cache.redis_timeout_ms", problems),
        };
        if raw.model.poll_interval_ms < 10 {
            problems.push(Problem::new("model.poll_interval_ms", "must be at least 10"));
        }
        let model = ModelPollConfig {
            poll_interval: Duration::from_millis(raw.model.poll_interval_ms),
            swap_priority: raw.model.swap_priority,
        };
        if raw.regions.is_empty() {
            problems.push(Problem::new("regions", "at least one region is required"));
        }
        let names = || raw.regions.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut listens: BTreeMap<SocketAddr, &str> = BTreeMap::new();
        let mut regions = BTreeMap::new();
        for (name, r) in &raw.regions {
            let at = |k: &str| format!("regions.{name}.{k}");
            if !valid_region_name(name) {
                problems.push(Problem::new(
                    format!("regions.{name}"),
                    "region names are lower-case letters, digits and '-'",
                ));
            }
            let listen = addr(&r.listen, &at("listen"), problems);
            if let Some(a) = listen {
                if let Some(other) = listens.insert(a, name) {
                    problems.push(Problem::new(
                        at("listen"),
                        format!("address {:?} is also used by region {other}", r.listen),
                    ));
                }
            }
            if r.urls.is_empty() {
                problems.push(Problem::new(at("urls"), "at least one node URL is required"));
            }
            let urls: Vec<Option<Url>> = r
                .urls
                .iter()
                .enumerate()
                .map(|(i, u)| url(u, &["http", "https"], &format!("{}[{i}]", at("urls")), problems))
                .collect();
            let redis_url = url(&r.redis_url, &["redis", "rediss"], &at("redis_url"), problems);
            if r.cloud_region.trim().is_empty() {
                problems.push(Problem::new(at("cloud_region"), "must not be empty"));
            }
            for (i, f) in r.failover.iter().enumerate() {
                let key = format!("{}[{i}]", at("failover"));
                if f == name {
                    problems.push(Problem::new(key, "a region cannot fail over to itself"));
                } else if !raw.regions.contains_key(f) {
                    problems.push(Problem::new(key, format!("unknown region {f:?} (known: {})", names())));
                }
            }
            if let Some(zone) = &r.residency {
                if !valid_region_name(zone) {
                    problems.push(Problem::new(
                        at("residency"),
                        format!("{zone:?}: zone names are lower-case letters, digits and '-'"),
                    ));
                }
                for (i, f) in r.failover.iter().enumerate() {
                    let other = raw.regions.get(f).and_then(|o| o.residency.as_ref());
                    if raw.regions.contains_key(f) && other != Some(zone) {
                        problems.push(Problem::new(
                            format!("{}[{i}]", at("failover")),
                            format!("{f} is outside residency zone {zone:?}: a zone's regions fail over within the zone"),
                        ));
                    }
                }
            }
            check_endpoint(r.s3.endpoint.as_deref(), &at("s3.endpoint"), problems);
            check_bucket(&r.s3.bucket, &at("s3.bucket"), problems);
            check_prefix(&r.s3.prefix, &at("s3.prefix"), problems);
            if let (Some(listen), Some(urls), Some(redis_url)) =
                (listen, urls.into_iter().collect::<Option<Vec<Url>>>(), redis_url)
            {
                regions.insert(
                    name.clone(),
                    RegionConfig {
                        listen,
                        urls,
                        redis_url,
                        cloud_region: r.cloud_region.clone(),
                        failover: r.failover.clone(),
                        residency: r.residency.clone(),
                        s3: r.s3.clone(),
                    },
                );
            }
        }
        (problems.len() == before).then(|| ClusterConfig {
            primary: raw.primary.clone(),
            router,
            health,
            cache,
            model,
            regions,
        })
    }

    /// The file's text form of the configuration (what `Serialize` writes).
    fn raw(&self) -> raw::Cluster {
        let ms = |d: Duration| d.as_millis() as u64;
        raw::Cluster {
            primary: self.primary.clone(),
            router: raw::Router {
                listen: self.router.listen.to_string(),
                request_timeout_ms: ms(self.router.request_timeout),
                rate_limit: rate_limit::raw(&self.router.rate_limit),
            },
            health: raw::Health {
                interval_ms: ms(self.health.interval),
                timeout_ms: ms(self.health.timeout),
                fall: self.health.fall,
                rise: self.health.rise,
                eject_after: self.health.eject_after,
            },
            cache: raw::Cache {
                ttl_secs: self.cache.ttl.as_secs(),
                ttl_jitter_pct: self.cache.ttl_jitter_pct,
                redis_timeout_ms: ms(self.cache.redis_timeout),
            },
            model: raw::Model {
                poll_interval_ms: ms(self.model.poll_interval),
                swap_priority: self.model.swap_priority,
            },
            regions: self
                .regions
                .iter()
                .map(|(name, r)| {
                    let region = raw::Region {
                        listen: r.listen.to_string(),
                        urls: r.urls.iter().map(|u| url_text(u).to_string()).collect(),
                        redis_url: url_text(&r.redis_url).to_string(),
                        cloud_region: r.cloud_region.clone(),
                        failover: r.failover.clone(),
                        residency: r.residency.clone(),
                        s3: r.s3.clone(),
                    };
                    (name.clone(), region)
                })
                .collect(),
        }
    }

    pub fn region_names(&self) -> Vec<String> {
        self.regions.keys().cloned().collect()
    }

    /// The residency zone of `region`, if any.
    pub fn zone_of(&self, region: &str) -> Option<&str> {
        self.regions.get(region).and_then(|r| r.residency.as_deref())
    }

    /// Regions in `zone` (`None`: the shared regions, those in no zone), by name.
    pub fn regions_in(&self, zone: Option<&str>) -> Vec<String> {
        self.regions.iter().filter(|(_, r)| r.residency.as_deref() == zone).map(|(n, _)| n.clone()).collect()
    }

    /// Every residency zone named.
    pub fn zones(&self) -> Vec<String> {
        let mut z: Vec<String> = self.regions.values().filter_map(|r| r.residency.clone()).collect();
        z.sort();
        z.dedup();
        z
    }

    pub fn poll_interval(&self) -> Duration {
        self.model.poll_interval
    }
}

/// Written back in the file's form (`model-sync config`): the same keys and units.
impl Serialize for ClusterConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(serializer)
    }
}

fn valid_region_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn section<T: DeserializeOwned>(value: &toml::Value, key: &str, problems: &mut Vec<Problem>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path =
                if inner == "." || inner.is_empty() { key.to_string() } else { format!("{key}.{inner}") };
            problems.push(Problem::new(path, e.into_inner().message().trim().to_string()));
            None
        }
    }
}

fn optional_section<T: DeserializeOwned + Default>(
    root: &toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match root.get(key) {
        Some(v) => section(v, key, problems),
        None => Some(T::default()),
    }
}

fn apply_env_overrides(
    root: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.to_ascii_uppercase().starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (name, raw) in vars {
        let segments: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .enumerate()
            .map(|(i, s)| {
                let s = s.to_ascii_lowercase();
                // Region names use '-', which environment variable names cannot carry.
                if i == 1 && name.to_ascii_uppercase().starts_with("GEOREC__REGIONS__") {
                    s.replace('_', "-")
                } else {
                    s
                }
            })
            .collect();
        if segments.iter().any(|s| s.is_empty()) {
            problems.push(Problem::new(name.clone(), "malformed override: empty key segment"));
            continue;
        }
        let value = parse_env_value(&raw);
        if let Err(p) = set_path(root, &segments, value) {
            problems.push(Problem::new(name.clone(), format!("{p} is not a table")));
        }
    }
}

/// Set `path` in `table` to `value`, creating tables on the way; on a non-table in the way,
/// returns its key.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            match table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(first.clone()),
            }
        }
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn addr(value: &str, key: &str, problems: &mut Vec<Problem>) -> Option<SocketAddr> {
    let parsed = value.parse::<SocketAddr>().ok();
    if parsed.is_none() {
        problems.push(Problem::new(
            key,
            format!("invalid socket address {value:?} (expected host:port, e.g. 127.0.0.1:8000)"),
        ));
    }
    parsed
}

fn url(value: &str, schemes: &[&str], key: &str, problems: &mut Vec<Problem>) -> Option<Url> {
    match Url::parse(value) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host().is_some() => Some(u),
        Ok(u) => {
            problems.push(Problem::new(
                key,
                format!(
                    "invalid URL {value:?}: expected {}://host:port, got scheme {:?}",
                    schemes[0],
                    u.scheme()
                ),
            ));
            None
        }
        Err(e) => {
            problems.push(Problem::new(key, format!("invalid URL {value:?}: {e}")));
            None
        }
    }
}

fn check_endpoint(value: Option<&str>, key: &str, problems: &mut Vec<Problem>) {
    if let Some(v) = value {
        url(v, &["http", "https"], key, problems);
    }
}

fn check_bucket(value: &str, key: &str, problems: &mut Vec<Problem>) {
    let ok = (3..=63).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !value.starts_with(['-', '.'])
        && !value.ends_with(['-', '.']);
    if !ok {
        problems.push(Problem::new(
            key,
            format!("invalid bucket name {value:?}: 3-63 characters of a-z, 0-9, '-' and '.'"),
        ));
    }
}

fn check_prefix(value: &str, key: &str, problems: &mut Vec<Problem>) {
    if value.starts_with('/') || (!value.is_empty() && !value.ends_with('/')) {
        problems.push(Problem::new(
            key,
            format!("prefix {value:?} must be empty or end with '/' and not start with '/'"),
        ));
    }
}

fn check_positive(value: u64, key: &str, problems: &mut Vec<Problem>) {
    if value == 0 {
        problems.push(Problem::new(key, "must be greater than 0"));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (pass --config PATH or set GEOREC_CONFIG)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { origin: String, problems: Vec<Problem> },
    #[error("unknown region {name:?}; regions.toml defines: {}", known.join(", "))]
    UnknownRegion { name: String, known: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../regions.toml");

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn shipped_file_loads() {
        let c = ClusterConfig::from_toml_str(SHIPPED, no_env()).expect("regions.toml is valid");
        assert_eq!(c.region_names(), ["ap-south", "eu-west", "us-east", "us-west"]);
        assert_eq!(c.regions["us-west"].listen, SocketAddr::from(([127, 0, 0, 1], 8000)));
        assert_eq!(url_text(&c.regions["ap-south"].redis_url), "redis://127.0.0.1:6383");
        assert_eq!(url_text(&c.regions["us-west"].urls[0]), "http://127.0.0.1:8000");
        assert_eq!(c.regions["eu-west"].cloud_region, "eu-west-1");
        assert_eq!(c.router.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(c.health.interval, Duration::from_millis(1000));
        assert_eq!(c.cache.ttl, Duration::from_secs(300));
    }

    #[test]
    fn residency_zones_are_named_and_fail_over_only_within_the_zone() {
        let env = |failover: &str| {
            vec![
                ("GEOREC__REGIONS__EU_WEST__RESIDENCY".to_string(), "eu".to_string()),
                ("GEOREC__REGIONS__EU_WEST__FAILOVER".to_string(), failover.to_string()),
            ]
        };
        let c = ClusterConfig::from_toml_str(SHIPPED, env("[]")).expect("valid");
        assert_eq!((c.zone_of("eu-west"), c.zone_of("us-west")), (Some("eu"), None));
        assert_eq!(c.zones(), ["eu"]);
        assert_eq!(c.regions_in(Some("eu")), ["eu-west"]);
        assert_eq!(c.regions_in(None), ["ap-south", "us-east", "us-west"]);
        let text = ClusterConfig::from_toml_str(SHIPPED, env(r#"["us-east"]"#))
            .expect_err("leaves the zone")
            .to_string();
        assert!(
            text.contains(r#"regions.eu-west.failover[0]: us-east is outside residency zone "eu""#),
            "{text}"
        );
        let mut bad = env("[]");
        bad[0].1 = "EU!".into();
        let text = ClusterConfig::from_toml_str(SHIPPED, bad).expect_err("bad zone").to_string();
        assert!(text.contains("regions.eu-west.residency"), "{text}");
    }

    #[test]
    fn env_overrides_apply_with_region_dashes_and_typed_values() {
        let env = vec![
            ("GEOREC__REGIONS__EU_WEST__REDIS_URL".to_string(), "redis://cache-eu:6379".to_string()),
            ("GEOREC__HEALTH__INTERVAL_MS".to_string(), "250".to_string()),
            ("GEOREC__REGIONS__US_WEST__FAILOVER".to_string(), r#"["eu-west"]"#.to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = ClusterConfig::from_toml_str(SHIPPED, env).expect("valid");
        assert_eq!(c.regions["eu-west"].redis_url.as_str(), "redis://cache-eu:6379");
        assert_eq!(c.health.interval, Duration::from_millis(250));
        assert_eq!(c.regions["us-west"].failover, ["eu-west"]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let bad = SHIPPED
            .replace("redis://127.0.0.1:6382", "redis//x")
            .replace("listen = \"127.0.0.1:8001\"", "listen = \"nowhere\"")
            .replace("failover = [\"eu-west\", \"us-east\", \"us-west\"]", "failover = [\"mars\"]")
            + "\n[surprise]\nx = 1\n";
        let err = ClusterConfig::from_toml_str(&bad, no_env()).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains(r#"regions.eu-west.redis_url: invalid URL "redis//x""#), "{text}");
        assert!(text.contains("regions.us-east.listen: invalid socket address"), "{text}");
        assert!(text.contains(r#"regions.ap-south.failover[0]: unknown region "mars""#), "{text}");
        assert!(text.contains("surprise: unknown key"), "{text}");
        assert!(text.contains("4 problem(s)"), "{text}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_their_path() {
        let bad = SHIPPED.replace("fall = 2", "fall = \"two\"").replace(
            "cloud_region = \"us-east-1\"",
            "cloud_region = \"us-east-1\"\nredis_uri = \"redis://typo:1\"",
        );
        let text = ClusterConfig::from_toml_str(&bad, no_env()).expect_err("invalid").to_string();
        assert!(text.contains("health.fall: invalid type"), "{text}");
        assert!(text.contains("regions.us-east.redis_uri: unknown field `redis_uri`"), "{text}");
        assert!(!text.contains("in `fall`"), "no parser location noise: {text}");
    }

    #[test]
    fn written_back_in_the_file_form() {
        let c = ClusterConfig::from_toml_str(SHIPPED, no_env()).expect("valid");
        let v = serde_json::to_value(&c).expect("serializes");
        assert_eq!(v["router"]["request_timeout_ms"], 1000);
        assert_eq!(v["regions"]["us-west"]["urls"][0], "http://127.0.0.1:8000");
        assert_eq!(v["regions"]["us-west"]["listen"], "127.0.0.1:8000");
        assert_eq!(v["cache"]["ttl_secs"], 300);
        let text = toml::to_string(&c).expect("toml");
        assert_eq!(ClusterConfig::from_toml_str(&text, no_env()).expect("round trip"), c);
    }

    #[test]
    fn durations_and_counts_must_be_usable() {
        let bad = SHIPPED
            .replace("ttl_secs = 300", "ttl_secs = 0")
            .replace("poll_interval_ms = 2000", "poll_interval_ms = 5");
        let text = ClusterConfig::from_toml_str(&bad, no_env()).expect_err("invalid").to_string();
        assert!(text.contains("cache.ttl_secs: must be greater than 0"), "{text}");
        assert!(text.contains("model.poll_interval_ms: must be at least 10"), "{text}");
    }

    #[test]
    fn unknown_region_lists_the_known_ones() {
        let c = ClusterConfig::from_toml_str(SHIPPED, no_env()).expect("valid");
        let e = c.region("mars").expect_err("unknown").to_string();
        assert!(e.contains("ap-south, eu-west, us-east, us-west"), "{e}");
    }
}

/// Environment variable holding the shared admin bearer token.
pub const ADMIN_TOKEN_VAR: &str = "GEOREC_ADMIN_TOKEN";

/// The admin bearer token shared by nodes, router and tools. Never printed: `Debug` shows a
/// placeholder.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// `None` for an empty token: an empty secret would let any empty bearer in.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.trim().is_empty()).then_some(Self(token))
    }

    /// From [`ADMIN_TOKEN_VAR`]; `None` when unset or empty.
    pub fn from_env() -> Option<Self> {
        std::env::var(ADMIN_TOKEN_VAR).ok().and_then(Self::new)
    }

    /// Compare in time independent of where the first difference is, so response timing
    /// does not reveal a matching prefix.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret itself, to send as a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

#[cfg(test)]
mod token_tests {
    use super::AdminToken;

    #[test]
    fn tokens_are_never_empty_compared_whole_and_never_printed() {
        assert!(AdminToken::new("  ").is_none());
        let t = AdminToken::new("s3cret").expect("non-empty");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre") && !t.matches("s3cret!") && !t.matches("S3cret"));
        assert_eq!(format!("{t:?}"), "AdminToken(<redacted>)");
        assert_eq!(t.expose(), "s3cret");
    }
}
