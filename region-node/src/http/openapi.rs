//! `GET /openapi.json`: the API described for humans and client generators (OpenAPI 3.0).
//!
//! Written by hand next to the routes (see `http::routes`); the integration tests check
//! that every route is described, so the two cannot drift silently.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::answer::{DEFAULT_COUNT, MAX_COUNT};

fn count_param(location: &str) -> Value {
    json!({
        "name": "count", "in": location, "required": false,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": DEFAULT_COUNT}
    })
}

fn json_body(schema: &str, required: bool) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(schema: &str, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn error(description: &str) -> Value {
    ok("Error", description)
}

fn path_id(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}})
}

fn schemas() -> Value {
    let string_list = json!({"type": "array", "items": {"type": "string", "minLength": 1}});
    let count = json!({"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": DEFAULT_COUNT});
    json!({
        "RecommendRequest": {
            "type": "object", "additionalProperties": false, "required": ["user_id"],
            "properties": {
                "user_id": {"type": "string", "minLength": 1, "maxLength": 256},
                "count": count,
                "exclude": string_list,
                "categories": string_list,
                "region": {"type": "string", "description": "region the caller aimed at (informational)"},
                "force_refresh": {"type": "boolean", "default": false, "description": "bypass the cache"}
            }
        },
        "Item": {
            "type": "object", "required": ["item_id", "score"],
            "properties": {
                "item_id": {"type": "string"}, "score": {"type": "number"},
                "name": {"type": "string"}, "category": {"type": "string"}
            }
        },
        "Recommendations": {
            "type": "object",
            "required": ["user_id", "region", "model_version", "items", "strategy", "source", "took_us"],
            "properties": {
                "user_id": {"type": "string"}, "region": {"type": "string"}, "model_version": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "strategy": {"type": "string", "enum": ["user-knn", "user-knn-live", "popular"]},
                "source": {"type": "string", "enum": ["cache", "model"]},
                "took_us": {"type": "integer"}
            }
        },
        "Event": {
            "type": "object", "additionalProperties": false, "required": ["user_id", "item_id", "type"],
            "properties": {
                "user_id": {"type": "string", "minLength": 1, "maxLength": 256},
                "item_id": {"type": "string", "minLength": 1, "maxLength": 256},
                "type": {"type": "string", "enum": ["view", "add_to_cart", "purchase"]},
                "ts": {"type": "integer", "description": "unix seconds, default now; at most 300 s in the future"},
                "region": {"type": "string"}
            }
        },
        "EventsRequest": {
            "description": "one event, {\"events\": [...]}, or a JSON array of events (at most 500); all or nothing",
            "oneOf": [
                {"$ref": "#/components/schemas/Event"},
                {"type": "object", "additionalProperties": false, "required": ["events"], "properties": {
                    "events": {"type": "array", "minItems": 1, "maxItems": 500, "items": {"$ref": "#/components/schemas/Event"}},
                    "region": {"type": "string"}}},
                {"type": "array", "minItems": 1, "maxItems": 500, "items": {"$ref": "#/components/schemas/Event"}}
            ]
        },
        "EventsAccepted": {
            "type": "object", "required": ["accepted", "event_ids", "region", "took_us"],
            "properties": {
                "accepted": {"type": "integer"},
                "event_ids": {"type": "array", "items": {"type": "string"}, "description": "Redis stream ids, in request order"},
                "region": {"type": "string"}, "took_us": {"type": "integer"}
            }
        },
        "ItemList": {
            "type": "object", "required": ["region", "model_version", "items", "source", "took_us"],
            "properties": {
                "item_id": {"type": "string"}, "category": {"type": "string"},
                "region": {"type": "string"}, "model_version": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "source": {"type": "string", "enum": ["cache", "model"]}, "took_us": {"type": "integer"}
            }
        },
        "Health": {
            "type": "object",
            "required": ["status", "region", "model_version", "loaded_at", "redis", "cache_hit_ratio",
                         "swap_count", "last_swap_error", "uptime_secs"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "loading"]},
                "region": {"type": "string"},
                "model_version": {"type": "string", "nullable": true},
                "loaded_at": {"type": "string", "format": "date-time", "nullable": true},
                "model_created_at": {"type": "string", "format": "date-time", "nullable": true},
                "redis": {"type": "string", "enum": ["up", "down"]},
                "cache_hit_ratio": {"type": "number"},
                "swap_count": {"type": "integer"},
                "last_swap_error": {"type": "object", "nullable": true, "properties": {
                    "version": {"type": "string", "nullable": true}, "error": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"}}},
                "uptime_secs": {"type": "integer"}
            }
        },
        "Stats": {
            "type": "object",
            "properties": {
                "region": {"type": "string"}, "model_version": {"type": "string"},
                "users": {"type": "integer"}, "items": {"type": "integer"},
                "interactions": {"type": "integer"}, "pairs": {"type": "integer"},
                "density": {"type": "number"}, "categories": {"type": "integer"},
                "build_parameters": {"type": "object"},
                "cache": {"type": "object", "properties": {
                    "hits": {"type": "integer"}, "misses": {"type": "integer"},
                    "errors": {"type": "integer"}, "hit_ratio": {"type": "number"}}}
            }
        },
        "CompatUserRequest": {
            "type": "object", "additionalProperties": false,
            "properties": {
                "count": count, "exclude_purchased": {"type": "boolean", "default": true},
                "categories": string_list, "force_refresh": {"type": "boolean", "default": false}
            }
        },
        "CompatSimilarRequest": {
            "type": "object", "additionalProperties": false,
            "properties": {"count": count, "force_refresh": {"type": "boolean", "default": false}}
        },
        "CompatTrendingRequest": {
            "type": "object", "additionalProperties": false,
            "properties": {"count": count, "category": {"type": "string"}}
        },
        "CompatList": {
            "type": "object",
            "required": ["recommendations", "region", "generated_at", "processing_time_ms", "total_count"],
            "properties": {
                "user_id": {"type": "string"}, "product_id": {"type": "string"},
                "recommendations": {"type": "array", "items": {"type": "object", "properties": {
                    "product_id": {"type": "string"}, "product_name": {"type": "string", "nullable": true},
                    "category": {"type": "string", "nullable": true}, "score": {"type": "number"},
                    "region": {"type": "string"}}}},
                "region": {"type": "string"}, "generated_at": {"type": "string", "format": "date-time"},
                "processing_time_ms": {"type": "number"}, "total_count": {"type": "integer"},
                "model_version": {"type": "string"}
            }
        },
        "Error": {
            "type": "object", "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "machine-readable code, e.g. invalid_request"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the input to blame, e.g. count or exclude[2]"}
            }
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    let bad = error("malformed JSON or body too large (field names the culprit)");
    let invalid = error("wrong type, unknown field or value out of range (field names it)");
    let loading = error("no model loaded yet");
    let admin = json!([{"bearer": []}]);
    let admin_responses = |ok_desc: &str| {
        json!({
            "200": {"description": ok_desc}, "401": error("missing or wrong token"),
            "403": error("GEOREC_ADMIN_TOKEN is not configured")
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "georec region-node",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Recommendations for one region from a hot-swapped user-KNN model, cached in the region's Redis. Every response carries x-served-by and x-request-id."
        },
        "paths": {
            "/recommendations": {"post": {
                "summary": "Recommend items for a user (popular items for unknown users)",
                "requestBody": json_body("RecommendRequest", true),
                "responses": {"200": ok("Recommendations", "ranked items"), "400": bad, "422": invalid, "503": loading}
            }},
            "/events": {"post": {
                "summary": "Record interactions; the users' next recommendations reflect them",
                "requestBody": json_body("EventsRequest", true),
                "responses": {"200": ok("EventsAccepted", "all events stored"), "400": bad, "422": invalid,
                    "503": error("Redis did not store the events; nothing was stored, safe to retry"),
                    "504": error("Redis did not confirm within 1 s; the events may have been stored")}
            }},
            "/items/{item_id}/similar": {"get": {
                "summary": "Items most often chosen by the same users (cosine)",
                "parameters": [path_id("item_id"), count_param("query"),
                    {"name": "force_refresh", "in": "query", "required": false, "schema": {"type": "boolean"}}],
                "responses": {"200": ok("ItemList", "similar items"), "404": error("unknown item"), "422": invalid, "503": loading}
            }},
            "/trending": {"get": {
                "summary": "Recency-decayed popularity",
                "parameters": [count_param("query"),
                    {"name": "category", "in": "query", "required": false, "schema": {"type": "string"}}],
                "responses": {"200": ok("ItemList", "popular items"), "422": invalid, "503": loading}
            }},
            "/stats": {"get": {"summary": "Model and cache figures", "responses": {"200": ok("Stats", "figures"), "503": loading}}},
            "/health": {"get": {"summary": "Same as /health/ready", "responses": {"200": ok("Health", "ready"), "503": ok("Health", "loading")}}},
            "/health/ready": {"get": {"summary": "200 once a model is loaded", "responses": {"200": ok("Health", "ready"), "503": ok("Health", "loading")}}},
            "/health/live": {"get": {"summary": "200 while the process serves", "responses": {"200": {"description": "live"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format 0.0.4"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0"}}}},
            "/admin/model/reload": {"post": {
                "summary": "Check the region's pointer now and swap if it moved", "security": admin,
                "responses": admin_responses("unchanged or swapped")
            }},
            "/admin/cache/clear": {"post": {
                "summary": "Delete this region's cached answers (SCAN + UNLINK)", "security": admin,
                "responses": admin_responses("number of keys removed")
            }},
            "/api/v1/recommendations/user/{user_id}": {"post": {
                "summary": "FastAPI-compatible recommendations", "parameters": [path_id("user_id")],
                "requestBody": json_body("CompatUserRequest", false),
                "responses": {"200": ok("CompatList", "ranked products"), "400": bad, "422": invalid, "503": loading}
            }},
            "/api/v1/recommendations/similar-products/{product_id}": {"post": {
                "summary": "FastAPI-compatible similar products", "parameters": [path_id("product_id")],
                "requestBody": json_body("CompatSimilarRequest", false),
                "responses": {"200": ok("CompatList", "similar products"), "404": error("unknown product"), "422": invalid}
            }},
            "/api/v1/recommendations/trending": {"post": {
                "summary": "FastAPI-compatible trending products",
                "requestBody": json_body("CompatTrendingRequest", false),
                "responses": {"200": ok("CompatList", "popular products"), "422": invalid}
            }},
            "/api/v1/recommendations/stats": {"get": {"summary": "Same as /stats", "responses": {"200": ok("Stats", "figures")}}},
            "/api/v1/health/": {"get": {"summary": "Same as /health/ready", "responses": {"200": ok("Health", "ready"), "503": ok("Health", "loading")}}}
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "GEOREC_ADMIN_TOKEN"}}
        }
    })
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
