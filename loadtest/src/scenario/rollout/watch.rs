//! What the nodes serve, sampled during the run: every `every`, each region's node's
//! `/health/ready` (serving version, the candidate with its mode and share) and its resident
//! memory (`VmRSS` of the pid scripts/up recorded).

use std::time::Duration;

use model::rollout::{Candidate, Mode};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::Cluster;

/// One look at one region's node.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// From the run's start.
    pub at: Duration,
    pub region: String,
    /// `None` when the node did not answer.
    pub stable: Option<String>,
    pub candidate: Option<Candidate>,
    pub rss_kib: Option<u64>,
}

impl Sample {
    pub fn mode(&self) -> Option<Mode> {
        self.candidate.as_ref().map(|c| c.mode)
    }
}

#[derive(Deserialize)]
struct Ready {
    model_version: Option<String>,
    #[serde(default)]
    candidate: Option<Candidate>,
}

/// A region's node: where to ask, and its process name in the cluster's state.
#[derive(Debug, Clone)]
pub struct Node {
    pub region: String,
    pub url: String,
    pub process: String,
}

/// Sample `nodes` every `every` until `stop` turns true; the samples in time order.
pub async fn watch(
    http: reqwest::Client,
    cluster: Cluster,
    nodes: Vec<Node>,
    start: Instant,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        for n in &nodes {
            let at = start.elapsed();
            let url = format!("{}/health/ready", n.url.trim_end_matches('/'));
            let ready: Option<Ready> = match http.get(url).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            let rss_kib = cluster.pid(&n.process).ok().and_then(rss_kib);
            samples.push(Sample {
                at,
                region: n.region.clone(),
                stable: ready.as_ref().and_then(|r| r.model_version.clone()),
                candidate: ready.and_then(|r| r.candidate),
                rss_kib,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    samples
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The last sample of `region` at or before `at`.
pub fn state_at<'a>(samples: &'a [Sample], region: &str, at: Duration) -> Option<&'a Sample> {
    samples.iter().rfind(|s| s.region == region && s.at <= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert_eq!(rss_kib(u32::MAX), None);
    }

    #[test]
    fn the_state_at_a_time_is_the_last_sample_before_it() {
        let s = |at: u64, region: &str, stable: &str| Sample {
            at: Duration::from_secs(at),
            region: region.into(),
            stable: Some(stable.into()),
            candidate: None,
            rss_kib: None,
        };
        let samples = [s(1, "a", "v1"), s(1, "b", "w1"), s(3, "a", "v2"), s(3, "b", "w2")];
        let at =
            |t: u64, r: &str| state_at(&samples, r, Duration::from_secs(t)).and_then(|s| s.stable.clone());
        assert_eq!(at(0, "a"), None);
        assert_eq!(at(2, "a").as_deref(), Some("v1"));
        assert_eq!(at(3, "b").as_deref(), Some("w2"));
    }
}
