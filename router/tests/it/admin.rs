//! `POST /failover` (drain / restore, bearer token) and `GET /regions`.

use std::time::Duration;

use router::regions::state::RegionState;

use crate::helpers::{fake::MODEL_VERSION, spawn_router, wait_until, FakeNode, Opts, Region, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_moves_new_requests_away_lets_in_flight_ones_finish_and_restore_brings_them_back() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    // Probes must outlast the injected latency: this test is about draining, not health.
    // The in-flight request is slow on purpose: no adaptive attempt timeout may cut it short.
    let mut opts = Opts { probe_timeout_ms: 2_000, ..Opts::default() };
    opts.tuning.attempt_timeout_floor_ms = opts.request_timeout_ms;
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], opts).await;
    a.set_latency(Duration::from_millis(300));
    let in_flight = {
        let (client, url) = (router.client.clone(), format!("{}/recommendations", router.base));
        tokio::spawn(async move {
            let resp = client.post(url).header("x-region-hint", "a").body(r#"{"user_id": 1}"#).send().await;
            let resp = resp.expect("in-flight request answered");
            (resp.status().as_u16(), resp.headers().get("x-served-by").map(|v| v.as_bytes().to_vec()))
        })
    };
    wait_until("a request in flight on a", Duration::from_secs(5), || async { a.in_flight() == 1 }).await;

    // Act
    let drained = router.failover("a", "drain", Some(TOKEN)).await;
    let during = router.recommend(Some("a")).await;
    let regions = router.get("/regions").await.body;
    let (status, served_by) = in_flight.await.expect("task");

    // Assert
    assert_eq!(drained.status, 200, "{}", drained.body);
    assert_eq!(drained.body["state"], "drained");
    assert_eq!(router.state_of("a"), RegionState::Drained);
    assert_eq!(
        (during.status, during.served_by.as_deref(), during.failover_from.as_deref()),
        (200, Some("b"), Some("a"))
    );
    assert_eq!(regions["regions"][0]["name"], "a");
    assert_eq!(regions["regions"][0]["state"], "drained");
    assert_eq!((status, served_by.as_deref()), (200, Some(&b"a"[..])), "in-flight request finished on a");

    // Act: restore.
    a.set_latency(Duration::ZERO);
    let restored = router.failover("a", "restore", Some(TOKEN)).await;
    let after = router.recommend(Some("a")).await;

    // Assert
    assert_eq!((restored.status, restored.body["state"].as_str()), (200, Some("healthy")));
    assert_eq!((after.served_by.as_deref(), after.failover_from.as_deref()), (Some("a"), None));
    let changes = r#"router_region_state_changes_total{region="a",state="drained"}"#;
    assert_eq!(router.metric(changes).await, 1.0);
    assert_eq!(router.metric(r#"router_region_state{region="a",state="healthy"}"#).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_requires_the_right_token_and_a_valid_command() {
    // Arrange
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;

    // Act
    let missing = router.failover("a", "drain", None).await;
    let wrong = router.failover("a", "drain", Some("not-the-token")).await;
    let unknown = router.failover("mars", "drain", Some(TOKEN)).await;
    let auth = format!("Bearer {TOKEN}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let bad_action = router.post("/failover", &headers, r#"{"region": "a", "action": "explode"}"#).await;

    // Assert
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.body["error"], "missing_token");
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(wrong.body["error"], "wrong_token");
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["valid_regions"], serde_json::json!(["a"]));
    assert_eq!(bad_action.status, 400);
    assert_eq!(bad_action.body["error"], "invalid_body");
    assert_eq!(router.state_of("a"), RegionState::Healthy, "nothing was drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_admin_is_refused_with_an_explanation() {
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts { token: None, ..Opts::default() }).await;

    let reply = router.failover("a", "drain", Some(TOKEN)).await;

    assert_eq!(reply.status, 403);
    assert_eq!(reply.body["error"], "admin_not_configured");
    assert!(reply.body["message"].as_str().unwrap_or("").contains("GEOREC_ADMIN_TOKEN"), "{}", reply.body);
    assert_eq!(router.state_of("a"), RegionState::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_shows_state_latency_probe_failures_model_version_and_traffic() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;
    for _ in 0..3 {
        router.recommend(Some("a")).await;
    }
    b.down().await;
    router.wait_state("b", RegionState::Unhealthy, Duration::from_secs(5)).await;

    // Act
    let v = router.get("/regions").await.body;

    // Assert
    let (ra, rb) = (&v["regions"][0], &v["regions"][1]);
    assert_eq!(ra["state"], "healthy");
    assert!(ra["ewma_ms"].as_f64().is_some(), "{ra}");
    assert_eq!(ra["last_probe"]["ok"], true);
    assert_eq!(ra["model_version"], MODEL_VERSION);
    assert_eq!(ra["requests_served"], 3);
    assert_eq!(ra["failover"], serde_json::json!(["b"]));
    assert_eq!(rb["state"], "unhealthy");
    assert_eq!(rb["last_probe"]["ok"], false);
    assert!(rb["consecutive_failures"].as_u64().unwrap_or(0) >= 2, "{rb}");
    assert_eq!(rb["model_version"], MODEL_VERSION, "the last known version is kept");
    assert_eq!(v["total_served"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_show_each_version_under_rollout_with_its_conversions() {
    use crate::helpers::fake::CANDIDATE_VERSION;
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;
    let rollout = |body: &serde_json::Value| body["regions"][0]["rollout"].clone();
    // The first sample names the versions and only sets the baseline.
    wait_until("the candidate to show", Duration::from_secs(10), || async {
        rollout(&router.get("/regions").await.body)["candidate"]["version"] == CANDIDATE_VERSION
    })
    .await;
    for _ in 0..8 {
        assert_eq!(router.recommend(Some("a")).await.status, 200);
    }
    // The fake attributes 6 of 8 answers to the stable version (3 conversions), 2 to the
    // candidate (2 conversions).
    wait_until("the figures of the next sample", Duration::from_secs(10), || async {
        rollout(&router.get("/regions").await.body)["versions"][1]["requests"] == 2
    })
    .await;
    let r = rollout(&router.get("/regions").await.body);
    assert_eq!(r["serving"], MODEL_VERSION);
    assert_eq!(
        (r["candidate"]["mode"].as_str(), r["candidate"]["share"].as_f64()),
        (Some("split"), Some(0.25))
    );
    let v = &r["versions"];
    assert_eq!((v[0]["version"].as_str(), v[0]["arm"].as_str()), (Some(MODEL_VERSION), Some("stable")));
    assert_eq!((v[0]["requests"].as_u64(), v[0]["conversions"].as_u64()), (Some(6), Some(3)));
    assert_eq!(v[0]["conversion_rate"].as_f64(), Some(0.5));
    assert_eq!(
        (v[1]["version"].as_str(), v[1]["conversion_rate"].as_f64()),
        (Some(CANDIDATE_VERSION), Some(1.0))
    );
    let point = r["series"]
        .as_array()
        .expect("series")
        .iter()
        .rev()
        .find(|p| !p["versions"].as_array().expect("versions").is_empty())
        .cloned()
        .expect("a point with figures");
    assert_eq!(point["versions"][0]["p99_ms"].as_f64(), Some(0.5), "{point}");
}
