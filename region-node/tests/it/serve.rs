//! Serving from a published model: answers equal the model's own computation.

use std::collections::{BTreeSet, HashSet};

use model::model::{top_k, Query, Scored};
use region_node::http::ROUTES;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_models_own_computation() {
    let node = spawn_node().await;
    let m = model_dir(1).model;
    let all = Query { count: 10, exclude: &[], categories: None };

    let mut strategies = BTreeSet::new();
    for user in ["u00", "u07", "u13", "u26", "u39"] {
        let got = node.recommend(&json!({"user_id": user})).await;
        let (want, strategy) = expected_recommend(&m, user, &all);
        assert_items_match(&m, &got, &want);
        assert_eq!(got["strategy"], strategy, "{got}");
        assert_eq!((got["user_id"].as_str(), got["region"].as_str()), (Some(user), Some(REGION)));
        assert_eq!(got["model_version"], version(1));
        assert!(got["took_us"].is_u64());
        let u = m.user_index(user).expect("known user");
        let own: HashSet<&str> = m.user_items(u).0.iter().map(|&i| m.items[i as usize].as_str()).collect();
        assert!(got["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| !own.contains(i["item_id"].as_str().expect("id"))));
        strategies.insert(strategy);
    }
    assert!(strategies.contains("user-knn"), "the test data must exercise user-KNN");

    // count + exclude
    let first = node.recommend(&json!({"user_id": "u05", "count": 5})).await;
    let excluded: Vec<String> = first["items"].as_array().expect("items")[..2]
        .iter()
        .map(|i| i["item_id"].as_str().expect("id").into())
        .collect();
    let got = node
        .recommend(&json!({"user_id": "u05", "count": 5, "exclude": excluded, "region": "eu-west"}))
        .await;
    let ex: Vec<u32> = excluded.iter().map(|i| m.item_index(i).expect("item")).collect();
    let (want, _) = expected_recommend(&m, "u05", &Query { count: 5, exclude: &ex, categories: None });
    assert_items_match(&m, &got, &want);
    assert_eq!(got["region"], REGION, "answers name the region that served them");

    // category filter; items carry name and category
    let games = [m.category_index("games").expect("category")];
    let got = node.recommend(&json!({"user_id": "u01", "categories": ["games"]})).await;
    let (want, _) =
        expected_recommend(&m, "u01", &Query { count: 10, exclude: &[], categories: Some(&games) });
    assert_items_match(&m, &got, &want);
    for item in got["items"].as_array().expect("items") {
        assert_eq!(item["category"], "games");
        assert!(item["name"].as_str().expect("name").starts_with("Item "));
    }

    // a user the model does not know gets popular items
    let got = node.recommend(&json!({"user_id": "nobody", "count": 4})).await;
    assert_eq!(got["strategy"], "popular");
    assert_items_match(&m, &got, &m.popular(&[], &Query { count: 4, exclude: &[], categories: None }));

    // the same question again comes from Redis, unchanged
    let again = node.recommend(&json!({"user_id": "nobody", "count": 4})).await;
    assert_eq!((got["source"].as_str(), again["source"].as_str()), (Some("model"), Some("cache")));
    assert_eq!(got["items"], again["items"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_served_by_are_on_every_response() {
    let node = spawn_node().await;
    let res = node
        .client
        .get(node.url("/health/live"))
        .header("x-request-id", "req-42.a")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.headers()["x-request-id"], "req-42.a");
    assert_eq!(res.headers()["x-served-by"], REGION);
    for res in [node.get("/nope").await, node.post("/recommendations", &json!({})).await] {
        assert_eq!(res.headers()["x-served-by"], REGION);
        let id = res.headers()["x-request-id"].to_str().expect("ascii");
        assert_eq!(id.len(), 32, "a fresh id is made when none is given");
    }
}

/// Cosine of co-occurrence computed the slow way, from the matrix rows.
fn brute_force_similar(m: &model::model::Model, item: u32, count: usize) -> Vec<Scored> {
    let users_of = |i: u32| -> HashSet<u32> {
        (0..m.users.len() as u32).filter(|&u| m.user_items(u).0.contains(&i)).collect()
    };
    let mine = users_of(item);
    let candidates = (0..m.items.len() as u32).filter(|&j| j != item).filter_map(|j| {
        let theirs = users_of(j);
        let shared = mine.intersection(&theirs).count();
        (shared > 0).then(|| Scored {
            item: j,
            score: (shared as f64 / (mine.len() as f64 * theirs.len() as f64).sqrt()) as f32,
        })
    });
    top_k(candidates, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_trending_and_stats() {
    let node = spawn_node().await;
    let m = model_dir(1).model;

    let item = m.items[3].clone();
    let (status, got) = node.json(&format!("/items/{item}/similar?count=6")).await;
    assert_eq!(status, 200, "{got}");
    assert_items_match(&m, &got, &brute_force_similar(&m, 3, 6));
    assert_eq!((got["item_id"].as_str(), got["source"].as_str()), (Some(item.as_str()), Some("model")));
    let (_, again) = node.json(&format!("/items/{item}/similar?count=6")).await;
    assert_eq!(again["source"], "cache");
    assert_eq!(again["items"], got["items"]);

    let (status, err) = node.json("/items/no-such-item/similar").await;
    assert_eq!(status, 404);
    assert_eq!((err["error"].as_str(), err["field"].as_str()), (Some("unknown_item"), Some("item_id")));

    let (status, got) = node.json("/trending?count=5").await;
    assert_eq!(status, 200, "{got}");
    assert_items_match(&m, &got, &m.popular(&[], &Query { count: 5, exclude: &[], categories: None }));
    let music = [m.category_index("music").expect("music")];
    let (_, got) = node.json("/trending?count=5&category=music").await;
    assert_items_match(
        &m,
        &got,
        &m.popular(&[], &Query { count: 5, exclude: &[], categories: Some(&music) }),
    );
    assert!(got["items"].as_array().expect("items").iter().all(|i| i["category"] == "music"));

    let (status, stats) = node.json("/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["users"], m.users.len());
    assert_eq!(stats["items"], m.items.len());
    assert_eq!(stats["interactions"], m.interactions);
    assert_eq!(stats["model_version"], version(1));
    assert_eq!(stats["build_parameters"]["neighbours"], 8);
    let density = stats["density"].as_f64().expect("density");
    assert!(density > 0.0 && density < 1.0);
    assert!(stats["cache"]["hits"].as_u64().expect("hits") >= 1);
    assert!(stats["cache"]["misses"].as_u64().expect("misses") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_openapi_and_unknown_routes() {
    let node = spawn_node().await;
    assert_eq!(node.get("/health/live").await.status(), 200);
    let health = eventually("Redis to be up", || async {
        let h = node.health().await;
        (h["redis"] == "up").then_some(h)
    })
    .await;
    for key in ["loaded_at", "cache_hit_ratio", "swap_count", "last_swap_error", "uptime_secs", "region"] {
        assert!(health.get(key).is_some(), "health lacks {key}: {health}");
    }
    assert_eq!((health["status"].as_str(), health["region"].as_str()), (Some("ready"), Some(REGION)));
    assert_eq!((health["swap_count"].as_u64(), health["last_swap_error"].is_null()), (Some(1), true));
    let (status, same) = node.json("/health").await;
    assert_eq!((status, same["model_version"].as_str()), (200, Some(version(1).as_str())));

    node.recommend(&json!({"user_id": "u02"})).await;
    let text = node.get("/metrics").await.text().await.expect("text");
    for needle in [
        "georec_http_requests_total{method=\"POST\",route=\"/recommendations\",status=\"200\"}",
        "georec_http_request_duration_seconds_bucket",
        &format!("georec_model_info{{version=\"{}\"}} 1", version(1)),
        "georec_model_swaps_total 1",
        "georec_model_swap_duration_seconds_count 1",
        "georec_cache_misses_total",
        "georec_cache_hits_total",
        "georec_cache_errors_total",
        "georec_redis_up 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let (status, doc) = node.json("/openapi.json").await;
    assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(method, path)| (method.to_lowercase(), path.to_string())).collect();
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().expect("operations").keys().map(|m| (m.clone(), path.clone()))
        })
        .collect();
    assert_eq!(
        served.difference(&described).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served, not described"
    );
    assert_eq!(
        described.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "described, not served"
    );
    // ROUTES is what the app serves: no route answers "no route" or "method not allowed".
    for (method, path) in ROUTES {
        let path =
            path.replace("{item_id}", "i01").replace("{user_id}", "u01").replace("{product_id}", "i01");
        let path = path.replace("{file}", "index.css");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = node.client.request(method.clone(), node.url(&path)).send().await.expect("sent");
        let status = res.status();
        let body = res.text().await.expect("body");
        let code =
            serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"].as_str().map(String::from));
        assert!(
            !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")),
            "{method} {path}: {status} {body}"
        );
    }

    let (status, err) = node.json("/nope").await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    let (status, err) = node.json("/recommendations").await;
    assert_eq!((status, err["error"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_the_store_and_a_first_model() {
    let mut node = spawn_node_with(Options { publish: None, ..Options::default() }).await;
    assert_eq!(node.get("/health/live").await.status(), 200);
    let (status, health) = node.json("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!((health["status"].as_str(), health["model_version"].clone()), (Some("loading"), Value::Null));
    let res = node.post("/recommendations", &json!({"user_id": "u01"})).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.expect("json")["error"], "model_not_loaded");
    eventually("the empty bucket to be reported", || async {
        let e = node.health().await["last_swap_error"]["error"].as_str().unwrap_or_default().to_string();
        e.contains("nothing has been published").then_some(())
    })
    .await;

    node.s3.stop();
    eventually("the unreachable store to be reported", || async {
        let e = node.health().await["last_swap_error"]["error"].as_str().unwrap_or_default().to_string();
        e.contains("cannot reach S3").then_some(())
    })
    .await;
    node.s3.restart();
    node.publish(1).await;
    node.wait_for_version(&version(1)).await;
    let health = node.health().await;
    assert!(health["last_swap_error"].is_null(), "{health}");
}

/// Swagger UI at `/docs`: its page, and every file the page loads, from the node itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_serve_swagger_ui_from_the_binary() {
    let node = spawn_node_with(Options { publish: None, ..Options::default() }).await;
    for page in ["/docs", "/docs/"] {
        let res = node.get(page).await;
        assert_eq!(res.status(), 200, "{page}");
        let content_type = res.headers()["content-type"].to_str().expect("ascii").to_string();
        assert!(content_type.starts_with("text/html"), "{page}: {content_type}");
        let html = res.text().await.expect("text");
        assert!(
            html.contains("<div id=\"swagger-ui\">") && html.contains("<base href=\"/docs/\">"),
            "{html}"
        );
        let assets = linked(&html);
        assert!(assets.len() >= 5, "the page loads its scripts and styles: {assets:?}");
        for asset in assets {
            assert!(
                !asset.contains("://") && !asset.starts_with("//"),
                "{page} loads {asset} from elsewhere"
            );
            let path = format!("/docs/{}", asset.trim_start_matches("./"));
            let res = node.get(&path).await;
            assert_eq!(res.status(), 200, "{path}");
            let content_type = res.headers()["content-type"].to_str().expect("ascii").to_string();
            let want = match path.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => "javascript",
                Some("css") => "text/css",
                Some("png") => "image/png",
                other => panic!("unexpected asset {path} ({other:?})"),
            };
            assert!(content_type.contains(want), "{path}: {content_type}");
            assert!(!res.bytes().await.expect("body").is_empty(), "{path}");
        }
    }
    let init = node.get("/docs/swagger-initializer.js").await.text().await.expect("text");
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "no validator badge calling out: {init}");
    let (status, err) = node.json("/docs/nope.js").await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
}

/// `href` and `src` targets of an HTML page.
fn linked(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap_or_default();
            if !target.is_empty() && target != "/docs/" {
                out.push(target.to_string());
            }
        }
    }
    out
}
