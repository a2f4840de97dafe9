//! Ingest throughput: EVENTS events pushed into a local redis-server (loopback, free port,
//! no persistence), drained by `ingest` into an in-process S3 server (s3s-fs over a temp dir),
//! then read back and deduplicated as `build --events` does. Everything is local and bounded.
//!
//!   cargo run --release -p model-sync --example bench_ingest -- [EVENTS] [BATCH]
//!
//! Defaults: 100000 events, batches of 10000; at most 5M events.

use std::time::Instant;

use anyhow::{bail, Context};
use model::events::{self, EventType, LiveEvent};
use model_sync::ingest::{ingest_region, read_events, IngestOptions};
use testkit::{RedisServer, S3Server};

const MAX_EVENTS: usize = 5_000_000;
const REGION: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(100_000), |a| a.parse()).context("EVENTS must be a number")?;
    let batch: usize = args.next().map_or(Ok(10_000), |a| a.parse()).context("BATCH must be a number")?;
    if n == 0 || n > MAX_EVENTS || batch == 0 {
        bail!("EVENTS must be in 1..={MAX_EVENTS} and BATCH at least 1");
    }
    let redis = RedisServer::start();
    let s3 = S3Server::start(&["georec-bench"]);
    let primary = s3.bucket("georec-bench", "georec/", "primary");

    // Events as a region node appends them: 20K users, 5K items, mostly views.
    let t = Instant::now();
    let client = redis::Client::open(redis.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let key = events::stream_key(REGION);
    for start in (0..n).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(n) {
            let kind = EventType::ALL[usize::from(i % 10 >= 8) + usize::from(i % 20 == 19)];
            let e = LiveEvent {
                user_id: format!("user-{}", i * 7919 % 20_000),
                item_id: format!("item-{}", i * 104_729 % 5_000),
                kind,
                ts: 1_712_000_000 + i as i64 / 100,
                event_id: None,
            };
            let fields = e.stream_fields();
            pipe.cmd("XADD").arg(&key).arg("*").arg(fields).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    let push = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let opts = IngestOptions { batch, ..IngestOptions::default() };
    let r = ingest_region(&primary, REGION, &redis.url(), &opts).await?;
    let ingest = t.elapsed().as_secs_f64();
    if r.events != n as u64 {
        bail!("ingested {} of {n} events", r.events);
    }

    let t = Instant::now();
    let log = read_events(&primary).await?;
    let read = t.elapsed().as_secs_f64();
    if log.events.len() != n {
        bail!("read back {} of {n} events", log.events.len());
    }

    let bytes: u64 = primary.list("georec/events/").await?.iter().map(|o| o.size).sum();
    println!(
        "ingest benchmark: {n} events, batch {batch}, redis-server on loopback, s3s-fs in-process, {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!("  push (XADD, pipelines of 1000)   {push:>7.2} s  {:>9.0} events/s", n as f64 / push);
    println!(
        "  ingest (read, write + verify, ack + delete) {ingest:>7.2} s  {:>9.0} events/s  ({} batches, {:.1} MiB)",
        n as f64 / ingest,
        r.batches,
        bytes as f64 / (1 << 20) as f64
    );
    println!("  read back + dedupe               {read:>7.2} s  {:>9.0} events/s", n as f64 / read);
    Ok(())
}
