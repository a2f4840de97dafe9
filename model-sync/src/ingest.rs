//! `ingest`: drain every region's event stream (see [`model::events`]) into the primary bucket.
//!
//! Per region: connect, create the consumer group if missing, re-read this consumer's pending
//! entries (delivered to an ingest that stopped before acknowledging them), then read new
//! ones, in batches. Each batch becomes one object in the primary bucket, written and read
//! back verified; only then are its entries acknowledged and deleted. Delivery is therefore
//! at least once; a batch stored twice is deduplicated by (region, event id) when read back
//! ([`read_events`]). Entries that are not valid events are counted, reported and kept in a
//! rejects object next to their batch. Regions are independent: one failing stops only itself.

use std::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use model::manifest;
use store::Bucket;

mod batch;
mod erasure;
mod error;
mod propagate;
mod stream;

pub use batch::{
    batch_key, decode_events, events_prefix, merge, read_events, rejects_key, Batch, EventLog, IngestedEvent,
    Reject, EVENTS_DIR, HEADER,
};
pub use erasure::{
    decode_records, drain_region, erasures_prefix, not_honoured, protect, read_tombstones, region_erasure,
    release_completed, scrub_batches, without_erased, Erasures, RegionErasure, Tombstone, ERASURES_DIR,
    ERASURES_HEADER,
};
pub use error::IngestError;
pub use propagate::{propagate, Propagated, RegionNodes};
pub use stream::{redact, EventId, RegionStream, StreamEntry};

/// Consumer name within [`model::events::CONSUMER_GROUP`]. One name for every run, so the next
/// ingest finds what a stopped one left pending.
pub const CONSUMER: &str = "ingest";
pub const DEFAULT_BATCH: usize = 10_000;
/// Rejected entries listed per region in the report (all of them are in the rejects objects).
pub const MAX_REJECT_EXAMPLES: usize = 5;

/// A region whose stream to drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    pub region: String,
    pub redis_url: String,
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Stream entries per batch object.
    pub batch: usize,
    pub consumer: String,
    /// When it turns true, each region stops after its current batch (stored and acked).
    pub stop: Option<watch::Receiver<bool>>,
    /// Users erased on request: their events are dropped, not stored ([`ingest`] reads them).
    pub erased: Option<std::sync::Arc<Erasures>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self { batch: DEFAULT_BATCH, consumer: CONSUMER.into(), stop: None, erased: None }
    }
}

/// What one region's ingest did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegionIngest {
    pub region: String,
    /// Valid events stored.
    pub events: u64,
    /// Batch objects written (rejects objects not counted).
    pub batches: u64,
    pub rejects: u64,
    /// The first few rejected entries (all are in the rejects objects).
    pub reject_examples: Vec<Reject>,
    /// Entries re-read from the pending list: a previous ingest stopped before acking them.
    pub redelivered: u64,
    /// Pending entries already deleted from the stream: nothing left to store.
    pub vanished: u64,
    /// Keys written: batches and rejects objects.
    pub objects: Vec<String>,
    /// Erasure records moved to the primary bucket.
    pub erasures: u64,
    /// Events of erased users dropped instead of stored.
    pub erased_events: u64,
    pub seconds: f64,
}

