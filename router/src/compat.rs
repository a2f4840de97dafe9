//! The common FastAPI layout of multi-region recommendation services through the router,
//! so clients written for it keep working unchanged:
//!
//! - the recommendation, health and stats routes ([`is_forwarded`]) are forwarded to a
//!   region like `POST /recommendations` (hint header or body `region`, failover);
//! - `GET /api/v1/regions/{current,all,health,failover}` are answered here from the
//!   router's own health state ([`regions`]), as `GET /regions` is;
//! - `GET /` answers JSON (`{"message", "region", "version", "docs", "status"}`) unless the
//!   client accepts HTML, which gets the status page ([`wants_json`]).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::front::request::Request;
use crate::front::response::Response;
use crate::regions::state::RegionState;
use crate::regions::Region;

/// Prefix of the routes with a path parameter.
const USER: &str = "/api/v1/recommendations/user/";
const SIMILAR: &str = "/api/v1/recommendations/similar-products/";
/// POST routes forwarded as they are.
pub const FORWARDED_POST: [&str; 4] = [
    "/api/v1/recommendations/trending",
    "/api/v1/recommendations/cross-region",
    "/api/v1/recommendations/refresh-models",
    "/api/v1/recommendations/clear-cache",
];
/// GET routes forwarded as they are.
pub const FORWARDED_GET: [&str; 4] =
    ["/api/v1/health/", "/api/v1/health", "/api/v1/health/detailed", "/api/v1/recommendations/stats"];
/// GET routes answered by the router.
pub const REGION_ROUTES: [&str; 4] =
    ["/api/v1/regions/current", "/api/v1/regions/all", "/api/v1/regions/health", "/api/v1/regions/failover"];

/// `prefix` then one non-empty path segment.
fn one_segment(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The POST routes with a path parameter (user recommendations, similar products).
pub fn is_post_with_id(path: &str) -> bool {
    one_segment(path, USER) || one_segment(path, SIMILAR)
}

/// Whether `method path` is a FastAPI-layout route a node answers.
pub fn is_forwarded(method: &str, path: &str) -> bool {
    match method {
        "POST" => is_post_with_id(path) || FORWARDED_POST.contains(&path),
        "GET" | "HEAD" => FORWARDED_GET.contains(&path),
        _ => false,
    }
}

/// `GET /` answers JSON unless the client accepts HTML (browsers get the status page).
pub fn wants_json(req: &Request) -> bool {
    !req.header_str("accept").is_some_and(|a| a.contains("text/html"))
}

/// The regions a request with no hint would try now, best first.
fn preferred(state: &AppState) -> Vec<&Region> {
    state.regions.plan(None).into_iter().map(|i| state.regions.get(i)).collect()
}

fn endpoint(r: &Region) -> &str {
    r.nodes.first().map_or("", |n| n.url.as_str())
}

/// `GET /` as JSON.
#[derive(Serialize, ToSchema)]
#[schema(as = CompatRoot)]
pub struct Root<'a> {
    message: &'static str,
    /// The region a request without a hint would go to now; null when none is healthy.
    #[schema(required = true)]
    region: Option<&'a str>,
    version: &'static str,
    docs: &'static str,
    /// `healthy` while some region is, else `unhealthy`.
    status: &'static str,
}

pub fn root(state: &AppState) -> Response {
    let best = preferred(state).first().map(|r| r.name.as_str());
    Response::json(
        200,
        &Root {
            message: "georec router",
            region: best,
            version: env!("CARGO_PKG_VERSION"),
            docs: "/docs",
            status: if best.is_some() { "healthy" } else { "unhealthy" },
        },
    )
}

#[derive(Serialize, ToSchema)]
#[schema(as = CompatCurrentRegion)]
pub struct Current<'a> {
    /// The region a request without a hint would go to now (null when none is healthy).
    #[schema(required = true)]
    region: Option<&'a str>,
    #[schema(required = true)]
    endpoint: Option<&'a str>,
    allowed_regions: Vec<&'a str>,
    failover_enabled: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(as = CompatAllRegions)]
pub struct All<'a> {
    #[schema(required = true)]
    current_region: Option<&'a str>,
    all_regions: BTreeMap<&'a str, &'a str>,
    /// The other available regions, best first.
    failover_regions: Vec<&'a str>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = CompatRegionProbe)]
pub struct RegionHealth<'a> {
    region: &'a str,
    /// `healthy`, `unhealthy` or `drained`.
    status: RegionState,
    /// The latency estimate of its best node, else its last probe's; null before any.
    #[schema(required = true)]
    response_time_ms: Option<f64>,
    endpoint: &'a str,
}

