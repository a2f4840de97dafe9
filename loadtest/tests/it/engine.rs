//! Open and closed loop against fake targets: schedule kept, stalls counted, errors classified.

use std::time::Duration;

use loadtest::client::ErrorKind;
use loadtest::plan::{Bound, Load};

use crate::helpers::{open_plan, run, users, Behaviour, Fake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_schedule_and_counts_a_stall_from_the_scheduled_time() {
    // The 200th request (about 1 s in) freezes the target for 300 ms, as SIGSTOP would.
    let fake = Fake::start(Behaviour {
        stall_at: Some(200),
        stall: Duration::from_millis(300),
        ..Default::default()
    });
    let plan = open_plan(&fake.url, 200.0, Duration::from_secs(2));

    let started = std::time::Instant::now();
    let stats = run(&plan, users(&["a", "b", "c"])).await;

    // Every due request was sent, on schedule: the stall did not slow the sender down.
    assert_eq!(stats.requests, 400);
    assert_eq!(stats.ok, 400, "errors: {:?}", stats.errors);
    assert_eq!(fake.hits(), 400);
    assert!(started.elapsed() < Duration::from_millis(3000), "took {:?}", started.elapsed());
    // ~60 requests were due during the stall; measured from their due time they waited up
    // to 300 ms, so p99 shows it although each was answered quickly once the target woke.
    let p99 = stats.latency.value_at_quantile(0.99);
    let p50 = stats.latency.value_at_quantile(0.5);
    assert!(p99 >= 250_000, "p99 {p99} us should show the 300 ms stall");
    assert!(stats.latency.max() >= 290_000, "max {} us", stats.latency.max());
    assert!(p50 < 50_000, "p50 {p50} us: most requests were not stalled");
    // 200 due per second, and the stall shows in the per-second timeline.
    assert_eq!(stats.seconds.iter().map(|s| s.requests).collect::<Vec<_>>(), [200, 200]);
    assert!(stats.seconds.iter().any(|s| s.latency.max() >= 250_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified_by_kind() {
    let fake = Fake::start(Behaviour::default());
    let mut plan = open_plan(&fake.url, 150.0, Duration::from_secs(1));
    plan.timeout = Duration::from_millis(200);

    let stats = run(&plan, users(&["ok", "e500", "e404", "slow", "bad"])).await;

    assert_eq!(stats.requests, 150);
    assert_eq!(stats.ok + stats.failed(), 150);
    for kind in [ErrorKind::Http5xx, ErrorKind::Http4xx, ErrorKind::Timeout, ErrorKind::Other] {
        assert!(stats.errors.get(&kind).copied().unwrap_or(0) > 10, "{kind}: {:?}", stats.errors);
    }
    assert!(stats.ok > 10);
    assert_eq!(stats.errors.get(&ErrorKind::Connect), None);
    // Only successful answers are in the latency histogram.
    assert_eq!(stats.latency.len(), stats.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_gives_connect_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut plan = open_plan(&format!("http://127.0.0.1:{port}"), 50.0, Duration::from_secs(1));
    plan.load = Load::Closed { connections: 2 };
    plan.bound = Bound::new(None, Some(20));

    let stats = run(&plan, users(&["a"])).await;

    assert_eq!(stats.requests, 20);
    assert_eq!(stats.errors.get(&ErrorKind::Connect), Some(&20), "{:?}", stats.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_count_as_overload() {
    let fake = Fake::start(Behaviour::default());
    let mut plan = open_plan(&fake.url, 100.0, Duration::from_secs(1));
    plan.load = Load::Open { rate: 100.0, max_in_flight: 5 };

    // Every answer takes 500 ms: at most 5 in flight means ~10 answered per second.
    let stats = run(&plan, users(&["slow"])).await;

    assert_eq!(stats.requests, 100, "none silently dropped");
    let overload = stats.errors.get(&ErrorKind::Overload).copied().unwrap_or(0);
    assert!(overload >= 80, "overload {overload}, {:?}", stats.errors);
    assert_eq!(stats.ok + overload, 100);
    assert!(fake.hits() <= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sends_exactly_the_requests_asked_for() {
    let fake = Fake::start(Behaviour::default());
    let mut plan = open_plan(&fake.url, 1.0, Duration::from_secs(1));
    plan.load = Load::Closed { connections: 4 };
    plan.bound = Bound::new(None, Some(200));
    plan.warmup = Duration::from_millis(200);

    let stats = run(&plan, users(&["a", "b"])).await;

    assert_eq!(stats.requests, 200);
    assert_eq!(stats.ok, 200);
    // Warm-up requests reached the target but are not in the stats.
    assert!(fake.hits() > 200, "hits {}", fake.hits());
}
