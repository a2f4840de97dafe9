//! The FastAPI-layout contract existing clients rely on, checked field by field (names,
//! types, 0..1 ranges, status codes, `{"detail", "region"}` errors) against a real node and
//! through a real router in front of real nodes.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use model::manifest::now_unix;
use region_node::topology::Topology;
use serde_json::{json, Value};

use crate::helpers::*;

/// `v[key]` as a string, failing with the whole answer when it is not one.
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("`{key}` is not a string in {v}"))
}

/// `v[key]` as a number in 0..=1.
fn unit(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in {v}"));
    assert!((0.0..=1.0).contains(&x), "`{key}` = {x} is outside 0..1 in {v}");
    x
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("`{key}` is not a list in {v}"))
}

/// An error of these routes: the status, and `{"detail", "region"}` naming the problem.
fn assert_error(status: u16, body: &Value, want: u16, mentions: &str) {
    assert_eq!(status, want, "{body}");
    assert!(text(body, "detail").contains(mentions), "detail should mention {mentions:?}: {body}");
    assert!(!text(body, "region").is_empty(), "{body}");
}

/// A user recommendation item.
fn check_product(p: &Value) {
    for k in ["product_id", "product_name", "category", "region"] {
        text(p, k);
    }
    unit(p, "score");
    assert!(p["raw_score"].is_f64(), "{p}");
}

/// The scores of a list are best first.
fn descending(items: &[Value], key: &str) {
    let s: Vec<f64> = items.iter().map(|p| unit(p, key)).collect();
    assert!(s.windows(2).all(|w| w[0] >= w[1]), "{key} not best first: {s:?}");
}

async fn send(node: &TestNode, path: &str, body: Option<Value>) -> (u16, Value) {
    let res = match body {
        Some(b) => node.post(path, &b).await,
        None => node.post_raw(path, "").await,
    };
    let status = res.status().as_u16();
    (status, res.json().await.expect("JSON body"))
}

