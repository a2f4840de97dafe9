//! Erasures a region missed. The router fans `DELETE /users/{id}` out to every region and
//! retries the ones that are down, but only while it runs: a router restarted before a
//! region came back forgets it. Every region that erases a user leaves a record, and `ingest`
//! moves the records to the scope's store, so the regions of a scope without a record of a
//! user erased elsewhere are exactly those that missed it: this asks each of them (its node's
//! `DELETE /users/{id}`, admin token) to erase the user now. The node's own record then
//! reaches the store with the next ingest, and the region is not asked again.

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

use super::erasure::Erasures;

/// A region's nodes, as the erasure is sent to them.
#[derive(Debug, Clone)]
pub struct RegionNodes {
    pub region: String,
    pub urls: Vec<Url>,
}

/// What happened in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Propagated {
    /// Users the region erased now.
    pub erased: Vec<String>,
    /// Users it could not be asked to erase, with why (retried on the next ingest).
    pub failed: Vec<(String, String)>,
}

/// For each region of `regions`, the users erased elsewhere that it has no record of.
pub fn missed(erasures: &Erasures, regions: &[RegionNodes]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for r in regions {
        let users: Vec<String> = erasures
            .by_user
            .keys()
            .filter(|u| erasures.recorded_in.get(*u).is_none_or(|seen| !seen.contains(&r.region)))
            .cloned()
            .collect();
        if !users.is_empty() {
            out.insert(r.region.clone(), users);
        }
    }
    out
}

/// Deadline of one `DELETE /users/{id}` to a node.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Ask every region that missed an erasure to carry it out (`token`: the admin token).
pub async fn propagate(
    erasures: &Erasures,
    regions: &[RegionNodes],
    token: &str,
) -> BTreeMap<String, Propagated> {
    let http = reqwest::Client::builder().timeout(NODE_TIMEOUT).build().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (region, users) in missed(erasures, regions) {
        let Some(nodes) = regions.iter().find(|r| r.region == region) else { continue };
        let mut done = Propagated::default();
        for user in users {
            match erase(&http, &nodes.urls, &user, token).await {
                Ok(()) => done.erased.push(user),
                Err(why) => done.failed.push((user, why)),
            }
        }
        if !done.erased.is_empty() {
            tracing::info!(region = %region, users = done.erased.len(), "erasures the region missed carried out");
        }
        if !done.failed.is_empty() {
            tracing::warn!(region = %region, users = done.failed.len(), first = %done.failed[0].1, "erasures the region missed could not be sent; the next ingest retries");
        }
        out.insert(region, done);
    }
    out
}

/// `DELETE /users/{user}` on the first node that answers 202.
async fn erase(http: &reqwest::Client, urls: &[Url], user: &str, token: &str) -> Result<(), String> {
    let mut last = "no node URL".to_string();
    for base in urls {
        let mut url = base.clone();
        match url.path_segments_mut() {
            Ok(mut p) => {
                p.pop_if_empty().push("users").push(user);
            }
            Err(()) => {
                last = format!("{base}: not a base URL");
                continue;
            }
        }
        match http.delete(url.clone()).bearer_auth(token).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => return Ok(()),
            Ok(r) => last = format!("{url}: HTTP {}", r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{EventId, Tombstone};

    #[test]
    fn a_region_without_a_record_of_a_users_erasure_missed_it() {
        let mut e = Erasures::default();
        let t = |region: &str| Tombstone {
            region: region.into(),
            id: EventId::default(),
            user: "u1".into(),
            at: 1,
        };
        e.by_user.insert("u1".into(), t("a"));
        e.recorded_in.entry("u1".into()).or_default().extend(["a".to_string(), "b".to_string()]);
        let nodes = |r: &str| RegionNodes { region: r.into(), urls: vec![] };
        let m = missed(&e, &[nodes("a"), nodes("b"), nodes("c")]);
        assert_eq!(m, BTreeMap::from([("c".to_string(), vec!["u1".to_string()])]));
    }
}
