//! `loadtest shop`: the taste rule on small models, the Wilson interval, and runs against a
//! fake region node on loopback that answers with arms and records the events it is sent.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use loadtest::client::ErrorKind;
use loadtest::plan::Bound;
use loadtest::shop::plan::ShopPlan;
use loadtest::shop::report::wilson;
use loadtest::shop::report::ShopReport;
use loadtest::shop::taste::taste_of;
use loadtest::shop::taste::{Shopper, World};
use model::rollout::Arm;
use model_sync::dataset::{Dataset, ItemMeta};
use serde_json::{json, Value};

fn meta(category: Option<&str>) -> ItemMeta {
    ItemMeta { name: None, categories: category.into_iter().map(str::to_string).collect() }
}

/// alice: books 6, music 1; bob: books 3, music 2; carol: music 1, toys 1; dave: only an
/// uncategorised item.
fn small_model() -> model::model::Model {
    let mut b = Dataset::builder();
    for (item, cat) in [
        ("b1", Some("books")),
        ("b2", Some("books")),
        ("m1", Some("music")),
        ("m2", Some("music")),
        ("t1", Some("toys")),
        ("x1", None),
    ] {
        b.meta(item, meta(cat));
    }
    let ts = 1_700_000_000;
    for (user, item, w) in [
        ("alice", "b1", 5.0),
        ("alice", "b2", 1.0),
        ("alice", "m1", 1.0),
        ("bob", "b1", 3.0),
        ("bob", "m1", 1.0),
        ("bob", "m2", 1.0),
        ("carol", "t1", 1.0),
        ("carol", "m2", 1.0),
        ("dave", "x1", 1.0),
    ] {
        b.push(user, item, w, ts);
    }
    model_sync::build::build(&b.finish(), &Default::default()).expect("build").model
}

fn taste(model: &model::model::Model, user: &str) -> Vec<String> {
    taste_of(model, model.user_index(user).expect("user in model"))
}

#[test]
fn taste_is_the_heaviest_category_and_a_second_within_a_third() {
    let m = small_model();
    assert_eq!(taste(&m, "alice"), ["books"], "music weighs 1/6 of books");
    assert_eq!(taste(&m, "bob"), ["books", "music"], "music weighs 2/3 of books");
    assert_eq!(taste(&m, "carol"), ["music", "toys"], "a tie: both, the first name first");
    assert!(taste(&m, "dave").is_empty(), "no categorised item, no taste");

    let world = World::from_model(&m, None, 1).unwrap();
    let ids: Vec<&str> = world.shoppers.iter().map(|s| s.user_id.as_str()).collect();
    assert_eq!(ids, ["alice", "bob", "carol"], "dave has no taste and does not shop");
    assert_eq!(world.categories.get("m2").map(String::as_str), Some("music"));
    assert_eq!(world.items.len(), m.items.len());

    let two = World::from_model(&m, Some(2), 7).unwrap();
    assert_eq!(two.shoppers.len(), 2);
    assert_eq!(two.shoppers, World::from_model(&m, Some(2), 7).unwrap().shoppers, "seeded choice");
    assert!(World::from_model(&m, Some(0), 7).is_err());
}

#[test]
fn tastes_of_generated_users_have_one_or_two_categories_about_evenly() {
    use model_sync::generate::{generate, GenerateParams};
    // Half the generated users prefer two categories, half one.
    let data =
        generate(&GenerateParams { users: 400, items: 300, categories: 8, ..GenerateParams::default() });
    let built = model_sync::build::build(&data, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("model.bin")).unwrap();
    model::blob::encode(&built.model, file).unwrap();

    let world = World::load(dir.path(), None, 1).unwrap();
    assert_eq!(world.shoppers.len(), 400, "every generated item has a category");
    let two = world.shoppers.iter().filter(|s| s.taste.len() == 2).count() as f64 / 400.0;
    assert!((0.3..0.7).contains(&two), "share of two-category tastes {two}");
    assert!(World::load(&dir.path().join("missing"), None, 1).is_err());
}

#[test]
fn wilson_interval_matches_known_values() {
    let close = |got: Option<(f64, f64)>, want: (f64, f64)| {
        let got = got.expect("an interval");
        assert!((got.0 - want.0).abs() < 1e-4 && (got.1 - want.1).abs() < 1e-4, "{got:?} != {want:?}");
    };
    // Newcombe (1998), method 3: 81/263 -> 0.2553..0.3662.
    close(wilson(81, 263), (0.2553, 0.3662));
    close(wilson(5, 10), (0.2366, 0.7634));
    close(wilson(20, 100), (0.1334, 0.2888));
    close(wilson(0, 10), (0.0, 0.2775));
    close(wilson(10, 10), (0.7225, 1.0));
    assert_eq!(wilson(0, 0), None);
}

