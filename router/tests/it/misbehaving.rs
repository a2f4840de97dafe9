//! Nodes that break HTTP behind the router (extra answers, impossible status lines, huge
//! heads, silent closes, slow bodies, hop-by-hop tricks): what the clients get must stay
//! theirs, framed and bounded. Two regions, `a` and `b`, so the router can fail over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use router::regions::state::RegionState;
use router::settings::Tuning;
use serde_json::{json, Value};

use crate::helpers::raw::{
    spawn_router_over, RawClient, RawError, RawResponse, Script, ScriptedNode, SLOW_BODY,
};
use crate::helpers::{Opts, TestRouter};

const PROMPT: Duration = Duration::from_secs(5);

fn opts() -> Opts {
    Opts { tuning: Tuning { client_timeout_ms: 500, ..Opts::default().tuning }, ..Opts::default() }
}

/// Regions `a` and `b` on scripted nodes that echo, each failing over to the other.
async fn two_regions(opts: Opts) -> (ScriptedNode, ScriptedNode, TestRouter) {
    let (a, b) = (ScriptedNode::start("a").await, ScriptedNode::start("b").await);
    let router = spawn_router_over(&[(&a, &["b"]), (&b, &["a"])], opts).await;
    (a, b, router)
}

/// `POST path` of `body` hinted to `hint`, on a new raw connection.
async fn raw_post(
    router: &TestRouter,
    path: &str,
    hint: &str,
    body: &Value,
) -> Result<RawResponse, RawError> {
    let body = body.to_string();
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: r\r\nX-Region-Hint: {hint}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = RawClient::connect(router).await;
    client.send(raw.as_bytes()).await.expect("request written");
    client.response(PROMPT).await
}

