//! Erasure records (tombstones) in the primary bucket, and what the pipeline does with them.
//!
//! ```text
//! <prefix>erasures/<region>/<first id>_<last id>.tsv   id, user, at (unix seconds) (header line)
//! ```
//!
//! A region node records an erasure in its Redis stream `georec:<region>:erasures`
//! ([`model::events::erasures_key`]). `ingest` moves each region's records here (written and
//! read back verified, then deleted from the stream), before it reads any event: events of an
//! erased user are then dropped from new batches, and stored batches that hold some are
//! rewritten without them (verified likewise). `build --events` and `run` leave erased users
//! out of the data and the events, and the manifest says how many erasures the model honours
//! and up to which one ([`model::manifest::Erasures`]).

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use redis::aio::MultiplexedConnection;

use super::batch::{self, decode_events, events_prefix, put_verified, HEADER};
use super::error::IngestError;
use super::stream::{redact, EventId};
use crate::dataset::Dataset;
use model::events;
use model::manifest;
use store::Bucket;

/// Directory of erasure records under the primary bucket's prefix.
pub const ERASURES_DIR: &str = "erasures/";
pub const ERASURES_HEADER: &str = "id\tuser\tat";
/// Erasure records moved per object.
const DRAIN_BATCH: usize = 1000;

/// One erasure, as a region recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub region: String,
    pub id: EventId,
    pub user: String,
    /// Unix seconds.
    pub at: i64,
}

/// Every erased user, each by their latest erasure: everything the user did up to then is
/// forgotten. A user id that comes back after its erasure completed (and left the regions'
/// erased sets, [`release_completed`]) starts afresh: what it sends later is kept.
#[derive(Debug, Clone, Default)]
pub struct Erasures {
    pub by_user: BTreeMap<String, Tombstone>,
    /// The regions that recorded each user's erasure (any time).
    pub recorded_in: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Record objects read.
    pub objects: usize,
}

impl Erasures {
    pub fn contains(&self, user: &str) -> bool {
        self.by_user.contains_key(user)
    }

    /// Whether a live event, which reached its region's stream at `arrived` (the entry id),
    /// was sent before the user's erasure.
    pub fn erases_event(&self, user: &str, arrived: &EventId) -> bool {
        self.by_user.get(user).is_some_and(|t| i64::try_from(arrived.ms / 1000).unwrap_or(i64::MAX) <= t.at)
    }

    /// Whether an interaction of `user` at `ts` (unix seconds) predates the user's erasure.
    pub fn erases_row(&self, user: &str, ts: i64) -> bool {
        self.by_user.get(user).is_some_and(|t| ts <= t.at)
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Add another store's records (a residency zone's), each user's latest kept.
    pub fn extend(&mut self, other: Erasures) {
        self.objects += other.objects;
        for (user, regions) in other.recorded_in {
            self.recorded_in.entry(user).or_default().extend(regions);
        }
        other.by_user.into_values().for_each(|t| self.add(t));
    }

