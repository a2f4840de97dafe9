//! Latency awareness: unhinted traffic goes to the region answering fastest.

use std::time::Duration;

use crate::helpers::{spawn_router, wait_until, FakeNode, Opts, Region};

async fn ewma_ms(router: &crate::helpers::TestRouter, region: usize) -> f64 {
    router.get("/regions").await.body["regions"][region]["ewma_ms"].as_f64().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhinted_traffic_goes_to_the_faster_region_and_follows_when_latencies_swap() {
    // Arrange: "slow" answers in 50 ms, "fast" in 5 ms (probes included, like network RTT).
    let (slow, fast) = (FakeNode::start("slow").await, FakeNode::start("fast").await);
    slow.set_latency(Duration::from_millis(50));
    fast.set_latency(Duration::from_millis(5));
    let regions = [Region::new(&fast, &["slow"]), Region::new(&slow, &["fast"])];
    let router = spawn_router(&regions, Opts::default()).await;
    wait_until("slow's latency to be measured", Duration::from_secs(5), || async {
        ewma_ms(&router, 1).await >= 45.0
    })
    .await;

    // Act
    let mut served = Vec::new();
    for _ in 0..20 {
        served.push(router.recommend(None).await.served_by.unwrap_or_default());
    }
    let hinted = router.recommend(Some("slow")).await;

    // Assert
    assert!(served.iter().all(|s| s == "fast"), "unhinted requests went to {served:?}");
    assert_eq!(hinted.served_by.as_deref(), Some("slow"), "a healthy hinted region serves regardless");

    // Act: swap the latencies; the estimate follows within the decay window.
    slow.set_latency(Duration::from_millis(5));
    fast.set_latency(Duration::from_millis(50));
    wait_until("unhinted traffic to move to the now faster region", Duration::from_secs(10), || async {
        router.recommend(None).await.served_by.as_deref() == Some("slow")
    })
    .await;
    let mut served = Vec::new();
    for _ in 0..10 {
        served.push(router.recommend(None).await.served_by.unwrap_or_default());
    }

    // Assert
    assert!(served.iter().all(|s| s == "slow"), "after the swap requests went to {served:?}");
}
