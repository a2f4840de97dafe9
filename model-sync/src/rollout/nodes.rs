//! The region nodes as the controller sees them: their `GET /rollout/metrics` reports, whether
//! they loaded the candidate, and the window between two sets of reports.

use std::collections::BTreeMap;
use std::time::Duration;

use model::rollout::{Candidate, NodeReport, VersionReport};
use store::Bucket;
use url::Url;

use super::guard::{ArmFigures, ShadowFigures, Window};

/// One region: its bucket (pointer) and its nodes.
#[derive(Debug, Clone)]
pub struct Target {
    pub region: String,
    pub bucket: Bucket,
    /// Base URLs of the region's nodes.
    pub urls: Vec<Url>,
}

pub const METRICS_PATH: &str = "rollout/metrics";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{url}: cannot build the URL of the rollout report")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{url}: request failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Reads node reports.
#[derive(Debug, Clone)]
pub struct Nodes {
    http: reqwest::Client,
}

impl Nodes {
    pub fn new(timeout: Duration) -> Nodes {
        let http = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        Nodes { http }
    }

    /// The report of the node at `base`.
    pub async fn report(&self, base: &Url) -> Result<NodeReport, NodeError> {
        let url = metrics_url(base).map_err(|source| NodeError::Url { url: base.to_string(), source })?;
        let http = |source| NodeError::Http { url: url.to_string(), source };
        let response = self.http.get(url.clone()).send().await.map_err(http)?;
        response.error_for_status().map_err(http)?.json::<NodeReport>().await.map_err(http)
    }

    /// Every node of `targets`, concurrently, by base URL.
    pub async fn reports(&self, targets: &[&Target]) -> BTreeMap<String, Result<NodeReport, NodeError>> {
        let urls: Vec<&Url> = targets.iter().flat_map(|t| &t.urls).collect();
        let got = futures::future::join_all(urls.iter().map(|u| self.report(u))).await;
        urls.into_iter().map(|u| u.to_string()).zip(got).collect()
    }
}

fn metrics_url(base: &Url) -> Result<Url, url::ParseError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(METRICS_PATH)
}

/// Whether a node serves `c` as its pointer asks.
pub fn has_loaded(r: &NodeReport, c: &Candidate) -> bool {
    r.candidate.as_ref().is_some_and(|rc| {
        rc.figures.version == c.version
            && rc.rollout_id == c.rollout_id
            && rc.mode == c.mode
            && (rc.share - c.share).abs() < 1e-9
    })
}

fn version_since(now: &VersionReport, then: Option<&VersionReport>) -> ArmFigures {
    let zero = VersionReport::default();
    let then = then.filter(|t| t.version == now.version).unwrap_or(&zero);
    let conversions = now
        .conversions
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(then.conversions.get(k).copied().unwrap_or(0))))
        .collect();
    ArmFigures {
        requests: now.requests.saturating_sub(then.requests),
        users: now.users.saturating_sub(then.users),
        errors: now.errors.saturating_sub(then.errors),
        latency: now.latency.since(&then.latency),
        conversions,
        impressions: now.impressions.saturating_sub(then.impressions),
        converted_items: now.converted.saturating_sub(then.converted),
        compute_latency: now.compute_latency.since(&then.compute_latency),
    }
}

fn add_arm(sum: &mut ArmFigures, w: &ArmFigures) {
    sum.requests += w.requests;
    sum.errors += w.errors;
    sum.latency.add(&w.latency);
    sum.impressions += w.impressions;
    sum.converted_items += w.converted_items;
    sum.compute_latency.add(&w.compute_latency);
    for (k, v) in &w.conversions {
        *sum.conversions.entry(k.clone()).or_default() += v;
    }
}