/// The fake node's record of what it answered and what it was sent.
#[derive(Debug, Default)]
struct Seen {
    /// Answers by (model version, arm).
    answers: BTreeMap<(String, String), u64>,
    /// Accepted events: (user, item, type).
    events: Vec<(String, String, String)>,
    /// Events refused with 503.
    refused: u64,
    /// Answers to the flip user so far.
    flips: u64,
}

struct FakeNode {
    url: String,
    seen: Arc<Mutex<Seen>>,
    handle: ServerHandle,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// Items every answer holds: p00..p08 (even: books, odd: music) and `new-1`, unknown to the
/// world, which only the answer says is a book.
const ITEMS: [&str; 10] = ["p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "new-1"];

/// s0..s5: stable v1 (s0's answers carry no `arm`, as older nodes send); s6..s8: candidate
/// v2; s9 alternates between the two (a broken split); e500: always 500. Events of s5 are
/// refused with 503; events must be valid (type, ids, ts within 300 s of now).
fn start_fake() -> FakeNode {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake node");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(data.clone()))
            .route("/recommendations", web::post().to(recommend))
            .route("/events", web::post().to(event))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    FakeNode { url, seen, handle }
}

async fn recommend(body: web::Json<Value>, seen: web::Data<Arc<Mutex<Seen>>>) -> HttpResponse {
    let user = body["user_id"].as_str().unwrap_or_default().to_string();
    if user == "e500" {
        return HttpResponse::InternalServerError().json(json!({"error": "boom"}));
    }
    let mut s = seen.lock().expect("fake state");
    let (version, arm) = match user.as_str() {
        "s6" | "s7" | "s8" => ("v2", "candidate"),
        "s9" => {
            s.flips += 1;
            if s.flips.is_multiple_of(2) {
                ("v2", "candidate")
            } else {
                ("v1", "stable")
            }
        }
        _ => ("v1", "stable"),
    };
    *s.answers.entry((version.to_string(), arm.to_string())).or_default() += 1;
    drop(s);
    let items: Vec<Value> = ITEMS
        .iter()
        .enumerate()
        .map(|(i, id)| match *id {
            "new-1" => json!({"item_id": id, "score": 0.1, "category": "books"}),
            _ => json!({"item_id": id, "score": 1.0 - i as f64 / 10.0}),
        })
        .collect();
    let mut answer = json!({
        "user_id": user, "region": "local", "model_version": version, "items": items,
        "strategy": "knn", "source": "model", "took_us": 7, "arm": arm
    });
    if user == "s0" {
        answer.as_object_mut().expect("an object").remove("arm");
    }
    HttpResponse::Ok().json(answer)
}

async fn event(body: web::Json<Value>, seen: web::Data<Arc<Mutex<Seen>>>) -> HttpResponse {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    let (user, item, kind) = (field("user_id"), field("item_id"), field("type"));
    let ts = body["ts"].as_i64().unwrap_or(0);
    let valid = matches!(kind.as_str(), "view" | "add_to_cart" | "purchase")
        && !user.is_empty()
        && !item.is_empty()
        && ts > now - 300
        && ts <= now + 300;
    if !valid {
        return HttpResponse::UnprocessableEntity().json(json!({"error": "invalid", "body": body.0}));
    }
    let mut s = seen.lock().expect("fake state");
    if user == "s5" {
        s.refused += 1;
        return HttpResponse::ServiceUnavailable().json(json!({"error": "redis down"}));
    }
    s.events.push((user, item, kind));
    HttpResponse::Ok().json(json!({"accepted": 1, "event_ids": ["1-0"], "region": "local", "took_us": 3}))
}

/// s0..s9 and e500, with tastes: books (even), music (odd), both for s2.
fn world() -> World {
    let mut shoppers: Vec<Shopper> = (0..10)
        .map(|i| Shopper {
            user_id: format!("s{i}"),
            taste: vec![if i % 2 == 0 { "books" } else { "music" }.to_string()],
        })
        .collect();
    shoppers[2].taste.push("music".into());
    shoppers.push(Shopper { user_id: "e500".into(), taste: vec!["books".into()] });
    let categories: HashMap<String, String> = (0..20)
        .map(|i| (format!("p{i:02}"), if i % 2 == 0 { "books" } else { "music" }.to_string()))
        .collect();
    World::new(shoppers, categories).expect("a world")
}

fn plan(target: &str, sessions: u64, p_match: f64, p_noise: f64) -> ShopPlan {
    ShopPlan {
        target: target.to_string(),
        rate: 400.0,
        bound: Bound::new(Some(Duration::from_secs(5)), Some(sessions)),
        max_in_flight: 1000,
        timeout: Duration::from_secs(2),
        count: 10,
        p_match,
        p_noise,
        seed: 9,
        region: None,
        homes: Vec::new(),
    }
}

fn row<'a>(report: &'a ShopReport, version: &str, arm: Arm) -> &'a loadtest::shop::report::ArmRow {
    report.arms.iter().find(|r| r.model_version == version && r.arm == arm).expect("row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_go_to_taste_matching_items_counted_per_arm_and_a_broken_split_is_caught() {
    let fake = start_fake();
    let world = world();
    let plan = plan(&fake.url, 400, 0.5, 0.0);

    let tally = loadtest::shop::engine::run(&plan, &world).await.unwrap();
    let report = ShopReport::new(&plan, &world, &tally);
    let seen = fake.seen.lock().expect("fake state");

    // Every session is accounted for: answered, failed with 500, or (if the box is slow) overload.
    assert_eq!(report.sessions, 400);
    let failed: u64 = report.failures.recommendations.values().sum();
    assert_eq!(report.totals.sessions + failed, 400);
    assert!(report.failures.recommendations.get(ErrorKind::Http5xx.as_str()).copied().unwrap_or(0) > 10);

    // Counts per arm are what the node answered; s0 sent no arm and counts as stable.
    let answered: BTreeMap<(String, String), u64> = report
        .arms
        .iter()
        .map(|r| ((r.model_version.clone(), r.arm.as_str().to_string()), r.figures.sessions))
        .collect();
    assert_eq!(answered, seen.answers);
    assert_eq!(report.arms.len(), 2);
    let (stable, candidate) = (row(&report, "v1", Arm::Stable), row(&report, "v2", Arm::Candidate));
    assert_eq!((stable.figures.users, candidate.figures.users), (7, 4), "s0-s5 + s9; s6-s8 + s9");
    assert_eq!((stable.users_share, candidate.users_share), (0.7, 0.4));

    // Events only on items of the shopper's taste (new-1 is a book by the answer's word).
    let taste: HashMap<&str, &Shopper> = world.shoppers.iter().map(|s| (s.user_id.as_str(), s)).collect();
    for (user, item, _) in &seen.events {
        let category = world.category_of(item, (item == "new-1").then_some("books")).unwrap();
        assert!(taste[user.as_str()].likes(category), "{user} posted on {item} ({category})");
    }
    // ... about p_match of them, every accepted one a conversion, refused ones failures.
    assert_eq!(report.totals.conversions, seen.events.len() as u64);
    assert_eq!(report.failures.events.get(ErrorKind::Http5xx.as_str()).copied().unwrap_or(0), seen.refused);
    assert!(seen.refused > 0);
    let posted = (seen.events.len() as u64 + seen.refused) as f64 / report.totals.matched_items as f64;
    assert!((0.44..0.56).contains(&posted), "posted on {posted} of matching items, want ~0.5");
    assert_eq!(report.totals.noise_events, 0);
    let views = seen.events.iter().filter(|e| e.2 == "view").count() as f64 / seen.events.len() as f64;
    assert!((0.5..0.7).contains(&views), "view share {views}");
    // Books lovers are shown 6 matching items (with new-1), music lovers 4, s2 all 10.
    let conv = &report.totals;
    assert!(conv.matched_items > 4 * conv.sessions && conv.matched_items < 7 * conv.sessions);
    let (lo, hi) = (conv.conversion_rate_low.unwrap(), conv.conversion_rate_high.unwrap());
    assert!(lo <= conv.conversion_rate.unwrap() && conv.conversion_rate.unwrap() <= hi);

    // s9 went from candidate v2 to v1 and back: one violation of v2.
    let v = &report.arm_violations;
    assert_eq!(v.users, 1);
    assert_eq!(v.examples, ["s9"]);
    assert_eq!(v.pairs.len(), 1);
    assert_eq!((v.pairs[0].candidate_version.as_str(), v.pairs[0].returned), ("v2", 1));
    assert!(report.to_text().contains("VIOLATED, 1 users"), "{}", report.to_text());

    // Stable field names in the JSON.
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    for field in
        ["model_version", "arm", "sessions", "users", "users_share", "conversions", "conversion_rate_low"]
    {
        assert!(j["arms"][0].get(field).is_some(), "arms[0].{field} in {j}");
    }
    assert_eq!(j["arm_violations"]["users"], 1);
    assert_eq!(j["failures"]["events"]["http_5xx"], seen.refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_events_go_to_random_items_at_the_configured_rate() {
    let fake = start_fake();
    let world = world();
    let plan = plan(&fake.url, 300, 0.0, 0.5);

    let tally = loadtest::shop::engine::run(&plan, &world).await.unwrap();
    let report = ShopReport::new(&plan, &world, &tally);
    let seen = fake.seen.lock().expect("fake state");

    assert_eq!(report.totals.conversions, 0);
    assert_eq!(report.totals.noise_events, seen.events.len() as u64);
    let share = (seen.events.len() as u64 + seen.refused) as f64 / report.totals.sessions as f64;
    assert!((0.4..0.6).contains(&share), "noise in {share} of sessions, want ~0.5");
    assert!(seen.events.iter().all(|(_, item, _)| world.items.contains(item)));
    let distinct: std::collections::HashSet<&String> = seen.events.iter().map(|e| &e.1).collect();
    assert!(distinct.len() > 10, "random items, not always the same: {distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_target_gives_counted_failures_not_panics() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let world = world();
    let plan = plan(&format!("http://127.0.0.1:{port}"), 20, 0.5, 0.5);

    let tally = loadtest::shop::engine::run(&plan, &world).await.unwrap();
    let report = ShopReport::new(&plan, &world, &tally);

    assert_eq!(report.sessions, 20);
    assert_eq!(report.failures.recommendations.get(ErrorKind::Connect.as_str()), Some(&20));
    assert!(report.arms.is_empty());
    assert_eq!(report.totals.conversion_rate, None);
    assert!(report.to_text().contains("connect=20"));

    let mut bad = plan.clone();
    bad.p_match = 1.5;
    assert!(loadtest::shop::engine::run(&bad, &world).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_command_runs_the_users_of_a_model_file() {
    use clap::Parser;
    use loadtest::cli::{execute, Cli};
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("model.bin")).unwrap();
    model::blob::encode(&small_model(), file).unwrap();
    let fake = start_fake();

    let args = ["loadtest", "shop", "--target", &fake.url, "--model"];
    let model = dir.path().to_str().unwrap();
    let cli = Cli::try_parse_from(args.iter().copied().chain([model, "--sessions", "30", "--rate", "200"]))
        .unwrap();
    let code = execute(cli, Default::default()).await.unwrap();

    // alice, bob and carol are always answered by the stable arm: no violation, exit 0.
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert_eq!(fake.seen.lock().unwrap().answers.values().sum::<u64>(), 30);
    let bad = Cli::try_parse_from(args.iter().copied().chain([model, "--p-match", "2"])).unwrap();
    assert!(execute(bad, Default::default()).await.is_err(), "--p-match 2 is refused");
}

/// A tally of answers `(shopper, at in seconds, version, arm)`.
fn tally_of(answers: &[(usize, u64, &str, Arm)]) -> loadtest::shop::report::Tally {
    use loadtest::shop::report::{Answered, Outcome, SessionRecord, Tally};
    let mut tally = Tally::default();
    for &(shopper, at, version, arm) in answers {
        let visit = Answered {
            at: Duration::from_secs(at),
            latency: Duration::from_millis(1),
            region: None,
            model_version: version.to_string(),
            arm,
            items: 10,
            matched: 0,
            conversions: 0,
            noise: 0,
            event_failures: Vec::new(),
        };
        tally.record(SessionRecord { shopper, outcome: Outcome::Answered(visit) });
    }
    tally
}

#[test]
fn stickiness_allows_raised_shares_promotions_and_rollbacks_but_not_a_return_or_an_early_exit() {
    use loadtest::shop::report::violations;
    let (s, c) = (Arm::Stable, Arm::Candidate);
    let world = world();
    // s0: moved in by a raised share, then promoted. s1: rolled back at 30 s. s2: never in.
    let fine = tally_of(&[
        (0, 1, "v1", s),
        (0, 2, "v2", c),
        (0, 9, "v2", s),
        (1, 5, "v3", c),
        (1, 31, "v1", s),
        (1, 40, "v1", s),
        (2, 3, "v1", s),
    ]);
    let ended: BTreeMap<String, Duration> = [("v3".to_string(), Duration::from_secs(30))].into();
    assert_eq!(violations(&fine, &world, &ended).users, 0);
    assert_eq!(violations(&fine, &world, &BTreeMap::new()).users, 0);
    // s3 left v3 at 20 s, before its rollback at 30 s; s4 came back to v3 (answers out of order
    // in the tally are sorted by time).
    let broken =
        tally_of(&[(3, 10, "v3", c), (3, 20, "v1", s), (4, 12, "v3", c), (4, 8, "v3", c), (4, 10, "v1", s)]);
    let v = violations(&broken, &world, &ended);
    assert_eq!((v.users, v.examples.clone()), (2, vec!["s3".to_string(), "s4".to_string()]));
    assert_eq!(
        (v.pairs[0].candidate_version.as_str(), v.pairs[0].returned, v.pairs[0].left_early),
        ("v3", 1, 2)
    );
    // Without the rollback times only the return is seen.
    assert_eq!(violations(&broken, &world, &BTreeMap::new()).users, 1);
}
