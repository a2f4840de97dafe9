//! The HTTP face of a node (actix-web). Handlers parse and shape; answers come from
//! [`crate::service`], errors map to status codes in [`error`] only.

pub mod admin;
pub mod compat;
pub mod docs;
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
use actix_web::http::Method;
use actix_web::{web, App, HttpServer, Resource};

use crate::node::Node;

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
            .default_service(web::to(compat::not_found))
    })
    .shutdown_timeout(settings.shutdown_timeout.as_secs());
    if let Some(workers) = settings.workers {
        server = server.workers(workers);
    }
    Ok(server.listen(listener)?.run())
}

/// A resource whose other methods get a JSON 405.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(compat::method_not_allowed))
}

/// The app's routes and [`ROUTES`], from one table so they cannot differ.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// Every route as `(method, path)`: the OpenAPI coverage test checks the document
        /// describes exactly these.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service(resource($path).route(web::method(Method::$method).to($handler)));)*
        }
    };
}

route_table! {
    POST "/recommendations" => recommend::recommend,
    POST "/events" => events::record,
    GET "/items/{item_id}/similar" => items::similar,
    GET "/trending" => items::trending,
    GET "/stats" => stats::stats,
    GET "/metrics" => stats::metrics,
    GET "/rollout/metrics" => stats::rollout,
    GET "/health" => health::health,
    GET "/health/ready" => health::ready,
    GET "/health/live" => health::live,
    GET "/openapi.json" => openapi::openapi,
    GET "/docs" => docs::page,
    GET "/docs/" => docs::page_slash,
    GET "/docs/{file}" => docs::file,
    POST "/admin/model/reload" => admin::reload,
    POST "/admin/cache/clear" => admin::clear_cache,
    DELETE "/users/{user_id}" => admin::erase_user,
    // The FastAPI layout (compat); FastAPI serves both with and without the trailing slash.
    GET "/" => compat::about::root,
    GET "/api/v1/health/" => compat::about::compat_health,
    GET "/api/v1/health" => compat::about::compat_health_no_slash,
    GET "/api/v1/health/detailed" => compat::about::detailed,
    GET "/api/v1/recommendations/stats" => compat::about::stats,
    POST "/api/v1/recommendations/user/{user_id}" => compat::lists::user,
    POST "/api/v1/recommendations/similar-products/{product_id}" => compat::lists::similar_products,
    POST "/api/v1/recommendations/trending" => compat::lists::trending,
    POST "/api/v1/recommendations/cross-region" => compat::cross::cross_region,
    POST "/api/v1/recommendations/refresh-models" => compat::ops::refresh_models,
    POST "/api/v1/recommendations/clear-cache" => compat::ops::clear_cache,
    GET "/api/v1/regions/current" => compat::regions::current,
    GET "/api/v1/regions/all" => compat::regions::all,
    GET "/api/v1/regions/health" => compat::regions::health,
    GET "/api/v1/regions/failover" => compat::regions::failover,
}
