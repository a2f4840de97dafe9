//! Erasure records through the pipeline: `ingest` moves them from a region's Redis to the
//! primary bucket, drops the erased user's events and rewrites stored batches without them;
//! builds leave the user out and say which erasures they honour.

use model::events::{self, EventType};
use model_sync::dataset::Dataset;
use model_sync::ingest::{self, read_events, read_tombstones, without_erased, IngestOptions, StreamSource};
use store::Bucket;
use testkit::{RedisServer, S3Server};

use crate::helpers::PREFIX;
use crate::ingest::{connect, event, push, PRIMARY, TS};

fn primary(s3: &S3Server) -> Bucket {
    s3.bucket(PRIMARY, PREFIX, "primary")
}

#[tokio::test]
async fn ingest_moves_erasures_drops_and_scrubs_the_users_events_and_builds_leave_them_out() {
    let s3 = S3Server::start(&[PRIMARY]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    let sources = [StreamSource { region: "eu-west".into(), redis_url: redis.url() }];
    let run = || async {
        let mut out = ingest::ingest(&primary(&s3), &sources, &IngestOptions::default()).await;
        out.pop().expect("one region").1.expect("ingested")
    };

    // u1's and u2's events are stored.
    push(
        &mut conn,
        "eu-west",
        &[event("u1", "i1", EventType::View, TS), event("u2", "i2", EventType::View, TS)],
    )
    .await;
    assert_eq!(run().await.events, 2);

    // u1 is erased in eu-west (recorded as the node records it, a little later than now);
    // one of u1's events, sent before it, is still in the stream.
    let at = model::manifest::now_unix() + 100;
    let () = redis::cmd("XADD")
        .arg(events::erasures_key("eu-west"))
        .arg("*")
        .arg(&[("user", "u1"), ("at", &at.to_string())])
        .query_async(&mut conn)
        .await
        .expect("XADD");
    push(
        &mut conn,
        "eu-west",
        &[event("u1", "i3", EventType::Purchase, TS + 1), event("u3", "i3", EventType::View, TS + 2)],
    )
    .await;
    let r = run().await;
    assert_eq!((r.erasures, r.erased_events, r.events), (1, 1, 1), "{r:?}");
    let left: u64 =
        redis::cmd("XLEN").arg(events::erasures_key("eu-west")).query_async(&mut conn).await.expect("XLEN");
    assert_eq!(left, 0, "records moved out of Redis");

    let erasures = read_tombstones(&primary(&s3)).await.expect("records");
    let t = erasures.by_user.get("u1").expect("u1's record");
    assert_eq!((t.region.as_str(), t.at, erasures.len()), ("eu-west", at, 1));

    // Nothing of u1 in any stored batch: the first one was rewritten.
    let log = read_events(&primary(&s3)).await.expect("events");
    let users: Vec<&str> = log.events.iter().map(|e| e.event.user_id.as_str()).collect();
    assert_eq!(users, ["u2", "u3"]);
    for o in primary(&s3).list(&ingest::events_prefix(PREFIX)).await.expect("list") {
        let body = primary(&s3).get(&o.key).await.expect("get").expect("present");
        assert!(
            !String::from_utf8_lossy(&body).contains("\tu1\t"),
            "{}: {}",
            o.key,
            String::from_utf8_lossy(&body)
        );
    }

    // A build from data + events leaves u1 out, and says what it honours.
    let mut b = Dataset::builder();
    b.push("u1", "i1", 5.0, TS - 10);
    b.push("u4", "i1", 1.0, TS - 10);
    let merged = ingest::merge(b.finish(), &log.events);
    let (kept, left_out) = without_erased(merged, &erasures);
    assert_eq!(left_out, 1);
    assert!(
        !kept.users.iter().any(|u| u == "u1")
            || kept.events.iter().all(|e| kept.users[e.user as usize] != "u1")
    );
    assert_eq!(kept.events.len(), 3, "u4's, u2's and u3's");
    let honoured = erasures.honoured();
    assert_eq!((honoured.count, honoured.through_unix), (1, at));

    // Rows after the erasure (the id came back once the erasure completed) are kept.
    let mut b = Dataset::builder();
    b.push("u1", "i2", 1.0, at + 1);
    let (kept, left_out) = without_erased(b.finish(), &erasures);
    assert_eq!((left_out, kept.events.len()), (0, 1));

    // Ingesting again changes nothing.
    let again = run().await;
    assert_eq!((again.erasures, again.erased_events, again.events), (0, 0, 0));
    assert_eq!(read_events(&primary(&s3)).await.expect("events").events.len(), 2);
}

/// A local model whose manifest says it honours erasures up to `through` (0: none).
fn model_honouring(n: u32, through: i64) -> crate::helpers::LocalModel {
    let mut m = crate::helpers::simple_model(n, 64);
    m.manifest.erasures = (through > 0).then(|| model::manifest::Erasures {
        count: 1,
        through: Some(model::manifest::rfc3339(through)),
        through_unix: through,
    });
    std::fs::write(m.path.join(model::manifest::MANIFEST_FILE), m.manifest.to_json()).expect("manifest");
    m
}

#[tokio::test]
async fn a_region_releases_an_erasure_once_the_version_it_serves_honours_it() {
    let cluster = crate::helpers::Cluster::new(&["eu-west"], &[]);
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url()).await;
    let erased = events::erased_key("eu-west");
    let () = redis::cmd("SADD").arg(&erased).arg(&["u1", "u2"]).query_async(&mut conn).await.expect("SADD");
    let tombstone = |user: &str, at: i64| ingest::Tombstone {
        region: "eu-west".into(),
        id: ingest::EventId::default(),
        user: user.into(),
        at,
    };
    let mut erasures = ingest::Erasures::default();
    erasures.by_user.insert("u1".into(), tombstone("u1", TS + 100));
    erasures.by_user.insert("u2".into(), tombstone("u2", TS + 900));
    let (url, bucket) = (redis.url(), cluster.bucket("eu-west"));
    let release = || ingest::release_completed("eu-west", &url, &bucket, &erasures);

    // Serving a model built before both erasures: nothing released.
    cluster.publish(&model_honouring(1, 0)).await.expect("publish");
    assert_eq!(release().await.expect("checked"), 0);

    // A model honouring u1's (not u2's): u1 leaves the set, and nodes are told to reload it.
    cluster.publish(&model_honouring(2, TS + 100)).await.expect("publish");
    assert_eq!(release().await.expect("checked"), 1);
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(&erased).query_async(&mut conn).await.expect("SMEMBERS");
    assert_eq!(members, ["u2"]);
    let gen: u64 =
        redis::cmd("GET").arg(events::erased_gen_key("eu-west")).query_async(&mut conn).await.expect("GET");
    assert_eq!(gen, 1);

    // A rollback to a model built before u1's erasure puts u1 back (`protect`), and the next
    // release leaves u1 there while that model serves.
    let older = model_honouring(3, 0);
    let users =
        ingest::not_honoured(&erasures, older.manifest.erasures.as_ref().map_or(0, |e| e.through_unix));
    assert_eq!(users, ["u1", "u2"]);
    ingest::protect("eu-west", &url, &users).await.expect("protect");
    cluster.publish(&older).await.expect("publish");
    assert_eq!(release().await.expect("checked"), 0);
    let mut members: Vec<String> =
        redis::cmd("SMEMBERS").arg(&erased).query_async(&mut conn).await.expect("SMEMBERS");
    members.sort();
    assert_eq!(members, ["u1", "u2"]);
}