    /// One record: the user's erasure if it is their latest.
    fn add(&mut self, t: Tombstone) {
        self.recorded_in.entry(t.user.clone()).or_default().insert(t.region.clone());
        if self.by_user.get(&t.user).is_none_or(|seen| seen.at < t.at) {
            self.by_user.insert(t.user.clone(), t);
        }
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    /// What a model built without these users honours.
    pub fn honoured(&self) -> manifest::Erasures {
        let through = self.by_user.values().map(|t| t.at).max().unwrap_or(0);
        manifest::Erasures {
            count: self.by_user.len() as u64,
            through: (through > 0).then(|| manifest::rfc3339(through)),
            through_unix: through,
        }
    }
}

pub fn erasures_prefix(prefix: &str) -> String {
    format!("{prefix}{ERASURES_DIR}")
}

fn record_key(prefix: &str, region: &str, first: EventId, last: EventId) -> String {
    format!("{}{region}/{first}_{last}.tsv", erasures_prefix(prefix))
}

async fn connect(region: &str, redis_url: &str) -> Result<MultiplexedConnection, IngestError> {
    super::stream::open(region, redis_url, std::time::Duration::from_secs(10)).await
}

/// Move `region`'s erasure records into the primary bucket: each page written and verified,
/// then deleted from the stream (a crash in between writes the same object again). Returns
/// how many records moved.
pub async fn drain_region(primary: &Bucket, region: &str, redis_url: &str) -> Result<u64, IngestError> {
    let mut conn = connect(region, redis_url).await?;
    let key = events::erasures_key(region);
    let redis_err = |op: &'static str| {
        let (region, url, key) = (region.to_string(), redact(redis_url), key.clone());
        move |source| IngestError::Redis { region, url, op, key, source }
    };
    let mut moved = 0u64;
    loop {
        let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(DRAIN_BATCH)
            .query_async(&mut conn)
            .await
            .map_err(redis_err("XRANGE"))?;
        if page.is_empty() {
            return Ok(moved);
        }
        let mut rows = Vec::with_capacity(page.len());
        for (id, fields) in &page {
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let parsed = id.parse::<EventId>().map_err(|detail| IngestError::RedisReply {
                region: region.to_string(),
                op: "XRANGE",
                key: key.clone(),
                detail,
            })?;
            let (Some(user), Some(at)) = (field("user"), field("at").and_then(|a| a.parse::<i64>().ok()))
            else {
                tracing::warn!(region, id, "erasure record without user or time; skipped");
                continue;
            };
            rows.push((parsed, user.to_string(), at));
        }
        let (first, last) = (page[0].0.parse::<EventId>(), page[page.len() - 1].0.parse::<EventId>());
        if let (Ok(first), Ok(last)) = (first, last) {
            let mut body = format!("{ERASURES_HEADER}\n");
            for (id, user, at) in &rows {
                body.push_str(&format!("{id}\t{user}\t{at}\n"));
            }
            let object = record_key(primary.prefix(), region, first, last);
            put_verified(primary, region, &object, Bytes::from(body)).await?;
        }
        let ids: Vec<&String> = page.iter().map(|(id, _)| id).collect();
        let _: u64 =
            redis::cmd("XDEL").arg(&key).arg(ids).query_async(&mut conn).await.map_err(redis_err("XDEL"))?;
        moved += page.len() as u64;
    }
}

/// Every erasure record in the primary bucket.
pub async fn read_tombstones(primary: &Bucket) -> Result<Erasures, IngestError> {
    let prefix = erasures_prefix(primary.prefix());
    let listed = primary.list(&prefix).await.map_err(|e| IngestError::Read(Box::new(e)))?;
    let mut out = Erasures { objects: listed.len(), ..Erasures::default() };
    for o in listed {
        let body = primary.get(&o.key).await.map_err(|e| IngestError::Read(Box::new(e)))?;
        let Some(body) = body else { continue };
        let region = o.key[prefix.len()..].split('/').next().unwrap_or_default().to_string();
        decode_records(&o.key, &region, &body)?.into_iter().for_each(|t| out.add(t));
    }
    Ok(out)
}

/// Parse one record object.
pub fn decode_records(key: &str, region: &str, body: &[u8]) -> Result<Vec<Tombstone>, IngestError> {
    let bad = |line: usize, message: String| IngestError::BadBatch { key: key.to_string(), line, message };
    let text = std::str::from_utf8(body).map_err(|_| bad(0, "not UTF-8".into()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(ERASURES_HEADER) => {}
        other => return Err(bad(1, format!("expected header {ERASURES_HEADER:?}, found {other:?}"))),
    }
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let [id, user, at] = f[..] else {
            return Err(bad(n + 2, format!("expected 3 tab-separated fields, found {}", f.len())));
        };
        let id = id.parse::<EventId>().map_err(|e| bad(n + 2, e))?;
        let at = at.parse::<i64>().map_err(|_| bad(n + 2, format!("bad time {at:?}")))?;
        out.push(Tombstone { region: region.to_string(), id, user: user.to_string(), at });
    }
    Ok(out)
}

/// Rewrite every stored event batch that holds an event of an erased user, without those
/// events (verified like a new batch). Returns (objects rewritten, events dropped).
pub async fn scrub_batches(primary: &Bucket, erasures: &Erasures) -> Result<(u64, u64), IngestError> {
    if erasures.is_empty() {
        return Ok((0, 0));
    }
    let prefix = events_prefix(primary.prefix());
    let listed = primary.list(&prefix).await.map_err(|e| IngestError::Read(Box::new(e)))?;
    let (mut objects, mut dropped) = (0u64, 0u64);
    for o in listed.iter().filter(|o| o.key.ends_with(".tsv")) {
        let Some(body) = primary.get(&o.key).await.map_err(|e| IngestError::Read(Box::new(e)))? else {
            continue;
        };
        let rows = decode_events(&o.key, &body)?;
        let kept: Vec<_> = rows.iter().filter(|(id, e)| !erasures.erases_event(&e.user_id, id)).collect();
        if kept.len() == rows.len() {
            continue;
        }
        let mut text = format!("{HEADER}\n");
        for (id, e) in &kept {
            let eid = e.event_id.as_deref().unwrap_or("");
            text.push_str(&format!("{id}\t{}\t{}\t{}\t{}\t{eid}\n", e.user_id, e.item_id, e.kind, e.ts));
        }
        let region = o.key[prefix.len()..].split('/').next().unwrap_or_default();
        batch::put_verified(primary, region, &o.key, Bytes::from(text)).await?;
        objects += 1;
        dropped += (rows.len() - kept.len()) as u64;
        tracing::info!(key = %o.key, dropped = rows.len() - kept.len(), "event batch rewritten without erased users");
    }
    Ok((objects, dropped))
}

