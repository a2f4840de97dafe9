//! The server against raw TCP clients: framing, keep-alive, pipelining, refusals, shutdown.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::*;

/// Echoes what it got as JSON; `/slow` says it started, then answers after 300 ms of
/// "work"; `/big` answers 100 KB.
struct Echo {
    started: Arc<Notify>,
}

impl Handler for Echo {
    async fn handle(&self, req: Request) -> Response {
        if req.path() == "/slow" {
            self.started.notify_one();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if req.path() == "/big" {
            return Response::new(200, "text/plain", vec![b'x'; 100_000]);
        }
        let body = json!({
            "method": req.method(),
            "target": req.target(),
            "body": String::from_utf8_lossy(&req.body),
            "custom": req.header_str("x-custom"),
            "version": format!("{:?}", req.version),
        });
        Response::json(200, &body)
    }
}

struct Server {
    addr: std::net::SocketAddr,
    slow_started: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<io::Result<()>>,
}

async fn start(limits: Limits) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let slow_started = Arc::new(Notify::new());
    let started = slow_started.clone();
    let make = move || Echo { started: started.clone() };
    let done = tokio::spawn(serve(listener, 2, limits, make, async {
        let _ = rx.await;
    }));
    Server { addr, slow_started, stop: Some(tx), done }
}

fn limits() -> Limits {
    Limits { max_body: 1000, ..Limits::new(1000) }
}

/// Read more of `s` into `buf`; `false` at the end of the stream.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16384];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// One answer off `s`: status, lower-cased head text and its content-length body.
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, String, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(s, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    buf.drain(..head_end);
    let status = head[9..12].parse().expect("status");
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < len {
        if !fill(s, buf).await {
            return None;
        }
    }
    Some((status, head, buf.drain(..len).collect()))
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect")
}

