//! `POST /api/v1/recommendations/cross-region`: the user's recommendations from several
//! regions, each asked node to node (this region answers itself), and one list aggregated
//! from them. A region that fails is listed in `failed_regions`, not fatal; only when every
//! region fails is the answer an error (502).
//!
//! Aggregations, over the regions' 0..1 scores, in the order the regions were named (this
//! region first when not named):
//! - `merge`: each region's list in turn, a product kept where it first appears;
//! - `highest_score`: each product once with its best score, best first;
//! - `weighted_average`: the weighted mean of a product's scores over the regions that
//!   answered (absent = 0), this region weighing 2 and others 1, best first;
//! - `round_robin`: the regions' first items, then their second ones, and so on, skipping
//!   products already taken.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix_web::{web, HttpRequest, HttpResponse};
use model::manifest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::compat::lists::{self, UserBody};
use crate::http::compat::{CompatError, CompatErrorBody};
use crate::http::error::{ApiError, INVALID, MALFORMED};
use crate::http::input;
use crate::node::Node;

/// How the regions' lists become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    #[default]
    Merge,
    HighestScore,
    WeightedAverage,
    RoundRobin,
}

/// Body of the request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CompatCrossRegionRequest)]
pub struct CrossBody {
    /// Non-blank, at most 256 bytes, no control characters.
    user_id: String,
    /// Regions to ask (configured names); all of them when absent or empty.
    regions: Option<Vec<String>>,
    /// Products per region and in the aggregated list.
    #[schema(minimum = 1, maximum = 100, default = 10)]
    count: Option<i64>,
    #[serde(default)]
    aggregation_method: Aggregation,
}

/// One product of the aggregated list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = CompatAggregatedProduct)]
struct Aggregated {
    product_id: String,
    #[schema(required = true)]
    product_name: Option<String>,
    #[schema(required = true)]
    category: Option<String>,
    /// In 0..1, per the aggregation.
    score: f64,
    /// The region whose list it was taken from (its best, for scores).
    region: String,
    /// Every region that recommended it.
    regions: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CompatCrossRegion)]
struct CrossAnswer<'a> {
    user_id: &'a str,
    /// Each region's products (`CompatProduct`), for the regions that answered.
    #[schema(value_type = Object)]
    cross_region_results: BTreeMap<String, Vec<Value>>,
    /// Regions that could not answer, and why.
    failed_regions: BTreeMap<String, String>,
    aggregation_method: Aggregation,
    /// The region that aggregated (this node's).
    primary_region: &'a str,
    /// The aggregated list, best first.
    recommendations: Vec<Aggregated>,
    total_count: usize,
    /// RFC 3339.
    #[schema(format = DateTime)]
    generated_at: String,
}