/// `data` without the erased users' interactions. Returns it and how many were left out.
pub fn without_erased(data: Dataset, erasures: &Erasures) -> (Dataset, u64) {
    if erasures.is_empty() {
        return (data, 0);
    }
    let erased: HashSet<u32> =
        data.users.iter().enumerate().filter(|(_, u)| erasures.contains(u)).map(|(i, _)| i as u32).collect();
    if erased.is_empty() {
        return (data, 0);
    }
    let mut b = Dataset::builder();
    let mut left_out = 0u64;
    for e in &data.events {
        if erased.contains(&e.user) && erasures.erases_row(&data.users[e.user as usize], e.ts) {
            left_out += 1;
            continue;
        }
        b.push(&data.users[e.user as usize], &data.items[e.item as usize], e.weight, e.ts);
    }
    for (item, meta) in &data.item_meta {
        b.meta(&data.items[*item as usize], meta.clone());
    }
    *b.report_mut() = data.report.clone();
    (b.finish(), left_out)
}

/// Where an erasure stands in one region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegionErasure {
    pub region: String,
    /// The region's Redis holds the erasure record, or held it until the erasure completed
    /// (`None`: Redis unreachable).
    pub recorded: Option<bool>,
    /// Completed and taken out of the region's erased set ([`release_completed`]).
    pub released: bool,
    /// Keys still naming the user, and their events still in the stream (single-user checks).
    pub live_keys: Vec<String>,
    pub live_stream_entries: u64,
    /// The version the region serves, and whether it was built without the user.
    pub serving: Option<String>,
    pub model_honours: bool,
    /// Why something could not be checked.
    pub problem: Option<String>,
}

impl RegionErasure {
    /// Live data gone: recorded, and nothing left naming the user.
    pub fn live_gone(&self) -> bool {
        self.recorded == Some(true) && self.live_keys.is_empty() && self.live_stream_entries == 0
    }
}

/// Check `user`'s erasure in one region: its Redis (`deep`: every key and stream entry naming
/// the user too) and the manifest of the version it serves.
pub async fn region_erasure(
    region: &str,
    redis_url: &str,
    bucket: &Bucket,
    user: &Tombstone,
    deep: bool,
) -> RegionErasure {
    let mut out = RegionErasure {
        region: region.to_string(),
        recorded: None,
        released: false,
        live_keys: Vec::new(),
        live_stream_entries: 0,
        serving: None,
        model_honours: false,
        problem: None,
    };
    match connect(region, redis_url).await {
        Ok(mut conn) => {
            let marked: Result<bool, _> = redis::cmd("SISMEMBER")
                .arg(events::erased_key(region))
                .arg(&user.user)
                .query_async(&mut conn)
                .await;
            out.recorded = marked.ok();
            if deep {
                match live_traces(&mut conn, region, &user.user).await {
                    Ok((keys, entries)) => (out.live_keys, out.live_stream_entries) = (keys, entries),
                    Err(e) => out.problem = Some(format!("Redis: {e}")),
                }
            }
        }
        Err(e) => out.problem = Some(cluster_config::errors::error_chain(&e)),
    }
    match store::reader::read_pointer(bucket).await {
        Ok(Some(p)) => {
            match store::reader::read_manifest(bucket, &p.version).await {
                Ok(m) => {
                    out.model_honours = m.erasures.as_ref().is_some_and(|e| e.through_unix >= user.at);
                }
                Err(e) => out.problem = Some(format!("manifest of {}: {e}", p.version)),
            }
            out.serving = Some(p.version);
        }
        Ok(None) => out.problem = Some("no version published".into()),
        Err(e) => out.problem = Some(format!("pointer: {e}")),
    }
    if out.recorded == Some(false) && out.model_honours {
        (out.recorded, out.released) = (Some(true), true);
    }
    out
}

