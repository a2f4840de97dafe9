//! `DELETE /users/{user_id}`: a user's live data leaves the region's Redis at once, they get
//! popular items and are nobody's neighbour until a model without them serves, their new
//! events are refused, and all of it holds after a restart.

use model::events;
use model::model::{Model, Query};
use serde_json::{json, Value};

use crate::helpers::*;

fn item_ids(answer: &Value) -> Vec<String> {
    let items = answer["items"].as_array().expect("items");
    items.iter().map(|i| i["item_id"].as_str().expect("item_id").to_string()).collect()
}

/// Keys of the test Redis that name `user` (the erasure's own records aside).
async fn keys_naming(node: &TestNode, user: &str) -> Vec<String> {
    node.redis_keys().await.into_iter().filter(|k| k.contains(user)).collect()
}

/// Users of the region's event stream, in order.
async fn stream_users(node: &TestNode) -> Vec<String> {
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
        .map(|(_, f)| f.into_iter().find(|(k, _)| k == "user").map(|(_, v)| v).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_users_live_data_goes_at_once_and_they_get_popular_items() {
    let node = spawn_node().await;
    let (erased, other) = ("u07", "u08");
    for (user, eid) in [(erased, "o-1"), (erased, "o-2"), (other, "o-1")] {
        let ev = json!({"user_id": user, "item_id": "i04", "type": "purchase", "event_id": eid});
        assert_eq!(node.post("/events", &ev).await.status(), 200);
    }
    let personal = node.recommend(&json!({"user_id": erased})).await;
    assert_eq!(personal["strategy"], "user-knn-live");
    assert_eq!(node.recommend(&json!({"user_id": erased})).await["source"], "cache");
    // A served-items record, as a rollout writes them.
    let mut conn = node.redis_conn().await;
    let served = format!("georec:{REGION}:served:{erased}");
    let () = redis::cmd("HSET")
        .arg(&served)
        .arg("i04")
        .arg("v\tstable\t1")
        .query_async(&mut conn)
        .await
        .expect("HSET");
    assert!(keys_naming(&node, erased).await.len() >= 4, "recent, cache, served, event ids");

    // Without the token: refused, nothing erased.
    let res = node.client.delete(node.url(&format!("/users/{erased}"))).send().await.expect("sent");
    assert_eq!(res.status(), 401);

    let (status, body) = node.delete(&format!("/users/{erased}")).await;
    assert_eq!(status, 202, "{body}");
    let removed = &body["removed"];
    assert_eq!((removed["recent"].as_u64(), removed["served"].as_u64()), (Some(1), Some(1)), "{body}");
    assert_eq!(
        (removed["event_ids"].as_u64(), removed["stream_entries"].as_u64()),
        (Some(2), Some(2)),
        "{body}"
    );
    assert!(removed["cached"].as_u64() >= Some(1), "{body}");

    // Nothing in Redis names them but the erasure's record; the other user's data stays.
    assert_eq!(keys_naming(&node, erased).await, Vec::<String>::new());
    assert_eq!(stream_users(&node).await, [other]);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(events::erased_key(REGION))
        .query_async(&mut conn)
        .await
        .expect("SMEMBERS");
    assert_eq!(members, [erased]);

    // Popular items, computed each time (nothing cached about them), none of their history
    // left out as "seen".
    let after = node.recommend(&json!({"user_id": erased})).await;
    assert_eq!(
        (after["strategy"].as_str(), after["source"].as_str()),
        (Some("popular"), Some("model")),
        "{after}"
    );
    assert_eq!(node.recommend(&json!({"user_id": erased})).await["source"], "model");
    assert_eq!(keys_naming(&node, erased).await, Vec::<String>::new(), "still nothing about them");

    // Their new events are refused, by name; others' are taken.
    let res = node.post("/events", &json!({"user_id": erased, "item_id": "i01", "type": "view"})).await;
    assert_eq!(res.status(), 409);
    let refused: Value = res.json().await.expect("json");
    assert_eq!(
        (refused["error"].as_str(), refused["field"].as_str()),
        (Some("user_erased"), Some("user_id"))
    );
    let batch = json!([{"user_id": other, "item_id": "i01", "type": "view"}, {"user_id": erased, "item_id": "i01", "type": "view"}]);
    assert_eq!(node.post("/events", &batch).await.status(), 409, "all or nothing");
    assert_eq!(stream_users(&node).await, [other]);

    // A user nobody knows, and the same erasure again: 202, harmless.
    let (status, body) = node.delete("/users/nobody-at-all").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["removed"]["stream_entries"], 0);
    assert_eq!(node.delete(&format!("/users/{erased}")).await.0, 202);
    let (status, body) = node.delete("/users/a%09b").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("user_id")), "{body}");
}

