//! What gets forwarded where: hints, routes, request ids, node errors, replicas, metrics.

use std::time::Duration;

use router::regions::state::RegionState;
use serde_json::json;

use crate::helpers::{spawn_router, wait_until, FakeNode, Opts, Region};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_come_from_either_header_or_the_body_and_unknown_ones_are_rejected() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;
    let body_for_b = json!({"user_id": 7, "count": 2, "region": "b"}).to_string();

    // Act
    let x_hint = router.post("/recommendations", &[("x-region-hint", "b")], r#"{"user_id": 7}"#).await;
    let legacy = router.post("/recommendations", &[("region-hint", "b")], r#"{"user_id": 7}"#).await;
    let in_body = router.post("/recommendations", &[], body_for_b.clone()).await;
    let header_wins = router.post("/recommendations", &[("x-region-hint", "a")], body_for_b).await;
    let unknown = router.recommend(Some("mars")).await;
    let unknown_in_body = router.post("/recommendations", &[], r#"{"user_id": 7, "region": "venus"}"#).await;

    // Assert
    for r in [&x_hint, &legacy, &in_body] {
        assert_eq!((r.status, r.served_by.as_deref(), r.failover_from.as_deref()), (200, Some("b"), None));
    }
    assert_eq!(in_body.body["body"]["region"], "b", "the body is forwarded unchanged");
    assert_eq!(header_wins.served_by.as_deref(), Some("a"));
    for r in [&unknown, &unknown_in_body] {
        assert_eq!(r.status, 400);
        assert_eq!(r.body["error"], "unknown_region");
        assert_eq!(r.body["valid_regions"], json!(["a", "b"]));
    }
    assert!(unknown.body["message"].as_str().unwrap_or("").contains("\"mars\""), "{}", unknown.body);
    assert_eq!(a.served() + b.served(), 4, "rejected requests reach no node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_path_query_body_headers_and_request_id_are_forwarded_on_every_route() {
    // Arrange
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;
    let headers = [("x-request-id", "req-123"), ("x-custom", "kept"), ("content-type", "application/json")];

    // Act
    let fastapi =
        router.post("/api/v1/recommendations/user/42?count=5&x=y", &headers, r#"{"count": 5}"#).await;
    let events = router.post("/events", &[], r#"{"user_id": 1, "item_id": 2}"#).await;
    let no_id = router.recommend(None).await;

    // Assert
    assert_eq!(fastapi.status, 200);
    assert_eq!(fastapi.body["method"], "POST");
    assert_eq!(fastapi.body["path"], "/api/v1/recommendations/user/42?count=5&x=y");
    assert_eq!(fastapi.body["body"], json!({"count": 5}));
    assert_eq!(fastapi.body["custom_header"], "kept");
    assert_eq!(fastapi.body["request_id"], "req-123");
    assert_eq!(fastapi.request_id.as_deref(), Some("req-123"));
    assert_eq!(fastapi.served_by.as_deref(), Some("a"), "the node's own x-served-by is overwritten");
    assert_eq!(fastapi.content_type.as_deref(), Some("application/json"));
    assert_eq!(events.body["path"], "/events");
    let generated = no_id.request_id.expect("a request id is generated");
    assert_eq!(generated.len(), 32);
    assert_eq!(no_id.body["request_id"], generated.as_str(), "the generated id reaches the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_streamed_through_whole() {
    let a = FakeNode::start("a").await;
    // The (debug-built) fake takes tens of milliseconds to build this answer, close to the
    // 100 ms adaptive attempt timeout: this test is about streaming, so only the full one.
    let mut opts = Opts::default();
    opts.tuning.attempt_timeout_floor_ms = opts.request_timeout_ms;
    let router = spawn_router(&[Region::new(&a, &[])], opts).await;
    let pad = 3 * router::upstream::BUFFER_LIMIT;

    let resp = router
        .client
        .post(format!("{}/recommendations", router.base))
        .body(json!({"user_id": 1, "pad": pad}).to_string())
        .send()
        .await
        .expect("answer");

    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-served-by"], "a");
    let length = resp.content_length().expect("the node's length is kept");
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
    assert!(length > pad);
    assert_eq!(body["pad"].as_str().map(str::len), Some(pad as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_4xx_is_returned_as_is_without_retry_or_penalty() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;

    // Act
    let invalid_json = router.post("/recommendations", &[("x-region-hint", "a")], "{not json").await;
    let mut not_found = Vec::new();
    for _ in 0..5 {
        not_found
            .push(router.post("/recommendations", &[("x-region-hint", "a")], r#"{"user_id": 404}"#).await);
    }

    // Assert
    assert_eq!(invalid_json.status, 422, "the node judged the body: {}", invalid_json.body);
    assert_eq!(invalid_json.body, json!({"detail": "body is not valid JSON"}));
    assert_eq!(invalid_json.served_by.as_deref(), Some("a"));
    for r in &not_found {
        assert_eq!((r.status, r.served_by.as_deref()), (404, Some("a")));
        assert_eq!(r.body, json!({"detail": "unknown user"}));
    }
    assert_eq!(b.served(), 0, "4xx is not retried elsewhere");
    assert_eq!(router.state_of("a"), RegionState::Healthy, "4xx is not a region failure");
    assert_eq!(router.metric(r#"router_retries_total{region="a"}"#).await, 0.0);
    assert_eq!(router.metric(r#"router_requests_total{region="a",status="404"}"#).await, 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_a_region_share_its_traffic_and_cover_for_each_other() {
    // Arrange
    let (r1, r2) = (FakeNode::start_node("a", "a-1").await, FakeNode::start_node("a", "a-2").await);
    let region = Region { name: "a", nodes: vec![&r1, &r2], failover: vec![] };
    let router = spawn_router(&[region], Opts::default()).await;
    // The first probe of each node pays for a new connection; let the estimates settle.
    wait_until("node latency estimates to settle", Duration::from_secs(5), || async {
        let v = router.get("/regions").await.body;
        let ms = |i: usize| v["regions"][0]["nodes"][i]["ewma_ms"].as_f64().unwrap_or(f64::MAX);
        (ms(0) - ms(1)).abs() < 0.5
    })
    .await;

    // Act: 40 requests, 4 at a time.
    for _ in 0..10 {
        let batch = futures::future::join_all((0..4).map(|_| router.recommend(Some("a")))).await;
        assert!(batch.iter().all(|r| r.status == 200));
    }
    let (first, second) = (r1.served(), r2.served());
    r1.down().await;
    let mut after = Vec::new();
    for _ in 0..20 {
        after.push(router.recommend(None).await);
    }

    // Assert
    assert!(first >= 4 && second >= 4, "both replicas used: {first} / {second}");
    assert!(after.iter().all(|r| r.status == 200 && r.served_by.as_deref() == Some("a")));
    // `down()` returns once actix has been told to stop, and its worker thread can still answer
    // on a kept-alive connection for a moment, so the first answers after it may still come
    // from a-1 (a CI run saw one); a-2 covers everything after that.
    let nodes: Vec<_> = after.iter().map(|r| r.body["node"].as_str().unwrap_or("?").to_string()).collect();
    assert!(nodes[10..].iter().all(|n| n == "a-2"), "a-2 covered: {nodes:?}");
    router.wait_state("a", RegionState::Healthy, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_requests_failovers_probes_state_and_latency() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;
    router.recommend(Some("a")).await;
    router.failover("a", "drain", Some(crate::helpers::TOKEN)).await;
    router.recommend(Some("a")).await;

    // Act
    let (status, content_type, text) = router.get_text("/metrics").await;

    // Assert
    assert_eq!(status, 200);
    assert!(content_type.unwrap_or_default().starts_with("text/plain"));
    for series in [
        r#"router_requests_total{region="a",status="200"} 1"#,
        r#"router_requests_total{region="b",status="200"} 1"#,
        r#"router_failovers_total{from="a",to="b"} 1"#,
        r#"router_region_state{region="a",state="drained"} 1"#,
        r#"router_region_state_changes_total{region="a",state="drained"} 1"#,
        r#"router_probes_total{region="b",result="ok"}"#,
        r#"router_upstream_duration_seconds_bucket{region="a","#,
        "router_request_duration_seconds_count",
        "router_retry_budget_exhausted_total 0",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
}