impl RegionIngest {
    pub fn events_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// `error: cause: cause`, leaving out causes the text already shows (a Redis error prints its
/// I/O cause itself, and returns it as its source too).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Drain every source concurrently; each gets its own outcome. First each region's erasure
/// records move to the primary bucket; events of every erased user are then dropped, and
/// when new erasures arrived, stored batches holding their events are rewritten without them.
pub async fn ingest(
    primary: &Bucket,
    sources: &[StreamSource],
    opts: &IngestOptions,
) -> Vec<(String, Result<RegionIngest, IngestError>)> {
    let drained: Vec<Result<u64, IngestError>> = futures::future::join_all(
        sources.iter().map(|s| erasure::drain_region(primary, &s.region, &s.redis_url)),
    )
    .await;
    let moved: u64 = drained.iter().filter_map(|d| d.as_ref().ok()).sum();
    let mut opts = opts.clone();
    match erasure::read_tombstones(primary).await {
        Ok(e) => {
            if moved > 0 {
                match erasure::scrub_batches(primary, &e).await {
                    Ok((objects, dropped)) => tracing::info!(
                        erasures = moved,
                        objects,
                        dropped,
                        "new erasures: stored batches scrubbed"
                    ),
                    Err(err) => {
                        tracing::warn!(error = %describe(&err), "cannot scrub stored batches; next ingest retries")
                    }
                }
            }
            opts.erased = Some(std::sync::Arc::new(e));
        }
        Err(err) => {
            tracing::warn!(error = %describe(&err), "cannot read erasure records; events are filtered by the next ingest and build")
        }
    }
    let opts = &opts;
    // A region whose erasure records could not be moved keeps its events for the next run
    // (they may be an erased user's).
    futures::future::join_all(sources.iter().zip(drained).map(|(s, drained)| async move {
        let outcome = match drained {
            Err(e) => Err(e),
            Ok(n) => ingest_region(primary, &s.region, &s.redis_url, opts).await.map(|mut r| {
                r.erasures = n;
                r
            }),
        };
        match &outcome {
            Ok(r) => tracing::info!(
                region = %s.region, events = r.events, batches = r.batches, rejects = r.rejects,
                redelivered = r.redelivered, seconds = r.seconds, "region ingested"
            ),
            Err(e) => tracing::warn!(region = %s.region, error = %describe(e), "region ingest failed"),
        }
        (s.region.clone(), outcome)
    }))
    .await
}

/// In every region with a bucket in `buckets` (by label), release the `erasures` all its
/// serving versions honour ([`release_completed`]). Per region: users released, or why not.
pub async fn release_erasures(
    erasures: &Erasures,
    sources: &[StreamSource],
    buckets: &[Bucket],
) -> Vec<(String, Result<u64, IngestError>)> {
    let mut out = Vec::new();
    for s in sources {
        let Some(bucket) = buckets.iter().find(|b| b.label() == s.region) else { continue };
        let released = release_completed(&s.region, &s.redis_url, bucket, erasures).await;
        if let Err(e) = &released {
            tracing::warn!(region = %s.region, error = %describe(e), "cannot release completed erasures; the next ingest retries");
        }
        out.push((s.region.clone(), released));
    }
    out
}

/// Drain one region's stream: pending entries first, then new ones up to the newest entry
/// present when it started (so a busy stream cannot keep it running forever).
pub async fn ingest_region(
    primary: &Bucket,
    region: &str,
    redis_url: &str,
    opts: &IngestOptions,
) -> Result<RegionIngest, IngestError> {
    let started = Instant::now();
    let batch = opts.batch.max(1);
    let stopped = || opts.stop.as_ref().is_some_and(|s| *s.borrow());
    let mut s = RegionStream::connect(region, redis_url, &opts.consumer).await?;
    let newest = s.newest().await?;
    let mut r = RegionIngest { region: region.to_string(), ..RegionIngest::default() };

    let mut cursor = EventId::default();
    while !stopped() {
        let entries = s.read(Some(cursor), batch).await?;
        let Some(last) = entries.last().map(|e| e.id) else { break };
        r.redelivered += entries.len() as u64;
        store(primary, &mut s, region, &entries, opts.erased.as_deref(), &mut r).await?;
        cursor = last;
    }
    while newest.is_some() && !stopped() {
        let entries = s.read(None, batch).await?;
        let Some(last) = entries.last().map(|e| e.id) else { break };
        store(primary, &mut s, region, &entries, opts.erased.as_deref(), &mut r).await?;
        if entries.len() < batch || Some(last) >= newest {
            break;
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// Write one batch (and its rejects) verified, then ack + delete its entries.
async fn store(
    primary: &Bucket,
    s: &mut RegionStream,
    region: &str,
    entries: &[StreamEntry],
    erased: Option<&Erasures>,
    r: &mut RegionIngest,
) -> Result<(), IngestError> {
    let Some(mut b) = Batch::parse(region, entries, manifest::now_unix()) else { return Ok(()) };
    if let Some(erased) = erased {
        let before = b.events.len();
        b.events.retain(|(id, e)| !erased.erases_event(&e.user_id, id));
        r.erased_events += (before - b.events.len()) as u64;
    }
    let keys = write_batch(primary, &b).await?;
    s.ack(&b.ids).await?;
    r.batches += u64::from(!b.events.is_empty() || !b.rejects.is_empty());
    r.objects.extend(keys);
    r.events += b.events.len() as u64;
    r.rejects += b.rejects.len() as u64;
    r.vanished += b.vanished.len() as u64;
    let room = MAX_REJECT_EXAMPLES.saturating_sub(r.reject_examples.len());
    r.reject_examples.extend(b.rejects.into_iter().take(room));
    tracing::debug!(region, first = %b.first, last = %b.last, entries = b.ids.len(), "batch stored and acknowledged");
    Ok(())
}

/// Write a batch's objects to the primary bucket, each read back and verified: the rejects
/// object (if any entry was rejected), then the events object (unless every entry had
/// vanished). Returns the keys written. Nothing is acknowledged here.
pub async fn write_batch(primary: &Bucket, b: &Batch) -> Result<Vec<String>, IngestError> {
    let (prefix, region) = (primary.prefix(), b.region.as_str());
    let mut keys = Vec::new();
    if !b.rejects.is_empty() {
        let key = rejects_key(prefix, region, b.first, b.last);
        batch::put_verified(primary, region, &key, b.encode_rejects()).await?;
        for rej in &b.rejects {
            tracing::warn!(region, id = %rej.id, error = %rej.error, rejects = %key, "stream entry is not a valid event");
        }
        keys.push(key);
    }
    if !b.events.is_empty() || !b.rejects.is_empty() {
        let key = batch_key(prefix, region, b.first, b.last);
        batch::put_verified(primary, region, &key, b.encode_events()).await?;
        keys.push(key);
    }
    Ok(keys)
}