/// A fake node: answers every request 202 and keeps the request lines.
async fn accepting_node() -> (url::Url, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = url::Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = head.lines().next().unwrap_or_default().to_string();
            let auth = head.lines().any(|l| l.eq_ignore_ascii_case("authorization: Bearer t0ken"));
            log.lock().expect("lock").push(format!("{line} auth={auth}"));
            let _ = s
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn regions_without_a_record_of_an_erasure_are_asked_to_carry_it_out() {
    let s3 = S3Server::start(&[PRIMARY]);
    // u1 was erased in eu-west only (a router restarted before us-east came back).
    let at = model::manifest::now_unix();
    let body = format!("{}\n1-0\tu1\t{at}\n", ingest::ERASURES_HEADER);
    let key = format!("{PREFIX}erasures/eu-west/1-0_1-0.tsv");
    primary(&s3).put_bytes(&key, body.into_bytes().into()).await.expect("put");
    let (eu, eu_seen) = accepting_node().await;
    let (us, us_seen) = accepting_node().await;
    let nodes = [
        ingest::RegionNodes { region: "eu-west".into(), urls: vec![eu] },
        ingest::RegionNodes { region: "us-east".into(), urls: vec![us] },
    ];

    let erasures = read_tombstones(&primary(&s3)).await.expect("read records");
    let done = ingest::propagate(&erasures, &nodes, "t0ken").await;

    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done["us-east"].erased, ["u1"]);
    assert_eq!(*us_seen.lock().expect("lock"), ["DELETE /users/u1 HTTP/1.1 auth=true"]);
    assert!(eu_seen.lock().expect("lock").is_empty(), "eu-west recorded it already");
}