/// The connection is closed by the server: the next read ends.
async fn closed(s: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = start(limits()).await;
    let mut s = connect(&server).await;
    let mut buf = Vec::new();

    s.write_all(
        b"POST /a?x=1 HTTP/1.1\r\nHost: r\r\nX-Custom: one\r\nContent-Length: 5\r\n\r\nfirst\
          POST /b HTTP/1.1\r\nHost: r\r\ncontent-length: 6\r\n\r\nsecond",
    )
    .await
    .expect("write");
    let (s1, h1, b1) = answer(&mut s, &mut buf).await.expect("first answer");
    let (s2, _, b2) = answer(&mut s, &mut buf).await.expect("second answer");
    s.write_all(b"GET http://r/c HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
    let (s3, _, b3) = answer(&mut s, &mut buf).await.expect("third answer on the same connection");

    let (v1, v2, v3): (Value, Value, Value) = (
        serde_json::from_slice(&b1).expect("json"),
        serde_json::from_slice(&b2).expect("json"),
        serde_json::from_slice(&b3).expect("json"),
    );
    assert_eq!((s1, s2, s3), (200, 200, 200));
    assert_eq!(
        v1,
        json!({"method": "POST", "target": "/a?x=1", "body": "first", "custom": "one", "version": "HTTP/1.1"})
    );
    assert_eq!((v2["target"].as_str(), v2["body"].as_str()), (Some("/b"), Some("second")));
    assert_eq!((v3["method"].as_str(), v3["body"].as_str()), (Some("GET"), Some("")));
    assert_eq!(v3["target"], "/c", "absolute-form targets are taken, in origin form");
    assert!(h1.contains("\r\ndate: ") && h1.contains("content-type: application/json"), "{h1}");
    assert!(!h1.contains("connection: close"), "{h1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_and_expect_continue_are_handled() {
    let server = start(limits()).await;
    let mut s = connect(&server).await;
    let mut buf = Vec::new();

    s.write_all(b"POST /c HTTP/1.1\r\nHost: r\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write head");
    let mut go = [0u8; 25];
    s.read_exact(&mut go).await.expect("100 continue");
    s.write_all(b"4\r\nhell\r\n1;x=y\r\no\r\n0\r\n\r\n").await.expect("write body");
    let (status, _, body) = answer(&mut s, &mut buf).await.expect("answer");

    assert_eq!(&go, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["body"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_head_and_large_answers_are_framed_right() {
    let server = start(limits()).await;
    let mut buf = Vec::new();

    let mut s = connect(&server).await;
    s.write_all(b"GET /x HTTP/1.0\r\n\r\n").await.expect("write");
    let (status, head, _) = answer(&mut s, &mut buf).await.expect("answer");
    assert_eq!(status, 200);
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(closed(&mut s).await, "HTTP/1.0 without keep-alive: closed after the answer");

    let mut s = connect(&server).await;
    s.write_all(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await.expect("write");
    let (_, head, _) = answer(&mut s, &mut buf).await.expect("answer");
    assert!(head.contains("connection: keep-alive"), "{head}");

    let mut s = connect(&server).await;
    s.write_all(b"HEAD /big HTTP/1.1\r\nHost: r\r\n\r\nGET /big HTTP/1.1\r\nHost: r\r\n\r\n")
        .await
        .expect("write");
    let mut all = Vec::new();
    while all.len() < 100_000 {
        assert!(fill(&mut s, &mut all).await, "closed early");
    }
    let text = String::from_utf8_lossy(&all);
    let heads: Vec<_> = text.match_indices("HTTP/1.1 200 OK").collect();
    assert_eq!(heads.len(), 2, "HEAD has no body, so the GET's head follows at once");
    assert!(text.matches("content-length: 100000").count() == 2, "HEAD announces the GET's length");
}

/// A chunked body one byte over the limit of [`limits`].
fn chunk_over_limit() -> Vec<u8> {
    let mut req = b"POST / HTTP/1.1\r\nHost: r\r\ntransfer-encoding: chunked\r\n\r\n3e9\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 1001));
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_reason_and_a_closed_connection() {
    let mut l = limits();
    l.request_timeout = Duration::from_millis(300);
    let server = start(l).await;
    let over = chunk_over_limit();
    let cases: [(&[u8], u16, &str); 9] = [
        (
            b"POST / HTTP/1.1\r\nHost: r\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
            "unsupported_transfer_encoding",
        ),
        (b"POST / HTTP/1.1\r\nHost: r\r\ncontent-length: 2000\r\n\r\n", 413, "body_too_large"),
        (&over, 413, "body_too_large"),
        (b"POST / HTTP/1.1\r\nHost: r\r\ncontent-length: 10\r\n\r\nabc", 408, "request_timeout"),
        (b"GET / HTTP/1.1\r\nhost: r\r\n", 408, "request_timeout"),
        (b"", 408, "request_timeout"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "malformed_request"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "malformed_request"),
        ("GET /caf\u{e9} HTTP/1.1\r\nHost: r\r\n\r\n".as_bytes(), 400, "malformed_request"),
    ];
    for (raw, status, code) in cases {
        let mut s = connect(&server).await;
        s.write_all(raw).await.expect("write");
        let mut buf = Vec::new();
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(80)]).into_owned();
        let (got, head, body) =
            answer(&mut s, &mut buf).await.unwrap_or_else(|| panic!("no answer to {shown:?}"));
        let body: Value = serde_json::from_slice(&body).expect("JSON body");
        let raw = String::from_utf8_lossy(raw);
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{raw:?}: {body}");
        assert!(!body["message"].as_str().unwrap_or("").is_empty());
        assert!(head.contains("connection: close"), "{raw:?}: {head}");
        assert!(closed(&mut s).await, "{raw:?}: connection closed");
    }
    // Refused by hyper's parser, with its own (bodiless) answers.
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: r\r\n\r\n", "a".repeat(70_000));
    let huge = format!("GET / HTTP/1.1\r\nHost: r\r\nx: {}\r\n\r\n", "y".repeat(MAX_HEAD_BYTES));
    let many = format!("GET / HTTP/1.1\r\nHost: r\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
    for (raw, status) in [
        (long_target, 414),
        (huge, 431),
        (many, 431),
        ("GARBAGE\r\n\r\n".to_string(), 400),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_string(), 400),
    ] {
        let mut s = connect(&server).await;
        let _ = s.write_all(raw.as_bytes()).await;
        let mut buf = Vec::new();
        let shown = &raw[..raw.len().min(60)];
        assert_eq!(answer(&mut s, &mut buf).await.map(|a| a.0), Some(status), "{shown:?}");
        assert!(closed(&mut s).await, "{shown:?}: connection closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_without_a_word() {
    let server = start(Limits { request_timeout: Duration::from_millis(200), ..limits() }).await;
    let mut s = connect(&server).await;
    let mut buf = Vec::new();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
    assert_eq!(answer(&mut s, &mut buf).await.map(|a| a.0), Some(200));

    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;

    assert!(
        matches!(read, Ok(Ok(0))),
        "closed with nothing more sent: {read:?} {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_finishes_requests_in_flight_and_stops_listening() {
    let mut server = start(limits()).await;
    let mut idle = connect(&server).await;
    let mut buf = Vec::new();
    idle.write_all(b"GET /warm HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
    answer(&mut idle, &mut buf).await.expect("served before shutdown");
    let mut busy = connect(&server).await;
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
    server.slow_started.notified().await;

    let _ = server.stop.take().map(|tx| tx.send(()));
    let (status, head, _) =
        answer(&mut busy, &mut Vec::new()).await.expect("the request in flight is answered");

    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed(&mut busy).await);
    assert!(closed(&mut idle).await, "idle connections are closed");
    let served = tokio::time::timeout(Duration::from_secs(5), &mut server.done).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "serve returns: {served:?}");
    assert!(TcpStream::connect(server.addr).await.is_err(), "nothing listens any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_new_clients_wait_until_one_closes() {
    let server = start(Limits { max_connections: 2, ..limits() }).await;
    let mut buf = Vec::new();
    let mut first = connect(&server).await;
    let mut second = connect(&server).await;
    for s in [&mut first, &mut second] {
        s.write_all(b"GET /open HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
        answer(s, &mut buf).await.expect("served within the limit");
    }

    // The third connects (the kernel queues it) but is not served while two are open.
    let mut third = connect(&server).await;
    third.write_all(b"GET /third HTTP/1.1\r\nHost: r\r\n\r\n").await.expect("write");
    let early = tokio::time::timeout(Duration::from_millis(300), answer(&mut third, &mut buf)).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    drop(first);
    let late = tokio::time::timeout(Duration::from_secs(5), answer(&mut third, &mut buf)).await;

    let (status, _, body) = late.expect("served once a connection closed").expect("an answer");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["target"], "/third");
}