/// A POST through the router's reqwest client: status and JSON body (`Null` if none).
async fn post(client: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/recommendations"))
        .header("x-region-hint", "a")
        .json(body)
        .send()
        .await
        .expect("router answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `tasks` clients at once send `rounds` requests each, every one for a user of its own; with
/// `marker`, every other request names that script (and expects 204 with no body). Returns
/// every answer that was not for its own user.
async fn wrong_answers(
    router: &TestRouter,
    tasks: usize,
    rounds: usize,
    marker: Option<&'static str>,
) -> Vec<String> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (client, base) = (router.client.clone(), router.base.clone());
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                for r in 0..rounds {
                    let user = format!("user-{t}-{r}");
                    if let Some(script) = marker {
                        let (status, body) =
                            post(&client, &base, &json!({"user_id": user, "script": script})).await;
                        if status != 204 || !body.is_null() {
                            wrong.push(format!("{user} ({script}): {status} {body}"));
                        }
                    }
                    let (status, body) = post(&client, &base, &json!({"user_id": user})).await;
                    if status != 200 || body["user_id"] != user.as_str() {
                        wrong.push(format!("{user}: {status} {body}"));
                    }
                }
                wrong
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for h in handles {
        wrong.extend(h.await.expect("client task"));
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_answer_after_a_complete_one_never_reaches_another_client() {
    // Arrange: both nodes follow every answer with a whole second one (for "smuggled").
    let (a, b, router) = two_regions(opts()).await;
    a.set(Script::ExtraResponse);
    b.set(Script::ExtraResponse);

    // Act
    let mut wrong = wrong_answers(&router, 1, 30, None).await;
    wrong.extend(wrong_answers(&router, 4, 15, None).await);

    // Assert
    assert!(wrong.is_empty(), "{} answers for someone else: {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    assert!(a.count() + b.count() >= 90, "every request reached a node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_answer_on_an_idle_connection_never_reaches_the_next_client() {
    // Arrange: the extra answer comes 20 ms after the real one, while the connection idles;
    // each client comes 100 ms after the previous one (sooner, no client could tell).
    let (a, b, router) = two_regions(opts()).await;
    a.set(Script::ExtraResponseLater { gap_ms: 20 });
    b.set(Script::ExtraResponseLater { gap_ms: 20 });

    // Act
    let mut wrong = Vec::new();
    for i in 0..10 {
        let user = format!("user-{i}");
        let (status, body) = post(&router.client, &router.base, &json!({"user_id": user})).await;
        if status != 200 || body["user_id"] != user.as_str() {
            wrong.push(format!("{user}: {status} {body}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert!(wrong.is_empty(), "{} answers for someone else: {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_204_with_a_body_never_leaks_into_later_answers() {
    // Arrange: requests marked `no_content_with_body` get a 204 followed by an answer for
    // "smuggled"; the ones after them must still get their own.
    let (_a, _b, router) = two_regions(opts()).await;

    // Act
    let mut wrong = wrong_answers(&router, 1, 20, Some("no_content_with_body")).await;
    wrong.extend(wrong_answers(&router, 3, 10, Some("no_content_with_body")).await);

    // Assert
    assert!(wrong.is_empty(), "{} wrong answers: {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
}

/// Node `a` answers every request with `script` (a broken head): each client gets a framed
/// 502 with a JSON body or b's answer, promptly, and never the broken head.
async fn a_broken_head_gives_a_502_or_the_other_region(script: Script) {
    // Arrange
    let (a, _b, router) = two_regions(opts()).await;
    a.set(script);

    for i in 0..6 {
        // Act
        let started = Instant::now();
        let answer = raw_post(&router, "/recommendations", "a", &json!({"user_id": i}))
            .await
            .unwrap_or_else(|e| panic!("request {i}: no valid answer: {e:?}"));

        // Assert
        assert!(started.elapsed() < PROMPT, "request {i} took {:?}", started.elapsed());
        assert!(answer.head_len < 64 * 1024, "request {i}: a {} byte head relayed", answer.head_len);
        assert_eq!(answer.header("x-huge"), None, "request {i}");
        match answer.status {
            502 => assert!(answer.json()["error"].is_string(), "request {i}: JSON error body: {answer:?}"),
            200 => {
                assert_eq!(answer.header("x-served-by"), Some("b"), "request {i}: {answer:?}");
                assert_eq!(answer.json()["user_id"], i, "request {i}: {answer:?}");
            }
            _ => panic!("request {i}: expected 502 or b's 200: {answer:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_000_gives_a_502_or_the_other_region() {
    a_broken_head_gives_a_502_or_the_other_region(Script::Status("000")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_600_gives_a_502_or_the_other_region() {
    a_broken_head_gives_a_502_or_the_other_region(Script::Status("600")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_digit_status_gives_a_502_or_the_other_region() {
    a_broken_head_gives_a_502_or_the_other_region(Script::Status("99")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_response_head_gives_a_502_or_the_other_region() {
    a_broken_head_gives_a_502_or_the_other_region(Script::HugeHead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_without_answer_retries_recommendations_but_never_events() {
    // Arrange: a's failures never eject it, so every request below is tried on a first; a
    // served one request before, so the router may hold a kept-alive connection to it.
    let (a, b, router) = two_regions(Opts { eject_after: 1_000, ..opts() }).await;
    let warm = raw_post(&router, "/recommendations", "a", &json!({"user_id": "warm"})).await.expect("answer");
    assert_eq!(warm.header("x-served-by"), Some("a"), "{warm:?}");
    a.set(Script::CloseWithoutAnswer);
    let event = json!({"user_id": "u1", "item_id": "i1", "type": "view"});
    let (a_before, b_before) = (a.count(), b.count());

    // Act
    let stored = raw_post(&router, "/events", "a", &event).await.expect("answer to the event");
    let (a_events, b_events) = (a.count() - a_before, b.count() - b_before);
    let recommended =
        raw_post(&router, "/recommendations", "a", &json!({"user_id": 21})).await.expect("answer");

    // Assert
    assert!([502, 504].contains(&stored.status), "{stored:?}");
    assert_eq!(stored.json()["error"], "outcome_unknown", "{stored:?}");
    assert_eq!(a_events, 1, "a received the event exactly once: {:?}", a.received());
    assert_eq!(b_events, 0, "b never received it: {:?}", b.received());
    assert_eq!(recommended.status, 200, "{recommended:?}");
    assert_eq!(recommended.header("x-served-by"), Some("b"), "{recommended:?}");
    assert_eq!(recommended.json()["user_id"], 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_large_body_arrives_whole_past_the_attempt_deadline() {
    // Arrange: a 300 ms attempt deadline; the node sends its head at once, then 1 MB in 20
    // pieces 50 ms apart (about 1 s in all, each gap short).
    let mut opts = Opts { request_timeout_ms: 300, ..opts() };
    opts.tuning.attempt_timeout_floor_ms = 300;
    let (a, _b, router) = two_regions(opts).await;
    a.set(SLOW_BODY);
    let Script::SlowBody { total, .. } = SLOW_BODY else { unreachable!("a slow body") };

    // Act
    let started = Instant::now();
    let answer = raw_post(&router, "/recommendations", "a", &json!({"user_id": 22}))
        .await
        .unwrap_or_else(|e| panic!("body cut after {:?}: {e:?}", started.elapsed()));

    // Assert
    assert_eq!((answer.status, answer.header("x-served-by")), (200, Some("a")), "{:?}", answer.headers);
    if let Some(len) = answer.header("content-length") {
        assert_eq!(len, total.to_string());
    }
    assert_eq!(answer.body.len(), total, "the whole body");
    assert!(started.elapsed() > Duration::from_millis(600), "the transfer did outlast the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_the_node_names_in_connection_are_not_relayed() {
    let (a, _b, router) = two_regions(opts()).await;
    a.set(Script::ConnectionNamed);

    let answer = raw_post(&router, "/recommendations", "a", &json!({"user_id": 23})).await.expect("answer");

    assert_eq!((answer.status, answer.header("x-served-by")), (200, Some("a")), "{answer:?}");
    assert_eq!(answer.header("x-secret"), None, "{:?}", answer.headers);
    assert!(!answer.header("connection").unwrap_or("").to_ascii_lowercase().contains("x-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_death_does_not_take_every_region_out() {
    // Arrange: one request (marked `status_99`) fails on every node; normal traffic goes on,
    // moderate (two clients, a request each every ~100 ms): dense traffic would reset every
    // consecutive-failure count between two requests of death and hide the ejections.
    let (_a, _b, router) = two_regions(opts()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let normal: Vec<_> = (0..2)
        .map(|t| {
            let (client, base, stop) = (router.client.clone(), router.base.clone(), stop.clone());
            tokio::spawn(async move {
                let (begun, mut outcomes) = (Instant::now(), Vec::new());
                while !stop.load(Ordering::SeqCst) && begun.elapsed() < Duration::from_secs(10) {
                    let user = format!("normal-{t}-{}", outcomes.len());
                    let resp = client
                        .post(format!("{base}/recommendations"))
                        .json(&json!({"user_id": user}))
                        .send()
                        .await;
                    let outcome = match resp {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            (status, body["error"].as_str().unwrap_or("").to_string())
                        }
                        Err(e) => (0, e.to_string()),
                    };
                    outcomes.push(outcome);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcomes
            })
        })
        .collect();

    // Act: 30 requests of death over about a second.
    let mut death_statuses = Vec::new();
    for _ in 0..30 {
        let resp = router.post(
            "/recommendations",
            &[],
            json!({"user_id": "death", "script": "status_99"}).to_string(),
        );
        death_statuses.push(resp.await.status);
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    let states = (router.state_of("a"), router.state_of("b"));
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for h in normal {
        outcomes.extend(h.await.expect("client task"));
    }

    // Assert
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let no_region: Vec<_> = outcomes.iter().filter(|(_, e)| e == "no_healthy_region").collect();
    assert!(outcomes.len() >= 10, "normal traffic went on: {} requests", outcomes.len());
    assert!(
        ok * 100 >= outcomes.len() * 95,
        "only {ok} of {} normal requests succeeded: {:?}",
        outcomes.len(),
        outcomes.iter().filter(|(s, _)| *s != 200).take(5).collect::<Vec<_>>()
    );
    assert!(no_region.is_empty(), "{} normal requests found no healthy region", no_region.len());
    assert!(
        states.0 == RegionState::Healthy || states.1 == RegionState::Healthy,
        "every region out after the requests of death: {states:?}"
    );
    assert!(
        death_statuses.iter().all(|s| *s >= 500),
        "the request of death never succeeds: {death_statuses:?}"
    );
}
