//! Event batches in the primary bucket: their layout, writing them verified, and reading
//! every one back deduplicated.
//!
//! ```text
//! <prefix>events/<region>/<first id>_<last id>.tsv            id, user, item, type, ts, eid (header line)
//! <prefix>events/<region>/<first id>_<last id>.rejects.jsonl  entries that were not valid events
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use super::error::IngestError;
use super::stream::{EventId, StreamEntry};
use crate::dataset::Dataset;
use model::events::LiveEvent;
use model::manifest::sha256_hex;
use store::Bucket;

/// Directory of event batches under the primary bucket's prefix.
pub const EVENTS_DIR: &str = "events/";
/// The batch header; `eid` is the client's event id, empty when it named none.
pub const HEADER: &str = "id\tuser\titem\ttype\tts\teid";
/// The header of batches written before events could carry an `event_id`.
pub const HEADER_V1: &str = "id\tuser\titem\ttype\tts";
const BATCH_SUFFIX: &str = ".tsv";
const REJECTS_SUFFIX: &str = ".rejects.jsonl";
/// Batch objects downloaded at once when reading events back.
const READ_CONCURRENCY: usize = 8;

pub fn events_prefix(prefix: &str) -> String {
    format!("{prefix}{EVENTS_DIR}")
}

pub fn batch_key(prefix: &str, region: &str, first: EventId, last: EventId) -> String {
    format!("{}{region}/{first}_{last}{BATCH_SUFFIX}", events_prefix(prefix))
}

pub fn rejects_key(prefix: &str, region: &str, first: EventId, last: EventId) -> String {
    format!("{}{region}/{first}_{last}{REJECTS_SUFFIX}", events_prefix(prefix))
}

/// A stream entry that is not a valid event, kept with why and what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    pub id: EventId,
    pub error: String,
    /// The entry's fields (lossily decoded when not UTF-8).
    pub fields: Vec<(String, String)>,
}

/// Entries read in one go, sorted into events, rejects and vanished (deleted while pending).
#[derive(Debug, Clone)]
pub struct Batch {
    pub region: String,
    pub first: EventId,
    pub last: EventId,
    pub events: Vec<(EventId, LiveEvent)>,
    pub rejects: Vec<Reject>,
    pub vanished: Vec<EventId>,
    /// Every entry id, to acknowledge once the batch is stored.
    pub ids: Vec<EventId>,
}

impl Batch {
    /// Sort `entries` (non-empty, in id order); `now` (unix seconds) bounds timestamps.
    pub fn parse(region: &str, entries: &[StreamEntry], now: i64) -> Option<Batch> {
        let (first, last) = (entries.first()?.id, entries.last()?.id);
        let mut b = Batch {
            region: region.to_string(),
            first,
            last,
            events: Vec::with_capacity(entries.len()),
            rejects: Vec::new(),
            vanished: Vec::new(),
            ids: entries.iter().map(|e| e.id).collect(),
        };
        for e in entries {
            let Some(fields) = &e.fields else {
                b.vanished.push(e.id);
                continue;
            };
            match parse_event(fields, now) {
                Ok(ev) => b.events.push((e.id, ev)),
                Err(error) => {
                    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
                    let fields = fields.iter().map(|(k, v)| (text(k), text(v))).collect();
                    b.rejects.push(Reject { id: e.id, error, fields });
                }
            }
        }
        Some(b)
    }

    /// The events object: header, then `id user item type ts eid` per event.
    pub fn encode_events(&self) -> Bytes {
        let mut s = String::with_capacity(64 * (self.events.len() + 1));
        s.push_str(HEADER);
        s.push('\n');
        for (id, e) in &self.events {
            let eid = e.event_id.as_deref().unwrap_or("");
            s.push_str(&format!("{id}\t{}\t{}\t{}\t{}\t{eid}\n", e.user_id, e.item_id, e.kind, e.ts));
        }
        Bytes::from(s)
    }

