//! router: georec's front door. Sends each recommendation request to the hinted region, or
//! the best one, health-checks every region, and fails over so a client never sees a
//! region die.
//!
//! # Layout
//! - [`settings`]: `regions.toml` (cluster) + router-only flags, checked together; [`app`]:
//!   the state every handler and prober shares.
//! - [`regions`]: live state per region and node; where a request should go ([`regions::Regions::plan`]).
//! - [`health`]: the fall/rise/eject state machine; [`probe`]: the active `/health/ready`
//!   prober feeding it.
//! - [`ewma`]: peak-sensitive latency estimate per node; [`budget`]: the retry budget.
//! - [`upstream`]: one attempt to one node and its typed errors, over each worker's own
//!   keep-alive connections (hyper's HTTP/1.1 client, TCP or TLS: [`upstream::connect`]);
//!   [`proxy`]: hint, failover loop, relay; [`headers`]: the header names they set and read.
//! - [`admin`]: `POST /failover`, `GET /regions`; [`status`]: `GET /`; [`metrics`]: `GET /metrics`;
//!   [`openapi`]: `GET /openapi.json`; [`docs`]: Swagger UI at `GET /docs`.
//! - [`compat`]: the FastAPI layout of recommendation services (forwarded, or answered from
//!   the router's health state).
//! - [`front`]: the HTTP/1.1 server clients talk to (hyper's): worker threads, limits, timeouts.
//! - [`limit`]: per-client rate limits (`[router.rate_limit]`): 429 past a client's bucket.
//! - [`error`]: how every error becomes an HTTP response.
//!
//! `main` parses flags, loads settings and calls [`run`]; tests bind port 0 and do the same.

pub mod admin;
pub mod app;
pub mod budget;
pub mod compat;
pub mod docs;
pub mod erasure;
pub mod error;
pub mod ewma;
pub mod front;
pub mod headers;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod openapi;
pub mod probe;
pub mod proxy;
pub mod regions;
pub mod settings;
pub mod status;
pub mod upstream;

pub use app::AppState;

use std::future::Future;
use std::net::TcpListener;

use crate::front::request::Request;
use crate::front::response::Response;
use crate::proxy::Proxy;
use crate::upstream::Upstream;

/// Serve on `listener` and probe every node until `shutdown` completes, then stop
/// gracefully: requests in flight finish (see [`front`]).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut probers = probe::spawn_probers(&state);
    probers.extend(probe::spawn_samplers(&state));
    probers.extend(state.limiter.clone().map(limit::spawn_sweeper));
    let limits = front::Limits {
        max_connections: state.settings.max_connections,
        request_timeout: state.settings.client_timeout,
        ..front::Limits::new(state.settings.max_body_bytes)
    };
    let workers = state.settings.workers;
    let app_state = state.clone();
    let make = move || {
        // Connections per worker: they live on the worker's own single-threaded runtime.
        let settings = &app_state.settings;
        let upstream = Upstream::new(settings.connector.clone(), settings.stream_idle_timeout);
        upstream.spawn_idle_sweeper();
        Routes(Proxy { upstream, state: app_state.clone() })
    };
    let served = front::serve(listener, workers, limits, make, shutdown).await;
    for p in probers {
        p.abort();
    }
    served
}

/// Which handler answers which request; one per worker thread.
struct Routes(Proxy);

/// `POST /api/v1/recommendations/user/{user_id}` (FastAPI-style clients).
pub const USER_ROUTE: &str = "/api/v1/recommendations/user/";
/// `GET /docs/{file}`: Swagger UI's scripts, styles and icons.
pub const DOCS_FILES: &str = "/docs/";

/// Paths with a fixed method, for 405 answers (and with the two above, every route).
pub const GET_PATHS: [&str; 6] = ["/", "/regions", "/metrics", "/openapi.json", "/docs", "/docs/"];
pub const POST_PATHS: [&str; 3] = ["/recommendations", "/events", "/failover"];

impl front::Handler for Routes {
    async fn handle(&self, req: Request) -> Response {
        if req.path().starts_with(compat::PREFIX) {
            return compat::with_detail(self.route(req).await);
        }
        self.route(req).await
    }
}

impl Routes {
    async fn route(&self, req: Request) -> Response {
        let state = &self.0.state;
        if let Some(refused) = state.limiter.as_ref().and_then(|l| l.check(&req)) {
            return refused;
        }
        let path = req.path();
        let user_route = path.strip_prefix(USER_ROUTE).is_some_and(|id| !id.is_empty() && !id.contains('/'));
        match (req.method(), path) {
            ("POST", "/recommendations" | "/events") => proxy::forward(&self.0, req).await,
            ("POST", _) if user_route => proxy::forward(&self.0, req).await,
            (m, p) if compat::is_forwarded(m, p) => proxy::forward(&self.0, req).await,
            ("GET" | "HEAD", p) if compat::REGION_ROUTES.contains(&p) => {
                compat::regions(state, p).unwrap_or_else(|| error::plain_error(404, "not_found", p))
            }
            ("GET" | "HEAD", "/") if compat::wants_json(&req) => compat::root(state),
            ("POST", "/failover") => admin::failover(state, &req),
            ("DELETE", p) if erasure::is_users_path(p) => erasure::erase(state, &self.0.upstream, req).await,
            ("GET" | "HEAD", "/regions") => admin::regions(state),
            ("GET" | "HEAD", "/metrics") => metrics::handler(&state.metrics),
            ("GET" | "HEAD", "/") => status::page(),
            ("GET" | "HEAD", "/openapi.json") => openapi::json(),
            ("GET" | "HEAD", "/docs" | "/docs/") => docs::page(),
            ("GET" | "HEAD", _) if path.starts_with(DOCS_FILES) => docs::file(&path[DOCS_FILES.len()..]),
            (method, path) => {
                let allow = if GET_PATHS.contains(&path)
                    || path.starts_with(DOCS_FILES)
                    || compat::FORWARDED_GET.contains(&path)
                    || compat::REGION_ROUTES.contains(&path)
                {
                    "GET, HEAD"
                } else if POST_PATHS.contains(&path)
                    || user_route
                    || compat::is_post_with_id(path)
                    || compat::FORWARDED_POST.contains(&path)
                {
                    "POST"
                } else if erasure::is_users_path(path) {
                    "DELETE"
                } else {
                    return error::plain_error(404, "not_found", format_args!("no route for {path}"));
                };
                error::plain_error(405, "method_not_allowed", format_args!("{method} {path}: use {allow}"))
                    .with_header(http::header::ALLOW, http::HeaderValue::from_static(allow))
            }
        }
    }
}
