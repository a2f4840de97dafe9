//! Served-by regions, failovers and model versions are tallied from headers and bodies.

use std::time::Duration;

use loadtest::plan::{Hints, Mix};

use crate::helpers::{open_plan, run, users, Behaviour, Fake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_failovers_and_model_versions_are_counted() {
    // The fake answers v1 for its first 100 requests, v2 after; hint us-west "fails over".
    let fake = Fake::start(Behaviour { swap_after: Some(100), ..Default::default() });
    let mut plan = open_plan(&fake.url, 200.0, Duration::from_secs(1));
    plan.hints = Hints::Mix(Mix::parse("us-west=1,eu-west=1").unwrap());

    let stats = run(&plan, users(&["a", "b", "c"])).await;

    assert_eq!(stats.ok, 200, "{:?}", stats.errors);
    let east = stats.served_by.get("us-east").copied().unwrap_or(0);
    let eu = stats.served_by.get("eu-west").copied().unwrap_or(0);
    assert_eq!(east + eu, 200, "{:?}", stats.served_by);
    assert!(east > 50 && eu > 50, "both hints were used: {:?}", stats.served_by);
    assert_eq!(stats.served_by.get("us-west"), None);
    assert_eq!(stats.failovers.get("us-west").copied(), Some(east), "every us-west answer failed over");
    assert_eq!(stats.failovers.len(), 1);

    let v1 = stats.versions["v1"];
    let v2 = stats.versions["v2"];
    assert_eq!(v1.count, 100);
    assert_eq!(v2.count, 100);
    assert!(v1.first < v2.first && v1.last <= v2.first + Duration::from_millis(50), "{v1:?} {v2:?}");
    let by_region: u64 = stats.versions_by_region.values().flat_map(|vs| vs.values()).map(|s| s.count).sum();
    assert_eq!(by_region, 200);
    assert!(stats.versions_by_region["eu-west"].contains_key("v2"));
}
