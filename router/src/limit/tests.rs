use std::num::NonZeroU32;

use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::limit::key::API_KEY;

fn config(per_second: u32, burst: u32, max_keys: usize) -> RateLimitConfig {
    let limit = ClassLimit {
        per_second: NonZeroU32::new(per_second).expect("rate"),
        burst: NonZeroU32::new(burst).expect("burst"),
    };
    RateLimitConfig {
        enabled: true,
        max_keys,
        reads: limit,
        events: limit,
        admin: limit,
        ..Default::default()
    }
}

fn limiter(per_second: u32, burst: u32, max_keys: usize) -> (Arc<Limiter>, Metrics) {
    let metrics = Metrics::new(&[]).expect("metrics");
    let l = Limiter::new(&config(per_second, burst, max_keys), &metrics).expect("limiter").expect("enabled");
    (l, metrics)
}

fn request(path: &'static str, api_key: &str) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(API_KEY, HeaderValue::from_str(api_key).expect("key"));
    Request::new(Method::POST, path, headers, "")
}

fn read(api_key: &str) -> Request {
    request("/recommendations", api_key)
}

#[test]
fn routes_fall_in_their_class() {
    let cases = [
        (Method::POST, "/recommendations", Some(Class::Reads)),
        (Method::POST, "/api/v1/recommendations/user/7", Some(Class::Reads)),
        (Method::POST, "/api/v1/recommendations/trending", Some(Class::Reads)),
        (Method::POST, "/api/v1/recommendations/clear-cache", Some(Class::Admin)),
        (Method::POST, "/events", Some(Class::Events)),
        (Method::POST, "/failover", Some(Class::Admin)),
        (Method::DELETE, "/users/42", Some(Class::Admin)),
        (Method::GET, "/regions", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/recommendations", None),
    ];
    for (method, path, class) in cases {
        assert_eq!(Class::of(&method, path), class, "{method} {path}");
    }
}

#[test]
fn over_the_limit_answers_429_with_retry_after_and_ratelimit_fields() {
    let (l, metrics) = limiter(1, 2, 100);
    assert!(l.check(&read("a")).is_none());
    assert!(l.check(&read("a")).is_none());
    let refused = l.check(&read("a")).expect("third within a second is refused");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some(&b"1"[..]));
    assert_eq!(refused.header("ratelimit-policy"), Some(&br#""reads";q=2;w=2"#[..]));
    assert_eq!(refused.header("ratelimit"), Some(&br#""reads";r=0;t=1"#[..]));
    let body: serde_json::Value = serde_json::from_slice(refused.full_body().expect("body")).expect("json");
    assert_eq!(body["error"], "rate_limited");
    // Another client, and the same client's other classes, are untouched.
    assert!(l.check(&read("b")).is_none());
    assert!(l.check(&request("/events", "a")).is_none());
    let text = metrics.render().expect("render");
    assert!(text.contains("router_rate_limited_total{class=\"reads\"} 1"), "{text}");
    let top = l.view().top_limited;
    assert_eq!((top.len(), top[0].reads), (1, 1));
}

#[test]
fn past_max_keys_new_clients_share_one_bucket_and_tracked_ones_keep_theirs() {
    let (l, metrics) = limiter(1, 1, 2);
    assert!(l.check(&read("a")).is_none());
    assert!(l.check(&read("b")).is_none());
    // "c" and "d" are new while two keys are tracked: one bucket of one request between them.
    assert!(l.check(&read("c")).is_none());
    assert!(l.check(&read("d")).is_some());
    assert!(l.buckets[0].limiter.len() <= 3, "two keys and the shared bucket");
    let text = metrics.render().expect("render");
    assert!(text.contains("router_rate_limit_overflow_total{class=\"reads\"} 2"), "{text}");
}

#[test]
fn disabled_means_no_limiter() {
    let metrics = Metrics::new(&[]).expect("metrics");
    assert!(Limiter::new(&RateLimitConfig::default(), &metrics).expect("ok").is_none());
}

#[test]
fn the_sweep_forgets_clients_whose_bucket_is_full_again() {
    // 1000 a second: a bucket of one refills within a millisecond.
    let (l, metrics) = limiter(1000, 1, 100);
    for key in ["a", "b", "c"] {
        assert!(l.check(&read(key)).is_none());
    }
    assert_eq!(l.buckets[0].limiter.len(), 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !l.buckets[0].limiter.is_empty() {
        assert!(std::time::Instant::now() < deadline, "idle keys never forgotten");
        std::thread::sleep(std::time::Duration::from_millis(1));
        l.sweep();
    }
    let text = metrics.render().expect("render");
    assert!(text.contains("router_rate_limit_keys{class=\"reads\"} 0"), "{text}");
}
