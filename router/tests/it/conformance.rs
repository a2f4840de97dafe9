//! What the router accepts from clients, byte for byte (RFC 9112): each case checks both what
//! the client gets and exactly what the node received (nothing for a refused request, one
//! request for an accepted one). Raw TCP on both sides, so they hold for any HTTP stack.

use std::time::Duration;

use router::settings::Tuning;
use serde_json::json;

use crate::helpers::raw::{post, spawn_router_over, RawClient, RawResponse, Received, ScriptedNode};
use crate::helpers::{Opts, TestRouter};

const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const MAX_BODY: usize = 1000;
/// Ample for an answer the router can give at once.
const PROMPT: Duration = Duration::from_secs(3);
/// What the router may take beyond the client timeout to act on it.
const MARGIN: Duration = Duration::from_millis(800);

/// One region, `a`, on a scripted node that echoes.
async fn setup() -> (ScriptedNode, TestRouter) {
    let node = ScriptedNode::start("a").await;
    let tuning = Tuning {
        client_timeout_ms: CLIENT_TIMEOUT.as_millis() as u64,
        max_body_bytes: MAX_BODY,
        ..Opts::default().tuning
    };
    let router = spawn_router_over(&[(&node, &[])], Opts { tuning, ..Opts::default() }).await;
    (node, router)
}

