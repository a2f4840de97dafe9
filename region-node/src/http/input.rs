//! Reading and checking request input, so every bad request gets a 400/422 naming the field.
//!
//! Bodies are read by hand (not `web::Json`) to bound their size before buffering and to
//! turn serde errors into the node's error JSON: syntax errors are 400 (`field: "body"`),
//! shape errors are 422 with the JSON path of the offending value (`count`, `exclude[2]`),
//! or the name of the unknown/missing field.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::answer::{DEFAULT_COUNT, MAX_COUNT};
use crate::http::error::ApiError;

/// Longest user or item id accepted (ids end up in cache keys and logs).
pub const MAX_ID_BYTES: usize = 256;
/// Most ids in one `exclude` list.
pub const MAX_EXCLUDE: usize = 1000;
/// Most names in one `categories` list.
pub const MAX_CATEGORIES: usize = 100;

/// The whole body, refusing to buffer more than `limit` bytes.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed {
            field: "body".into(),
            message: format!("cannot read the request body: {e}"),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parse a JSON object. An empty body is `{}` when `empty_is_object` (the FastAPI routes,
/// whose fields are all optional), else a 400.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], empty_is_object: bool) -> Result<T, ApiError> {
    let body: &[u8] = match (body.iter().all(u8::is_ascii_whitespace), empty_is_object) {
        (true, true) => b"{}",
        (true, false) => {
            return Err(ApiError::Malformed {
                field: "body".into(),
                message: "the request body is empty; expected a JSON object".into(),
            })
        }
        (false, _) => body,
    };
    // serde would also read a struct from an array (`["u1", 5]`); only objects are accepted.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(ApiError::invalid("body", "expected a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        shape_error(&path, e.into_inner())
    })?;
    de.end().map_err(|e| shape_error(".", e))?;
    Ok(value)
}

fn shape_error(path: &str, e: serde_json::Error) -> ApiError {
    let text = e.to_string();
    // serde_json appends the position; the field name says more to an API client.
    let message = text.split(" at line ").next().unwrap_or(&text).to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::Malformed { field: "body".into(), message: format!("not valid JSON: {text}") }
        }
        Category::Data => {
            let parent = if path == "." { "" } else { path };
            let field = match named_field(&message) {
                // Unknown fields are reported at their own path, missing ones at the parent's.
                Some(name) if parent == name || parent.ends_with(&format!(".{name}")) => parent.to_string(),
                Some(name) if parent.is_empty() => name.to_string(),
                Some(name) => format!("{parent}.{name}"),
                None if parent.is_empty() => "body".to_string(),
                None => parent.to_string(),
            };
            ApiError::Invalid { field, message }
        }
    }
}

/// `unknown field `x`, expected ...` / `missing field `x``: the field's name in backticks.
fn named_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
}

/// A user or item id: non-blank, at most [`MAX_ID_BYTES`], no control characters.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_ID_BYTES} bytes, got {}", id.len()),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// `count`: 1..=[`MAX_COUNT`], [`DEFAULT_COUNT`] when absent.
pub fn check_count(field: &str, count: Option<i64>) -> Result<usize, ApiError> {
    match count {
        None => Ok(DEFAULT_COUNT),
        Some(n) if (1..=MAX_COUNT as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(field, format!("must be between 1 and {MAX_COUNT}, got {n}"))),
    }
}

/// A list of ids or names: at most `max` entries, each a valid id.
pub fn check_list(field: &str, list: Option<Vec<String>>, max: usize) -> Result<Vec<String>, ApiError> {
    let list = list.unwrap_or_default();
    if list.len() > max {
        return Err(ApiError::invalid(field, format!("must have at most {max} entries, got {}", list.len())));
    }
    for (i, v) in list.iter().enumerate() {
        check_id(&format!("{field}[{i}]"), v)?;
    }
    Ok(list)
}

/// Query parameters; any name outside `allowed` is a 422 (a typo should not be ignored).
pub fn query_params(req: &HttpRequest, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::Malformed {
            field: "query".into(),
            message: format!("bad query string: {e}"),
        })?
        .into_inner();
    if let Some((name, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        let expected = allowed.join(", ");
        return Err(ApiError::invalid(
            name.clone(),
            format!("unknown query parameter; expected one of {expected}"),
        ));
    }
    Ok(pairs)
}

/// The last value of `name` among query pairs.
pub fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `count` from a query string.
pub fn query_count(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    match query_value(pairs, "count") {
        None => Ok(DEFAULT_COUNT),
        Some(raw) => {
            let n = raw.trim().parse::<i64>().map_err(|_| {
                ApiError::invalid(
                    "count",
                    format!("must be an integer between 1 and {MAX_COUNT}, got {raw:?}"),
                )
            })?;
            check_count("count", Some(n))
        }
    }
}

/// A boolean query flag (`true`/`false`/`1`/`0`), false when absent.
pub fn query_flag(pairs: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match query_value(pairs, name) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::invalid(name, format!("must be true or false, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        user_id: String,
        count: Option<i64>,
        exclude: Option<Vec<String>>,
    }

    fn field_of(body: &str) -> (u16, String) {
        let e = parse_json::<Req>(body.as_bytes(), false).expect_err("invalid");
        let field = match &e {
            ApiError::Malformed { field, .. } | ApiError::Invalid { field, .. } => field.clone(),
            other => panic!("unexpected {other:?}"),
        };
        (actix_web::ResponseError::status_code(&e).as_u16(), field)
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of("{\"user_id\": \"u\", \"count\": \"ten\"}"), (422, "count".into()));
        assert_eq!(field_of("{\"user_id\": \"u\", \"exclude\": [\"a\", 3]}"), (422, "exclude[1]".into()));
        assert_eq!(field_of("{\"user_id\": \"u\", \"bogus\": 1}"), (422, "bogus".into()));
        assert_eq!(field_of("{\"count\": 1}"), (422, "user_id".into()));
        assert_eq!(field_of("[1, 2]"), (422, "body".into()));
        assert_eq!(field_of("{\"user_id\": "), (400, "body".into()));
        assert_eq!(field_of("{\"user_id\": \"u\"} trailing"), (400, "body".into()));
        assert_eq!(field_of(""), (400, "body".into()));
    }

    #[test]
    fn counts_and_ids_are_range_checked() {
        assert_eq!(check_count("count", None).expect("default"), DEFAULT_COUNT);
        assert!(check_count("count", Some(0)).is_err());
        assert!(check_count("count", Some(101)).is_err());
        assert!(check_id("user_id", " ").is_err());
        assert!(check_id("user_id", &"x".repeat(MAX_ID_BYTES + 1)).is_err());
        assert!(check_id("user_id", "a\u{7}").is_err());
        assert!(check_list("exclude", Some(vec!["a".into(), "".into()]), 10).is_err());
    }
}
