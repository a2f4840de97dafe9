//! Fake region nodes: in-process actix servers on 127.0.0.1:0 speaking the region-node
//! contract, with behaviour switchable at runtime (latency, 500s, hang, down). A request body
//! may ask for a particular answer framing: `{"chunked": true}` (transfer-encoding: chunked),
//! `{"close": true}` (`connection: close`), `{"pad": n}` (n more bytes).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

const HEALTHY: u8 = 0;
const FAIL_500: u8 = 1;
const HANG: u8 = 2;

/// Model version every fake reports on `/health/ready`.
pub const MODEL_VERSION: &str = "v-test-7";
/// The candidate every fake reports on `/rollout/metrics` (a 25% split).
pub const CANDIDATE_VERSION: &str = "v-test-8";

#[derive(Debug)]
struct Control {
    region: String,
    node: String,
    mode: AtomicU8,
    latency_ms: AtomicU64,
    /// Added to readiness answers only.
    probe_latency_ms: AtomicU64,
    /// Recommendation/event requests answered (any status).
    served: AtomicU64,
    in_flight: AtomicU64,
    /// Connections accepted (probes included).
    connections: AtomicU64,
    /// Users erased (`DELETE /users/{id}` answered 202), in order.
    erased: Mutex<Vec<String>>,
}

/// One fake node of region `region`. Dropping it stops its server.
pub struct FakeNode {
    pub region: String,
    pub addr: SocketAddr,
    ctl: Arc<Control>,
    server: Mutex<Option<ServerHandle>>,
    /// How long the server keeps an idle keep-alive connection open (actix default: 5 s).
    keep_alive: Option<Duration>,
}

impl FakeNode {
    /// A healthy node of `region` (its node id is `<region>-node`).
    pub async fn start(region: &str) -> Self {
        Self::start_node(region, &format!("{region}-node")).await
    }

    pub async fn start_node(region: &str, node: &str) -> Self {
        Self::start_with_keep_alive(region, node, None).await
    }