/// Recommendations from several regions, aggregated (FastAPI layout).
#[utoipa::path(
    post,
    path = "/api/v1/recommendations/cross-region",
    tag = "fastapi",
    operation_id = "compat_cross_region",
    request_body = CrossBody,
    responses(
        (status = 200, description = "Each region's list and the aggregate; failed regions listed", body = CrossAnswer),
        (status = 400, description = MALFORMED, body = CompatErrorBody),
        (status = 422, description = INVALID, body = CompatErrorBody),
        (status = 502, description = "No region could answer", body = CompatErrorBody),
    )
)]
pub async fn cross_region(
    node: web::Data<Node>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, CompatError> {
    let region = node.region();
    let err = |e| CompatError::new(e, region);
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await.map_err(err)?;
    let b: CrossBody = input::parse_json(&body, false).map_err(err)?;
    input::check_id("user_id", &b.user_id).map_err(err)?;
    let count = input::check_count("count", b.count).map_err(err)?;
    let regions = regions_asked(&node, b.regions).map_err(err)?;

    let asks = regions.iter().map(|r| ask(&node, r, &b.user_id, count));
    let answers = futures::future::join_all(asks).await;
    let mut results = BTreeMap::new();
    let mut failed = BTreeMap::new();
    let mut lists = Vec::new();
    for (r, answer) in regions.iter().zip(answers) {
        match answer {
            Ok(items) => {
                lists.push((r.as_str(), items.clone()));
                results.insert(r.clone(), items);
            }
            Err(e) => {
                tracing::warn!(region = %r, error = %e, "cross-region: a region did not answer");
                failed.insert(r.clone(), e);
            }
        }
    }
    if lists.is_empty() {
        let why = failed.iter().map(|(r, e)| format!("{r}: {e}")).collect::<Vec<_>>().join("; ");
        return Err(err(ApiError::Regions(format!("no region answered: {why}"))));
    }
    let recommendations = aggregate(&lists, b.aggregation_method, region, count);
    Ok(HttpResponse::Ok().json(CrossAnswer {
        user_id: &b.user_id,
        cross_region_results: results,
        failed_regions: failed,
        aggregation_method: b.aggregation_method,
        primary_region: region,
        total_count: recommendations.len(),
        recommendations,
        generated_at: manifest::rfc3339(manifest::now_unix()),
    }))
}

/// The regions named (checked against the configuration, deduplicated), else all of them
/// with this one first.
fn regions_asked(node: &Node, named: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let known = &node.peers().topology().regions;
    let named = named.unwrap_or_default();
    if named.is_empty() {
        let mut all = vec![node.region().to_string()];
        all.extend(known.keys().filter(|r| *r != node.region()).cloned());
        return Ok(all);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in named.into_iter().enumerate() {
        if !known.contains_key(&r) && r != node.region() {
            let valid = known.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(ApiError::invalid(
                format!("regions[{i}]"),
                format!("unknown region {r:?}; valid regions: {valid}"),
            ));
        }
        if seen.insert(r.clone()) {
            out.push(r);
        }
    }
    Ok(out)
}

/// One region's products (as `CompatProduct` JSON), or why it could not say.
async fn ask(node: &Node, region: &str, user_id: &str, count: usize) -> Result<Vec<Value>, String> {
    if region == node.region() {
        let body = UserBody {
            count: Some(count as i64),
            exclude_purchased: None,
            categories: None,
            min_rating: None,
            force_refresh: false,
            region: None,
        };
        let served = lists::recommend(node, user_id, body, false).await.map_err(|e| e.to_string())?;
        let products = lists::products(&served, region);
        return products.iter().map(|p| serde_json::to_value(p).map_err(|e| e.to_string())).collect();
    }
    let body = json!({"count": count});
    let items = node.peers().recommend(region, user_id, &body).await;
    items.map_err(|e| cluster_config::errors::error_chain(&e))
}

/// A product of a region's answer: (id, score in 0..1, name, category).
fn entry(v: &Value) -> Option<(String, f64, Option<String>, Option<String>)> {
    let id = v.get("product_id")?.as_str()?.to_string();
    let score = v.get("score").and_then(Value::as_f64).unwrap_or(0.0).clamp(0.0, 1.0);
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some((id, score, text("product_name"), text("category")))
}

fn aggregate(lists: &[(&str, Vec<Value>)], how: Aggregation, own: &str, count: usize) -> Vec<Aggregated> {
    let parsed: Vec<(&str, Vec<_>)> =
        lists.iter().map(|(r, items)| (*r, items.iter().filter_map(entry).collect())).collect();
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for (r, items) in &parsed {
        for (id, ..) in items {
            found.entry(id.clone()).or_default().push(r.to_string());
        }
    }
    let make =
        |region: &str, (id, _, name, category): &(String, f64, Option<String>, Option<String>), s: f64| {
            Aggregated {
                product_id: id.clone(),
                product_name: name.clone(),
                category: category.clone(),
                score: s,
                region: region.to_string(),
                regions: found.get(id).cloned().unwrap_or_default(),
            }
        };
    let mut out: Vec<Aggregated> = Vec::new();
    let mut taken = HashSet::new();
    match how {
        Aggregation::Merge => {
            for (r, items) in &parsed {
                for e in items {
                    if taken.insert(e.0.clone()) {
                        out.push(make(r, e, e.1));
                    }
                }
            }
        }
        Aggregation::RoundRobin => {
            let longest = parsed.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
            for rank in 0..longest {
                for (r, items) in &parsed {
                    if let Some(e) = items.get(rank).filter(|e| taken.insert(e.0.clone())) {
                        out.push(make(r, e, e.1));
                    }
                }
            }
        }
        Aggregation::HighestScore | Aggregation::WeightedAverage => {
            let weight = |r: &str| if r == own { 2.0 } else { 1.0 };
            let total: f64 = parsed.iter().map(|(r, _)| weight(r)).sum();
            let mut best: HashMap<String, Aggregated> = HashMap::new();
            for (r, items) in &parsed {
                for e in items {
                    let add = match how {
                        Aggregation::HighestScore => e.1,
                        _ => e.1 * weight(r) / total,
                    };
                    match best.get_mut(&e.0) {
                        None => {
                            best.insert(e.0.clone(), make(r, e, add));
                        }
                        Some(a) if how == Aggregation::HighestScore => {
                            if add > a.score {
                                a.score = add;
                                a.region = r.to_string();
                            }
                        }
                        Some(a) => a.score += add,
                    }
                }
            }
            out = best.into_values().collect();
            out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.product_id.cmp(&b.product_id)));
        }
    }
    for a in &mut out {
        a.score = a.score.clamp(0.0, 1.0);
    }
    out.truncate(count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[(&str, f64)]) -> Vec<Value> {
        items.iter().map(|(id, s)| json!({"product_id": id, "score": s})).collect()
    }

    fn ids(a: &[Aggregated]) -> Vec<(&str, f64)> {
        a.iter().map(|x| (x.product_id.as_str(), (x.score * 1000.0).round() / 1000.0)).collect()
    }

    #[test]
    fn each_aggregation_follows_its_rule() {
        let lists = [("a", list(&[("x", 1.0), ("y", 0.5)])), ("b", list(&[("z", 0.9), ("y", 0.8)]))];
        let go = |how| aggregate(&lists, how, "a", 10);
        assert_eq!(ids(&go(Aggregation::Merge)), [("x", 1.0), ("y", 0.5), ("z", 0.9)]);
        assert_eq!(ids(&go(Aggregation::RoundRobin)), [("x", 1.0), ("z", 0.9), ("y", 0.5)]);
        assert_eq!(ids(&go(Aggregation::HighestScore)), [("x", 1.0), ("z", 0.9), ("y", 0.8)]);
        // Weights: a 2, b 1 (of 3). x: 2/3; y: (1 + 0.8) / 3 = 0.6; z: 0.3.
        assert_eq!(ids(&go(Aggregation::WeightedAverage)), [("x", 0.667), ("y", 0.6), ("z", 0.3)]);
        let y = go(Aggregation::HighestScore).into_iter().find(|p| p.product_id == "y").expect("y");
        assert_eq!((y.region.as_str(), y.regions.len()), ("b", 2));
        assert_eq!(aggregate(&lists, Aggregation::Merge, "a", 1).len(), 1);
    }
}
