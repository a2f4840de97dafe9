//! `GET /openapi.json` and Swagger UI at `/docs`, answered by the router itself.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::helpers::{spawn_router, FakeNode, Opts, Region};
use crate::status_page::{chromium, CHROMIUM};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_the_routers_paths_and_each_is_answered() {
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;

    let (status, content_type, text) = router.get_text("/openapi.json").await;

    assert_eq!((status, content_type.as_deref()), (200, Some("application/json")));
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let listed: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    for path in ["/recommendations", "/events", "/api/v1/recommendations/user/{user_id}", "/failover"] {
        assert!(paths[path]["post"].is_object(), "POST {path} in {listed:?}");
    }
    for path in ["/", "/regions", "/metrics", "/openapi.json", "/docs", "/docs/{file}"] {
        assert!(paths[path]["get"].is_object(), "GET {path} in {listed:?}");
    }
    // Every operation described is one the router answers (not "no route", not "use GET").
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let url =
                format!("{}{}", router.base, path.replace("{user_id}", "u1").replace("{file}", "index.css"));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = router.client.request(method.clone(), url).body("{}").send().await.expect("answer");
            let status = res.status();
            let body = res.text().await.expect("body");
            let code =
                serde_json::from_str::<Value>(&body).ok().and_then(|v| v["error"].as_str().map(String::from));
            assert!(
                !matches!(code.as_deref(), Some("not_found" | "method_not_allowed")),
                "{method} {path}: {status} {body}"
            );
        }
    }
    let head = router.client.head(format!("{}/openapi.json", router.base)).send().await.expect("answer");
    assert_eq!(head.status(), 200);
    let post = router.post("/docs", &[], "").await;
    assert_eq!((post.status, post.body["error"].as_str()), (405, Some("method_not_allowed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_serve_swagger_ui_from_the_binary() {
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;

    for page in ["/docs", "/docs/"] {
        let (status, content_type, html) = router.get_text(page).await;

        assert_eq!((status, content_type.as_deref()), (200, Some("text/html; charset=utf-8")), "{page}");
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
            let (status, content_type, _) = router.get_text(&path).await;
            assert_eq!(status, 200, "{path}");
            let content_type = content_type.unwrap_or_default();
            let want = match path.rsplit_once('.').map(|(_, ext)| ext) {
                Some("js") => "javascript",
                Some("css") => "text/css",
                Some("png") => "image/png",
                other => panic!("unexpected asset {path} ({other:?})"),
            };
            assert!(content_type.contains(want), "{path}: {content_type}");
        }
    }
    let (_, _, init) = router.get_text("/docs/swagger-initializer.js").await;
    assert!(init.contains("\"url\": \"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "no validator badge calling out: {init}");
    let missing = router.get("/docs/nope.js").await;
    assert_eq!((missing.status, missing.body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_the_document_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() {
        let why = format!("{CHROMIUM} not found (apt-get install chromium; scripts/test installs it)");
        assert!(std::env::var_os("CI").is_none(), "cannot run with CI set: {why}");
        eprintln!("SKIPPED swagger_ui_renders_the_document_in_headless_chromium: {why}");
        return;
    }
    let a = FakeNode::start("a").await;
    let router = spawn_router(&[Region::new(&a, &[])], Opts::default()).await;

    let out = chromium(&["--dump-dom"], &format!("{}/docs", router.base)).await;

    let dom = String::from_utf8(out.stdout).expect("utf-8 DOM");
    assert!(dom.contains("georec router"), "the document's title rendered: {dom}");
    for path in ["/recommendations", "/failover", "/regions"] {
        assert!(dom.contains(&format!("data-path=\"{path}\"")), "{path} rendered: {dom}");
    }
}

/// `href` and `src` targets of an HTML page, but its `<base>`.
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
