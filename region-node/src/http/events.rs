//! `POST /events`: interactions in, appended to the region's Redis stream.
//!
//! The body is one event, `{"events": [...]}`, or a JSON array of events; each event is
//! `{"user_id", "item_id", "type": "view" | "add_to_cart" | "purchase", "ts"?, "event_id"?}`
//! (`ts` in unix seconds, default now). A batch is all or nothing: if any event is invalid,
//! none is stored and the 422 names the first bad one and how many were bad.
//!
//! An event with an `event_id` (the client's name for it, 1-128 bytes) is stored once per
//! user and id within 24 hours: a retry (after a `504`, a lost answer, or through another
//! node of the region) stores nothing new and gets the original stream id back, marked as a
//! duplicate. Retries through another region are deduplicated by `model-sync ingest`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use model::events::{EventError, EventType, LiveEvent};
use serde::{Deserialize, Serialize};

use crate::http::error::{ApiError, ErrorBody, INVALID, MALFORMED};
use crate::http::input;
use crate::node::Node;

/// Most events in one request (the body limit also applies).
pub const MAX_EVENTS: usize = 500;
/// How long Redis gets to confirm an append (it fsyncs the AOF when configured to).
const APPEND_TIMEOUT: Duration = Duration::from_secs(1);

/// One interaction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Event)]
struct EventBody {
    /// Non-empty, at most 256 bytes (UTF-8), no control characters.
    #[schema(min_length = 1)]
    user_id: String,
    /// Non-empty, at most 256 bytes (UTF-8), no control characters.
    #[schema(min_length = 1)]
    item_id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = event_types)]
    kind: String,
    /// Unix seconds, default now; at most 300 s in the future (milliseconds are refused).
    #[schema(minimum = 1)]
    ts: Option<i64>,
    /// The region the client aimed at (the router reads it); events are stored here.
    region: Option<String>,
    /// The client's name for this event, 1-128 bytes, no control characters: the same
    /// (user_id, event_id) within 24 hours is stored once.
    #[schema(min_length = 1)]
    event_id: Option<String>,
}

/// `type`: the names of [`EventType`], as the handler parses them.
fn event_types() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(EventType::ALL.map(EventType::as_str)))
        .description(Some("What the user did"))
        .build()
}

/// One event inline, or a batch under `events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    events: Option<Vec<EventBody>>,
    user_id: Option<String>,
    item_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    ts: Option<i64>,
    region: Option<String>,
    event_id: Option<String>,
}

/// One event, a batch under `events`, or a JSON array of events.
// For the OpenAPI document only: `parse` reads bodies by hand (as `EventsBody`) so that an
// error names the event at fault.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum EventsRequest {
    One(EventBody),
    Batch(EventBatch),
    List(#[schema(inline)] EventList),
}

/// A batch under `events`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventBatch {
    #[schema(inline)]
    events: EventList,
    /// The region the client aimed at (the router reads it); events are stored here.
    region: Option<String>,
}

/// 1 to [`MAX_EVENTS`] events.
struct EventList;

impl utoipa::PartialSchema for EventList {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(<EventBody as utoipa::ToSchema>::name()))
            .min_items(Some(1))
            .max_items(Some(MAX_EVENTS))
            .into()
    }
}

impl utoipa::ToSchema for EventList {}

/// Events stored.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = EventsAccepted)]
struct EventsResponse<'a> {
    /// Events stored by this request (duplicates not counted).
    accepted: usize,
    /// Redis stream ids, in request order; a duplicate's is the id it was first stored under.
    event_ids: &'a [String],
    /// Every event of the request had been stored before (same user_id and event_id within
    /// 24 hours): nothing new was stored. For one event: it is a retry.
    duplicate: bool,
    /// Positions (0-based, request order) of the events that had been stored before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    duplicates: Vec<usize>,
    region: &'a str,
    /// Time spent on the node, in microseconds.
    took_us: u64,
}

/// Record interactions; the users' next recommendations reflect them.
///
/// One event, `{"events": [...]}`, or a JSON array of events, at most 500. All or nothing: if
/// any event is invalid none is stored, and the 422 names the first bad one.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    request_body = EventsRequest,
    responses(
        (status = 200, description = "All events stored", body = EventsResponse),
        (status = 400, description = MALFORMED, body = ErrorBody),
        (status = 422, description = INVALID, body = ErrorBody),
        (status = 503, description = "Redis did not store the events; nothing was stored, safe to retry (`Retry-After: 1`)", body = ErrorBody),
        (status = 504, description = "Redis did not confirm within 1 s; the events may have been stored", body = ErrorBody),
    )
)]
pub async fn record(
    node: web::Data<Node>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let body = input::read_body(&req, payload, node.settings().max_body_bytes).await?;
    let (events, prefix) = parse(&body)?;
    let now = unix_now();
    let events = validate(events, &prefix, now)?;
    let metrics = &node.metrics().events;
    let (ids, duplicate) = match node.service().record_events(&events, APPEND_TIMEOUT).await {
        Ok(got) => got,
        Err(e) => {
            metrics.with_label_values(&["not_stored"]).inc_by(events.len() as u64);
            return Err(e.into());
        }
    };
    let duplicates: Vec<usize> = duplicate.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i).collect();
    let accepted = ids.len() - duplicates.len();
    metrics.with_label_values(&["accepted"]).inc_by(accepted as u64);
    metrics.with_label_values(&["duplicate"]).inc_by(duplicates.len() as u64);
    Ok(HttpResponse::Ok().json(EventsResponse {
        accepted,
        event_ids: &ids,
        duplicate: !ids.is_empty() && duplicates.len() == ids.len(),
        duplicates,
        region: node.region(),
        took_us: started.elapsed().as_micros() as u64,
    }))
}

