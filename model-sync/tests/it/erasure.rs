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

    // u1 is erased in eu-west (recorded as the node records it); one of u1's events slipped in.
    let () = redis::cmd("XADD")
        .arg(events::erasures_key("eu-west"))
        .arg("*")
        .arg(&[("user", "u1"), ("at", &(TS + 100).to_string())])
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
    assert_eq!((t.region.as_str(), t.at, erasures.len()), ("eu-west", TS + 100, 1));

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
    assert_eq!((honoured.count, honoured.through_unix), (1, TS + 100));

    // Ingesting again changes nothing.
    let again = run().await;
    assert_eq!((again.erasures, again.erased_events, again.events), (0, 0, 0));
    assert_eq!(read_events(&primary(&s3)).await.expect("events").events.len(), 2);
}
