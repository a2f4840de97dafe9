//! The FastAPI layout's routes through the router alone (fake nodes): the router's own
//! answers (`/api/v1/regions/*`) follow its health state, and its own refusals on the
//! layout's routes carry the layout's `detail` and `region`.

use std::time::Duration;

use router::regions::state::RegionState;
use serde_json::json;

use crate::helpers::{spawn_router, FakeNode, Opts, Region};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_health_follows_the_router_and_its_refusals_have_detail_and_region() {
    let (a, b) = (FakeNode::start("a").await, FakeNode::start("b").await);
    let router = spawn_router(&[Region::new(&a, &["b"]), Region::new(&b, &["a"])], Opts::default()).await;
    let health = router.get("/api/v1/regions/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(
        (health.body["overall_health"].clone(), health.body["healthy_regions"].clone()),
        (json!("healthy"), json!(2))
    );

    // b down: degraded, b named unhealthy.
    b.down().await;
    router.wait_state("b", RegionState::Unhealthy, Duration::from_secs(5)).await;
    let health = router.get("/api/v1/regions/health").await;
    assert_eq!(health.body["overall_health"], "degraded", "{:?}", health.body);
    assert_eq!(health.body["healthy_regions"], 1);
    let rb = health.body["regions"].as_array().expect("regions").iter().find(|r| r["region"] == "b").cloned();
    assert_eq!(rb.expect("b listed")["status"], "unhealthy");

    // Both down: the router's own 503 on a layout route has detail and region.
    a.down().await;
    router.wait_state("a", RegionState::Unhealthy, Duration::from_secs(5)).await;
    let r = router.post("/api/v1/recommendations/user/u1", &[], "{}").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"], "all_regions_failed", "both still tried (panic mode): {:?}", r.body);
    assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("tried failed")), "{:?}", r.body);
    assert_eq!(r.body["region"], json!(null));

    // A wrong method and an unknown route under the prefix: 405 and 404, with detail.
    let r = router.get("/api/v1/recommendations/user/u1").await;
    assert_eq!(r.status, 405, "{:?}", r.body);
    assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("use POST")), "{:?}", r.body);
    let r = router.get("/api/v1/nothing-here").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(r.body["detail"].is_string(), "{:?}", r.body);
    // Outside the prefix the router's own shape stays as it was.
    let r = router.get("/nothing-here").await;
    assert_eq!(r.status, 404);
    assert!(r.body.get("detail").is_none(), "{:?}", r.body);
}