/// The events of a body, and the JSON path prefix of each (`events[i].` or nothing).
fn parse(body: &[u8]) -> Result<(Vec<EventBody>, Option<&'static str>), ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        // Parsed as `{"events": <array>}` so errors name `events[i].field`.
        let wrapped = [&b"{\"events\":"[..], body, b"}"].concat();
        return parse(&wrapped);
    }
    let b: EventsBody = input::parse_json(body, false)?;
    if let Some(region) = &b.region {
        input::check_id("region", region)?;
    }
    match b.events {
        Some(events) => {
            if b.user_id.is_some()
                || b.item_id.is_some()
                || b.kind.is_some()
                || b.ts.is_some()
                || b.event_id.is_some()
            {
                return Err(ApiError::invalid(
                    "events",
                    "give either one event's fields or a list under `events`, not both",
                ));
            }
            if events.is_empty() {
                return Err(ApiError::invalid("events", "must hold at least one event"));
            }
            if events.len() > MAX_EVENTS {
                return Err(ApiError::invalid(
                    "events",
                    format!("must hold at most {MAX_EVENTS} events, got {}", events.len()),
                ));
            }
            Ok((events, Some("events")))
        }
        None => {
            let missing = |field| ApiError::invalid(field, format!("missing field `{field}`"));
            let one = EventBody {
                user_id: b.user_id.ok_or_else(|| missing("user_id"))?,
                item_id: b.item_id.ok_or_else(|| missing("item_id"))?,
                kind: b.kind.ok_or_else(|| missing("type"))?,
                ts: b.ts,
                region: None,
                event_id: b.event_id,
            };
            Ok((vec![one], None))
        }
    }
}

/// Every event checked; the first problem is reported with how many events had one.
fn validate(events: Vec<EventBody>, prefix: &Option<&str>, now: i64) -> Result<Vec<LiveEvent>, ApiError> {
    let total = events.len();
    let mut first: Option<(String, String)> = None;
    let mut bad = 0usize;
    let mut good = Vec::with_capacity(total);
    for (i, e) in events.into_iter().enumerate() {
        let path = |field: &str| match prefix {
            Some(p) => format!("{p}[{i}].{field}"),
            None => field.to_string(),
        };
        match check(e, now) {
            Ok(event) => good.push(event),
            Err((field, message)) => {
                bad += 1;
                first.get_or_insert((path(field), message));
            }
        }
    }
    match first {
        None => Ok(good),
        Some((field, message)) if total == 1 => Err(ApiError::invalid(field, message)),
        Some((field, message)) => Err(ApiError::invalid(
            field,
            format!("{message} ({bad} of {total} events are invalid; none were stored)"),
        )),
    }
}

fn check(e: EventBody, now: i64) -> Result<LiveEvent, (&'static str, String)> {
    if let Some(region) = &e.region {
        input::check_id("region", region).map_err(|_| ("region", "must be a region name".to_string()))?;
    }
    let kind: EventType = e.kind.parse().map_err(|err: EventError| ("type", err.to_string()))?;
    let event = LiveEvent {
        user_id: e.user_id,
        item_id: e.item_id,
        kind,
        ts: e.ts.unwrap_or(now),
        event_id: e.event_id,
    };
    event.validate(now).map_err(|err| {
        let field = match &err {
            EventError::Empty { field }
            | EventError::TooLong { field }
            | EventError::ControlChar { field } => *field,
            EventError::Missing { field } => *field,
            EventError::UnknownType(_) => "type",
            EventError::EventIdTooLong => "event_id",
            EventError::Future { .. } | EventError::BadTs(_) => "ts",
        };
        (field, without_field(&err, field))
    })?;
    Ok(event)
}

