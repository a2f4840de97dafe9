//! The HTTP/1.1 client against scripted raw-TCP nodes: framing, keep-alive, stale
//! connections and how failures are classified.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::front::request::Request;

/// A node on 127.0.0.1:0 running `script` on each accepted connection (with its number,
/// from 0); counts connections.
async fn node<F, Fut>(script: F) -> (Endpoint, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(stream, n));
        }
    });
    (Endpoint::parse(&format!("http://{addr}")).expect("endpoint"), accepted)
}

/// Read one request: its head as text and its body; `None` at the end of the stream.
async fn request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((head, body))
}

/// Write `parts` one by one with a pause between, so the client sees them separately.
async fn write_slowly(stream: &mut TcpStream, parts: &[&[u8]]) {
    for part in parts {
        stream.write_all(part).await.expect("write");
        stream.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn outgoing(body: &'static str) -> Outgoing {
    let raw = format!(
        "POST /recommendations?count=3 HTTP/1.1\r\nhost: router\r\nx-custom: kept\r\nconnection: keep-alive, X-Hop\r\nx-hop: 1\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    Outgoing::new(&Request::from_bytes(raw.as_bytes()).expect("valid request"), "req-1")
}

const SECOND: Duration = Duration::from_secs(1);

async fn body_of(answer: Answer) -> Vec<u8> {
    match answer.body {
        AnswerBody::Full(bytes) => bytes.to_vec(),
        AnswerBody::Stream(mut stream, _) => {
            let mut all = Vec::new();
            while let Some(chunk) = stream.next().await {
                all.extend_from_slice(&chunk.expect("chunk"));
            }
            all
        }
    }
}

#[tokio::test]
async fn requests_are_forwarded_and_keep_alive_connections_reused() {
    let (endpoint, accepted) = node(|mut s, _| async move {
        while let Some((head, body)) = request(&mut s).await {
            let echo = format!("{head}{}", String::from_utf8_lossy(&body));
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Served-By: node\r\nConnection: keep-alive\r\n\
                 content-length: {}\r\n\r\n{echo}",
                echo.len()
            );
            let (a, b) = answer.as_bytes().split_at(answer.len() / 2);
            write_slowly(&mut s, &[a, b]).await;
        }
    })
    .await;
    let pool = Rc::new(Pool::default());

    for _ in 0..3 {
        let answer = send(&pool, 0, &endpoint, &outgoing(r#"{"user_id":1}"#), SECOND).await.expect("answer");
        assert_eq!(answer.status, 200);
        let names: Vec<_> = answer.headers.iter().map(|(n, _)| String::from_utf8_lossy(n)).collect();
        assert_eq!(names, ["Content-Type"], "hop-by-hop, length and x-served-by are not relayed");
        let text = String::from_utf8(body_of(answer).await).expect("utf-8");
        assert!(text.starts_with("POST /recommendations?count=3 HTTP/1.1\r\n"), "{text}");
        for line in ["host: 127.0.0.1:", "x-custom: kept", "x-request-id: req-1", "content-length: 13"] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert!(!text.contains("connection"), "hop-by-hop request headers are dropped: {text}");
        assert!(!text.contains("x-hop"), "so are those the client named in connection: {text}");
        assert!(text.ends_with(r#"{"user_id":1}"#), "{text}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection served all three");
    assert_eq!(pool.idle(0), 1);
}

#[tokio::test]
async fn chunked_answers_are_decoded_and_leave_the_connection_reusable() {
    let (endpoint, accepted) = node(|mut s, _| async move {
        while request(&mut s).await.is_some() {
            write_slowly(
                &mut s,
                &[
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r",
                    b"\nhello\r\n1",
                    b"1\r\n 0123456789abcdef\r\n0\r\n",
                    b"x-trailer: t\r\n\r\n",
                ],
            )
            .await;
        }
    })
    .await;
    let pool = Rc::new(Pool::default());

    for _ in 0..2 {
        let answer = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
        assert!(matches!(answer.body, AnswerBody::Stream(_, None)), "{:?}", answer.body);
        assert!(answer.headers.is_empty(), "transfer-encoding is hop-by-hop");
        assert_eq!(body_of(answer).await, b"hello 0123456789abcdef");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn close_delimited_and_connection_close_answers_are_read_whole_and_not_reused() {
    let (endpoint, accepted) = node(|mut s, n| async move {
        if request(&mut s).await.is_some() {
            let answer: &[u8] = if n % 2 == 0 {
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"
            } else {
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nclose"
            };
            write_slowly(&mut s, &[answer]).await;
        }
    })
    .await;
    let pool = Rc::new(Pool::default());

    let first = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
    assert_eq!(body_of(first).await, b"until the end");
    let second = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
    assert_eq!(body_of(second).await, b"close");
    assert_eq!(pool.idle(0), 0);
    let third = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
    assert_eq!(body_of(third).await, b"until the end");
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let (endpoint, _) = node(|mut s, _| async move {
        if request(&mut s).await.is_some() {
            let parts: [&[u8]; 2] =
                [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}"];
            write_slowly(&mut s, &parts).await;
        }
    })
    .await;
    let answer =
        send(&Rc::new(Pool::default()), 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
    assert_eq!(answer.status, 404);
    assert_eq!(body_of(answer).await, b"{}");
}

#[tokio::test]
async fn a_pooled_connection_the_node_closed_is_replaced_without_failing() {
    // Each connection serves one request, then the node closes it, with no `connection:
    // close` to warn the client (as after a keep-alive timeout or a restart).
    let (endpoint, accepted) = node(|mut s, _| async move {
        if request(&mut s).await.is_some() {
            write_slowly(&mut s, &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]).await;
        }
    })
    .await;
    let pool = Rc::new(Pool::default());

    for _ in 0..3 {
        let answer = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
        assert_eq!(body_of(answer).await, b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn failures_are_classified() {
    let pool = Rc::new(Pool::default());
    let kind = |r: Result<Answer, (AttemptError, Duration)>| r.map(|_| ()).map_err(|(k, _)| k);

    // Nothing listens: connect failure.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let nowhere = Endpoint::parse(&format!("http://{addr}")).expect("endpoint");
    let r = kind(send(&pool, 0, &nowhere, &outgoing("{}"), SECOND).await);
    assert!(matches!(r, Err(AttemptError::Connect(_))), "{r:?}");

    // Reads the request, never answers: timeout.
    let (hangs, _) = node(|mut s, _| async move {
        let _ = request(&mut s).await;
        std::future::pending::<()>().await;
    })
    .await;
    let r = kind(send(&pool, 1, &hangs, &outgoing("{}"), Duration::from_millis(50)).await);
    assert!(matches!(r, Err(AttemptError::Timeout(_))), "{r:?}");

    // 5xx: a server error; the connection is kept when its body is already there.
    let (fails, accepted) = node(|mut s, _| async move {
        while request(&mut s).await.is_some() {
            write_slowly(&mut s, &[b"HTTP/1.1 503 Unavailable\r\ncontent-length: 4\r\n\r\nbusy"]).await;
        }
    })
    .await;
    for _ in 0..2 {
        let r = kind(send(&pool, 2, &fails, &outgoing("{}"), SECOND).await);
        assert!(matches!(r, Err(AttemptError::ServerError(503))), "{r:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // Garbage, a body cut short, a close before any answer on a new connection: transport.
    for answer in [&b"SMTP ready\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", b""] {
        let (broken, _) = node(move |mut s, _| async move {
            if request(&mut s).await.is_some() {
                write_slowly(&mut s, &[answer]).await;
            }
        })
        .await;
        let r = kind(send(&pool, 3, &broken, &outgoing("{}"), SECOND).await);
        assert!(matches!(r, Err(AttemptError::Transport(_))), "{:?}: {r:?}", String::from_utf8_lossy(answer));
    }
}

#[tokio::test]
async fn large_answers_stream_and_return_the_connection_when_read() {
    const LEN: usize = 3 * BUFFER_LIMIT as usize;
    let (endpoint, accepted) = node(|mut s, _| async move {
        while request(&mut s).await.is_some() {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {LEN}\r\n\r\n");
            let body = vec![b'x'; LEN];
            write_slowly(&mut s, &[head.as_bytes(), &body]).await;
        }
    })
    .await;
    let pool = Rc::new(Pool::default());
    for _ in 0..2 {
        let answer = send(&pool, 0, &endpoint, &outgoing("{}"), SECOND).await.expect("answer");
        assert!(matches!(answer.body, AnswerBody::Stream(_, Some(n)) if n == LEN as u64));
        assert_eq!(body_of(answer).await.len(), LEN);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn endpoints_are_plain_http_urls_only() {
    let e = Endpoint::parse("http://127.0.0.1:8000").expect("plain");
    assert_eq!((e.host.as_str(), e.prefix.as_str()), ("127.0.0.1:8000", ""));
    assert_eq!(e.addr, Addr::Ip("127.0.0.1:8000".parse().expect("addr")));
    let e = Endpoint::parse("http://node.example/georec").expect("plain");
    assert_eq!((e.host.as_str(), e.prefix.as_str()), ("node.example", "/georec"));
    assert_eq!(e.addr, Addr::Name("node.example".into(), 80));
    let e = Endpoint::parse("http://[::1]:81").expect("plain");
    assert_eq!(e.addr, Addr::Ip("[::1]:81".parse().expect("addr")));
    for other in ["https://node.example", "http://user:pw@node.example", "http://n?x=1", "not a url"] {
        assert_eq!(Endpoint::parse(other), None, "{other}");
    }
}

#[test]
fn the_end_of_a_head_is_found_however_it_arrives() {
    for head in [&b"HTTP/1.1 200 OK\r\na: b\r\n\r\nbody"[..], b"HTTP/1.1 200 OK\na: b\n\nbody"] {
        let len = head.len() - 4;
        for step in 1..=3 {
            let mut scanned = 0;
            let mut found = None;
            for end in (0..=head.len()).step_by(step) {
                found = head_len(&head[..end], scanned);
                if found.is_some() {
                    assert!(end >= len, "found before the end: {end}");
                    break;
                }
                scanned = end;
            }
            assert_eq!(found, Some(len), "{:?} in steps of {step}", String::from_utf8_lossy(head));
        }
    }
    assert_eq!(head_len(b"HTTP/1.1 200 OK\r\na: b\r\n", 0), None);
}
