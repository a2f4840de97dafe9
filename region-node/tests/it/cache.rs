//! Redis: cache-aside, outages, stalls, force_refresh and clearing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

async fn wait_redis(node: &TestNode, state: &str) {
    eventually(&format!("Redis to be {state}"), || async {
        (node.health().await["redis"] == state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_from_the_model_and_recovers() {
    let mut node = spawn_node().await;
    wait_redis(&node, "up").await;

    // (status, source) of every answer, from one client cycling over five users.
    let seen = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (client, url, seen, stop) =
            (node.client.clone(), node.url("/recommendations"), seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let res = client.post(&url).json(&json!({"user_id": format!("u{:02}", n % 5)})).send().await;
                let entry = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or_default();
                        (status, v["source"].as_str().unwrap_or("?").to_string())
                    }
                    Err(e) => (0, e.to_string()),
                };
                seen.lock().expect("lock").push(entry);
                n += 1;
            }
        })
    };
    let sources_since = |from: usize| -> Vec<String> {
        seen.lock().expect("lock")[from..].iter().map(|(_, s)| s.clone()).collect()
    };
    eventually("cache hits", || async { sources_since(0).iter().any(|s| s == "cache").then_some(()) }).await;

    node.redis.stop();
    wait_redis(&node, "down").await;
    let down_from = seen.lock().expect("lock").len();
    eventually("answers while Redis is down", || async {
        (sources_since(down_from).len() >= 20).then_some(())
    })
    .await;
    assert!(sources_since(down_from).iter().all(|s| s == "model"), "{:?}", sources_since(down_from));

    tokio::task::block_in_place(|| node.redis.restart());
    let up_from = seen.lock().expect("lock").len();
    eventually("cache hits after Redis returns", || async {
        sources_since(up_from).iter().any(|s| s == "cache").then_some(())
    })
    .await;
    wait_redis(&node, "up").await;
    stop.store(true, Ordering::Relaxed);
    client.await.expect("client task");

    let seen = seen.lock().expect("lock");
    let failed: Vec<_> = seen.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_costs_a_few_timeouts_not_one_per_request() {
    let node = spawn_node().await;
    wait_redis(&node, "up").await;
    let mut conn = node.redis_conn().await;
    // Every client's commands now wait for a second: each call would hit the 50 ms deadline.
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(1000).query_async(&mut conn).await.expect("CLIENT PAUSE");
    let started = Instant::now();
    let (mut n, mut slow) = (0, 0);
    while started.elapsed() < Duration::from_millis(800) {
        let t = Instant::now();
        let got = node.recommend(&json!({"user_id": format!("u{:02}", n % 7)})).await;
        assert_eq!(got["source"], "model");
        if t.elapsed() >= Duration::from_millis(45) {
            slow += 1;
        }
        n += 1;
    }
    assert!(n >= 30, "only {n} requests in 800 ms");
    // 3 failures open the breaker; afterwards only an occasional probe (every 300 ms)
    // may wait for the deadline.
    assert!(slow <= 8, "{slow} of {n} requests waited for Redis");
    assert_eq!(node.health().await["redis"], "down");
    wait_redis(&node, "up").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_refresh_bypasses_and_clear_drops_only_this_regions_keys() {
    let node = spawn_node().await;
    let ask = json!({"user_id": "u01", "count": 6});
    let first = node.recommend(&ask).await;
    assert_eq!(first["source"], "model");
    assert_eq!(node.recommend(&ask).await["source"], "cache");
    let refreshed = node.recommend(&json!({"user_id": "u01", "count": 6, "force_refresh": true})).await;
    assert_eq!(refreshed["source"], "model");
    assert_eq!(refreshed["items"], first["items"]);
    assert_eq!(node.recommend(&ask).await["source"], "cache");

    let mut conn = node.redis_conn().await;
    for key in ["georec:eu-west:v:rec:0:u01", "unrelated"] {
        let () = redis::cmd("SET").arg(key).arg("x").query_async(&mut conn).await.expect("SET");
    }
    // Events are data, not cache: the stream and the recent list stay.
    let res = node.post("/events", &json!({"user_id": "u02", "item_id": "i01", "type": "view"})).await;
    assert_eq!(res.status(), 200);
    let res = node.admin("/admin/cache/clear", Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert!(body["removed"].as_u64().expect("removed") >= 1, "{body}");
    let mut keys = node.redis_keys().await;
    keys.sort();
    // The event's hourly trend count (written off the response path) is data too; it may
    // or may not be there yet.
    keys.retain(|k| !k.starts_with("georec:us-west:trend:"));
    let events = model::events::stream_key(REGION);
    let recent = model::events::recent_key(REGION, "u02");
    let mut want = vec!["georec:eu-west:v:rec:0:u01".to_string(), events, recent, "unrelated".to_string()];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(node.recommend(&ask).await["source"], "model");
}

/// Sent from outside the user's residency zone (`x-georec-residency-zone`, set by the router
/// only): answered, nothing stored, and the answer says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_outside_the_users_residency_zone_stores_nothing() {
    let node = spawn_node().await;
    let ask = json!({"user_id": "u03", "count": 4});
    let transit = |zone: &'static str| {
        node.client
            .post(node.url("/recommendations"))
            .header("x-georec-residency-zone", zone)
            .json(&ask)
            .send()
    };
    for _ in 0..2 {
        let res = transit("eu").await.expect("sent");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["source"], "model", "never cached: {body}");
        assert_eq!(body["residency"], json!({"zone": "eu", "stored": false}), "{body}");
        assert!(!body["items"].as_array().expect("items").is_empty(), "{body}");
    }
    let keys = node.redis_keys().await;
    assert!(keys.iter().all(|k| !k.contains("u03")), "{keys:?}");
    // The same user asked directly: cached as usual, no residency note.
    assert!(node.recommend(&ask).await.get("residency").is_none());
    assert_eq!(node.recommend(&ask).await["source"], "cache");
}