/// The error text without a leading field name (the response's `field` already says it).
fn without_field(err: &EventError, field: &str) -> String {
    let text = err.to_string();
    text.strip_prefix(field).map(|rest| rest.trim_start().to_string()).unwrap_or(text)
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn run(body: &str) -> Result<Vec<LiveEvent>, ApiError> {
        let (events, prefix) = parse(body.as_bytes())?;
        validate(events, &prefix, NOW)
    }

    fn field_of(e: ApiError) -> (String, String) {
        match e {
            ApiError::Invalid { field, message } | ApiError::Malformed { field, message } => (field, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn accepts_one_event_a_batch_and_an_array() {
        let one = run(r#"{"user_id":"u1","item_id":"i1","type":"purchase","ts":1699999999}"#).unwrap();
        assert_eq!(one[0].kind, EventType::Purchase);
        assert_eq!(one[0].ts, 1_699_999_999);
        let batch = run(r#"{"events":[{"user_id":"u1","item_id":"i1","type":"view"},
            {"user_id":"u2","item_id":"i2","type":"add_to_cart"}]}"#)
        .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].ts, NOW, "ts defaults to now");
        let array = run(r#"[{"user_id":"u1","item_id":"i1","type":"view","region":"eu-west"}]"#).unwrap();
        assert_eq!(array.len(), 1);
    }

    #[test]
    fn names_the_bad_field() {
        let (f, m) = field_of(run(r#"{"user_id":"u1","item_id":"i1","type":"click"}"#).unwrap_err());
        assert_eq!(f, "type");
        assert!(m.contains("click") && m.contains("purchase"), "{m}");
        let (f, _) = field_of(run(r#"{"item_id":"i1","type":"view"}"#).unwrap_err());
        assert_eq!(f, "user_id");
        let (f, m) =
            field_of(run(r#"{"user_id":"u1","item_id":"i1","type":"view","ts":1900000000}"#).unwrap_err());
        assert_eq!(f, "ts");
        assert!(m.contains("future"), "{m}");
        let (f, m) = field_of(
            run(
                r#"[{"user_id":"u1","item_id":"i1","type":"view"},{"user_id":"","item_id":"i1","type":"view"},
                {"user_id":"u1","item_id":"i1","type":"x"}]"#,
            )
            .unwrap_err(),
        );
        assert_eq!(f, "events[1].user_id");
        assert!(m.contains("2 of 3") && m.contains("none were stored"), "{m}");
        let (f, _) = field_of(run(r#"{"events":[]}"#).unwrap_err());
        assert_eq!(f, "events");
        let (f, _) = field_of(run(r#"{"events":[],"user_id":"u"}"#).unwrap_err());
        assert_eq!(f, "events");
        let (f, _) =
            field_of(run(r#"{"user_id":"u1","item_id":"i1","type":"view","colour":1}"#).unwrap_err());
        assert_eq!(f, "colour");
        let (f, _) =
            field_of(run(r#"[{"user_id":"u1","item_id":"i1","type":"view","ts":"yesterday"}]"#).unwrap_err());
        assert_eq!(f, "events[0].ts");
    }

    /// What the document says of events is what `validate` enforces (model-sync's rules).
    #[test]
    fn documented_limits_are_enforced() {
        let doc = serde_json::to_value(crate::http::openapi::document()).expect("document");
        let event = &doc["components"]["schemas"]["Event"]["properties"];
        let event_with = |user: &str, item: &str, ts: i64| {
            run(&serde_json::json!({"user_id": user, "item_id": item, "type": "view", "ts": ts}).to_string())
        };
        for field in ["user_id", "item_id"] {
            let text = event[field]["description"].as_str().expect("description");
            let (before, _) = text.split_once(" bytes").expect("a byte limit");
            let limit: usize = before.rsplit_once("at most ").expect("at most").1.parse().expect("a number");
            let (fits, over) = ("é".repeat(limit / 2), format!("{}x", "é".repeat(limit / 2)));
            let (ok, bad) = if field == "user_id" {
                (event_with(&fits, "i", NOW), event_with(&over, "i", NOW))
            } else {
                (event_with("u", &fits, NOW), event_with("u", &over, NOW))
            };
            assert!(ok.is_ok() && bad.is_err(), "{field}: {text}");
        }
        let text = event["ts"]["description"].as_str().expect("description");
        let (before, _) = text.split_once(" s in the future").expect("a skew");
        let skew: i64 = before.rsplit_once("at most ").expect("at most").1.parse().expect("a number");
        assert!(event_with("u", "i", NOW + skew).is_ok(), "{text}");
        assert!(event_with("u", "i", NOW + skew + 1).is_err(), "{text}");
        assert_eq!(event["ts"]["minimum"], 1);
        assert!(event_with("u", "i", 0).is_err());
        let types = event["type"]["enum"].as_array().expect("enum");
        for t in types {
            let body = serde_json::json!({"user_id": "u", "item_id": "i", "type": t});
            assert!(run(&body.to_string()).is_ok(), "{t}");
        }
        assert_eq!(types.len(), EventType::ALL.len());
    }
}