/// A POST of `body` to `/recommendations` with `headers` (each line ending in CRLF) and no
/// framing header of its own; `version` 0 or 1.
fn request(version: u8, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /recommendations HTTP/1.{version}\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `raw` on a new connection, and the first answer to it.
async fn exchange(router: &TestRouter, raw: &[u8]) -> (RawClient, RawResponse) {
    let mut client = RawClient::connect(router).await;
    client.send(raw).await.expect("request written");
    let answer = client.response(PROMPT).await.unwrap_or_else(|e| panic!("no answer: {e:?}"));
    (client, answer)
}

/// `raw` is refused with one of `statuses` and reaches no node; with `closes` the connection
/// is closed after the answer. The router then still serves a normal request.
async fn assert_refused(
    router: &TestRouter,
    node: &ScriptedNode,
    raw: &[u8],
    statuses: &[u16],
    closes: bool,
) {
    let (mut client, answer) = exchange(router, raw).await;
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
    assert!(statuses.contains(&answer.status), "{shown:?}: expected one of {statuses:?}, got {answer:?}");
    if closes {
        let after = client.closed_within(PROMPT).await;
        assert_eq!(after.as_deref(), Some(&b""[..]), "{shown:?}: connection closed, nothing more sent");
    }
    assert_eq!(node.count(), 0, "{shown:?}: the node got {:?}", node.received());
    assert_still_serves(router, node).await;
}

/// A normal request on a new connection reaches the node, alone.
async fn assert_still_serves(router: &TestRouter, node: &ScriptedNode) {
    let before = node.count();
    let (_, answer) = exchange(router, &post("/recommendations", r#"{"user_id": "after"}"#)).await;
    assert_eq!((answer.status, answer.json()["user_id"].as_str()), (200, Some("after")), "{answer:?}");
    let received = node.received();
    assert_eq!(received.len(), before + 1, "exactly the normal request: {received:?}");
}

/// `raw` is answered 200 by the node, which received exactly one request: returned.
async fn assert_forwarded(router: &TestRouter, node: &ScriptedNode, raw: &[u8]) -> Received {
    let (_, answer) = exchange(router, raw).await;
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
    assert_eq!(answer.status, 200, "{shown:?}: {answer:?}");
    assert_eq!(answer.header("x-served-by"), Some("a"), "{answer:?}");
    let received = node.received();
    assert_eq!(received.len(), 1, "{shown:?}: {received:?}");
    received.into_iter().next().expect("one request")
}

// --- Host (RFC 9112 3.2) ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_request_without_host_is_refused() {
    let (node, router) = setup().await;
    let raw = request(1, "", r#"{"user_id": 1}"#);
    assert_refused(&router, &node, &raw, &[400], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_request_with_two_hosts_is_refused() {
    let (node, router) = setup().await;
    let raw = request(1, "Host: one.test\r\nHost: two.test\r\n", r#"{"user_id": 1}"#);
    assert_refused(&router, &node, &raw, &[400], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_request_with_an_invalid_host_is_refused() {
    let (node, router) = setup().await;
    for host in ["a b", "x/y"] {
        let raw = request(1, &format!("Host: {host}\r\n"), r#"{"user_id": 1}"#);
        let count = node.count();
        let (_, answer) = exchange(&router, &raw).await;
        assert_eq!(answer.status, 400, "Host: {host}: {answer:?}");
        assert_eq!(node.count(), count, "Host: {host}: forwarded {:?}", node.received());
    }
    assert_still_serves(&router, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_without_host_is_accepted() {
    let (node, router) = setup().await;
    let received = assert_forwarded(&router, &node, &request(0, "", r#"{"user_id": 10}"#)).await;
    assert_eq!((received.method.as_str(), received.target.as_str()), ("POST", "/recommendations"));
    assert_eq!(received.json()["user_id"], 10);
    assert_eq!(received.version, 1, "forwarded as HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_reaches_the_node_in_origin_form() {
    let (node, router) = setup().await;
    let body = r#"{"user_id": 11}"#;
    let raw = format!(
        "POST http://whatever/recommendations HTTP/1.1\r\nHost: whatever\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let received = assert_forwarded(&router, &node, raw.as_bytes()).await;
    assert_eq!(received.target, "/recommendations");
    assert_eq!(received.json()["user_id"], 11);
}

// --- Content-Length and Transfer-Encoding (RFC 9112 6) ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_beside_transfer_encoding_is_taken_as_chunked_and_the_connection_closed() {
    // RFC 9112 6.1: a server may refuse such a request, or process it by the chunked coding
    // alone; either way it closes the connection after, so nothing behind it is read.
    let (node, router) = setup().await;
    let smuggled = post("/events", r#"{"user_id": "smuggled"}"#);
    let raw = [
        &b"POST /recommendations HTTP/1.1\r\nHost: r\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
           0\r\n\r\n"[..],
        &smuggled,
    ]
    .concat();
    let (mut client, answer) = exchange(&router, &raw).await;
    assert!([200, 400].contains(&answer.status), "{answer:?}");
    let after = client.closed_within(PROMPT).await;
    assert_eq!(after.as_deref(), Some(&b""[..]), "connection closed, nothing more sent");
    let received = node.received();
    assert!(received.len() <= 1, "{received:?}");
    assert!(received.iter().all(|r| r.target == "/recommendations" && r.body.is_empty()), "{received:?}");
    assert_still_serves(&router, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_content_lengths_are_refused() {
    let (node, router) = setup().await;
    let raw =
        b"POST /recommendations HTTP/1.1\r\nHost: r\r\nContent-Length: 14\r\nContent-Length: 15\r\n\r\n\
                {\"user_id\": 1}";
    assert_refused(&router, &node, raw, &[400], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_content_length_is_refused() {
    let (node, router) = setup().await;
    let raw = b"POST /recommendations HTTP/1.1\r\nHost: r\r\nContent-Length: +5\r\n\r\n{\"a\"}";
    assert_refused(&router, &node, raw, &[400], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_transfer_coding_is_refused() {
    let (node, router) = setup().await;
    let raw = b"POST /recommendations HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b";
    assert_refused(&router, &node, raw, &[400, 411, 415, 501], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_http10_is_never_kept_alive_nor_followed_by_a_smuggled_request() {
    // Arrange: HTTP/1.0 with a transfer coding means faulty framing (RFC 9112 6.1): the
    // connection must close after it, whatever it asks for, so what follows is never parsed.
    let (node, router) = setup().await;
    let body = r#"{"user_id": 12}"#;
    let smuggled = post("/events", r#"{"user_id": "smuggled"}"#);
    let raw = [
        format!(
            "POST /recommendations HTTP/1.0\r\nHost: r\r\nConnection: keep-alive\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        smuggled,
    ]
    .concat();

    // Act
    let (mut client, answer) = exchange(&router, &raw).await;
    let after = client.closed_within(PROMPT).await;

    // Assert
    assert!([200, 400].contains(&answer.status), "{answer:?}");
    assert_eq!(after.as_deref(), Some(&b""[..]), "closed after the first answer, nothing more");
    let received = node.received();
    assert!(received.iter().all(|r| r.target != "/events"), "smuggled request forwarded: {received:?}");
    assert!(received.len() <= 1, "{received:?}");
    if answer.status == 400 {
        assert!(received.is_empty(), "{received:?}");
    }
}

// --- Chunk grammar (RFC 9112 7.1) ---

/// A chunked POST whose body is `chunks` as written (sizes, data, last chunk).
fn chunked(chunks: &str) -> Vec<u8> {
    format!("POST /recommendations HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_chunked_body_is_forwarded_whole_with_a_length() {
    let (node, router) = setup().await;
    let body = r#"{"user_id": 13, "count": 3}"#;
    let (first, rest) = body.split_at(7);
    let raw = chunked(&format!(
        "{:x};name=value\r\n{first}\r\n{:X}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    ));

    let received = assert_forwarded(&router, &node, &raw).await;

    assert_eq!(String::from_utf8_lossy(&received.body), body);
    assert_eq!(received.header("content-length"), Some(body.len().to_string().as_str()), "{received:?}");
    assert_eq!(received.header("transfer-encoding"), None, "{received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_with_a_plus_sign_is_refused() {
    let (node, router) = setup().await;
    assert_refused(&router, &node, &chunked("+5\r\nhello\r\n0\r\n\r\n"), &[400], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_with_a_leading_space_is_refused() {
    let (node, router) = setup().await;
    assert_refused(&router, &node, &chunked(" 5\r\nhello\r\n0\r\n\r\n"), &[400], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_with_a_0x_prefix_is_refused() {
    let (node, router) = setup().await;
    assert_refused(&router, &node, &chunked("0x5\r\nhello\r\n0\r\n\r\n"), &[400], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_cr_in_a_chunk_extension_is_refused() {
    let (node, router) = setup().await;
    assert_refused(&router, &node, &chunked("5;ext=a\rb\r\nhello\r\n0\r\n\r\n"), &[400], true).await;
}

// --- Expect: 100-continue (RFC 9110 10.1.1) ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http11_client_expecting_100_continue_gets_it_before_sending_the_body() {
    let (node, router) = setup().await;
    let body = r#"{"user_id": 14}"#;
    let head = format!(
        "POST /recommendations HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut client = RawClient::connect(&router).await;

    client.send(head.as_bytes()).await.expect("head written");
    let go_ahead = client.response(PROMPT).await.unwrap_or_else(|e| panic!("no 100: {e:?}"));
    client.send(body.as_bytes()).await.expect("body written");
    let answer = client.response(PROMPT).await.unwrap_or_else(|e| panic!("no answer: {e:?}"));

    assert_eq!((go_ahead.status, go_ahead.status_line.as_str()), (100, "HTTP/1.1 100 Continue"));
    assert_eq!((answer.status, answer.json()["user_id"].as_i64()), (200, Some(14)), "{answer:?}");
    let received = node.received();
    let last = received.last().expect("the request");
    assert_eq!(last.json()["user_id"], 14);
    assert!(received.iter().all(|r| !r.body.is_empty()), "no request without its body: {received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_client_never_gets_100_continue() {
    let (node, router) = setup().await;
    let body = r#"{"user_id": 15}"#;
    let head = format!(
        "POST /recommendations HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut client = RawClient::connect(&router).await;

    client.send(head.as_bytes()).await.expect("head written");
    let early = client.received_during(Duration::from_millis(150)).await;
    client.send(body.as_bytes()).await.expect("body written");
    let answer = client.response(PROMPT).await.unwrap_or_else(|e| panic!("no answer: {e:?}"));

    assert_eq!(String::from_utf8_lossy(&early), "", "nothing before the body came");
    assert_eq!((answer.status, answer.json()["user_id"].as_i64()), (200, Some(15)), "{answer:?}");
    assert_eq!(node.count(), 1);
}

// --- Limits ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_70_kb_target_gets_414() {
    let (node, router) = setup().await;
    let raw = format!(
        "POST /recommendations?pad={} HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(70_000)
    );
    assert_refused(&router, &node, raw.as_bytes(), &[414], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_100_headers_get_431() {
    let (node, router) = setup().await;
    let headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let raw = request(1, &format!("Host: r\r\n{headers}"), "{}");
    assert_refused(&router, &node, &raw, &[431], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kib_head_gets_431() {
    let (node, router) = setup().await;
    let headers: String = (0..10).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(10 * 1024))).collect();
    let raw = request(1, &format!("Host: r\r\n{headers}"), "{}");
    assert_refused(&router, &node, &raw, &[431], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_body_over_the_limit_gets_413_before_it_is_sent() {
    // Arrange
    let (node, router) = setup().await;
    let head =
        format!("POST /recommendations HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
    let mut client = RawClient::connect(&router).await;

    // Act: the head alone; the answer must come without the body.
    client.send(head.as_bytes()).await.expect("head written");
    let answer = client.response(PROMPT).await.unwrap_or_else(|e| panic!("no answer before the body: {e:?}"));

    // Assert
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.json()["error"].is_string(), "JSON error body: {answer:?}");
    assert_eq!(node.count(), 0);
    assert_still_serves(&router, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_gets_413() {
    let (node, router) = setup().await;
    let piece = "x".repeat(600);
    let raw = chunked(&format!("258\r\n{piece}\r\n258\r\n{piece}\r\n0\r\n\r\n"));
    assert_refused(&router, &node, &raw, &[413], true).await;
}

// --- Target hygiene ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_utf8_in_the_target_is_refused() {
    let (node, router) = setup().await;
    let raw =
        [&b"POST /recommendations?name=caf\xc3\xa9 HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\n{}"[..]]
            .concat();
    assert_refused(&router, &node, &raw, &[400], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_in_the_target_never_reaches_the_node() {
    let (node, router) = setup().await;
    let body = r#"{"user_id": 16}"#;
    let raw = format!(
        "POST /recommendations?q=1#frag HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );

    let (_, answer) = exchange(&router, raw.as_bytes()).await;

    let received = node.received();
    match answer.status {
        400 => assert!(received.is_empty(), "{received:?}"),
        200 => {
            assert_eq!(received.len(), 1, "{received:?}");
            assert_eq!(received[0].target, "/recommendations?q=1", "forwarded without the fragment");
        }
        _ => panic!("expected 400, or 200 with the fragment dropped: {answer:?}"),
    }
}

// --- Slow and silent clients ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_within_the_client_timeout() {
    let (_node, router) = setup().await;
    let mut client = RawClient::connect(&router).await;

    let closed = client.closed_within(CLIENT_TIMEOUT + MARGIN).await;

    let sent = closed.unwrap_or_else(|| panic!("still open {:?} after connecting", CLIENT_TIMEOUT + MARGIN));
    let text = String::from_utf8_lossy(&sent);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408 "), "at most a 408 before closing: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_incomplete_at_the_client_timeout_gets_408_and_is_closed() {
    // Arrange: a head trickled over 1.5 s, never complete.
    let (node, router) = setup().await;
    let mut pieces: Vec<&[u8]> = vec![b"POST /recommendations HTTP/1.1\r\nHost: r\r\nX-Pad: "];
    pieces.extend(std::iter::repeat_n(&b"aa"[..], 15));
    let mut client = RawClient::connect(&router).await;

    // Act
    let answer = client
        .response_while_sending(&pieces, Duration::from_millis(100), CLIENT_TIMEOUT + MARGIN)
        .await
        .unwrap_or_else(|e| panic!("no 408 within the client timeout: {e:?}"));
    let after = client.closed_within(PROMPT).await;

    // Assert
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.json()["error"].is_string(), "JSON error body: {answer:?}");
    assert!(after.is_some(), "closed after the 408");
    assert_eq!(node.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_slow_gets_408_and_never_reaches_the_node() {
    // Arrange: the head at once, then the body a byte every 100 ms (4 s in all).
    let (node, router) = setup().await;
    let body = json!({"user_id": 17, "pad": "x".repeat(20)}).to_string();
    let head = format!("POST /recommendations HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut pieces: Vec<&[u8]> = vec![head.as_bytes()];
    pieces.extend(body.as_bytes().chunks(1));
    let mut client = RawClient::connect(&router).await;

    // Act
    let answer = client
        .response_while_sending(&pieces, Duration::from_millis(100), CLIENT_TIMEOUT + MARGIN)
        .await
        .unwrap_or_else(|e| panic!("no 408 within the client timeout: {e:?}"));

    // Assert
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(client.closed_within(PROMPT).await.is_some(), "closed after the 408");
    assert_eq!(node.count(), 0, "{:?}", node.received());
}

// --- Pipelining ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelined_requests_get_their_own_answers_in_order() {
    let (node, router) = setup().await;
    let both = [
        post("/recommendations", r#"{"user_id": "first"}"#),
        post("/recommendations", r#"{"user_id": "second"}"#),
    ]
    .concat();
    let mut client = RawClient::connect(&router).await;

    client.send(&both).await.expect("written");
    let first = client.response(PROMPT).await.unwrap_or_else(|e| panic!("first answer: {e:?}"));
    let second = client.response(PROMPT).await.unwrap_or_else(|e| panic!("second answer: {e:?}"));

    for (answer, user) in [(&first, "first"), (&second, "second")] {
        assert_eq!((answer.status, answer.header("x-served-by")), (200, Some("a")), "{answer:?}");
        assert_eq!(answer.json()["user_id"], user, "{answer:?}");
    }
    let users: Vec<_> = node.received().iter().map(|r| r.json()["user_id"].clone()).collect();
    assert_eq!(users, [json!("first"), json!("second")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_regions_gets_headers_without_a_body() {
    let (_node, router) = setup().await;
    let mut client = RawClient::connect(&router).await;

    client
        .send(b"HEAD /regions HTTP/1.1\r\nHost: r\r\n\r\nGET /regions HTTP/1.1\r\nHost: r\r\n\r\n")
        .await
        .expect("written");
    let head = client.head_response(PROMPT).await.unwrap_or_else(|e| panic!("HEAD answer: {e:?}"));
    let get = client.response(PROMPT).await.unwrap_or_else(|e| panic!("GET after HEAD: {e:?}"));

    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(get.status, 200, "{get:?}");
    assert!(get.json()["regions"].is_array(), "the GET answer starts right after the HEAD head: {get:?}");
}
