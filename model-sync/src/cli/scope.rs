//! Which regions a command works on, and where their data lives: the shared regions (in no
//! residency zone), whose events, models and records live in the primary bucket, or the
//! regions of one residency zone (`--zone`), whose live in the zone's home store: the bucket
//! of the zone's first region (by name), under `<its prefix>zone-<zone>/`. A zone's data
//! never goes to the primary bucket; a command for the shared regions never touches a zone's
//! regions unless they are named.

use anyhow::bail;
use cluster_config::ClusterConfig;
use store::{Bucket, Credentials, Location, StoreOptions};

pub(crate) fn primary_bucket(c: &ClusterConfig, creds: &Credentials) -> Bucket {
    Bucket::new("primary", Location::primary(&c.primary), creds, StoreOptions::default())
}

/// The buckets of `names` (checked against the configuration), in that order.
pub(crate) fn region_buckets(
    c: &ClusterConfig,
    names: &[String],
    creds: &Credentials,
) -> anyhow::Result<Vec<Bucket>> {
    names
        .iter()
        .map(|n| Ok(Bucket::new(n.clone(), Location::region(c.region(n)?), creds, StoreOptions::default())))
        .collect()
}

/// The regions of `zone` (`None`: the shared ones), or those named if any; a named region
/// outside the scope is refused (its data must not move into this scope's store).
pub(crate) fn regions(
    c: &ClusterConfig,
    zone: Option<&str>,
    named: &[String],
) -> anyhow::Result<Vec<String>> {
    if let Some(z) = zone {
        if !c.zones().iter().any(|k| k == z) {
            bail!("--zone {z:?}: no region has residency = {z:?} (zones: {})", list(&c.zones()));
        }
    }
    let scope = c.regions_in(zone);
    if named.is_empty() {
        return Ok(scope);
    }
    for n in named {
        c.region(n)?;
        if !scope.contains(n) {
            match c.zone_of(n) {
                Some(z) => bail!("{n} is in residency zone {z:?}: its data stays there; use --zone {z}"),
                None => bail!("{n} is a shared region (no residency zone): leave out --zone"),
            }
        }
    }
    Ok(named.to_vec())
}

/// Where the scope's events, models and records live: the primary bucket, or the zone's home
/// store.
pub(crate) fn home(c: &ClusterConfig, zone: Option<&str>, creds: &Credentials) -> anyhow::Result<Bucket> {
    let Some(z) = zone else { return Ok(primary_bucket(c, creds)) };
    let first = c.regions_in(Some(z)).into_iter().next();
    let Some(first) = first else { bail!("--zone {z:?}: no region has residency = {z:?}") };
    let mut location = Location::region(c.region(&first)?);
    location.prefix = format!("{}zone-{z}/", location.prefix);
    Ok(Bucket::new(format!("zone-{z}"), location, creds, StoreOptions::default()))
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        let env =
            [("GEOREC__REGIONS__EU_WEST__RESIDENCY", "eu"), ("GEOREC__REGIONS__EU_WEST__FAILOVER", "[]")];
        let text = include_str!("../../../regions.toml");
        ClusterConfig::from_toml_str(text, env.map(|(k, v)| (k.to_string(), v.to_string()))).expect("valid")
    }

    #[tokio::test]
    async fn scopes_keep_zones_and_shared_regions_apart() {
        let c = config();
        assert_eq!(regions(&c, None, &[]).expect("shared"), ["ap-south", "us-east", "us-west"]);
        assert_eq!(regions(&c, Some("eu"), &[]).expect("zone"), ["eu-west"]);
        let e = regions(&c, None, &["eu-west".into()]).expect_err("zone region in shared scope");
        assert!(e.to_string().contains("use --zone eu"), "{e}");
        let e = regions(&c, Some("eu"), &["us-east".into()]).expect_err("shared region in zone");
        assert!(e.to_string().contains("leave out --zone"), "{e}");
        assert!(regions(&c, Some("mars"), &[]).is_err());
        let creds = Credentials::Static { access_key: "a".into(), secret_key: "b".into() };
        let home = home(&c, Some("eu"), &creds).expect("home");
        assert_eq!((home.label(), home.prefix()), ("zone-eu", "georec/zone-eu/"));
    }
}
