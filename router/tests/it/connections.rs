//! The router's own connections to the nodes: kept alive, replaced when the node closes
//! them, and any answer framing relayed whole.

use std::time::Duration;

use router::regions::state::RegionState;
use serde_json::json;

use crate::helpers::{spawn_router, FakeNode, Opts, Region};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_node_are_kept_alive() {
    // Arrange
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;
    router.recommend(Some("a")).await;
    let before = a.connections();

    // Act
    for _ in 0..20 {
        assert_eq!(router.recommend(Some("a")).await.status, 200);
    }

    // Assert (probes run on connections of their own, and may open one meanwhile)
    assert!(a.connections() <= before + 1, "{} new connections for 20 requests", a.connections() - before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_close_the_connection_or_come_chunked_are_relayed_whole() {
    // Arrange
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;

    for round in 0..3 {
        // Act
        let closing =
            router.post("/recommendations", &[], json!({"user_id": round, "close": true}).to_string()).await;
        let chunked = router
            .post("/recommendations", &[], json!({"user_id": round, "chunked": true}).to_string())
            .await;
        let plain = router.recommend(None).await;

        // Assert
        for r in [&closing, &chunked, &plain] {
            assert_eq!(
                (r.status, r.served_by.as_deref(), r.failover_from.as_deref()),
                (200, Some("a"), None)
            );
            assert_eq!(r.body["items"], json!([1, 2, 3]), "{}", r.body);
        }
        assert_eq!(closing.body["body"]["user_id"], round);
        assert_eq!(chunked.body["body"]["user_id"], round);
        assert_eq!(chunked.content_type.as_deref(), Some("application/json"));
    }
    assert_eq!(router.metric(r#"router_retries_total{region="a"}"#).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_node_closed_meanwhile_is_replaced_without_a_failure() {
    // Arrange: the node drops idle connections after 50 ms, far sooner than the router's
    // pool lets them go; a single failure would eject the node (and fail over to b).
    let a = FakeNode::start_with_keep_alive("a", "a-node", Some(Duration::from_millis(50))).await;
    let b = FakeNode::start("b").await;
    let opts = Opts { eject_after: 1, interval_ms: 60_000, ..Opts::default() };
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], opts).await;

    for _ in 0..3 {
        assert_eq!(router.recommend(Some("a")).await.served_by.as_deref(), Some("a"));
        // Act: the pooled connection goes stale.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = router.recommend(Some("a")).await;

        // Assert
        assert_eq!(
            (reply.status, reply.served_by.as_deref(), reply.failover_from.as_deref()),
            (200, Some("a"), None)
        );
    }
    assert_eq!(router.state_of("a"), RegionState::Healthy);
    assert_eq!(router.metric(r#"router_retries_total{region="a"}"#).await, 0.0);
    assert_eq!(router.metric(r#"router_ejections_total{region="a"}"#).await, 0.0);
    assert_eq!(b.served(), 0);
    let regions = router.get("/regions").await.body;
    assert_eq!(regions["regions"][0]["nodes"][0]["consecutive_failures"], 0, "{regions}");
}