/// Keys of `region` naming `user` (its recent list, served records, cached answers, event
/// ids) and its entries in the event stream.
async fn live_traces(
    conn: &mut MultiplexedConnection,
    region: &str,
    user: &str,
) -> Result<(Vec<String>, u64), redis::RedisError> {
    let prefix = format!("georec:{region}:");
    let names_user = |k: &str| {
        let Some(rest) = k.strip_prefix(&prefix) else { return false };
        rest == format!("recent:{user}")
            || rest == format!("served:{user}")
            || rest.starts_with(&format!("eid:{}:{user}:", user.len()))
            || rest.split_once(':').is_some_and(|(_, tail)| tail == format!("rec:{user}"))
    };
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(page.into_iter().filter(|k| names_user(k)));
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(events::stream_key(region)).arg("-").arg("+").query_async(conn).await?;
    let mine = entries.iter().filter(|(_, f)| f.iter().any(|(k, v)| k == "user" && v == user)).count() as u64;
    Ok((keys, mine))
}

/// Once every version a region serves (the stable one and any candidate) was built without
/// an erased user, the region's live record of the erasure has done its job: take the user
/// out of the region's erased set (raising the generation, so nodes reload it). Then nothing
/// in the region's Redis refers to the user; the record in the primary bucket stays. Returns
/// the users released.
pub async fn release_completed(
    region: &str,
    redis_url: &str,
    bucket: &Bucket,
    erasures: &Erasures,
) -> Result<u64, IngestError> {
    if erasures.is_empty() {
        return Ok(0);
    }
    let read = |e| IngestError::Serving { region: region.to_string(), source: Box::new(e) };
    let Some(pointer) = store::reader::read_pointer(bucket).await.map_err(read)? else { return Ok(0) };
    let mut versions = vec![pointer.version.clone()];
    versions.extend(pointer.candidate.as_ref().map(|c| c.version.clone()));
    let mut through = i64::MAX;
    for v in &versions {
        let m = store::reader::read_manifest(bucket, v).await.map_err(read)?;
        through = through.min(m.erasures.map_or(0, |e| e.through_unix));
    }
    let mut conn = connect(region, redis_url).await?;
    let members: Vec<String> =
        redis::cmd("SMEMBERS").arg(events::erased_key(region)).query_async(&mut conn).await.map_err(
            |source| redis_error(region, redis_url, "SMEMBERS", events::erased_key(region), source),
        )?;
    let done: Vec<&str> = members
        .iter()
        .filter(|u| erasures.by_user.get(*u).is_some_and(|t| t.at <= through))
        .map(String::as_str)
        .collect();
    if done.is_empty() {
        return Ok(0);
    }
    change_erased_set(&mut conn, region, redis_url, "SREM", &done).await?;
    tracing::info!(region, users = done.len(), "erasures complete: released from the region's erased set");
    Ok(done.len() as u64)
}

/// Users erased after `through_unix` (unix seconds): those a model honouring erasures up to
/// then still holds.
pub fn not_honoured(erasures: &Erasures, through_unix: i64) -> Vec<&str> {
    erasures.by_user.values().filter(|t| t.at > through_unix).map(|t| t.user.as_str()).collect()
}

/// Put `users` (back) into a region's erased set and raise its generation, so its nodes keep
/// them out of every answer while a model that still holds them serves (a rollback to, or a
/// publish of, a version built before their erasure). [`release_completed`] takes them out
/// again once every serving version honours them.
pub async fn protect(region: &str, redis_url: &str, users: &[&str]) -> Result<(), IngestError> {
    if users.is_empty() {
        return Ok(());
    }
    let mut conn = connect(region, redis_url).await?;
    change_erased_set(&mut conn, region, redis_url, "SADD", users).await?;
    tracing::info!(region, users = users.len(), "erased users protected while an older model serves");
    Ok(())
}

/// `op` (`SADD` or `SREM`) `users` on the region's erased set, then raise its generation so
/// its nodes reload the set.
async fn change_erased_set(
    conn: &mut MultiplexedConnection,
    region: &str,
    redis_url: &str,
    op: &'static str,
    users: &[&str],
) -> Result<(), IngestError> {
    let key = events::erased_key(region);
    let _: u64 = redis::cmd(op)
        .arg(&key)
        .arg(users)
        .query_async(conn)
        .await
        .map_err(|source| redis_error(region, redis_url, op, key.clone(), source))?;
    let gen = events::erased_gen_key(region);
    let _: u64 = redis::cmd("INCR")
        .arg(&gen)
        .query_async(conn)
        .await
        .map_err(|source| redis_error(region, redis_url, "INCR", gen.clone(), source))?;
    Ok(())
}

fn redis_error(
    region: &str,
    redis_url: &str,
    op: &'static str,
    key: String,
    source: redis::RedisError,
) -> IngestError {
    IngestError::Redis { region: region.to_string(), url: redact(redis_url), op, key, source }
}