/// A user of `m` and one of their stored neighbours whose leaving changes the user's top 10.
fn user_and_telling_neighbour(m: &Model) -> (u32, u32) {
    let q = Query { count: 10, exclude: &[], categories: None };
    for x in 0..m.users.len() as u32 {
        let (seen, _) = m.user_items(x);
        let all: Vec<(u32, f32)> = m.neighbours(x).collect();
        let with = m.recommend_from(&all, seen, &q);
        for &(e, _) in &all {
            let without: Vec<(u32, f32)> = all.iter().copied().filter(|(v, _)| *v != e).collect();
            let got = m.recommend_from(&without, seen, &q);
            if got.iter().map(|s| s.item).ne(with.iter().map(|s| s.item)) {
                return (x, e);
            }
        }
    }
    panic!("no neighbour changes anyone's answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_user_is_nobodys_neighbour_at_once_even_in_cached_answers() {
    let node = spawn_node().await;
    let m = node.publish(2).await;
    node.wait_for_version(&version(2)).await;
    let (x, e) = user_and_telling_neighbour(&m);
    let (x_id, e_id) = (m.users[x as usize].clone(), m.users[e as usize].clone());
    let ask = json!({"user_id": x_id, "count": 10});
    let before = node.recommend(&ask).await;
    assert_eq!(node.recommend(&ask).await["source"], "cache");

    let (status, body) = node.delete(&format!("/users/{e_id}")).await;
    assert_eq!(status, 202, "{body}");

    // The cached answer used them: stale. The new one is user-KNN without them.
    let after = node.recommend(&ask).await;
    assert_eq!(after["source"], "model", "{after}");
    assert_ne!(item_ids(&after), item_ids(&before));
    let q = Query { count: 10, exclude: &[], categories: None };
    let without: Vec<(u32, f32)> = m.neighbours(x).filter(|(v, _)| *v != e).collect();
    let want = m.recommend_from(&without, m.user_items(x).0, &q);
    assert_items_match(&m, &after, &want);
    assert_eq!(node.recommend(&ask).await["source"], "cache", "cached again, at the new generation");

    // Live answers (with fold-in) search neighbours without them, and still find K.
    // (An item they have: their live vector stays close to the stored one.)
    let item = m.user_items(x).0[0];
    let ev = json!({"user_id": x_id, "item_id": m.items[item as usize], "type": "view"});
    assert_eq!(node.post("/events", &ev).await.status(), 200);
    assert_eq!(node.recommend(&ask).await["strategy"], "user-knn-live");
    let fold = [(item, 1.0)];
    let all = model::live::live_neighbours(&m, Some(x), &fold);
    assert!(all.iter().any(|(v, _)| *v == e), "{e} is among the live neighbours: {all:?}");
    let kept = model::live::live_neighbours_without(&m, Some(x), &fold, &[e]);
    assert!(kept.iter().all(|(v, _)| *v != e));
    assert_eq!(kept.len(), all.len(), "as many neighbours as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_survives_a_node_restart() {
    let node = spawn_node().await;
    let ev = json!({"user_id": "u05", "item_id": "i02", "type": "view"});
    assert_eq!(node.post("/events", &ev).await.status(), 200);
    assert_eq!(node.delete("/users/u05").await.0, 202);
    let redis = node.take_redis();

    let restarted = spawn_node_with(Options { redis: Some(redis), ..Options::default() }).await;
    let answer = restarted.recommend(&json!({"user_id": "u05"})).await;
    assert_eq!(answer["strategy"], "popular", "{answer}");
    assert_eq!(restarted.post("/events", &ev).await.status(), 409);
}
