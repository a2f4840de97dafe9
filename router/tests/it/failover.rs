//! Regions dying, hanging, failing and coming back.

use std::time::{Duration, Instant};

use router::regions::state::RegionState;

use crate::helpers::load::Load;
use crate::helpers::{spawn_router, wait_until, FakeNode, Opts, Region};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_hinted_region_under_load_fails_no_request_and_moves_its_traffic() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;
    let load = Load::start(&router.base, Some("a"), 4);
    wait_until("steady load on a", Duration::from_secs(10), || async { a.served() >= 100 }).await;

    // Act
    let killed_at = Instant::now();
    a.down().await;
    router.wait_state("a", RegionState::Unhealthy, Duration::from_secs(5)).await;
    let moved_after = killed_at.elapsed();
    let retries_when_moved = router.metric(r#"router_retries_total{region="a"}"#).await;
    let after_kill = load.completed();
    // Keep the load on for several probe intervals after the kill.
    wait_until("load after the kill", Duration::from_secs(10), || async {
        load.completed() >= after_kill + 200 && killed_at.elapsed() > router.interval() * 4
    })
    .await;
    let samples = load.finish().await;

    // Assert
    let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {:?}", failed.len(), samples.len(), &failed[..1]);
    assert!(
        moved_after <= router.interval(),
        "traffic moved {moved_after:?} after the kill, more than one probe interval ({:?})",
        router.interval()
    );
    let after: Vec<_> = samples.iter().filter(|s| s.started > killed_at + router.interval()).collect();
    assert!(after.len() >= 100, "too few requests after the kill: {}", after.len());
    for s in &after {
        assert_eq!(s.served_by.as_deref(), Some("b"));
        assert_eq!(s.failover_from.as_deref(), Some("a"));
    }
    // Once a was out, nothing was retried against it any more (only requests already in
    // flight at that moment could still fail over).
    let retries_total = router.metric(r#"router_retries_total{region="a"}"#).await;
    assert!(
        retries_total - retries_when_moved <= 4.0,
        "retries kept growing: {retries_when_moved} -> {retries_total}"
    );
    assert!(samples.iter().any(|s| s.served_by.as_deref() == Some("a")), "a served before the kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_region_costs_at_most_the_timeout_then_fails_over_and_returns_after_rise() {
    // Arrange
    // The configured timeout alone (the adaptive one is pinned to it): its bound is tested.
    let mut opts = Opts { rise: 3, request_timeout_ms: 300, ..Opts::default() };
    opts.tuning.attempt_timeout_floor_ms = 300;
    let (timeout, interval, rise) = (Duration::from_millis(300), Duration::from_millis(100), 3);
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], opts).await;
    assert_eq!(router.recommend(Some("a")).await.served_by.as_deref(), Some("a"));

    // Act: hang a; hinted requests keep coming until the router has given up on a.
    a.hang();
    let mut replies = Vec::new();
    while router.state_of("a") != RegionState::Unhealthy {
        assert!(replies.len() < 20, "a never became unhealthy");
        replies.push(router.recommend(Some("a")).await);
    }
    let after_detection = router.recommend(Some("a")).await;

    // Assert: each request bounded by the timeout, then served by b.
    for r in &replies {
        assert_eq!(
            (r.status, r.served_by.as_deref(), r.failover_from.as_deref()),
            (200, Some("b"), Some("a"))
        );
        assert!(r.took < timeout + Duration::from_millis(700), "took {:?}", r.took);
    }
    assert!(replies[0].took >= timeout - Duration::from_millis(20), "first request waited the timeout");
    assert_eq!(after_detection.served_by.as_deref(), Some("b"));
    assert!(after_detection.took < timeout, "no more waiting once a is out: {:?}", after_detection.took);

    // Act: restore a.
    a.heal();
    let restored_at = Instant::now();
    let right_after = router.recommend(Some("a")).await;
    wait_until("a to serve again", Duration::from_secs(5), || async {
        router.recommend(Some("a")).await.served_by.as_deref() == Some("a")
    })
    .await;
    let returned_after = restored_at.elapsed();

    // Assert: not before `rise` good probes (jitter: each gap is at least 0.9 interval).
    assert_eq!(right_after.served_by.as_deref(), Some("b"), "a needs {rise} good probes first");
    let earliest = interval.mul_f64(0.9 * f64::from(rise - 1));
    assert!(returned_after >= earliest, "returned after {returned_after:?}, before {rise} probes");
    assert_eq!(router.state_of("a"), RegionState::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_region_down_clients_get_a_clear_503_and_the_first_region_back_serves() {
    // Arrange
    let (a, b, c) = (FakeNode::start("a").await, FakeNode::start("b").await, FakeNode::start("c").await);
    let regions = [Region::new(&a, &["b", "c"]), Region::new(&b, &[]), Region::new(&c, &[])];
    let router = spawn_router(&regions, Opts::default()).await;

    // Act
    for n in [&a, &b, &c] {
        n.down().await;
    }
    for r in ["a", "b", "c"] {
        router.wait_state(r, RegionState::Unhealthy, Duration::from_secs(5)).await;
    }
    let unhinted = router.recommend(None).await;
    let hinted = router.recommend(Some("a")).await;

    // Assert: in panic mode every region was still tried, and the answer says how each failed.
    for reply in [&unhinted, &hinted] {
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body["error"], "all_regions_failed", "{}", reply.body);
        let attempts = reply.body["attempts"].as_array().expect("attempts");
        let mut tried: Vec<_> = attempts.iter().map(|a| a["region"].as_str().unwrap_or("?")).collect();
        tried.sort_unstable();
        assert_eq!(tried, ["a", "b", "c"], "{}", reply.body);
        assert!(
            attempts.iter().all(|a| a["error"].as_str().is_some_and(|e| e.contains("connect"))),
            "{}",
            reply.body
        );
        assert_eq!(reply.served_by, None);
        assert!(reply.request_id.is_some());
    }
    assert_eq!(hinted.body["attempts"][0]["region"], "a", "the hint first: {}", hinted.body);

    // Act: the first region back.
    c.up().await;
    wait_until("c to serve", Duration::from_secs(5), || async {
        router.recommend(Some("a")).await.status == 200
    })
    .await;
    let back = router.recommend(Some("a")).await;

    // Assert
    assert_eq!(
        (back.status, back.served_by.as_deref(), back.failover_from.as_deref()),
        (200, Some("c"), Some("a"))
    );
    assert_eq!(router.recommend(None).await.served_by.as_deref(), Some("c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_attempt_fails_the_503_names_each_failed_region() {
    // Arrange: probes far apart, so the router still believes in both regions.
    let opts = Opts { interval_ms: 60_000, eject_after: 100, ..Opts::default() };
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &[])], opts).await;
    a.fail_with_500();
    b.down().await;

    // Act
    let reply = router.recommend(Some("a")).await;

    // Assert
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body["error"], "all_regions_failed", "{}", reply.body);
    let attempts = reply.body["attempts"].as_array().expect("attempts");
    assert_eq!(attempts[0]["region"], "a");
    assert_eq!(attempts[0]["error"], "node answered 500");
    assert_eq!(attempts[1]["region"], "b");
    assert_eq!(attempts[1]["error"], "cannot connect");
    assert!(attempts.iter().all(|a| a["retryable"] == true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_fail_over_and_eject_the_region() {
    // Arrange: probes far apart, so ejection can only come from real traffic.
    let opts = Opts { interval_ms: 60_000, ..Opts::default() };
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &[])], opts).await;
    a.fail_with_500();

    // Act
    let replies = [
        router.recommend(Some("a")).await,
        router.recommend(Some("a")).await,
        router.recommend(Some("a")).await,
    ];
    let served_before = a.served();
    let after = router.recommend(Some("a")).await;

    // Assert
    for r in &replies {
        assert_eq!(
            (r.status, r.served_by.as_deref(), r.failover_from.as_deref()),
            (200, Some("b"), Some("a"))
        );
    }
    assert_eq!(router.state_of("a"), RegionState::Unhealthy, "ejected after 3 failures");
    assert_eq!(after.served_by.as_deref(), Some("b"));
    assert_eq!(a.served(), served_before, "an ejected region is not tried");
    assert_eq!(router.metric(r#"router_ejections_total{region="a"}"#).await, 1.0);
    assert_eq!(router.metric(r#"router_failovers_total{from="a",to="b"}"#).await, 4.0);
}

#[tokio::test]
async fn a_hanging_fast_region_costs_only_the_adaptive_timeout() {
    // Arrange: a region that answers in ~0 ms gets an attempt timeout of the 100 ms floor,
    // far below the 2 s request timeout.
    let mut opts = Opts { request_timeout_ms: 2_000, ..Opts::default() };
    opts.tuning.attempt_timeout_floor_ms = 100;
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], opts).await;
    for _ in 0..5 {
        assert_eq!(router.recommend(Some("a")).await.served_by.as_deref(), Some("a"));
    }

    // Act
    a.hang();
    let r = router.recommend(Some("a")).await;

    // Assert
    assert_eq!((r.status, r.served_by.as_deref()), (200, Some("b")));
    assert!(r.took >= Duration::from_millis(90), "waited the adaptive timeout: {:?}", r.took);
    assert!(r.took < Duration::from_millis(1_000), "not the 2 s request timeout: {:?}", r.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_move_to_another_region_only_when_the_first_one_did_nothing() {
    // Arrange: the attempt timeout pinned to 300 ms, so a hang is detected quickly.
    let mut opts = Opts { request_timeout_ms: 300, ..Opts::default() };
    opts.tuning.attempt_timeout_floor_ms = 300;
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], opts).await;
    let event = r#"{"user_id": "u1", "item_id": "i1", "type": "view"}"#;
    let post = || router.post("/events", &[("x-region-hint", "a")], event);
    assert_eq!(post().await.served_by.as_deref(), Some("a"));

    // Act + assert: a hangs after reading the request: it may have stored the event, so the
    // client is told so and b never sees it.
    a.hang();
    let served_by_b = b.served();
    let hung = post().await;
    assert_eq!((hung.status, hung.body["error"].as_str()), (504, Some("outcome_unknown")), "{:?}", hung.body);
    assert_eq!(b.served(), served_by_b, "the event was not sent to b");

    // A recommendation in the same situation is retried on b.
    assert_eq!(router.recommend(Some("a")).await.served_by.as_deref(), Some("b"));

    // a is down (connection refused before the router learns it from probes): nothing was
    // done, so the event goes to b.
    a.heal();
    a.down().await;
    let moved = post().await;
    assert_eq!(
        (moved.status, moved.served_by.as_deref(), moved.failover_from.as_deref()),
        (200, Some("b"), Some("a")),
        "{:?}",
        moved.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_region_fails_its_probes_requests_still_go_out_in_panic_mode() {
    // Arrange
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;

    // Act: probes time out everywhere (100 ms), as on a host too busy to answer them in
    // time, while requests are answered.
    for n in [&a, &b] {
        n.slow_probes(Duration::from_millis(300));
    }
    for r in ["a", "b"] {
        router.wait_state(r, RegionState::Unhealthy, Duration::from_secs(5)).await;
    }
    let mut replies = Vec::new();
    for _ in 0..10 {
        replies.push(router.recommend(Some("b")).await);
    }
    let during = router.get("/regions").await.body;

    // Assert: served by the hinted region, not refused.
    assert!(replies.iter().all(|r| r.status == 200 && r.served_by.as_deref() == Some("b")), "{replies:?}");
    assert_eq!(during["panic"], true, "{during}");
    assert!(router.metric("router_panic_requests_total").await >= 10.0);

    // Act: one region passes its probes again.
    a.slow_probes(Duration::ZERO);
    router.wait_state("a", RegionState::Healthy, Duration::from_secs(5)).await;
    let after = router.recommend(Some("b")).await;
    let panic_before = router.metric("router_panic_requests_total").await;
    let again = router.recommend(Some("b")).await;

    // Assert: only the healthy region is used again.
    assert_eq!((after.status, after.served_by.as_deref()), (200, Some("a")), "{after:?}");
    assert_eq!((again.status, again.served_by.as_deref()), (200, Some("a")), "{again:?}");
    assert_eq!(router.metric("router_panic_requests_total").await, panic_before);
    assert_eq!(router.get("/regions").await.body["panic"], false);
}
