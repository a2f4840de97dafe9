//! A fake recommendation target (actix on 127.0.0.1:0) whose answers depend on the user id
//! and region hint, and plan/user builders for bounded loopback runs.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use loadtest::plan::{Bound, Hints, Load, Plan};
use loadtest::progress::Progress;
use loadtest::stats::Stats;
use loadtest::users::{Dist, Sampler};
use serde_json::{json, Value};
use tokio::time::Instant;

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// The request with this number (1-based) blocks the only worker for `stall`, as if the
    /// process were stopped: every request behind it waits too.
    pub stall_at: Option<u64>,
    pub stall: Duration,
    /// Answers after this many requests carry model version `v2` instead of `v1`.
    pub swap_after: Option<u64>,
}

#[derive(Debug)]
struct Ctl {
    behaviour: Behaviour,
    hits: AtomicU64,
}

/// A running fake; stops when dropped.
pub struct Fake {
    pub url: String,
    ctl: Arc<Ctl>,
    handle: ServerHandle,
}

impl Fake {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake target");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let ctl = Arc::new(Ctl { behaviour, hits: AtomicU64::new(0) });
        let data = ctl.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(data.clone()))
                .route("/recommendations", web::post().to(recommend))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Fake { url, ctl, handle }
    }

    /// Requests the fake received.
    pub fn hits(&self) -> u64 {
        self.ctl.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// Users `e500`, `e404`, `slow` (500 ms), `bad` (unreadable body) misbehave; the rest get
/// an answer served by the hinted region, except hint `us-west`, which the fake "fails over"
/// to `us-east` (as the router would, with `x-failover-from: us-west`).
async fn recommend(req: HttpRequest, body: web::Json<Value>, ctl: web::Data<Arc<Ctl>>) -> HttpResponse {
    let n = ctl.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let b = &ctl.behaviour;
    if b.stall_at == Some(n) {
        std::thread::sleep(b.stall);
    }
    let user = body["user_id"].as_str().unwrap_or_default().to_string();
    let hint =
        req.headers().get("x-region-hint").and_then(|v| v.to_str().ok()).unwrap_or("local").to_string();
    match user.as_str() {
        "e500" => return HttpResponse::InternalServerError().json(json!({"error": "boom"})),
        "e404" => return HttpResponse::NotFound().json(json!({"error": "unknown user"})),
        "bad" => return HttpResponse::Ok().content_type("application/json").body("{not json"),
        "slow" => tokio::time::sleep(Duration::from_millis(500)).await,
        _ => {}
    }
    let version = match b.swap_after {
        Some(after) if n > after => "v2",
        _ => "v1",
    };
    let (served, from) =
        if hint == "us-west" { ("us-east".to_string(), Some("us-west")) } else { (hint, None) };
    let mut resp = HttpResponse::Ok();
    resp.insert_header(("x-served-by", served.clone()));
    if let Some(from) = from {
        resp.insert_header(("x-failover-from", from));
    }
    resp.json(json!({
        "user_id": user, "region": served, "model_version": version, "items": [],
        "strategy": "knn", "source": "model", "took_us": 12
    }))
}

/// An open-loop plan with no warm-up and no hints.
pub fn open_plan(target: &str, rate: f64, duration: Duration) -> Plan {
    Plan {
        target: target.to_string(),
        path: "/recommendations".into(),
        load: Load::Open { rate, max_in_flight: 1000 },
        bound: Bound::new(Some(duration), None),
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(2),
        count: 10,
        hints: Hints::None,
        seed: 42,
    }
}

pub fn users(ids: &[&str]) -> Sampler {
    Sampler::new(ids.iter().map(|s| s.to_string()).collect(), Dist::Uniform, 1).expect("users")
}

/// Run `plan` now, without progress output.
pub async fn run(plan: &Plan, users: Sampler) -> Stats {
    loadtest::run::execute(plan, users, Instant::now() + plan.warmup, Progress::Off).await.expect("run")
}

/// Tags opened and closed in order, self-closing ones allowed: a minimal well-formedness check.
pub fn assert_balanced_xml(doc: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') && !tag.starts_with('?') {
            stack.push(tag.split_whitespace().next().unwrap_or_default().to_string());
        }
        let text = &rest[end + 1..];
        let next = text.find('<').unwrap_or(text.len());
        for amp in text[..next].match_indices('&') {
            let entity = &text[amp.0..next];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| entity.starts_with(e)),
                "bare & in text: {entity}"
            );
        }
        rest = text;
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}