    /// The rejects object: one JSON object per line.
    pub fn encode_rejects(&self) -> Bytes {
        let mut out = Vec::new();
        for r in &self.rejects {
            // A struct of strings always serialises.
            out.extend(serde_json::to_vec(r).unwrap_or_default());
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

/// `LiveEvent::from_stream_fields`, then the checks that keep the batch file well-formed.
fn parse_event(fields: &[(Vec<u8>, Vec<u8>)], now: i64) -> Result<LiveEvent, String> {
    let mut text = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        let k = std::str::from_utf8(k).map_err(|_| "a field name is not UTF-8".to_string())?;
        let v = std::str::from_utf8(v).map_err(|_| format!("field {k} is not UTF-8"))?;
        text.push((k, v));
    }
    let ev = LiveEvent::from_stream_fields(text).map_err(|e| e.to_string())?;
    ev.validate(now).map_err(|e| e.to_string())?;
    Ok(ev)
}

/// Upload `body` to `key`, read it back and compare size and sha256; one more attempt on a
/// mismatch.
pub async fn put_verified(primary: &Bucket, region: &str, key: &str, body: Bytes) -> Result<(), IngestError> {
    let write = |source| IngestError::Write {
        region: region.to_string(),
        key: key.to_string(),
        source: Box::new(source),
    };
    let (size, sha) = (body.len() as u64, sha256_hex(&body));
    let mut detail = String::new();
    for _ in 0..2 {
        primary.put_bytes(key, body.clone()).await.map_err(write)?;
        match primary.get_hashed(key).await.map_err(write)? {
            Some((s, h)) if s == size && h == sha => return Ok(()),
            Some((s, h)) => {
                detail = format!("read back {s} bytes, sha256 {h}; wrote {size} bytes, sha256 {sha}")
            }
            None => detail = "missing right after writing it".into(),
        }
        tracing::warn!(region, key, detail = %detail, "event batch failed verification; writing it again");
    }
    Err(IngestError::Unverified { region: region.to_string(), key: key.to_string(), detail })
}

/// One ingested event, as read back from the primary bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestedEvent {
    /// Shared by every event of the region.
    pub region: Arc<str>,
    pub id: EventId,
    pub event: LiveEvent,
}

/// Every ingested event, each once, sorted by (region, event id).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    pub events: Vec<IngestedEvent>,
    /// Batch objects read.
    pub objects: usize,
    /// Rows dropped because their (region, event id) was already read: batches written
    /// twice when an ingest stopped between writing and acknowledging.
    pub duplicates: u64,
    /// Rows dropped because their (user, client `event_id`) was already read: a client that
    /// sent the event again, in another region after a failover or after the region's 24 h.
    pub retried: u64,
}

impl EventLog {
    /// This log, then `other`'s events (another store's: a residency zone's), deduplicated by
    /// (user, client `event_id`) across both, the first kept.
    pub fn then(mut self, other: EventLog) -> EventLog {
        let mut named: HashSet<(String, String)> = self
            .events
            .iter()
            .filter_map(|e| e.event.event_id.clone().map(|id| (e.event.user_id.clone(), id)))
            .collect();
        for e in other.events {
            if let Some(eid) = &e.event.event_id {
                if !named.insert((e.event.user_id.clone(), eid.clone())) {
                    self.retried += 1;
                    continue;
                }
            }
            self.events.push(e);
        }
        self.objects += other.objects;
        self.duplicates += other.duplicates;
        self.retried += other.retried;
        self.events.sort_by(|a, b| (&a.region, a.id).cmp(&(&b.region, b.id)));
        self
    }
}

/// Read every event batch under the primary bucket's `events/`, deduplicated by
/// (region, event id), then by (user, client `event_id`) across regions: the first read
/// (batches in key order: by region, then by stream id) is kept.
pub async fn read_events(primary: &Bucket) -> Result<EventLog, IngestError> {
    let prefix = events_prefix(primary.prefix());
    let listed = primary.list(&prefix).await.map_err(|e| IngestError::Read(Box::new(e)))?;
    let keys: Vec<String> = listed
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(BATCH_SUFFIX) && !k.ends_with(REJECTS_SUFFIX))
        .collect();
    let mut bodies = futures::stream::iter(keys.iter().map(|k| async move { (k, primary.get(k).await) }))
        .buffered(READ_CONCURRENCY);
    let mut seen: HashMap<String, (Arc<str>, HashSet<EventId>)> = HashMap::new();
    let mut named: HashSet<(String, String)> = HashSet::new();
    let mut log = EventLog { objects: keys.len(), ..EventLog::default() };
    while let Some((key, body)) = bodies.next().await {
        // Listed a moment ago; nothing deletes batches, so a missing one is a store problem.
        let body =
            body.map_err(|e| IngestError::Read(Box::new(e)))?.ok_or_else(|| IngestError::BadBatch {
                key: key.clone(),
                line: 0,
                message: "listed but missing when read".into(),
            })?;
        let name = key[prefix.len()..].split('/').next().unwrap_or_default();
        let (region, seen) =
            seen.entry(name.to_string()).or_insert_with(|| (Arc::from(name), HashSet::new()));
        for (id, event) in decode_events(key, &body)? {
            if !seen.insert(id) {
                log.duplicates += 1;
                continue;
            }
            if let Some(eid) = &event.event_id {
                if !named.insert((event.user_id.clone(), eid.clone())) {
                    log.retried += 1;
                    continue;
                }
            }
            log.events.push(IngestedEvent { region: region.clone(), id, event });
        }
    }
    log.events.sort_by(|a, b| (&a.region, a.id).cmp(&(&b.region, b.id)));
    Ok(log)
}

