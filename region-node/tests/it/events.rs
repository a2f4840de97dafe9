//! `POST /events`: events stored durably in the region's stream, and recommendations that
//! move with them at once (live fold-in through the model's HNSW graph).

use model::events::{self, LiveEvent};
use serde_json::{json, Value};

use crate::helpers::*;

/// Every entry of the region's stream as (id, event).
async fn stream(node: &TestNode) -> Vec<(String, LiveEvent)> {
    let mut conn = node.redis_conn().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(events::stream_key(REGION))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(id, fields)| {
            let e = LiveEvent::from_stream_fields(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            (id, e.expect("stream entry parses"))
        })
        .collect()
}

async fn post_events(node: &TestNode, body: &Value) -> (u16, Value) {
    let res = node.post("/events", body).await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

fn item_ids(answer: &Value) -> Vec<String> {
    let items = answer["items"].as_array().expect("items");
    items.iter().map(|i| i["item_id"].as_str().expect("item_id").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_in_the_stream_and_invalid_ones_refused() {
    let node = spawn_node().await;
    let (status, body) = post_events(
        &node,
        &json!({"events": [
            {"user_id": "u01", "item_id": "i05", "type": "view", "ts": 1_700_000_100},
            {"user_id": "u02", "item_id": "i06", "type": "purchase"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["region"], REGION);
    let ids: Vec<&str> =
        body["event_ids"].as_array().expect("ids").iter().map(|v| v.as_str().unwrap()).collect();
    let stored = stream(&node).await;
    assert_eq!(stored.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ids);
    assert_eq!(stored[0].1.item_id, "i05");
    assert_eq!(stored[0].1.ts, 1_700_000_100);
    assert_eq!(stored[1].1.kind, events::EventType::Purchase);

    // One bad event in a batch: 422 naming it, and nothing of the batch stored.
    for (bad, field) in [
        (json!({"user_id": "u1", "item_id": "i1", "type": "click"}), "type"),
        (json!({"item_id": "i1", "type": "view"}), "user_id"),
        (json!({"user_id": "u1", "item_id": "", "type": "view"}), "item_id"),
        (json!({"user_id": "u1", "item_id": "i1", "type": "view", "ts": 4_102_444_800_i64}), "ts"),
        (json!({"user_id": "u1", "item_id": "i1", "type": "view", "ts": 1_700_000_000_000_i64}), "ts"),
        (
            json!([{"user_id": "u1", "item_id": "i1", "type": "view"}, {"user_id": "u1", "type": "view"}]),
            "events[1].item_id",
        ),
        (json!({"events": []}), "events"),
    ] {
        let (status, body) = post_events(&node, &bad).await;
        assert_eq!(status, 422, "{bad} -> {body}");
        assert_eq!(body["field"], field, "{bad} -> {body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let res = node.post_raw("/events", "{not json").await;
    assert_eq!(res.status(), 400);
    assert_eq!(stream(&node).await.len(), 2, "refused events were not stored");
    assert_eq!(node.metric("georec_events_total").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_survive_a_redis_crash() {
    let mut node = spawn_node_with(Options { persistent_redis: true, ..Options::default() }).await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let (status, body) = post_events(
            &node,
            &json!({"user_id": format!("u{:02}", n % 7), "item_id": "i03", "type": "view"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["event_ids"][0].as_str().expect("id").to_string());
    }
    // SIGKILL, not a clean shutdown: only what was fsynced before the answer survives.
    // (`restart` returns once the new server answers PING.)
    tokio::task::block_in_place(|| node.redis.restart());
    let after: Vec<String> = stream(&node).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(after, ids, "every accepted event is still in the stream, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_refuses_events_with_503_and_recommendations_still_work() {
    let mut node = spawn_node().await;
    node.redis.stop();
    let (status, body) =
        post_events(&node, &json!({"user_id": "u01", "item_id": "i01", "type": "view"})).await;
    // Connection refused: nothing stored, 503 (safe to retry). 504 would mean "maybe stored".
    assert_eq!((status, body["error"].as_str()), (503, Some("events_not_stored")), "{body}");
    let answer = node.recommend(&json!({"user_id": "u01"})).await;
    assert_eq!(answer["source"], "model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_changes_the_next_answer_and_is_never_recommended_back() {
    let node = spawn_node().await;
    let probe = json!({"user_id": "u04", "count": 10});
    let before = node.recommend(&probe).await;
    assert_eq!(before["strategy"], "user-knn");
    assert_eq!(node.recommend(&probe).await["source"], "cache");
    let bought = item_ids(&before)[0].clone();

    let (status, body) =
        post_events(&node, &json!({"user_id": "u04", "item_id": bought, "type": "purchase"})).await;
    assert_eq!(status, 200, "{body}");
    let after = node.recommend(&probe).await;
    assert_eq!(after["source"], "model", "the cached answer was dropped: {after}");
    assert_eq!(after["strategy"], "user-knn-live", "{after}");
    assert!(!item_ids(&after).contains(&bought), "{bought} recommended after its purchase: {after}");
    assert_ne!(item_ids(&after), item_ids(&before));
    // The live answer is cached under the new head, and served from there.
    let again = node.recommend(&probe).await;
    assert_eq!(
        (again["source"].as_str(), again["strategy"].as_str()),
        (Some("cache"), Some("user-knn-live"))
    );
    assert_eq!(item_ids(&again), item_ids(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_before_an_event_is_never_served_after_it() {
    let node = spawn_node().await;
    let probe = json!({"user_id": "u07"});
    node.recommend(&probe).await;
    let mut conn = node.redis_conn().await;
    let hash = format!("georec:{REGION}:{}:rec:u07", version(1));
    let saved: Vec<(String, Vec<u8>)> =
        redis::cmd("HGETALL").arg(&hash).query_async(&mut conn).await.expect("HGETALL");
    assert_eq!(saved.len(), 1, "one cached shape");

    post_events(&node, &json!({"user_id": "u07", "item_id": "i11", "type": "add_to_cart"})).await;
    // A slow request that computed before the event writes its answer back afterwards.
    let () = redis::cmd("HSET")
        .arg(&hash)
        .arg(&saved[0].0)
        .arg(&saved[0].1)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let answer = node.recommend(&probe).await;
    assert_eq!(
        (answer["source"].as_str(), answer["strategy"].as_str()),
        (Some("model"), Some("user-knn-live"))
    );
    assert!(!item_ids(&answer).contains(&"i11".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_gets_personal_answers_after_five_events() {
    let node = spawn_node().await;
    let probe = json!({"user_id": "shopper-new", "count": 5});
    let cold = node.recommend(&probe).await;
    assert_eq!(cold["strategy"], "popular");

    // Five events in the "games" category (items i01, i04, ... are games: i % 3 == 1).
    let mine = ["i01", "i04", "i07", "i10", "i13"];
    let batch: Vec<Value> =
        mine.iter().map(|i| json!({"user_id": "shopper-new", "item_id": i, "type": "view"})).collect();
    let (status, body) = post_events(&node, &Value::Array(batch)).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(5)), "{body}");

    let warm = node.recommend(&probe).await;
    assert_eq!(warm["strategy"], "user-knn-live", "{warm}");
    let got = item_ids(&warm);
    assert!(got.iter().all(|i| !mine.contains(&i.as_str())), "own items recommended back: {got:?}");
    assert_ne!(got, item_ids(&cold));
    // Neighbours share the taste: most answers are games.
    let games = warm["items"].as_array().unwrap().iter().filter(|i| i["category"] == "games").count();
    assert!(games >= 3, "{games} of 5 are games: {warm}");
}

/// The stream ids and duplicate flag of an events answer.
fn ids_of(body: &Value) -> Vec<String> {
    body["event_ids"]
        .as_array()
        .expect("event_ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_504_is_stored_once_and_answered_with_the_original_id() {
    let node = spawn_node().await;
    let event =
        json!({"user_id": "u01", "item_id": "i05", "type": "purchase", "event_id": "order-81:line-1"});

    // Redis knows the append script once an event was stored (a first EVALSHA would come back
    // NOSCRIPT after the stall, and the event would simply not be stored).
    let (status, _) = post_events(&node, &json!({"user_id": "u09", "item_id": "i01", "type": "view"})).await;
    assert_eq!(status, 200);

    // Redis stalls past the node's 1 s append deadline: 504, and the event may be stored.
    node.redis.pause();
    let (status, body) = post_events(&node, &event).await;
    node.redis.resume();
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "events_unconfirmed");
    // It was: the queued append ran once Redis woke up.
    let stored = eventually("the stalled append to land", || async {
        let s = stream(&node).await;
        (s.len() == 2).then(|| s[1].clone())
    })
    .await;
    assert_eq!(stored.1.event_id.as_deref(), Some("order-81:line-1"));

    // The client retries, as the 504 tells it to: nothing new, the original id, marked.
    let (status, body) = post_events(&node, &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["duplicate"].as_bool()), (Some(0), Some(true)), "{body}");
    assert_eq!(ids_of(&body), [stored.0.as_str()]);
    assert_eq!(stream(&node).await.len(), 2, "stored once");
    let mut conn = node.redis_conn().await;
    let recent: Vec<String> = redis::cmd("LRANGE")
        .arg(events::recent_key(REGION, "u01"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("LRANGE");
    assert_eq!(recent.len(), 1, "the user's recent list holds it once: {recent:?}");
    assert_eq!(node.metric("georec_events_total{outcome=\"duplicate\"}").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_new_and_seen_event_ids_stores_the_new_ones_once() {
    let node = spawn_node().await;
    let ev = |user: &str, item: &str, eid: Option<&str>| {
        let mut e = json!({"user_id": user, "item_id": item, "type": "view"});
        if let Some(id) = eid {
            e["event_id"] = json!(id);
        }
        e
    };
    let (status, first) =
        post_events(&node, &json!({"events": [ev("u01", "i01", Some("a")), ev("u01", "i02", Some("b"))]}))
            .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!((first["accepted"].as_u64(), first["duplicate"].as_bool()), (Some(2), Some(false)));
    assert!(first.get("duplicates").is_none(), "no duplicates listed: {first}");
    let first_ids = ids_of(&first);

    // "a" again, new "c", an unnamed event, "a" of another user (not the same event), and
    // "c" twice within the batch.
    let batch = json!([
        ev("u01", "i03", Some("c")),
        ev("u01", "i01", Some("a")),
        ev("u01", "i04", None),
        ev("u02", "i01", Some("a")),
        ev("u01", "i03", Some("c")),
    ]);
    let (status, body) = post_events(&node, &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["duplicate"], false);
    assert_eq!(body["duplicates"], json!([1, 4]));
    let ids = ids_of(&body);
    assert_eq!(ids[1], first_ids[0], "the original id of a");
    assert_eq!(ids[4], ids[0], "the batch's own c");
    let stored = stream(&node).await;
    assert_eq!(stored.len(), 5, "a, b, c, the unnamed one and u02's a: {stored:?}");
    let named: Vec<(String, Option<String>)> =
        stored.iter().map(|(_, e)| (e.user_id.clone(), e.event_id.clone())).collect();
    assert_eq!(
        named,
        [
            ("u01".to_string(), Some("a".to_string())),
            ("u01".to_string(), Some("b".to_string())),
            ("u01".to_string(), Some("c".to_string())),
            ("u01".to_string(), None),
            ("u02".to_string(), Some("a".to_string())),
        ]
    );

    // A bad event_id is refused by name, and nothing is stored.
    for (bad, why) in
        [(json!(""), "empty"), (json!("x".repeat(129)), "128 bytes"), (json!("a\tb"), "control")]
    {
        let mut e = ev("u01", "i01", None);
        e["event_id"] = bad;
        let (status, body) = post_events(&node, &e).await;
        assert_eq!((status, body["field"].as_str()), (422, Some("event_id")), "{why}: {body}");
    }
    assert_eq!(stream(&node).await.len(), 5);
}
