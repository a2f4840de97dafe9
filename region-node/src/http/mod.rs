//! The HTTP face of a node (actix-web). Handlers parse and shape; answers come from
//! [`crate::service`], errors map to status codes in [`error`] only.

pub mod admin;
pub mod compat;
pub mod error;
pub mod events;
pub mod health;
pub mod input;
pub mod items;
pub mod middleware;
pub mod openapi;
pub mod recommend;
pub mod stats;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer, Resource};

use crate::node::Node;

/// Every route as `(method, path)`, for the OpenAPI coverage test and for readers.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/recommendations"),
    ("POST", "/events"),
    ("GET", "/items/{item_id}/similar"),
    ("GET", "/trending"),
    ("GET", "/stats"),
    ("GET", "/metrics"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/health/live"),
    ("GET", "/openapi.json"),
    ("POST", "/admin/model/reload"),
    ("POST", "/admin/cache/clear"),
    ("POST", "/api/v1/recommendations/user/{user_id}"),
    ("POST", "/api/v1/recommendations/similar-products/{product_id}"),
    ("POST", "/api/v1/recommendations/trending"),
    ("GET", "/api/v1/recommendations/stats"),
    ("GET", "/api/v1/health/"),
];

/// Serve `node` on `listener` (already bound: tests bind port 0 and read the port back).
/// The returned server stops gracefully on SIGTERM/SIGINT: it stops accepting, lets
/// in-flight requests finish (up to `shutdown_timeout`), then resolves.
pub fn run(listener: TcpListener, node: Node) -> std::io::Result<Server> {
    let settings = node.settings().clone();
    let data = web::Data::new(node);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(middleware::observe))
            .configure(routes)
            .default_service(web::to(error::not_found))
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}

/// A resource whose other methods get a JSON 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(error::method_not_allowed))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/recommendations").route(web::post().to(recommend::recommend)))
        .service(resource("/events").route(web::post().to(events::record)))
        .service(resource("/items/{item_id}/similar").route(web::get().to(items::similar)))
        .service(resource("/trending").route(web::get().to(items::trending)))
        .service(resource("/stats").route(web::get().to(stats::stats)))
        .service(resource("/metrics").route(web::get().to(stats::metrics)))
        .service(resource("/health").route(web::get().to(health::ready)))
        .service(resource("/health/ready").route(web::get().to(health::ready)))
        .service(resource("/health/live").route(web::get().to(health::live)))
        .service(resource("/openapi.json").route(web::get().to(openapi::openapi)))
        .service(resource("/admin/model/reload").route(web::post().to(admin::reload)))
        .service(resource("/admin/cache/clear").route(web::post().to(admin::clear_cache)))
        .service(resource("/api/v1/recommendations/user/{user_id}").route(web::post().to(compat::user)))
        .service(
            resource("/api/v1/recommendations/similar-products/{product_id}")
                .route(web::post().to(compat::similar_products)),
        )
        .service(resource("/api/v1/recommendations/trending").route(web::post().to(compat::trending)))
        .service(resource("/api/v1/recommendations/stats").route(web::get().to(compat::stats)))
        // FastAPI serves both with and without the trailing slash (via a redirect).
        .service(resource("/api/v1/health/").route(web::get().to(health::ready)))
        .service(resource("/api/v1/health").route(web::get().to(health::ready)));
}
