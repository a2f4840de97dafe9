//! Admin routes: bearer token (401 / 403) and reload on demand.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token() {
    let node = spawn_node().await;
    for path in ["/admin/model/reload", "/admin/cache/clear"] {
        for token in [None, Some("wrong"), Some("")] {
            let res = node.admin(path, token).await;
            assert_eq!(res.status(), 401, "{path} with {token:?}");
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
            assert_eq!(res.json::<Value>().await.expect("json")["error"], "unauthorized");
        }
        assert_eq!(node.admin(path, Some(TOKEN)).await.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_forbidden_when_no_token_is_configured() {
    let node = spawn_node_with(Options { admin_token: None, ..Options::default() }).await;
    for path in ["/admin/model/reload", "/admin/cache/clear"] {
        for token in [None, Some(TOKEN)] {
            let res = node.admin(path, token).await;
            assert_eq!(res.status(), 403);
            let err: Value = res.json().await.expect("json");
            assert_eq!(err["error"], "admin_disabled");
            assert!(err["message"].as_str().expect("message").contains("GEOREC_ADMIN_TOKEN"), "{err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_checks_the_pointer_now() {
    // Polling is far away: only the first check (at start) and the admin call happen.
    let node = spawn_node_with(Options { poll: Duration::from_secs(600), ..Options::default() }).await;
    node.publish(2).await;
    assert_eq!(node.health().await["model_version"], version(1));

    let res = node.admin("/admin/model/reload", Some(TOKEN)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!((body["outcome"].as_str(), body["to"].as_str()), (Some("swapped"), Some(version(2).as_str())));
    assert_eq!(body["from"], version(1));
    assert_eq!(node.health().await["model_version"], version(2));

    let body: Value = node.admin("/admin/model/reload", Some(TOKEN)).await.json().await.expect("json");
    assert_eq!(body["outcome"], "unchanged");
}