async fn ok(node: &TestNode, path: &str, body: Option<Value>) -> Value {
    let (status, json) = send(node, path, body).await;
    assert_eq!(status, 200, "{path}: {json}");
    json
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", l.local_addr().expect("addr"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_the_fastapi_contract() {
    let peer = spawn_node().await;
    let topology = Topology {
        regions: BTreeMap::from([
            (REGION.to_string(), vec!["http://127.0.0.1:1".to_string()]),
            ("eu-west".to_string(), vec![peer.base.clone()]),
            ("ap-south".to_string(), vec![dead_url()]),
        ]),
        failover: vec!["eu-west".into(), "ap-south".into()],
        probe_timeout: Duration::from_millis(300),
        peer_timeout: Duration::from_secs(5),
    };
    let node = spawn_node_with(Options { topology: Some(topology), ..Options::default() }).await;

    // GET /, health, detailed health.
    let (status, root) = node.json("/").await;
    assert_eq!(status, 200);
    for k in ["message", "region", "version", "docs"] {
        text(&root, k);
    }
    assert_eq!(text(&root, "status"), "healthy");
    for path in ["/api/v1/health/", "/api/v1/health"] {
        let (status, h) = node.json(path).await;
        assert_eq!(status, 200, "{h}");
        for k in ["status", "region", "timestamp", "version"] {
            text(&h, k);
        }
    }
    let (status, d) = node.json("/api/v1/health/detailed").await;
    assert_eq!((status, text(&d, "status")), (200, "healthy"), "{d}");
    for k in ["region", "timestamp", "version"] {
        text(&d, k);
    }
    for service in ["redis", "model_store", "model"] {
        assert_eq!(text(&d["services"][service], "status"), "healthy", "{d}");
    }

    // User recommendations: contract fields, 0..1 scores, the native ranking.
    let body = json!({"count": 5, "categories": [], "exclude_purchased": true, "min_rating": 3.5,
                      "force_refresh": false, "region": REGION});
    let user = ok(&node, "/api/v1/recommendations/user/u08", Some(body)).await;
    let items = list(&user, "recommendations");
    assert_eq!(items.len(), 5);
    items.iter().for_each(check_product);
    descending(items, "score");
    assert!(
        items.iter().any(|p| p["raw_score"].as_f64() > Some(1.0)),
        "the raw scores of this model exceed 1"
    );
    assert_eq!(items[0]["score"], 1.0);
    let native = node.recommend(&json!({"user_id": "u08", "count": 5})).await;
    let ids =
        |v: &[Value], k: &str| v.iter().map(|p| p[k].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    assert_eq!(ids(items, "product_id"), ids(list(&native, "items"), "item_id"));
    assert_eq!(ok(&node, "/api/v1/recommendations/user/u08", None).await["total_count"], 10);

    // Similar products, count from the query.
    let similar = ok(&node, "/api/v1/recommendations/similar-products/i04?count=3", None).await;
    assert_eq!(text(&similar, "product_id"), "i04");
    let products = list(&similar, "similar_products");
    assert_eq!(products.len(), 3);
    for p in products {
        for k in ["product_id", "product_name", "category"] {
            text(p, k);
        }
        unit(p, "similarity_score");
    }
    descending(products, "similarity_score");
    text(&similar, "region");
    text(&similar, "generated_at");
    let (_, native) = node.json("/items/i04/similar?count=3").await;
    assert_eq!(ids(products, "product_id"), ids(list(&native, "items"), "item_id"));

    // Trending: growth measured from events, this window (2 h) against the one before.
    let now = now_unix();
    let mut events: Vec<Value> = (1..=3)
        .map(|u| json!({"user_id": format!("u{u:02}"), "item_id": "i03", "type": "view", "ts": now}))
        .collect();
    events.push(json!({"user_id": "u04", "item_id": "i03", "type": "view", "ts": now - 2 * 3600}));
    let res = node.post("/events", &json!({"events": events})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    let i03 = eventually("i03's interactions counted", || async {
        let t = ok(&node, "/api/v1/recommendations/trending?time_window_hours=2", Some(json!({"count": 30})))
            .await;
        let p = list(&t, "trending_products").iter().find(|p| p["product_id"] == "i03").cloned()?;
        (p["interaction_count"] == 3).then_some((t, p))
    })
    .await;
    let (trending, p) = i03;
    assert_eq!(p["growth_rate"].as_f64(), Some(2.0), "(3 - 1) / 1: {p}");
    assert_eq!(
        (trending["time_window_hours"].as_u64(), trending["growth_measured"].as_bool()),
        (Some(2), Some(true))
    );
    for p in list(&trending, "trending_products") {
        for k in ["product_id", "product_name", "category", "region"] {
            text(p, k);
        }
        unit(p, "trend_score");
        assert!(p["interaction_count"].is_u64() && p["growth_rate"].is_f64(), "{p}");
    }
    let games = ok(&node, "/api/v1/recommendations/trending?category=games&count=4", None).await;
    assert_eq!(text(&games, "category"), "games");
    assert_eq!(games["time_window_hours"], 24);
    assert!(list(&games, "trending_products").iter().all(|p| p["category"] == "games"));

    // Stats, nested.
    let (status, stats) = node.json("/api/v1/recommendations/stats").await;
    assert_eq!(status, 200);
    let m = &stats["model_stats"];
    assert_eq!((m["models_loaded"].as_u64(), m["user_count"].as_u64()), (Some(1), Some(40)), "{stats}");
    assert!(m["product_count"].is_u64() && m["total_interactions"].is_u64() && m["matrix_density"].is_f64());
    text(m, "last_updated");
    let c = &stats["cache_stats"];
    assert!(c["keys_count"].is_u64() && c["cache_hits"].is_u64() && c["cache_misses"].is_u64(), "{stats}");
    text(c, "memory_used");
    assert!(stats["uptime_seconds"].is_u64());
    text(&stats, "last_updated");

    // Regions, from the configuration and probes.
    let (_, current) = node.json("/api/v1/regions/current").await;
    assert_eq!((text(&current, "region"), current["failover_enabled"].as_bool()), (REGION, Some(true)));
    assert_eq!(list(&current, "allowed_regions").len(), 3);
    text(&current, "endpoint");
    let (_, all) = node.json("/api/v1/regions/all").await;
    assert_eq!(text(&all, "current_region"), REGION);
    assert_eq!(all["all_regions"]["eu-west"], peer.base.as_str());
    assert_eq!(all["failover_regions"], json!(["eu-west", "ap-south"]));
    let (_, failover) = node.json("/api/v1/regions/failover").await;
    assert_eq!(failover["failover_order"], json!([REGION, "eu-west", "ap-south"]));
    assert_eq!(failover["failover_enabled"], true);
    let (_, health) = node.json("/api/v1/regions/health").await;
    assert_eq!((text(&health, "overall_health"), health["healthy_regions"].as_u64()), ("degraded", Some(2)));
    assert_eq!(health["total_regions"], 3);
    text(&health, "timestamp");
    let by_region: BTreeMap<&str, &Value> =
        list(&health, "regions").iter().map(|r| (text(r, "region"), r)).collect();
    assert_eq!(text(by_region["eu-west"], "status"), "healthy");
    assert!(by_region["eu-west"]["response_time_ms"].is_f64());
    assert_eq!(text(by_region["ap-south"], "status"), "unhealthy");
    text(by_region["ap-south"], "endpoint");

    // Cross-region: eu-west answers node to node, ap-south fails and is reported.
    for method in ["merge", "highest_score", "weighted_average", "round_robin"] {
        let body = json!({"user_id": "u08", "regions": [REGION, "eu-west", "ap-south"], "count": 5,
                          "aggregation_method": method});
        let x = ok(&node, "/api/v1/recommendations/cross-region", Some(body)).await;
        assert_eq!((text(&x, "aggregation_method"), text(&x, "primary_region")), (method, REGION));
        assert_eq!(text(&x, "user_id"), "u08");
        text(&x, "generated_at");
        let results = x["cross_region_results"].as_object().expect("results");
        assert_eq!(results.keys().collect::<Vec<_>>(), [&"eu-west".to_string(), &REGION.to_string()], "{x}");
        results.values().flat_map(|l| l.as_array().expect("list")).for_each(check_product);
        assert!(x["failed_regions"]["ap-south"].is_string(), "{x}");
        let agg = list(&x, "recommendations");
        assert_eq!(agg.len(), 5, "{x}");
        agg.iter().for_each(|p| {
            unit(p, "score");
        });
        if method != "merge" && method != "round_robin" {
            descending(agg, "score");
        }
    }

    // Admin routes behind the node's token.
    let res = node.admin("/api/v1/recommendations/refresh-models", Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    let res = node.admin("/api/v1/recommendations/clear-cache", Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    let res = node.admin("/api/v1/recommendations/clear-cache", None).await;
    let status = res.status().as_u16();
    assert_error(status, &res.json().await.expect("json"), 401, "Bearer");

    // Bad input: a clear 4xx naming the problem, `{"detail", "region"}`.
    let cases: [(&str, Option<Value>, u16, &str); 9] = [
        ("/api/v1/recommendations/user/u08", Some(json!({"count": 0})), 422, "between 1 and"),
        ("/api/v1/recommendations/user/u08", Some(json!({"min_rating": 9})), 422, "between 0 and 5"),
        ("/api/v1/recommendations/user/u08", Some(json!({"bogus": 1})), 422, "bogus"),
        ("/api/v1/recommendations/similar-products/nope", None, 404, "nope"),
        ("/api/v1/recommendations/similar-products/i04?count=x", None, 422, "integer"),
        ("/api/v1/recommendations/trending", Some(json!({"time_window_hours": 0})), 422, "between 1 and 168"),
        (
            "/api/v1/recommendations/cross-region",
            Some(json!({"user_id": "u1", "regions": ["mars"]})),
            422,
            "mars",
        ),
        (
            "/api/v1/recommendations/cross-region",
            Some(json!({"user_id": "u1", "aggregation_method": "best"})),
            422,
            "best",
        ),
        ("/api/v1/recommendations/cross-region", None, 400, "body"),
    ];
    for (path, body, want, mentions) in cases {
        let (status, json) = send(&node, path, body).await;
        assert_error(status, &json, want, mentions);
    }
    let res = node.post_raw("/api/v1/recommendations/user/u08", "{not json").await;
    let status = res.status().as_u16();
    assert_error(status, &res.json().await.expect("json"), 400, "");
}

/// `regions.toml` text naming each node as a region.
fn cluster_toml(regions: &[(&str, &str)]) -> String {
    let mut t = "[primary]\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"georec-test\"\ncloud_region = \"test-1\"\n\n\
                 [router]\nlisten = \"127.0.0.1:0\"\nrequest_timeout_ms = 5000\n\n\
                 [health]\ninterval_ms = 100\ntimeout_ms = 500\nfall = 2\nrise = 1\neject_after = 3\n"
        .to_string();
    for (i, (name, url)) in regions.iter().enumerate() {
        let others: Vec<String> =
            regions.iter().filter(|(n, _)| n != name).map(|(n, _)| format!("{n:?}")).collect();
        t += &format!(
            "\n[regions.{name}]\nlisten = \"127.0.0.1:{}\"\nurls = [{url:?}]\nredis_url = \"redis://127.0.0.1:6379\"\n\
             cloud_region = \"test-1\"\nfailover = [{}]\ns3 = {{ bucket = \"georec-test\" }}\n",
            21_000 + i,
            others.join(", ")
        );
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_routes_the_fastapi_contract() {
    let (a, b) = (spawn_node().await, spawn_node().await);
    let toml = cluster_toml(&[("us-west", &a.base), ("eu-west", &b.base)]);
    let cluster = cluster_config::ClusterConfig::from_toml_str(&toml, Vec::new()).expect("test config");
    let tuning = router::settings::Tuning { workers: Some(1), ..router::settings::Tuning::default() };
    let settings = router::settings::Settings::new(&cluster, None, &tuning).expect("settings");
    let state = router::AppState::new(settings, None).expect("state");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind router");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(router::run(listener, state, async {
        let _ = stopped.await;
    }));
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let get = |path: &str| {
        let req = client.get(format!("{base}{path}")).header("accept", "application/json");
        async move {
            let res = req.send().await.expect("router answers");
            (res.status().as_u16(), res.json::<Value>().await.expect("JSON"))
        }
    };
    eventually("both regions healthy at the router", || async {
        let (_, h) = get("/api/v1/regions/health").await;
        (h["healthy_regions"] == 2).then_some(())
    })
    .await;

    let (status, root) = get("/").await;
    assert_eq!((status, text(&root, "status")), (200, "healthy"), "{root}");
    for k in ["message", "region", "version", "docs"] {
        text(&root, k);
    }
    let html = client.get(format!("{base}/")).header("accept", "text/html").send().await.expect("page");
    assert!(html.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));

    let (_, current) = get("/api/v1/regions/current").await;
    assert_eq!(list(&current, "allowed_regions").len(), 2);
    text(&current, "region");
    text(&current, "endpoint");
    let (_, all) = get("/api/v1/regions/all").await;
    assert_eq!(all["all_regions"]["eu-west"], b.base.as_str());
    let (_, failover) = get("/api/v1/regions/failover").await;
    assert_eq!(
        (list(&failover, "failover_order").len(), failover["failover_enabled"].as_bool()),
        (2, Some(true))
    );
    let (_, health) = get("/api/v1/regions/health").await;
    assert_eq!((text(&health, "overall_health"), health["total_regions"].as_u64()), ("healthy", Some(2)));
    for r in list(&health, "regions") {
        assert_eq!(text(r, "status"), "healthy");
        text(r, "endpoint");
        assert!(r["response_time_ms"].is_f64(), "{r}");
    }

    for path in
        ["/api/v1/health/", "/api/v1/health", "/api/v1/health/detailed", "/api/v1/recommendations/stats"]
    {
        let (status, v) = get(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        text(&v, "region");
    }
    let post = |path: &str, body: Value| {
        let req = client.post(format!("{base}{path}")).header("x-region-hint", "eu-west").json(&body);
        async move {
            let res = req.send().await.expect("router answers");
            let served_by =
                res.headers().get("x-served-by").and_then(|v| v.to_str().ok()).map(str::to_string);
            (res.status().as_u16(), served_by, res.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, served_by, user) = post("/api/v1/recommendations/user/u08", json!({"count": 3})).await;
    assert_eq!((status, served_by.as_deref()), (200, Some("eu-west")), "{user}");
    list(&user, "recommendations").iter().for_each(check_product);
    let (status, _, similar) = post("/api/v1/recommendations/similar-products/i04?count=2", json!({})).await;
    assert_eq!((status, list(&similar, "similar_products").len()), (200, 2), "{similar}");
    let (status, _, trending) = post("/api/v1/recommendations/trending", json!({"count": 2})).await;
    assert_eq!((status, list(&trending, "trending_products").len()), (200, 2), "{trending}");
    let (status, _, x) = post(
        "/api/v1/recommendations/cross-region",
        json!({"user_id": "u08", "aggregation_method": "round_robin"}),
    )
    .await;
    assert_eq!(status, 200, "{x}");
    assert_eq!(list(&x, "recommendations").len(), 10);
    let (status, _, refused) = post("/api/v1/recommendations/refresh-models", json!({})).await;
    assert_error(status, &refused, 401, "Bearer");
    let (status, _, bad) = post("/api/v1/recommendations/user/u08", json!({"count": 500})).await;
    assert_error(status, &bad, 422, "between 1 and");
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_under_the_prefix_answer_in_the_layouts_shape() {
    let node = spawn_node().await;
    let res = node.client.get(node.url("/api/v1/recommendations/user/u1")).send().await.expect("sent");
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.expect("json");
    assert!(body["detail"].is_string() && body["error"] == "method_not_allowed", "{body}");
    assert_eq!(body["region"], "us-west", "{body}");
    let (status, body) = send(&node, "/api/v1/nothing-here", None).await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string() && body["region"] == "us-west", "{body}");
    // Outside the prefix the native shape stays.
    let (status, body) = send(&node, "/nothing-here", None).await;
    assert_eq!(status, 404);
    assert!(body.get("detail").is_none() && body["error"] == "not_found", "{body}");
}
