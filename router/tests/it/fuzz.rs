//! Property-based: byte streams mixing valid requests (in several framings), requests with
//! broken framing or junk header lines, and random bytes, cut at random points and written
//! with tiny pauses. Whatever comes, the router answers or closes within the client timeout,
//! stays up, and forwards no more requests than the stream held valid ones (up to the first
//! that ends the connection).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use router::settings::Tuning;

use crate::helpers::raw::{post, spawn_router_over, RawClient, ScriptedNode};
use crate::helpers::{Opts, TestRouter};

const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);
/// What the router may take beyond the client timeout to close a connection.
const MARGIN: Duration = Duration::from_millis(700);
/// Cases per run: each costs about the client timeout, so the run stays well under a minute.
const CASES: u32 = 48;

#[derive(Debug, Clone)]
enum Segment {
    /// A complete, valid request: the router may forward it.
    Valid {
        framing: Framing,
        user: u16,
        close: bool,
    },
    /// A request whose framing must be refused.
    BadFraming(BadFraming),
    /// A request with a line among its headers that is no header.
    Junk(JunkLine),
    Noise(Vec<u8>),
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length,
    /// Chunks of `piece` bytes, with an extension on each when `ext`.
    Chunked {
        piece: usize,
        ext: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum BadFraming {
    LengthAndChunked,
    TwoLengths,
    SignedLength,
    SignedChunkSize,
    Gzip,
}

#[derive(Debug, Clone)]
enum JunkLine {
    NoColon(String),
    SpaceBeforeColon(String),
    ControlByte(u8),
}

#[derive(Debug, Clone)]
struct Case {
    segments: Vec<Segment>,
    cuts: Vec<Index>,
    pause_ms: u64,
}

fn segment() -> impl Strategy<Value = Segment> {
    let framing = prop_oneof![
        Just(Framing::Length),
        (1usize..12, any::<bool>()).prop_map(|(piece, ext)| Framing::Chunked { piece, ext }),
    ];
    let bad = prop::sample::select(vec![
        BadFraming::LengthAndChunked,
        BadFraming::TwoLengths,
        BadFraming::SignedLength,
        BadFraming::SignedChunkSize,
        BadFraming::Gzip,
    ]);
    // Control bytes a header value may not hold (tab, LF and CR left out).
    let controls: Vec<u8> =
        (0u8..0x20).filter(|b| ![b'\t', b'\n', b'\r'].contains(b)).chain([0x7f]).collect();
    let junk = prop_oneof![
        "[a-z]{1,12}".prop_map(JunkLine::NoColon),
        "[A-Za-z-]{1,12}".prop_map(JunkLine::SpaceBeforeColon),
        prop::sample::select(controls).prop_map(JunkLine::ControlByte),
    ];
    prop_oneof![
        3 => (framing, any::<u16>(), prop::bool::weighted(0.15))
            .prop_map(|(framing, user, close)| Segment::Valid { framing, user, close }),
        2 => bad.prop_map(Segment::BadFraming),
        1 => junk.prop_map(Segment::Junk),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Segment::Noise),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (prop::collection::vec(segment(), 1..6), prop::collection::vec(any::<Index>(), 0..8), 0u64..3)
        .prop_map(|(segments, cuts, pause_ms)| Case { segments, cuts, pause_ms })
}

fn chunked_body(body: &str, piece: usize, ext: bool) -> String {
    let mut out = String::new();
    for part in body.as_bytes().chunks(piece) {
        let ext = if ext { ";e=1" } else { "" };
        out += &format!("{:x}{ext}\r\n{}\r\n", part.len(), String::from_utf8_lossy(part));
    }
    out + "0\r\n\r\n"
}

impl Segment {
    fn bytes(&self) -> Vec<u8> {
        const LINE: &str = "POST /recommendations HTTP/1.1\r\nHost: r\r\n";
        let body = r#"{"user_id": "fuzz"}"#;
        let n = body.len();
        match self {
            Segment::Valid { framing, user, close } => {
                let body = format!(r#"{{"user_id": "fuzz-{user}"}}"#);
                let close = if *close { "Connection: close\r\n" } else { "" };
                match framing {
                    Framing::Length => {
                        format!("{LINE}{close}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    Framing::Chunked { piece, ext } => {
                        let chunks = chunked_body(&body, *piece, *ext);
                        format!("{LINE}{close}Transfer-Encoding: chunked\r\n\r\n{chunks}").into_bytes()
                    }
                }
            }
            Segment::BadFraming(bad) => match bad {
                BadFraming::LengthAndChunked => format!(
                    "{LINE}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                    chunked_body(body, 8, false)
                ),
                BadFraming::TwoLengths => {
                    format!("{LINE}Content-Length: {n}\r\nContent-Length: {}\r\n\r\n{body}", n + 1)
                }
                BadFraming::SignedLength => format!("{LINE}Content-Length: +{n}\r\n\r\n{body}"),
                BadFraming::SignedChunkSize => {
                    format!("{LINE}Transfer-Encoding: chunked\r\n\r\n+{n:x}\r\n{body}\r\n0\r\n\r\n")
                }
                BadFraming::Gzip => format!("{LINE}Transfer-Encoding: gzip\r\n\r\n{body}"),
            }
            .into_bytes(),
            Segment::Junk(junk) => {
                let line = match junk {
                    JunkLine::NoColon(word) => word.clone().into_bytes(),
                    JunkLine::SpaceBeforeColon(name) => format!("{name} : v").into_bytes(),
                    JunkLine::ControlByte(b) => [&b"X-Junk: a"[..], &[*b], b"b"].concat(),
                };
                [LINE.as_bytes(), &line, format!("\r\nContent-Length: {n}\r\n\r\n{body}").as_bytes()].concat()
            }
            Segment::Noise(bytes) => bytes.clone(),
        }
    }
}

/// How many requests of `segments` the router may forward: the valid ones, up to the first
/// that ends the connection (a refused one, or one with `Connection: close`). Noise does not
/// end it: it may form a request of its own (never a forwarded one) or blank lines.
fn forwardable(segments: &[Segment]) -> usize {
    let mut valid = 0;
    for s in segments {
        match s {
            Segment::Valid { close, .. } => {
                valid += 1;
                if *close {
                    break;
                }
            }
            // RFC 9112 6.1 lets a server take a length beside `chunked` by the chunked coding
            // alone, as long as it closes the connection after: one request, then the end.
            Segment::BadFraming(BadFraming::LengthAndChunked) => {
                valid += 1;
                break;
            }
            Segment::BadFraming(_) | Segment::Junk(_) => break,
            Segment::Noise(_) => {}
        }
    }
    valid
}

/// One case on a new connection, then a normal request on another.
async fn check(router: &TestRouter, node: &ScriptedNode, case: Case) -> Result<(), TestCaseError> {
    // Arrange
    let stream: Vec<u8> = case.segments.iter().flat_map(Segment::bytes).collect();
    let cuts: Vec<usize> = case.cuts.iter().map(|i| i.index(stream.len())).collect();
    let valid = forwardable(&case.segments);
    let before = node.count();
    let mut client = RawClient::connect(router).await;

    // Act: writes fail once the router has closed; then the rest is moot.
    let _ = client.send_split(&stream, &cuts, Duration::from_millis(case.pause_ms)).await;
    let written = Instant::now();
    let closed = client.closed_within(CLIENT_TIMEOUT + MARGIN).await;
    let held = written.elapsed();
    let forwarded = node.count() - before;
    let mut after = RawClient::connect(router).await;
    after
        .send(&post("/recommendations", r#"{"user_id": "after"}"#))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let sanity = after.response(Duration::from_secs(3)).await;

    // Assert
    let stream_text = String::from_utf8_lossy(&stream);
    prop_assert!(
        forwarded <= valid,
        "{forwarded} requests forwarded, at most {valid} allowed, from {stream_text:?}"
    );
    let sanity =
        sanity.map_err(|e| TestCaseError::fail(format!("router down after {stream_text:?}: {e:?}")))?;
    prop_assert_eq!(sanity.status, 200, "after {:?}: {:?}", stream_text, sanity);
    prop_assert!(closed.is_some(), "connection still open {held:?} after the last byte of {stream_text:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_byte_streams_are_answered_or_closed_in_time_and_never_smuggle() {
    // Arrange: one router for every case.
    let node = ScriptedNode::start("a").await;
    let tuning = Tuning { client_timeout_ms: CLIENT_TIMEOUT.as_millis() as u64, ..Opts::default().tuning };
    let router = spawn_router_over(&[(&node, &[])], Opts { tuning, ..Opts::default() }).await;
    let runtime = tokio::runtime::Handle::current();

    // Act: the runner blocks, so it runs on a thread of its own.
    let result = tokio::task::spawn_blocking(move || {
        let config =
            Config { cases: CASES, failure_persistence: None, max_shrink_iters: 8, ..Config::default() };
        TestRunner::new(config).run(&case(), |case| runtime.block_on(check(&router, &node, case)))
    })
    .await
    .expect("runner thread");

    // Assert
    if let Err(e) = result {
        panic!("{e}");
    }
}
