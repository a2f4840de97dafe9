//! router: georec's front door. Sends each recommendation request to the hinted region, or
//! the best one, health-checks every region, and fails over so a client never sees a
//! region die.
//!
//! # Layout
//! - [`settings`]: `regions.toml` (cluster) + router-only flags, checked together.
//! - [`regions`]: live state per region and node; where a request should go ([`regions::Regions::plan`]).
//! - [`health`]: the fall/rise/eject state machine and the active `/health/ready` prober.
//! - [`ewma`]: peak-sensitive latency estimate per node; [`budget`]: the retry budget.
//! - [`upstream`]: one attempt to one node and its typed errors, over each worker's own
//!   keep-alive HTTP/1.1 connections ([`upstream::h1`]); [`proxy`]: hint, failover loop, relay.
//! - [`admin`]: `POST /failover`, `GET /regions`; [`status`]: `GET /`; [`metrics`]: `GET /metrics`.
//! - [`http::error`]: how every error becomes an HTTP response.
//!
//! `main` parses flags, loads settings and calls [`run`]; tests bind port 0 and do the same.

pub mod admin;
pub mod budget;
pub mod ewma;
pub mod health;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod regions;
pub mod settings;
pub mod status;
pub mod upstream;

use std::future::Future;
use std::net::TcpListener;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use crate::admin::AdminToken;
use crate::budget::RetryBudget;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::regions::Regions;
use crate::settings::Settings;
use crate::upstream::Upstream;

/// Everything the handlers and probers share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub regions: Regions,
    pub metrics: Metrics,
    pub budget: RetryBudget,
    /// `None`: admin endpoints answer 403 "not configured".
    pub admin_token: Option<AdminToken>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(settings: Settings, admin_token: Option<AdminToken>) -> Result<Self, prometheus::Error> {
        let regions = Regions::new(&settings);
        let metrics = Metrics::new(&regions.names())?;
        let budget = RetryBudget::new(settings.budget);
        Ok(Self(Arc::new(Shared { settings, regions, metrics, budget, admin_token })))
    }
}

/// Serve on `listener` and probe every node until `shutdown` completes (or the process is
/// signalled), then stop gracefully: requests in flight finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // Fail here, not inside a worker, if no HTTP client can be built.
    let fallback_client = upstream::client().map_err(std::io::Error::other)?;
    let probers = health::spawn_probers(&state).map_err(std::io::Error::other)?;
    let max_body = state.settings.max_body_bytes;
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        // Connections per worker: they live on the worker's own single-threaded runtime.
        let client = upstream::client().unwrap_or_else(|_| fallback_client.clone());
        let upstream = Upstream::new(client);
        upstream.spawn_idle_sweeper();
        App::new()
            .app_data(web::Data::new(Proxy { upstream, state: app_state.clone() }))
            .app_data(web::Data::new(app_state.clone()))
            .app_data(web::PayloadConfig::new(max_body))
            .route("/recommendations", web::post().to(proxy::forward))
            .route("/api/v1/recommendations/user/{user_id}", web::post().to(proxy::forward))
            .route("/events", web::post().to(proxy::forward))
            .route("/failover", web::post().to(admin::failover))
            .route("/regions", web::get().to(admin::regions))
            .route("/metrics", web::get().to(metrics::handler))
            .route("/", web::get().to(status::page))
    })
    .workers(state.settings.workers)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        r = server => r,
        () = &mut shutdown => {
            handle.stop(true).await;
            Ok(Ok(()))
        }
    };
    for p in probers {
        p.abort();
    }
    result.map_err(std::io::Error::other)?
}