/// Parse one events object written by [`Batch::encode_events`].
pub fn decode_events(key: &str, body: &[u8]) -> Result<Vec<(EventId, LiveEvent)>, IngestError> {
    let bad = |line: usize, message: String| IngestError::BadBatch { key: key.to_string(), line, message };
    let text = std::str::from_utf8(body).map_err(|_| bad(0, "not UTF-8".into()))?;
    let mut lines = text.lines();
    let columns = match lines.next() {
        Some(HEADER) => 6,
        Some(HEADER_V1) => 5,
        other => return Err(bad(1, format!("expected header {HEADER:?}, found {other:?}"))),
    };
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let at = n + 2;
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != columns {
            return Err(bad(at, format!("expected {columns} tab-separated fields, found {}", f.len())));
        }
        let id = f[0].parse::<EventId>().map_err(|e| bad(at, e))?;
        let eid = f.get(5).copied().unwrap_or("");
        let fields = [("user", f[1]), ("item", f[2]), ("type", f[3]), ("ts", f[4]), ("eid", eid)];
        let event = LiveEvent::from_stream_fields(fields).map_err(|e| bad(at, e.to_string()))?;
        out.push((id, event));
    }
    Ok(out)
}

/// Add `events` to `data`: new users and items are interned, each event weighs by its type
/// (view 1, add_to_cart 3, purchase 5) and keeps its timestamp.
pub fn merge(data: Dataset, events: &[IngestedEvent]) -> Dataset {
    let mut b = data.into_builder();
    for e in events {
        let ev = &e.event;
        b.push(&ev.user_id, &ev.item_id, ev.kind.weight(), ev.ts);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::events::EventType;

    fn entry(id: u64, fields: &[(&str, &str)]) -> StreamEntry {
        let fields = fields.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        StreamEntry { id: EventId { ms: id, seq: 0 }, fields: Some(fields) }
    }

    #[test]
    fn batches_sort_entries_and_round_trip() {
        let now = 1_700_000_000;
        let entries = vec![
            entry(1, &[("user", "u1"), ("item", "i1"), ("type", "purchase"), ("ts", "1699999999")]),
            entry(2, &[("user", "u1"), ("item", "i2"), ("type", "click"), ("ts", "1699999999")]),
            StreamEntry { id: EventId { ms: 3, seq: 0 }, fields: None },
            entry(
                4,
                &[
                    ("ts", "1"),
                    ("type", "view"),
                    ("item", "i3"),
                    ("user", "u2"),
                    ("eid", "o-7"),
                    ("extra", "x"),
                ],
            ),
            entry(5, &[("user", "u\tx"), ("item", "i1"), ("type", "view"), ("ts", "1")]),
        ];
        let b = Batch::parse("eu-west", &entries, now).expect("non-empty");
        assert_eq!((b.first.ms, b.last.ms, b.ids.len()), (1, 5, 5));
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.vanished, [EventId { ms: 3, seq: 0 }]);
        assert_eq!(b.rejects.len(), 2);
        assert!(b.rejects[0].error.contains("click"), "{:?}", b.rejects[0]);
        assert!(b.rejects[1].error.contains("control"), "{:?}", b.rejects[1]);
        let rejects = String::from_utf8(b.encode_rejects().to_vec()).unwrap();
        assert!(rejects.starts_with(r#"{"id":"2-0","error":"unknown event type \"click\""#), "{rejects}");

        let back = decode_events("k", &b.encode_events()).unwrap();
        assert_eq!(back, b.events);
        assert_eq!(back[0].1.kind, EventType::Purchase);
        assert_eq!((back[0].1.event_id.as_deref(), back[1].1.event_id.as_deref()), (None, Some("o-7")));
        // Batches written before event ids still read.
        let v1 = decode_events("k", b"id\tuser\titem\ttype\tts\n1-0\tu1\ti1\tview\t5\n").unwrap();
        assert_eq!((v1.len(), v1[0].1.event_id.clone()), (1, None));
        let short = decode_events("k", b"id\tuser\titem\ttype\tts\teid\n1-0\tu1\ti1\tview\t5\n");
        assert!(short.unwrap_err().to_string().contains("expected 6 tab-separated fields"));
        assert_eq!(batch_key("georec/", "eu-west", b.first, b.last), "georec/events/eu-west/1-0_5-0.tsv");
        let e = decode_events("k", b"id\tuser\n").unwrap_err().to_string();
        assert!(e.contains("k:1: expected header"), "{e}");
    }

    #[test]
    fn merge_interns_new_ids_and_weights_by_type() {
        let mut b = Dataset::builder();
        b.push("u1", "i1", 2.0, 10);
        let ev = |user: &str, kind| IngestedEvent {
            region: Arc::from("r"),
            id: EventId::default(),
            event: LiveEvent { user_id: user.into(), item_id: "i1".into(), kind, ts: 20, event_id: None },
        };
        let d = merge(b.finish(), &[ev("u1", EventType::AddToCart), ev("new", EventType::Purchase)]);
        assert_eq!(d.users, ["u1", "new"]);
        assert_eq!(d.items, ["i1"]);
        let w: Vec<(u32, f32)> = d.events.iter().map(|e| (e.user, e.weight)).collect();
        assert_eq!(w, [(0, 2.0), (0, 3.0), (1, 5.0)]);
    }
}
