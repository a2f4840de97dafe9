//! Ingest: region streams (real redis-server) -> verified batches in the primary bucket
//! (s3s-fs), at least once, deduplicated on read, nothing dropped silently.

use std::time::{Duration, Instant};

use model::events::{self, EventType, LiveEvent, CONSUMER_GROUP};
use model::model::BuildParams;
use model_sync::build::build;
use model_sync::generate::{generate, GenerateParams};
use model_sync::ingest::{
    self, ingest_region, read_events, Batch, IngestError, IngestOptions, RegionStream, StreamSource, CONSUMER,
};
use redis::aio::MultiplexedConnection;
use store::Bucket;
use testkit::{RedisServer, S3Server};

use crate::helpers::PREFIX;

pub const PRIMARY: &str = "georec-primary";
/// Event timestamps: just after the span of generated data (2024-01-01 + 90 days), in the past.
pub const TS: i64 = 1_712_000_000;

pub async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("connect to redis")
}

pub fn event(user: &str, item: &str, kind: EventType, ts: i64) -> LiveEvent {
    LiveEvent { user_id: user.into(), item_id: item.into(), kind, ts, event_id: None }
}

/// Events `u<n % 7>` x `i<n>`, types cycling, one second apart.
pub fn events(n: std::ops::Range<u32>) -> Vec<LiveEvent> {
    n.map(|i| {
        event(&format!("u{}", i % 7), &format!("i{i}"), EventType::ALL[i as usize % 3], TS + i64::from(i))
    })
    .collect()
}

