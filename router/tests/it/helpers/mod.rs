//! Test harness: a real router on 127.0.0.1:0 in front of fake nodes, typed request helpers,
//! bounded polling, and a bounded load generator.

pub mod fake;
pub mod load;
pub mod raw;

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use cluster_config::ClusterConfig;
use router::admin::AdminToken;
use router::regions::state::RegionState;
use router::settings::{Settings, Tuning};
use router::AppState;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub use fake::FakeNode;

pub const TOKEN: &str = "test-admin-token";

/// Router timings for tests: everything ten times faster than production.
#[derive(Debug, Clone)]
pub struct Opts {
    pub interval_ms: u64,
    pub probe_timeout_ms: u64,
    pub fall: u32,
    pub rise: u32,
    pub eject_after: u32,
    pub request_timeout_ms: u64,
    pub token: Option<&'static str>,
    pub tuning: Tuning,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            interval_ms: 100,
            probe_timeout_ms: 100,
            fall: 2,
            rise: 2,
            eject_after: 3,
            request_timeout_ms: 500,
            token: Some(TOKEN),
            tuning: Tuning { ewma_decay_ms: 500, workers: Some(1), ..Tuning::default() },
        }
    }
}

/// One region for the router: its name, its nodes, its failover list.
pub struct Region<'a> {
    pub name: &'a str,
    pub nodes: Vec<&'a FakeNode>,
    pub failover: Vec<&'a str>,
}

impl<'a> Region<'a> {
    pub fn new(node: &'a FakeNode, failover: &[&'a str]) -> Self {
        Self { name: &node.region, nodes: vec![node], failover: failover.to_vec() }
    }
}

pub struct TestRouter {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub opts: Opts,
    _shutdown: oneshot::Sender<()>,
}

/// A reply as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub served_by: Option<String>,
    pub failover_from: Option<String>,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    pub took: Duration,
}

/// `regions.toml` text for `regions`, through the same loader production uses.
pub fn cluster_toml(regions: &[Region], o: &Opts) -> String {
    let mut t = format!(
        "[primary]\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"georec-test\"\ncloud_region = \"test-1\"\n\n\
         [router]\nlisten = \"127.0.0.1:0\"\nrequest_timeout_ms = {}\n\n\
         [health]\ninterval_ms = {}\ntimeout_ms = {}\nfall = {}\nrise = {}\neject_after = {}\n",
        o.request_timeout_ms, o.interval_ms, o.probe_timeout_ms, o.fall, o.rise, o.eject_after
    );
    for (i, r) in regions.iter().enumerate() {
        let urls: Vec<String> = r.nodes.iter().map(|n| format!("{:?}", n.url())).collect();
        let failover: Vec<String> = r.failover.iter().map(|f| format!("{f:?}")).collect();
        t += &format!(
            "\n[regions.{}]\nlisten = \"127.0.0.1:{}\"\nurls = [{}]\nredis_url = \"redis://127.0.0.1:6379\"\n\
             cloud_region = \"test-1\"\nfailover = [{}]\ns3 = {{ bucket = \"georec-test\" }}\n",
            r.name,
            20_000 + i,
            urls.join(", "),
            failover.join(", ")
        );
    }
    t
}

pub async fn spawn_router(regions: &[Region<'_>], opts: Opts) -> TestRouter {
    spawn_router_from(&cluster_toml(regions, &opts), opts).await
}

/// A router for the cluster `toml` describes, probed once before it is returned.
pub async fn spawn_router_from(toml: &str, opts: Opts) -> TestRouter {
    let cluster = ClusterConfig::from_toml_str(toml, Vec::new()).expect("test config");
    let settings = Settings::new(&cluster, None, &opts.tuning).expect("test settings");
    let state = AppState::new(settings, opts.token.and_then(AdminToken::new)).expect("state");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind router");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(router::run(listener, state.clone(), async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let router = TestRouter { base, client, state, opts, _shutdown: tx };
    router.wait_probed().await;
    router
}

impl TestRouter {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.opts.interval_ms)
    }

    /// `POST /recommendations` for user 1, with `X-Region-Hint` when given.
    pub async fn recommend(&self, hint: Option<&str>) -> Reply {
        let mut headers = vec![];
        if let Some(h) = hint {
            headers.push(("x-region-hint", h));
        }
        self.post("/recommendations", &headers, json!({"user_id": 1, "count": 3}).to_string()).await
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let started = Instant::now();
        let resp = req.send().await.expect("router answers");
        reply(resp, started).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let started = Instant::now();
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.expect("router answers");
        reply(resp, started).await
    }

    pub async fn get_text(&self, path: &str) -> (u16, Option<String>, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.expect("router answers");
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        (resp.status().as_u16(), ct, resp.text().await.expect("text"))
    }

    /// `POST /failover` with an optional bearer token.
    pub async fn failover(&self, region: &str, action: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.post("/failover", &headers, json!({"region": region, "action": action}).to_string()).await
    }

    /// The region's state as the router holds it (read directly: exact timing).
    pub fn state_of(&self, region: &str) -> RegionState {
        let r = &self.state.regions;
        r.get(r.find(region).expect("known region")).state()
    }

    /// Value of one series in `/metrics`, e.g. `router_retries_total{region="a"}`; 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, _, text) = self.get_text("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().expect("metric value"))
    }

    /// Every node has been probed at least once.
    pub async fn wait_probed(&self) {
        wait_until("first probe of every region", Duration::from_secs(5), || async {
            let v = self.get("/regions").await.body;
            v["regions"].as_array().expect("regions").iter().all(|r| !r["last_probe"].is_null())
        })
        .await;
    }

    pub async fn wait_state(&self, region: &str, state: RegionState, within: Duration) {
        wait_until(&format!("{region} to be {state}"), within, || async { self.state_of(region) == state })
            .await;
    }
}

async fn reply(resp: reqwest::Response, started: Instant) -> Reply {
    let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (served_by, failover_from, request_id, content_type) =
        (h("x-served-by"), h("x-failover-from"), h("x-request-id"), h("content-type"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, served_by, failover_from, request_id, content_type, body, took: started.elapsed() }
}

/// Poll `cond` every 5 ms until it holds; fail the test after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
