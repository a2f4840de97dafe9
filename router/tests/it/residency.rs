//! Residency zones: a zone's events never leave it, and reads that do are marked so the node
//! stores nothing about the user.

use std::time::Duration;

use router::regions::state::RegionState;
use serde_json::json;

use crate::helpers::{cluster_toml, spawn_router_from, FakeNode, Opts, Region};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zones_events_stay_in_the_zone_and_reads_that_leave_it_are_marked() {
    // Arrange: eu in zone "eu" (no failover: it is the zone's only region), us shared.
    let (eu, us) = (FakeNode::start("eu").await, FakeNode::start("us").await);
    let opts = Opts::default();
    let toml = cluster_toml(&[Region::new(&eu, &[]), Region::new(&us, &["eu"])], &opts)
        .replace("[regions.eu]\n", "[regions.eu]\nresidency = \"eu\"\n");
    let router = spawn_router_from(&toml, opts).await;
    let event = json!({"user_id": "u1", "item_id": "i1", "event_type": "view"}).to_string();
    let read = json!({"user_id": "u1"}).to_string();
    let eu_hint = [("x-region-hint", "eu")];

    // In the zone: served there, unmarked.
    let r = router.post("/events", &eu_hint, event.clone()).await;
    assert_eq!((r.status, r.served_by.as_deref()), (200, Some("eu")), "{:?}", r.body);
    assert_eq!(r.body["residency_header"], json!(null));

    // The zone's only region down: its events are refused (503, safe to retry), never sent
    // to us; a read fails over to us, marked with the zone.
    eu.down().await;
    router.wait_state("eu", RegionState::Unhealthy, Duration::from_secs(5)).await;
    let us_before = us.served();
    let r = router.post("/events", &eu_hint, event.clone()).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.body["error"], "residency_unavailable", "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap_or_default().contains("zone \"eu\""), "{:?}", r.body);
    assert_eq!(r.body["regions"]["eu"], "unhealthy", "{:?}", r.body);
    assert_eq!(us.served(), us_before, "the events never reached a region outside the zone");
    let r = router.post("/recommendations", &eu_hint, read.clone()).await;
    assert_eq!((r.status, r.served_by.as_deref()), (200, Some("us")), "{:?}", r.body);
    assert_eq!(r.body["residency_header"], "eu");

    // A shared region's traffic is unmarked, and a client cannot mark it itself.
    let r = router.post("/events", &[("x-region-hint", "us")], event).await;
    assert_eq!((r.status, r.served_by.as_deref()), (200, Some("us")));
    let forged = [("x-region-hint", "us"), ("x-georec-residency-zone", "mars")];
    let r = router.post("/recommendations", &forged, read).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["residency_header"], json!(null), "a client's own value is dropped");
}
