//! `GET /api/v1/regions/{current,all,health,failover}` on a node, from `regions.toml` and
//! probes of the other regions' `/health/ready` ([`crate::peers`]: bounded, cached).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use model::manifest::rfc3339;
use serde::Serialize;

use crate::node::Node;
use crate::peers::RegionProbe;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatCurrentRegion)]
struct Current<'a> {
    region: &'a str,
    /// This region's first node URL from the configuration.
    endpoint: &'a str,
    /// Every configured region.
    allowed_regions: Vec<&'a str>,
    /// Whether this region names regions to fail over to.
    failover_enabled: bool,
}

/// This region (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/regions/current",
    tag = "fastapi",
    operation_id = "compat_regions_current",
    responses((status = 200, description = "This region", body = Current))
)]
pub async fn current(node: web::Data<Node>) -> HttpResponse {
    let t = node.peers().topology();
    HttpResponse::Ok().json(Current {
        region: node.region(),
        endpoint: t.endpoint(node.region()),
        allowed_regions: t.regions.keys().map(String::as_str).collect(),
        failover_enabled: !t.failover.is_empty(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatAllRegions)]
struct All<'a> {
    current_region: &'a str,
    /// Region -> its first node URL.
    all_regions: BTreeMap<&'a str, &'a str>,
    /// This region's failover order, best first.
    failover_regions: &'a [String],
}

/// Every region and its endpoint (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/regions/all",
    tag = "fastapi",
    operation_id = "compat_regions_all",
    responses((status = 200, description = "Every region", body = All))
)]
pub async fn all(node: web::Data<Node>) -> HttpResponse {
    let t = node.peers().topology();
    HttpResponse::Ok().json(All {
        current_region: node.region(),
        all_regions: t.regions.keys().map(|r| (r.as_str(), t.endpoint(r))).collect(),
        failover_regions: &t.failover,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatRegionsHealth)]
struct RegionsHealth {
    /// RFC 3339: when the probes ran (at most 1.5 s ago).
    #[schema(format = DateTime)]
    timestamp: String,
    /// `healthy` when every region is, else `degraded`.
    overall_health: &'static str,
    healthy_regions: usize,
    total_regions: usize,
    regions: Vec<RegionProbe>,
}

/// Every region's readiness: this one's own, the others' probed (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/regions/health",
    tag = "fastapi",
    operation_id = "compat_regions_health",
    responses((status = 200, description = "Each region's readiness", body = RegionsHealth))
)]
pub async fn health(node: web::Data<Node>) -> HttpResponse {
    let ready = node.slot().current().is_some();
    let probed = node.peers().health(node.region(), ready).await;
    let healthy_regions = probed.regions.iter().filter(|r| r.status == "healthy").count();
    let total_regions = probed.regions.len();
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(RegionsHealth {
        timestamp: rfc3339(probed.at_unix),
        overall_health: if healthy_regions == total_regions { "healthy" } else { "degraded" },
        healthy_regions,
        total_regions,
        regions: probed.regions.as_ref().clone(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatFailover)]
struct Failover<'a> {
    failover_enabled: bool,
    current_region: &'a str,
    failover_regions: &'a [String],
    /// This region, then its failover regions: the order requests would be tried in.
    failover_order: Vec<&'a str>,
}

/// This region's failover configuration (FastAPI layout).
#[utoipa::path(
    get,
    path = "/api/v1/regions/failover",
    tag = "fastapi",
    operation_id = "compat_regions_failover",
    responses((status = 200, description = "Failover order", body = Failover))
)]
pub async fn failover(node: web::Data<Node>) -> HttpResponse {
    let t = node.peers().topology();
    let mut order = vec![node.region()];
    order.extend(t.failover.iter().map(String::as_str));
    HttpResponse::Ok().json(Failover {
        failover_enabled: !t.failover.is_empty(),
        current_region: node.region(),
        failover_regions: &t.failover,
        failover_order: order,
    })
}
