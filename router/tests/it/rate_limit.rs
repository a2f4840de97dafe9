//! Per-client rate limits (`[router.rate_limit]`): one client over its limit is refused while
//! others are served, limits recover, `X-Forwarded-For` counts only from trusted proxies, a
//! client spread over workers gets its limit once, and a bad section stops the binary.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{cluster_toml, spawn_router_from, wait_until, FakeNode, Opts, Region, TestRouter};

/// A router in front of one fake region with limiting on: every class `per_second` a second,
/// bursts of `burst`, and `extra` lines added to `[router.rate_limit]`.
async fn limited_router(
    node: &FakeNode,
    per_second: u32,
    burst: u32,
    extra: &str,
    workers: usize,
) -> TestRouter {
    let mut opts = Opts::default();
    opts.tuning.workers = Some(workers);
    let limit = format!("{{ per_second = {per_second}, burst = {burst} }}");
    let toml = format!(
        "{}\n[router.rate_limit]\nenabled = true\nreads = {limit}\nevents = {limit}\nadmin = {limit}\n{extra}\n",
        cluster_toml(&[Region::new(node, &[])], &opts)
    );
    spawn_router_from(&toml, opts).await
}

/// `POST /recommendations` with the given headers: status and the response's headers.
async fn read(router: &TestRouter, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap) {
    let mut req = router.client.post(format!("{}/recommendations", router.base)).body(r#"{"user_id": 1}"#);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("router answers");
    (resp.status().as_u16(), resp.headers().clone())
}

async fn status(router: &TestRouter, headers: &[(&str, &str)]) -> u16 {
    read(router, headers).await.0
}

#[tokio::test]
async fn one_client_over_its_limit_gets_429_while_another_is_served_at_the_same_time() {
    // Arrange: three reads at once, then one every 10 s.
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 1, 3, "", 2).await;
    let greedy = [("x-api-key", "greedy-client")];
    let polite = [("x-api-key", "polite-client")];

    // Act: the greedy client sends 8 at once while the polite one sends 2.
    let greedy_all = futures::future::join_all((0..8).map(|_| read(&router, &greedy)));
    let polite_all = futures::future::join_all((0..2).map(|_| read(&router, &polite)));
    let started = Instant::now();
    let (greedy_answers, polite_answers) = tokio::join!(greedy_all, polite_all);

    // Assert: the burst of 3 (and one more per second the requests took, on a slow machine).
    let served = greedy_answers.iter().filter(|(s, _)| *s == 200).count();
    let refilled = started.elapsed().as_secs() as usize;
    let statuses: Vec<_> = greedy_answers.iter().map(|(s, _)| s).collect();
    assert!((3..=3 + refilled).contains(&served), "{statuses:?}");
    assert!(polite_answers.iter().all(|(s, _)| *s == 200));
    let (_, headers) = greedy_answers.iter().find(|(s, _)| *s == 429).expect("a refusal");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["ratelimit-policy"], r#""reads";q=3;w=3"#);
    assert_eq!(headers["ratelimit"], r#""reads";r=0;t=1"#);
    assert_eq!(headers["content-type"], "application/json");
    let refused = router.post("/recommendations", &greedy, r#"{"user_id": 1}"#).await;
    assert_eq!((refused.status, refused.body["error"].as_str()), (429, Some("rate_limited")));
    assert!(refused.body["message"].as_str().is_some_and(|m| m.contains("reads")), "{}", refused.body);
    // Other classes have buckets of their own.
    assert_eq!(router.post("/events", &greedy, r#"{"events": []}"#).await.status, 200);
    let refused = (8 - served + 1) as f64;
    assert_eq!(router.metric(r#"router_rate_limited_total{class="reads"}"#).await, refused);
    let view = router.get("/regions").await.body;
    let top = &view["rate_limit"]["top_limited"];
    assert_eq!(top.as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(top[0]["reads"].as_f64(), Some(refused));
    assert!(top[0]["key"].as_str().is_some_and(|k| k.starts_with("api-key ") && !k.contains("client")));
    assert_eq!(view["rate_limit"]["reads"]["keys"], 2);
}

#[tokio::test]
async fn a_client_spread_over_every_worker_gets_its_limit_once() {
    // Arrange: four workers; each request on a connection of its own, so they land on all four.
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 1, 4, "", 4).await;

    // Act
    let started = Instant::now();
    let mut served = 0;
    for _ in 0..12 {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let resp = client
            .post(format!("{}/recommendations", router.base))
            .header("x-api-key", "spread")
            .body(r#"{"user_id": 1}"#)
            .send()
            .await
            .expect("answer");
        served += usize::from(resp.status() == 200);
    }

    // Assert: one bucket of 4, not 4 per worker (plus one a second refilled while it ran).
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!((4..=4 + refilled).contains(&served), "served {served} of 12 in {:?}", started.elapsed());
}

#[tokio::test]
async fn limits_recover_after_the_window() {
    // Arrange: one at a time, 5 a second.
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 5, 1, "", 1).await;
    assert_eq!(status(&router, &[]).await, 200);
    let refused_at = Instant::now();
    assert_eq!(status(&router, &[]).await, 429);

    // Act + Assert: polling (refusals use no tokens) until served again, 200 ms on.
    wait_until("the bucket to refill", Duration::from_secs(2), || async {
        status(&router, &[]).await == 200
    })
    .await;
    assert!(refused_at.elapsed() >= Duration::from_millis(150), "{:?}", refused_at.elapsed());
    assert_eq!(status(&router, &[]).await, 429, "one request again, no more");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Arrange: only 10.0.0.0/8 is a trusted proxy; the test client is 127.0.0.1.
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 1, 2, r#"trusted_proxies = ["10.0.0.0/8"]"#, 1).await;

    // Act: each request claims another address.
    let mut statuses = vec![];
    for i in 1..=4 {
        statuses.push(status(&router, &[("x-forwarded-for", &format!("203.0.113.{i}"))]).await);
    }

    // Assert: all counted against 127.0.0.1.
    assert_eq!(statuses, [200, 200, 429, 429]);
    let top = router.get("/regions").await.body["rate_limit"]["top_limited"].clone();
    assert_eq!(top[0]["key"], "127.0.0.1", "{top}");
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_in_forwarded_for() {
    // Arrange: the test client's address is a trusted proxy (a load balancer).
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 1, 1, r#"trusted_proxies = ["127.0.0.0/8"]"#, 1).await;
    let xff = |v: &'static str| [("x-forwarded-for", v)];

    // Act + Assert: one bucket per forwarded client; the hop the balancer appended counts,
    // not what the client wrote before it.
    assert_eq!(status(&router, &xff("203.0.113.1")).await, 200);
    assert_eq!(status(&router, &xff("203.0.113.1")).await, 429);
    assert_eq!(status(&router, &xff("203.0.113.2")).await, 200);
    assert_eq!(status(&router, &xff("203.0.113.99, 203.0.113.1")).await, 429);
    let top = router.get("/regions").await.body["rate_limit"]["top_limited"].clone();
    assert_eq!(top[0]["key"], "203.0.113.1", "{top}");
    assert_eq!(top[0]["limited"], 2);
}

#[tokio::test]
async fn off_by_default_and_shown_as_off() {
    let a = FakeNode::start("a").await;
    let router = crate::helpers::spawn_router(&[Region::new(&a, &[])], Opts::default()).await;
    for _ in 0..30 {
        assert_eq!(status(&router, &[("x-api-key", "k")]).await, 200);
    }
    let view = router.get("/regions").await.body;
    assert_eq!(view["rate_limit"], json!({"enabled": false, "max_keys": 0, "top_limited": []}));
    assert!(!router.get_text("/metrics").await.2.contains("router_rate_limited_total"));
}

#[test]
fn the_binary_refuses_a_bad_rate_limit_section_naming_every_problem() {
    let config = tempfile::NamedTempFile::new().expect("temp config");
    let toml = cluster_toml(&[], &Opts::default())
        + "\n[regions.a]\nlisten = \"127.0.0.1:1\"\nurls = [\"http://127.0.0.1:1\"]\n\
           redis_url = \"redis://127.0.0.1:6379\"\ncloud_region = \"t\"\ns3 = { bucket = \"georec-test\" }\n\
           [router.rate_limit]\nenabled = true\ntrusted_proxies = [\"10.0.0.0/40\"]\nmax_keys = 0\n\
           reads = { per_second = 0 }\n";
    std::fs::write(config.path(), toml).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_router"))
        .arg("--config")
        .arg(config.path())
        .env("GEOREC__ROUTER__RATE_LIMIT__EVENTS", "{ per_second = 3, burst = 0 }")
        .output()
        .expect("run router");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "router.rate_limit.trusted_proxies[0]: invalid CIDR \"10.0.0.0/40\"",
        "router.rate_limit.max_keys: must be greater than 0",
        "router.rate_limit.reads.per_second: must be greater than 0",
        "router.rate_limit.events.burst: must be greater than 0",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing from: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_lists_the_clients_refused_most() {
    // Arrange: one client refused twice.
    let a = FakeNode::start("a").await;
    let router = limited_router(&a, 1, 1, "", 1).await;
    for _ in 0..3 {
        status(&router, &[]).await;
    }

    // Act
    // As a browser asks (other clients get the FastAPI layout's JSON root).
    let resp = router.client.get(format!("{}/", router.base)).header("accept", "text/html").send().await;
    let html = resp.expect("router answers").text().await.expect("text");

    // Assert: the page renders `rate_limit` of /regions; in a browser when there is one.
    assert!(html.contains("renderLimits(data.rate_limit)") && html.contains("rl.top_limited"), "{html}");
    let chromium = crate::status_page::CHROMIUM;
    if !std::path::Path::new(chromium).exists() {
        assert!(std::env::var_os("CI").is_none(), "{chromium} is needed in CI");
        eprintln!("SKIPPED the browser part: {chromium} not found");
        return;
    }
    let out = crate::status_page::chromium(&["--dump-dom"], &format!("{}/", router.base)).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains(r#"data-limited="127.0.0.1""#), "{dom}");
}