    /// A node that closes idle keep-alive connections after `keep_alive` (`None`: default).
    pub async fn start_with_keep_alive(region: &str, node: &str, keep_alive: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake node");
        let addr = listener.local_addr().expect("local addr");
        let ctl = Arc::new(Control {
            region: region.to_string(),
            node: node.to_string(),
            mode: AtomicU8::new(HEALTHY),
            latency_ms: AtomicU64::new(0),
            probe_latency_ms: AtomicU64::new(0),
            served: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            erased: Mutex::new(Vec::new()),
        });
        let fake = FakeNode { region: region.to_string(), addr, ctl, server: Mutex::new(None), keep_alive };
        fake.serve(listener);
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        let ctl = self.ctl.clone();
        let counter = self.ctl.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(ctl.clone()))
                .route("/health/ready", web::get().to(ready))
                .route("/rollout/metrics", web::get().to(rollout))
                .route("/recommendations", web::post().to(recommend))
                .route("/api/v1/recommendations/user/{user_id}", web::post().to(recommend))
                .route("/events", web::post().to(recommend))
                .route("/users/{user_id}", web::delete().to(erase))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .on_connect(move |_, _| {
            counter.connections.fetch_add(1, Ordering::SeqCst);
        });
        if let Some(keep_alive) = self.keep_alive {
            server = server.keep_alive(keep_alive);
        }
        let server = server.listen(listener).expect("listen").run();
        *self.server.lock().expect("lock") = Some(server.handle());
        tokio::spawn(server);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.ctl.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer readiness probes `latency` late (on top of the general latency), as a node on
    /// an overloaded host does when its probes queue behind real traffic.
    pub fn slow_probes(&self, latency: Duration) {
        self.ctl.probe_latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer everything normally (after the injected latency).
    pub fn heal(&self) {
        self.ctl.mode.store(HEALTHY, Ordering::SeqCst);
    }

    /// Answer every request, probes included, with 500.
    pub fn fail_with_500(&self) {
        self.ctl.mode.store(FAIL_500, Ordering::SeqCst);
    }

    /// Accept connections and read requests, never answer (probes included).
    pub fn hang(&self) {
        self.ctl.mode.store(HANG, Ordering::SeqCst);
    }

    /// Stop the server: listener closed, open connections dropped (like a killed process).
    pub async fn down(&self) {
        let handle = self.server.lock().expect("lock").take();
        if let Some(h) = handle {
            h.stop(false).await;
        }
    }

    /// Serve again on the same address.
    pub async fn up(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Users this node erased.
    pub fn erased(&self) -> Vec<String> {
        self.ctl.erased.lock().expect("lock").clone()
    }

    pub fn served(&self) -> u64 {
        self.ctl.served.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> u64 {
        self.ctl.in_flight.load(Ordering::SeqCst)
    }

    /// Connections accepted so far, probes' included.
    pub fn connections(&self) -> u64 {
        self.ctl.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(h) = self.server.lock().map(|mut s| s.take()).ok().flatten() {
            // The stop command is sent on call; nobody needs to wait for it.
            let _stopping = h.stop(false);
        }
    }
}

/// Apply the current mode and latency; `Some(response)` short-circuits the handler.
async fn faults(ctl: &Control) -> Option<HttpResponse> {
    match ctl.mode.load(Ordering::SeqCst) {
        HANG => std::future::pending::<()>().await,
        FAIL_500 => {
            return Some(HttpResponse::InternalServerError().json(json!({"detail": "injected failure"})))
        }
        _ => {}
    }
    let latency = ctl.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    None
}

async fn ready(ctl: web::Data<Arc<Control>>) -> HttpResponse {
    if let Some(r) = faults(&ctl).await {
        return r;
    }
    let late = ctl.probe_latency_ms.load(Ordering::SeqCst);
    if late > 0 {
        tokio::time::sleep(Duration::from_millis(late)).await;
    }
    HttpResponse::Ok().json(json!({
        "status": "ok", "region": ctl.region, "model_version": MODEL_VERSION, "node": ctl.node,
    }))
}

/// Per-version figures as a region node reports them: of every 4 requests served, 3 by the
/// stable version and 1 by the candidate; every candidate answer converts, stable ones half.
async fn rollout(ctl: web::Data<Arc<Control>>) -> HttpResponse {
    let served = ctl.served.load(Ordering::SeqCst);
    let (candidate, stable) = (served / 4, served - served / 4);
    let figures = |version: &str, requests: u64, conversions: u64| {
        json!({
            "version": version, "requests": requests, "users": requests, "errors": 0,
            "latency": {"counts": [0, 0, requests], "sum_seconds": 0.0},
            "strategies": {}, "conversions": {"purchase": conversions},
        })
    };
    HttpResponse::Ok().json(json!({
        "region": ctl.region, "instance": ctl.node, "at": "2026-12-07T00:00:00Z",
        "stable": figures(MODEL_VERSION, stable, stable / 2),
        "candidate": {
            "rollout_id": "r-test", "mode": "split", "share": 0.25,
            "figures": figures(CANDIDATE_VERSION, candidate, candidate),
            "shadow": {"computed": 0, "skipped": 0, "errors": 0, "latency": {"counts": [], "sum_seconds": 0.0}, "overlap_sum": 0.0},
        },
        "candidate_error": null, "attribution_window_s": 1800,
        "latency_buckets_s": [0.0001, 0.00025, 0.0005],
    }))
}

/// `DELETE /users/{user_id}` as a node answers it: the admin token, then 202 with what went.
async fn erase(req: HttpRequest, user_id: web::Path<String>, ctl: web::Data<Arc<Control>>) -> HttpResponse {
    if let Some(r) = faults(&ctl).await {
        return r;
    }
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {}", super::TOKEN)) {
        return HttpResponse::Unauthorized().json(json!({"error": "unauthorized"}));
    }
    if user_id.as_str() == "bad\tid" {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": "invalid_request", "field": "user_id"}));
    }
    ctl.erased.lock().expect("lock").push(user_id.clone());
    HttpResponse::Accepted().json(json!({
        "user_id": user_id.as_str(), "region": ctl.region, "removed": {"recent": 1, "stream_entries": 2},
    }))
}

struct InFlight<'a>(&'a AtomicU64);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Echoes what it received, so tests can check what the router forwarded.
async fn recommend(req: HttpRequest, body: web::Bytes, ctl: web::Data<Arc<Control>>) -> HttpResponse {
    ctl.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&ctl.in_flight);
    if let Some(r) = faults(&ctl).await {
        ctl.served.fetch_add(1, Ordering::SeqCst);
        return r;
    }
    ctl.served.fetch_add(1, Ordering::SeqCst);
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::UnprocessableEntity().json(json!({"detail": "body is not valid JSON"}));
    };
    if parsed["user_id"] == json!(404) {
        return HttpResponse::NotFound()
            .insert_header(("x-node", ctl.node.as_str()))
            .json(json!({"detail": "unknown user"}));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    // `{"pad": n}` asks for an answer padded by n bytes (to exercise streaming).
    let pad = "x".repeat(parsed["pad"].as_u64().unwrap_or(0) as usize);
    let mut resp = HttpResponse::Ok();
    // Nodes name themselves; the router must overwrite this with the region it used.
    resp.insert_header(("x-served-by", ctl.node.as_str())).insert_header(("x-node", ctl.node.as_str()));
    if parsed["close"] == json!(true) {
        resp.force_close();
    }
    let answer = json!({
            "region": ctl.region,
            "node": ctl.node,
            "method": req.method().as_str(),
            "path": req.uri().path_and_query().map(|p| p.as_str()),
            "request_id": header("x-request-id"),
            "hint_header": header("x-region-hint"),
            "custom_header": header("x-custom"),
            "residency_header": header("x-georec-residency-zone"),
            "body": parsed,
            "items": [1, 2, 3],
            "pad": pad,
    });
    if parsed["chunked"] != json!(true) {
        return resp.json(answer);
    }
    // No length: actix sends it chunked, here in three pieces.
    let text = answer.to_string().into_bytes();
    let third = text.len() / 3;
    let pieces: Vec<Result<web::Bytes, actix_web::Error>> =
        [&text[..third], &text[third..2 * third], &text[2 * third..]]
            .into_iter()
            .map(|p| Ok(web::Bytes::copy_from_slice(p)))
            .collect();
    resp.content_type("application/json").streaming(futures::stream::iter(pieces))
}
