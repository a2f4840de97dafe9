//! The real binary: serves from `--config`, and on SIGTERM finishes the request in flight
//! and exits 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::Reap;

use crate::helpers::{cluster_toml, wait_until, FakeNode, Opts, Region, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_finishes_the_request_in_flight_and_exits_0_on_sigterm() {
    // Arrange: a node that takes 300 ms per answer, and a router allowing 2 s per attempt.
    let a = FakeNode::start("a").await;
    a.set_latency(Duration::from_millis(300));
    let opts =
        Opts { request_timeout_ms: 2000, interval_ms: 1000, probe_timeout_ms: 1000, ..Opts::default() };
    let config = tempfile::NamedTempFile::new().expect("temp config");
    std::fs::write(config.path(), cluster_toml(&[Region::new(&a, &[])], &opts)).expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut child = Reap(
        Command::new(env!("CARGO_BIN_EXE_router"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--attempt-timeout-floor-ms", "2000"])
            .arg("--config")
            .arg(config.path())
            .env("GEOREC_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn router"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    wait_until("the router to listen", Duration::from_secs(10), || async {
        client.get(format!("{base}/regions")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let in_flight = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move { client.post(format!("{base}/recommendations")).body(r#"{"user_id": 1}"#).send().await }
    });
    wait_until("the request to reach the node", Duration::from_secs(5), || async { a.in_flight() > 0 }).await;

    // Act
    let status = tokio::task::block_in_place(|| child.terminate("router", Duration::from_secs(10)));

    // Assert
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let answer = in_flight.await.expect("task").expect("the request in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-served-by"], "a");
    assert!(client.get(format!("{base}/regions")).send().await.is_err(), "nothing listens any more");
}
