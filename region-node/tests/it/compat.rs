//! The FastAPI-layout routes answer what the native ones answer, in their shapes.

use model::model::Query;
use serde_json::{json, Value};

use crate::helpers::*;

async fn ok(node: &TestNode, path: &str, body: Option<Value>) -> Value {
    let res = match body {
        Some(b) => node.post(path, &b).await,
        None => node.post_raw(path, "").await,
    };
    let status = res.status();
    let json: Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{path}: {json}");
    json
}

/// `recommendations` of a compat answer as (product_id, score).
fn products(v: &Value) -> Vec<(String, f64)> {
    v["recommendations"]
        .as_array()
        .expect("recommendations")
        .iter()
        .map(|p| (p["product_id"].as_str().expect("id").to_string(), p["score"].as_f64().expect("score")))
        .collect()
}

fn items(v: &Value) -> Vec<(String, f64)> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| (p["item_id"].as_str().expect("id").to_string(), p["score"].as_f64().expect("score")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_routes_match_the_native_answers() {
    let node = spawn_node().await;
    let m = model_dir(1).model;

    let compat = ok(&node, "/api/v1/recommendations/user/u08", Some(json!({"count": 5}))).await;
    let native = node.recommend(&json!({"user_id": "u08", "count": 5})).await;
    assert_eq!(products(&compat), items(&native));
    assert_eq!((compat["user_id"].as_str(), compat["region"].as_str()), (Some("u08"), Some(REGION)));
    assert_eq!(compat["total_count"], 5);
    assert!(compat["processing_time_ms"].is_f64() && compat["generated_at"].is_string());
    let first = &compat["recommendations"][0];
    assert_eq!(first["region"], REGION);
    assert!(first["product_name"].as_str().expect("name").starts_with("Item "));
    assert!(first["category"].is_string());

    // An empty body means all defaults; exclude_purchased=false may return owned items.
    let defaults = ok(&node, "/api/v1/recommendations/user/u08", None).await;
    assert_eq!(defaults["total_count"], 10);
    let with_owned = ok(
        &node,
        "/api/v1/recommendations/user/u08",
        Some(json!({"count": 10, "exclude_purchased": false, "categories": ["books", "music"]})),
    )
    .await;
    let u = m.user_index("u08").expect("user");
    let neighbours: Vec<(u32, f32)> = m.neighbours(u).collect();
    let cats = [m.category_index("books").expect("c"), m.category_index("music").expect("c")];
    let want =
        m.recommend_from(&neighbours, &[], &Query { count: 10, exclude: &[], categories: Some(&cats) });
    let want: Vec<&str> = want.iter().map(|s| m.items[s.item as usize].as_str()).collect();
    let got: Vec<(String, f64)> = products(&with_owned);
    assert_eq!(got.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(), want);

    let similar = ok(&node, "/api/v1/recommendations/similar-products/i04", Some(json!({"count": 3}))).await;
    let (status, native) = node.json("/items/i04/similar?count=3").await;
    assert_eq!(status, 200);
    assert_eq!(products(&similar), items(&native));
    assert_eq!(similar["product_id"], "i04");

    let trending =
        ok(&node, "/api/v1/recommendations/trending", Some(json!({"count": 4, "category": "games"}))).await;
    let (_, native) = node.json("/trending?count=4&category=games").await;
    assert_eq!(products(&trending), items(&native));

    let res = node.get("/api/v1/recommendations/stats").await;
    assert_eq!(res.status(), 200);
    let stats: Value = res.json().await.expect("json");
    assert_eq!(stats["users"], m.users.len());
    for path in ["/api/v1/health/", "/api/v1/health"] {
        let (status, health) = node.json(path).await;
        assert_eq!((status, health["status"].as_str()), (200, Some("ready")), "{path}");
    }

    let res = node.post("/api/v1/recommendations/similar-products/nope", &json!({})).await;
    assert_eq!(res.status(), 404);
}