/// The window from `baseline` to `now` over the nodes of `targets`, for `candidate_version`
/// against each region's serving version in `serving`. A node whose `instance` changed counts
/// with its new absolute figures; `users` (one figure per region) is the largest over the
/// region's nodes, summed over regions.
pub fn window(
    targets: &[&Target],
    serving: &BTreeMap<String, String>,
    candidate_version: &str,
    baseline: &BTreeMap<String, NodeReport>,
    now: &BTreeMap<String, NodeReport>,
) -> Window {
    let mut w = Window::default();
    for t in targets {
        let (mut stable_users, mut candidate_users) = (0, 0);
        for url in t.urls.iter().map(Url::to_string) {
            let Some(r) = now.get(&url) else { continue };
            let then = baseline.get(&url).filter(|b| b.instance == r.instance);
            w.nodes += 1;
            if let Some(s) = r.stable.as_ref().filter(|s| serving.get(&t.region) == Some(&s.version)) {
                let arm = version_since(s, then.and_then(|b| b.stable.as_ref()));
                stable_users = stable_users.max(arm.users);
                add_arm(&mut w.stable, &arm);
            }
            if let Some(c) = r.candidate.as_ref().filter(|c| c.figures.version == candidate_version) {
                let before = then
                    .and_then(|b| b.candidate.as_ref())
                    .filter(|b| b.figures.version == c.figures.version);
                let arm = version_since(&c.figures, before.map(|b| &b.figures));
                candidate_users = candidate_users.max(arm.users);
                add_arm(&mut w.candidate, &arm);
                let zero = Default::default();
                let b = before.map_or(&zero, |b| &b.shadow);
                let s = &c.shadow;
                let shadow = ShadowFigures {
                    computed: s.computed.saturating_sub(b.computed),
                    skipped: s.skipped.saturating_sub(b.skipped),
                    errors: s.errors.saturating_sub(b.errors),
                    latency: s.latency.since(&b.latency),
                    overlap_sum: (s.overlap_sum - b.overlap_sum).max(0.0),
                };
                w.shadow.computed += shadow.computed;
                w.shadow.skipped += shadow.skipped;
                w.shadow.errors += shadow.errors;
                w.shadow.latency.add(&shadow.latency);
                w.shadow.overlap_sum += shadow.overlap_sum;
            }
        }
        w.stable.users += stable_users;
        w.candidate.users += candidate_users;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::rollout::{CandidateReport, Latency, Mode, ShadowReport};

    fn version(v: &str, requests: u64, errors: u64, clicks: u64) -> VersionReport {
        VersionReport {
            version: v.into(),
            requests,
            users: requests / 2,
            errors,
            latency: Latency { counts: vec![requests], sum_seconds: 0.0 },
            conversions: [("click".to_string(), clicks)].into(),
            ..Default::default()
        }
    }

    fn report(instance: &str, stable: u64, candidate: u64) -> NodeReport {
        NodeReport {
            region: "r".into(),
            instance: instance.into(),
            at: String::new(),
            stable: Some(version("v1", stable, 1, stable / 10)),
            candidate: Some(CandidateReport {
                rollout_id: "x".into(),
                mode: Mode::Split,
                share: 0.5,
                figures: version("v2", candidate, 2, candidate / 5),
                shadow: ShadowReport::default(),
            }),
            candidate_error: None,
            attribution_window_s: 600,
            latency_buckets_s: Vec::new(),
        }
    }

    #[test]
    fn windows_are_differences_and_restarts_start_over() {
        let location = store::Location {
            endpoint: Some("http://127.0.0.1:1".into()),
            bucket: "b".into(),
            prefix: String::new(),
            signing_region: "us-east-1".into(),
        };
        let creds = store::Credentials::Static { access_key: "k".into(), secret_key: "s".into() };
        let bucket = store::Bucket::new("r", location, &creds, store::StoreOptions::default());
        let urls: Vec<Url> = ["http://a:1", "http://b:1/"].iter().map(|u| u.parse().expect("url")).collect();
        let t = Target { region: "r".into(), bucket, urls: urls.clone() };
        let serving = [("r".to_string(), "v1".to_string())].into();
        let key = |i: usize| urls[i].to_string();
        let baseline = [(key(0), report("i1", 100, 10)), (key(1), report("i1", 100, 10))].into();
        // Node a advanced; node b restarted (instance i2), so its figures count whole.
        let now = [(key(0), report("i1", 300, 60)), (key(1), report("i2", 40, 30))].into();
        let w = window(&[&t], &serving, "v2", &baseline, &now);
        assert_eq!(w.nodes, 2);
        assert_eq!(w.stable.requests, 200 + 40);
        assert_eq!(w.stable.errors, 1);
        assert_eq!(w.candidate.requests, 50 + 30);
        assert_eq!(w.candidate.conversions["click"], 10 + 6);
        assert_eq!(w.candidate.latency.total(), 80);
        // Users: the larger of the two nodes' figures (one per region).
        assert_eq!(w.stable.users, 100);
        let c = Candidate { version: "v2".into(), mode: Mode::Split, share: 0.5, rollout_id: "x".into() };
        assert!(has_loaded(&now[&key(0)], &c));
        assert!(!has_loaded(&now[&key(0)], &Candidate { share: 0.25, ..c }));
        assert_eq!(metrics_url(&urls[0]).expect("url").as_str(), "http://a:1/rollout/metrics");
        let nested: Url = "http://a:1/node/eu".parse().expect("url");
        assert_eq!(metrics_url(&nested).expect("url").as_str(), "http://a:1/node/eu/rollout/metrics");
    }
}