#[derive(Serialize, ToSchema)]
#[schema(as = CompatRegionsHealth)]
pub struct RegionsHealth<'a> {
    /// RFC 3339.
    #[schema(format = DateTime)]
    timestamp: String,
    /// `healthy` when every region is, else `degraded`.
    overall_health: &'static str,
    healthy_regions: usize,
    total_regions: usize,
    regions: Vec<RegionHealth<'a>>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = CompatFailover)]
pub struct Failover<'a> {
    failover_enabled: bool,
    #[schema(required = true)]
    current_region: Option<&'a str>,
    failover_regions: Vec<&'a str>,
    /// Every available region in the order an unhinted request tries them.
    failover_order: Vec<&'a str>,
}

/// `GET /api/v1/regions/*` from the router's health state; `None` for other paths.
pub fn regions(state: &AppState, path: &str) -> Option<Response> {
    let order = preferred(state);
    let names: Vec<&str> = order.iter().map(|r| r.name.as_str()).collect();
    let current = order.first().copied();
    let rest: Vec<&str> = names.iter().skip(1).copied().collect();
    let resp = match path {
        "/api/v1/regions/current" => Response::json(
            200,
            &Current {
                region: current.map(|r| r.name.as_str()),
                endpoint: current.map(endpoint),
                allowed_regions: state.regions.iter().map(|r| r.name.as_str()).collect(),
                failover_enabled: state.regions.iter().count() > 1,
            },
        ),
        "/api/v1/regions/all" => Response::json(
            200,
            &All {
                current_region: current.map(|r| r.name.as_str()),
                all_regions: state.regions.iter().map(|r| (r.name.as_str(), endpoint(r))).collect(),
                failover_regions: rest,
            },
        ),
        "/api/v1/regions/failover" => Response::json(
            200,
            &Failover {
                failover_enabled: state.regions.iter().count() > 1,
                current_region: current.map(|r| r.name.as_str()),
                failover_regions: rest,
                failover_order: names,
            },
        ),
        "/api/v1/regions/health" => {
            let regions: Vec<RegionHealth> = state
                .regions
                .iter()
                .map(|r| {
                    let view = r.view();
                    RegionHealth {
                        region: &r.name,
                        status: view.state,
                        response_time_ms: view.ewma_ms.or(view.last_probe.map(|p| p.took_ms)),
                        endpoint: endpoint(r),
                    }
                })
                .collect();
            let healthy = regions.iter().filter(|r| r.status == RegionState::Healthy).count();
            Response::json(
                200,
                &RegionsHealth {
                    timestamp: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    overall_health: if healthy == regions.len() { "healthy" } else { "degraded" },
                    healthy_regions: healthy,
                    total_regions: regions.len(),
                    regions,
                },
            )
        }
        _ => return None,
    };
    Some(resp.with_header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store")))
}

/// Prefix of every route of the layout.
pub const PREFIX: &str = "/api/v1/";

/// The router's own refusals on the layout's routes (`{"error", "message", ...}`: no healthy
/// region, unknown region, 404, 405, 429...) also carry the layout's `detail` (the message)
/// and `region` (the region that answered, else `null`), as its clients read errors. Node
/// answers already have them and pass unchanged; streamed bodies are never errors of ours.
pub fn with_detail(mut resp: Response) -> Response {
    use crate::front::response::Body;
    if resp.status < 400 {
        return resp;
    }
    let Body::Full(Some(bytes)) = &resp.body else { return resp };
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return resp;
    };
    if body.contains_key("detail") {
        return resp;
    }
    let Some(message) = body.get("message").cloned() else { return resp };
    let region =
        resp.headers.get(crate::headers::SERVED_BY).and_then(|v| v.to_str().ok()).map(str::to_string);
    body.insert("detail".into(), message);
    body.insert("region".into(), region.map_or(serde_json::Value::Null, serde_json::Value::String));
    if let Ok(encoded) = serde_json::to_vec(&body) {
        resp.headers.remove(http::header::CONTENT_LENGTH);
        resp.body = Body::Full(Some(encoded.into()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_routes_are_recognised() {
        assert!(is_forwarded("POST", "/api/v1/recommendations/user/u1"));
        assert!(is_forwarded("POST", "/api/v1/recommendations/similar-products/p1"));
        assert!(is_forwarded("POST", "/api/v1/recommendations/cross-region"));
        assert!(is_forwarded("GET", "/api/v1/health/detailed"));
        assert!(!is_forwarded("POST", "/api/v1/recommendations/user/"));
        assert!(!is_forwarded("POST", "/api/v1/recommendations/user/a/b"));
        assert!(!is_forwarded("GET", "/api/v1/recommendations/trending"));
        assert!(!is_forwarded("DELETE", "/api/v1/health/"));
    }
}
