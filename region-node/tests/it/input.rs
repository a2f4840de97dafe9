//! Bad input gets 400/422 with a JSON error naming the field; never a 500.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

struct Case {
    what: &'static str,
    path: &'static str,
    body: String,
    status: u16,
    field: &'static str,
}

fn case(what: &'static str, path: &'static str, body: &str, status: u16, field: &'static str) -> Case {
    Case { what, path, body: body.to_string(), status, field }
}

const REC: &str = "/recommendations";
const COMPAT: &str = "/api/v1/recommendations/user/u01";

fn cases() -> Vec<Case> {
    let long_id = "x".repeat(300);
    let huge = format!(r#"{{"user_id": "u01", "exclude": ["{}"]}}"#, "y".repeat(70_000));
    vec![
        case("malformed JSON", REC, r#"{"user_id": "u01""#, 400, "body"),
        case("not JSON", REC, "user_id=u01", 400, "body"),
        case("trailing garbage", REC, r#"{"user_id": "u01"} x"#, 400, "body"),
        case("empty body", REC, "", 400, "body"),
        case("oversized body", REC, &huge, 400, "body"),
        case("array instead of object", REC, r#"["u01", 5]"#, 422, "body"),
        case("count is a string", REC, r#"{"user_id": "u01", "count": "ten"}"#, 422, "count"),
        case("count is a float", REC, r#"{"user_id": "u01", "count": 2.5}"#, 422, "count"),
        case("count is zero", REC, r#"{"user_id": "u01", "count": 0}"#, 422, "count"),
        case("count too large", REC, r#"{"user_id": "u01", "count": 101}"#, 422, "count"),
        case("count negative", REC, r#"{"user_id": "u01", "count": -3}"#, 422, "count"),
        case("user_id is a number", REC, r#"{"user_id": 17}"#, 422, "user_id"),
        case("user_id missing", REC, r#"{"count": 3}"#, 422, "user_id"),
        case("user_id empty", REC, r#"{"user_id": ""}"#, 422, "user_id"),
        case("user_id blank", REC, r#"{"user_id": "   "}"#, 422, "user_id"),
        case("user_id too long", REC, &format!(r#"{{"user_id": "{long_id}"}}"#), 422, "user_id"),
        case("exclude has a number", REC, r#"{"user_id": "u01", "exclude": ["i01", 3]}"#, 422, "exclude[1]"),
        case("exclude is a string", REC, r#"{"user_id": "u01", "exclude": "i01"}"#, 422, "exclude"),
        case("empty category", REC, r#"{"user_id": "u01", "categories": [""]}"#, 422, "categories[0]"),
        case("unknown field", REC, r#"{"user_id": "u01", "limit": 5}"#, 422, "limit"),
        case(
            "force_refresh not a bool",
            REC,
            r#"{"user_id": "u01", "force_refresh": "yes"}"#,
            422,
            "force_refresh",
        ),
        case("compat: malformed JSON", COMPAT, "{", 400, "body"),
        case("compat: count zero", COMPAT, r#"{"count": 0}"#, 422, "count"),
        case("compat: unknown field", COMPAT, r#"{"size": 5}"#, 422, "size"),
        case("compat: trending count", "/api/v1/recommendations/trending", r#"{"count": 500}"#, 422, "count"),
    ]
}

fn assert_error(what: &str, status: u16, body: &Value, want_status: u16, want_field: &str) {
    assert_eq!(status, want_status, "{what}: {body}");
    assert_eq!(body["field"], want_field, "{what}: {body}");
    assert!(body["error"].is_string(), "{what}: {body}");
    // Native errors say it in `message`, FastAPI-layout ones in `detail`.
    let text = body["message"].as_str().or(body["detail"].as_str()).unwrap_or_default();
    assert!(!text.is_empty(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_the_field_named() {
    let node = spawn_node().await;
    for c in cases() {
        let res = node.post_raw(c.path, c.body.clone()).await;
        let status = res.status().as_u16();
        let body: Value =
            res.json().await.unwrap_or_else(|e| panic!("{}: error body is not JSON: {e}", c.what));
        assert_error(c.what, status, &body, c.status, c.field);
    }

    // An oversized body sent without a length (chunked) is cut off while reading.
    let (status, body) = chunked_post(&node, REC, &[&[b' '; 40_000], &[b' '; 40_000]]).await;
    assert_error("chunked oversized body", status, &body, 400, "body");

    for (what, path, field) in [
        ("similar count not a number", "/items/i01/similar?count=abc", "count"),
        ("similar count zero", "/items/i01/similar?count=0", "count"),
        ("similar unknown parameter", "/items/i01/similar?cnt=3", "cnt"),
        ("trending count too large", "/trending?count=1000", "count"),
        ("trending unknown parameter", "/trending?limit=3", "limit"),
    ] {
        let (status, body) = node.json(path).await;
        assert_error(what, status, &body, 422, field);
    }

    // Still healthy and answering afterwards.
    assert_eq!(node.json("/health/ready").await.0, 200);
    let metrics = node.get("/metrics").await.text().await.expect("metrics");
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
}

/// POST `chunks` with `Transfer-Encoding: chunked` (no length up front) over a raw socket.
async fn chunked_post(node: &TestNode, path: &str, chunks: &[&[u8]]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        node.addr
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    for c in chunks {
        // The server may answer and close before reading everything: later writes may fail.
        let _ = s.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await;
        let _ = s.write_all(c).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let (_, body) = text.split_once("\r\n\r\n").expect("head and body");
    // The response itself may be chunked: take the JSON object between the outer braces.
    let json = &body[body.find('{').expect("JSON")..=body.rfind('}').expect("JSON")];
    (status, serde_json::from_str(json).expect("JSON error body"))
}
