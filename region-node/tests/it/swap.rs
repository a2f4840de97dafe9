//! Hot swaps: a new version under load, and a corrupt one that must not replace it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::model::Query;
use serde_json::{json, Value};

use crate::helpers::*;

/// One response seen by the sequential observer.
struct Seen {
    at: Instant,
    version: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_v2_under_load_converges_without_failures() {
    let poll = Duration::from_millis(300);
    let node = spawn_node_with(Options { poll, ..Options::default() }).await;
    let v2 = model_dir(2);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let url = node.url("/recommendations");

    // A cached answer under v1, whose shape the load below never asks for.
    let probe = json!({"user_id": "u03", "count": 3});
    node.recommend(&probe).await;
    assert_eq!(node.recommend(&probe).await["source"], "cache");

    let mut load = Vec::new();
    for worker in 0..3 {
        let (client, url, stop, failures) =
            (node.client.clone(), url.clone(), stop.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"user_id": format!("u{:02}", (n * 3 + worker) % 45)});
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
        }));
    }
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let observer = {
        let (client, url, stop, failures, seen) =
            (node.client.clone(), url.clone(), stop.clone(), failures.clone(), seen.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.post(&url).json(&json!({"user_id": "u10"})).send().await {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.expect("json");
                        let version = v["model_version"].as_str().expect("version").to_string();
                        seen.lock().expect("lock").push(Seen { at: Instant::now(), version });
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    eventually("traffic before the publish", || async {
        (seen.lock().expect("lock").len() >= 5).then_some(())
    })
    .await;

    let before_publish = seen.lock().expect("lock").len();
    model_sync::publish::publish(
        &node.s3.bucket(PRIMARY_BUCKET, PREFIX, "primary"),
        &[node.region_bucket()],
        &v2.path,
        model_sync::publish::PublishOptions::default(),
    )
    .await
    .expect("publish v2");
    let published = Instant::now();
    let converged_at = eventually("the observer to see v2", || async {
        let seen = seen.lock().expect("lock");
        seen.iter().find(|s| s.version == v2.version).map(|s| s.at)
    })
    .await;
    let after = seen.lock().expect("lock").len();
    eventually("traffic after convergence", || async {
        (seen.lock().expect("lock").len() >= after + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    observer.await.expect("observer");

    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the swap");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    let first_v2 = seen.iter().position(|s| s.version == v2.version).expect("v2 seen");
    assert!(first_v2 >= before_publish, "v2 served before it was published");
    assert!(seen[..first_v2].iter().all(|s| s.version == version(1)));
    assert!(
        seen[first_v2..].iter().all(|s| s.version == v2.version),
        "an answer after convergence was not v2"
    );
    let took = converged_at.saturating_duration_since(published);
    assert!(took <= 2 * poll, "converged in {took:?}, more than two poll intervals ({:?})", 2 * poll);

    // Answers now come from v2, computed like v2 computes them.
    let got = node.recommend(&json!({"user_id": "u21"})).await;
    let (want, _) =
        expected_recommend(&v2.model, "u21", &Query { count: 10, exclude: &[], categories: None });
    assert_items_match(&v2.model, &got, &want);
    let health = node.health().await;
    assert_eq!((health["swap_count"].as_u64(), health["last_swap_error"].is_null()), (Some(2), true));

    // The cache key names the version: v1's cached answer is not served under v2.
    let fresh = node.recommend(&probe).await;
    assert_eq!(
        (fresh["model_version"].as_str(), fresh["source"].as_str()),
        (Some(v2.version.as_str()), Some("model"))
    );
    assert_eq!(node.recommend(&probe).await["source"], "cache");
    let keys = node.redis_keys().await;
    for v in [version(1), v2.version.clone()] {
        let prefix = format!("georec:{REGION}:{v}:rec:");
        assert!(
            keys.iter().any(|k| k.starts_with(&prefix) && k.ends_with(":u03")),
            "no {prefix}…:u03 in {keys:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_version_is_rejected_and_the_old_one_keeps_serving() {
    let node = spawn_node().await;
    node.publish(2).await;
    node.wait_for_version(&version(2)).await;

    node.publish_corrupt(3).await;
    let failure = eventually("v3 to be rejected", || async {
        let h = node.health().await;
        (h["last_swap_error"]["version"] == version(3)).then_some(h["last_swap_error"].clone())
    })
    .await;
    let message = failure["error"].as_str().expect("error text");
    assert!(message.contains("corrupt") && message.contains("sha256"), "{message}");
    assert!(failure["at"].is_string());

    let (status, health) = node.json("/health/ready").await;
    assert_eq!((status, health["model_version"].as_str()), (200, Some(version(2).as_str())));
    let got = node.recommend(&json!({"user_id": "u04"})).await;
    assert_eq!(got["model_version"], version(2));
    assert!(node.metric("georec_model_swap_failures_total").await >= 1.0);

    let res = node.admin("/admin/model/reload", Some(TOKEN)).await;
    assert_eq!(res.status(), 502);
    let err: Value = res.json().await.expect("json");
    assert_eq!(err["error"], "reload_failed");
    assert!(err["message"].as_str().expect("message").contains(&version(3)), "{err}");

    // A good version replaces the bad one and clears the error.
    node.publish(4).await;
    node.wait_for_version(&version(4)).await;
    assert!(node.health().await["last_swap_error"].is_null());
}