/// XADD each event as a region node does; returns the entry ids.
pub async fn push(conn: &mut MultiplexedConnection, region: &str, evs: &[LiveEvent]) -> Vec<String> {
    let fields: Vec<Vec<(String, String)>> = evs
        .iter()
        .map(|e| e.stream_fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        .collect();
    let mut ids = Vec::new();
    for chunk in fields.chunks(1000) {
        let mut pipe = redis::pipe();
        for f in chunk {
            pipe.cmd("XADD").arg(events::stream_key(region)).arg("*").arg(f);
        }
        ids.extend(pipe.query_async::<Vec<String>>(conn).await.expect("XADD"));
    }
    ids
}

/// XADD arbitrary fields (for entries that are not valid events).
pub async fn push_raw(conn: &mut MultiplexedConnection, region: &str, fields: &[(&str, &str)]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(events::stream_key(region)).arg("*").arg(fields);
    cmd.query_async::<String>(conn).await.expect("XADD")
}

/// (stream length, entries pending in the consumer group).
pub async fn backlog(conn: &mut MultiplexedConnection, region: &str) -> (u64, u64) {
    let key = events::stream_key(region);
    let len: u64 = redis::cmd("XLEN").arg(&key).query_async(conn).await.expect("XLEN");
    let pending: redis::Value =
        redis::cmd("XPENDING").arg(&key).arg(CONSUMER_GROUP).query_async(conn).await.expect("XPENDING");
    let redis::Value::Array(parts) = pending else { panic!("XPENDING reply {pending:?}") };
    let count = match &parts[0] {
        redis::Value::Int(n) => *n as u64,
        other => panic!("XPENDING count {other:?}"),
    };
    (len, count)
}

fn primary(s3: &S3Server) -> Bucket {
    s3.bucket(PRIMARY, PREFIX, "primary")
}

fn opts(batch: usize) -> IngestOptions {
    IngestOptions { batch, ..IngestOptions::default() }
}

#[tokio::test]
async fn ingesting_twice_yields_each_event_once_even_after_a_crash() {
    let s3 = S3Server::start(&[PRIMARY]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    let pushed = events(0..25);
    let ids = push(&mut conn, "eu-west", &pushed).await;

    // An ingest that stored a batch of 10 and crashed before acknowledging it.
    let mut stream = RegionStream::connect("eu-west", &redis.url(), CONSUMER).await.expect("connect");
    let entries = stream.read(None, 10).await.expect("read");
    let crashed = Batch::parse("eu-west", &entries, TS + 3600).expect("entries");
    ingest::write_batch(&primary(&s3), &crashed).await.expect("write");
    drop(stream);
    assert_eq!(backlog(&mut conn, "eu-west").await, (25, 10));

    // The next one re-reads those 10 first (in batches of 4: objects overlapping the crashed
    // one), then the 15 new ones.
    let r = ingest_region(&primary(&s3), "eu-west", &redis.url(), &opts(4)).await.expect("ingest");
    assert_eq!((r.events, r.redelivered, r.batches, r.rejects), (25, 10, 7, 0));
    assert_eq!(backlog(&mut conn, "eu-west").await, (0, 0), "acknowledged and deleted");

    let log = read_events(&primary(&s3)).await.expect("read back");
    assert_eq!((log.objects, log.duplicates), (8, 10));
    let got: Vec<String> = log.events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(got, ids);
    assert!(log.events.iter().all(|e| &*e.region == "eu-west"));
    assert_eq!(log.events.iter().map(|e| e.event.clone()).collect::<Vec<_>>(), pushed);

    // Again: nothing new. Then only what arrived since.
    let again = ingest_region(&primary(&s3), "eu-west", &redis.url(), &opts(4)).await.expect("ingest");
    assert_eq!((again.events, again.batches, again.redelivered), (0, 0, 0));
    push(&mut conn, "eu-west", &events(100..105)).await;
    let more = ingest_region(&primary(&s3), "eu-west", &redis.url(), &opts(4)).await.expect("ingest");
    assert_eq!((more.events, more.batches), (5, 2));
    let log = read_events(&primary(&s3)).await.expect("read back");
    assert_eq!((log.events.len(), log.duplicates), (30, 10));
}

#[tokio::test]
async fn unparseable_entries_are_reported_and_kept_in_the_rejects_object() {
    let s3 = S3Server::start(&[PRIMARY]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    push(&mut conn, "us-west", &events(0..2)).await;
    let ts = TS.to_string();
    let click =
        push_raw(&mut conn, "us-west", &[("user", "u1"), ("item", "i1"), ("type", "click"), ("ts", &ts)])
            .await;
    let no_item = push_raw(&mut conn, "us-west", &[("user", "u1"), ("type", "view"), ("ts", &ts)]).await;
    let bad_ts =
        push_raw(&mut conn, "us-west", &[("user", "u1"), ("item", "i1"), ("type", "view"), ("ts", "soon")])
            .await;
    push(&mut conn, "us-west", &events(2..3)).await;

    let r = ingest_region(&primary(&s3), "us-west", &redis.url(), &opts(100)).await.expect("ingest");
    assert_eq!((r.events, r.rejects, r.batches), (3, 3, 1));
    let examples: Vec<(String, &str)> =
        r.reject_examples.iter().map(|x| (x.id.to_string(), x.error.as_str())).collect();
    assert_eq!(examples[0].0, click);
    assert!(examples[0].1.contains("unknown event type \"click\""), "{examples:?}");
    assert_eq!((examples[1].0.as_str(), examples[1].1), (no_item.as_str(), "item is missing"));
    assert_eq!(examples[2].0, bad_ts);
    assert!(examples[2].1.contains("soon"), "{examples:?}");
    assert_eq!(backlog(&mut conn, "us-west").await, (0, 0), "rejects are kept in the bucket, not in Redis");

    let key = r.objects.iter().find(|k| k.ends_with(".rejects.jsonl")).expect("a rejects object");
    assert!(key.starts_with("georec/events/us-west/"), "{key}");
    let text =
        String::from_utf8(primary(&s3).get(key).await.expect("get").expect("exists").to_vec()).expect("utf8");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], click.as_str());
    assert_eq!(
        lines[2]["fields"],
        serde_json::json!([["user", "u1"], ["item", "i1"], ["type", "view"], ["ts", "soon"]])
    );

    let table = model_sync::cli::ingest::summary_table(&[("us-west".to_string(), Ok(r))]);
    assert!(table.contains(&click) && table.contains("3 entries are not valid events"), "{table}");
    let log = read_events(&primary(&s3)).await.expect("read back");
    assert_eq!(log.events.len(), 3, "valid events around the rejects are kept");
}

#[tokio::test]
async fn an_unreachable_region_fails_alone_and_is_named() {
    let s3 = S3Server::start(&[PRIMARY]);
    let up = RedisServer::start();
    let mut down = RedisServer::start();
    down.stop();
    push(&mut connect(&up.url()).await, "eu-west", &events(0..3)).await;
    let sources = [
        StreamSource { region: "eu-west".into(), redis_url: up.url() },
        StreamSource { region: "ap-south".into(), redis_url: down.url() },
    ];

    let started = Instant::now();
    let results = ingest::ingest(&primary(&s3), &sources, &opts(100)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(results[0].1.as_ref().expect("eu-west ingested").events, 3);
    let err = results[1].1.as_ref().expect_err("ap-south is down");
    assert!(matches!(err, IngestError::RedisUnreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("ap-south") && text.contains(&down.url()), "{text}");
    assert!(text.contains("regions.ap-south.redis_url"), "says what to fix: {text}");
}

#[tokio::test]
async fn events_stay_in_the_stream_until_their_batch_is_stored() {
    let mut s3 = S3Server::start(&[PRIMARY]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    push(&mut conn, "us-east", &events(0..6)).await;
    s3.stop();

    let err =
        ingest_region(&primary(&s3), "us-east", &redis.url(), &opts(100)).await.expect_err("store is down");
    let text = ingest::describe(&err);
    assert!(text.contains("us-east: cannot write event batch georec/events/us-east/"), "{text}");
    assert!(text.contains(PRIMARY) && text.contains(&s3.endpoint()), "names the bucket and store: {text}");
    assert_eq!(backlog(&mut conn, "us-east").await, (6, 6), "read but neither acknowledged nor deleted");

    s3.restart();
    let r = ingest_region(&primary(&s3), "us-east", &redis.url(), &opts(100)).await.expect("ingest");
    assert_eq!((r.events, r.redelivered), (6, 6));
    assert_eq!(read_events(&primary(&s3)).await.expect("read").events.len(), 6);
}

#[tokio::test]
async fn ingested_events_extend_the_dataset_with_new_users() {
    let s3 = S3Server::start(&[PRIMARY]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    let params =
        GenerateParams { users: 200, items: 80, categories: 4, events_per_user: 10.0, ..Default::default() };
    let base = generate(&params);
    let (known_user, item) = (base.users[0].clone(), base.items[3].clone());
    let fresh = [
        event("newcomer", &item, EventType::Purchase, TS),
        event("newcomer", &base.items[5], EventType::View, TS + 1),
        event(&known_user, "brand-new-item", EventType::AddToCart, TS + 2),
    ];
    push(&mut conn, "eu-west", &fresh).await;
    ingest_region(&primary(&s3), "eu-west", &redis.url(), &opts(100)).await.expect("ingest");

    let log = read_events(&primary(&s3)).await.expect("read");
    let (users, items, n) = (base.users.len(), base.items.len(), base.events.len());
    let data = ingest::merge(base, &log.events);
    assert_eq!((data.users.len(), data.items.len(), data.events.len()), (users + 1, items + 1, n + 3));
    let last = data.events.last().expect("events");
    assert_eq!(
        (data.users[last.user as usize].as_str(), last.weight, last.ts),
        (known_user.as_str(), 3.0, TS + 2)
    );

    let params = BuildParams { neighbours: 10, ..BuildParams::default() };
    let model = build(&data, &params).expect("build").model;
    let u = model.user_index("newcomer").expect("the new user is in the model");
    let (seen, weights) = model.user_items(u);
    let idx = model.item_index(&item).expect("item");
    assert_eq!(weights[seen.binary_search(&idx).expect("their purchase")], 5.0);
    assert!(model.item_index("brand-new-item").is_some());
}

#[tokio::test]
async fn a_client_retry_in_another_region_is_read_back_once() {
    let s3 = S3Server::start(&[PRIMARY]);
    let (eu, us) = (RedisServer::start(), RedisServer::start());
    let named = |user: &str, item: &str, eid: &str| LiveEvent {
        event_id: Some(eid.to_string()),
        ..event(user, item, EventType::Purchase, TS)
    };
    // eu-west stored the purchase, its answer was lost in a failover, and the client sent it
    // again to us-east; us-east also has an unnamed event and another user's "o-1".
    push(&mut connect(&eu.url()).await, "eu-west", &[named("u1", "i1", "o-1"), named("u1", "i2", "o-2")])
        .await;
    let us_events =
        [named("u1", "i1", "o-1"), event("u1", "i9", EventType::View, TS), named("u2", "i1", "o-1")];
    push(&mut connect(&us.url()).await, "us-east", &us_events).await;
    for (region, redis) in [("eu-west", &eu), ("us-east", &us)] {
        let r = ingest_region(&primary(&s3), region, &redis.url(), &opts(10)).await.expect("ingest");
        assert_eq!(r.rejects, 0);
    }
    let log = read_events(&primary(&s3)).await.expect("read back");
    assert_eq!((log.duplicates, log.retried), (0, 1));
    let got: Vec<(&str, &str, Option<&str>)> = log
        .events
        .iter()
        .map(|e| (&*e.region, e.event.item_id.as_str(), e.event.event_id.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("eu-west", "i1", Some("o-1")),
            ("eu-west", "i2", Some("o-2")),
            ("us-east", "i9", None),
            ("us-east", "i1", Some("o-1")),
        ],
        "u1's o-1 once (where it was first stored); u2's o-1 is another event"
    );
}
