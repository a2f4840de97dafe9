//! Cache-aside in the region's Redis, bounded by timeouts and a breaker.
//!
//! Keys name the region and the model version, so a swap never serves the previous model's
//! answers and one region's clear never touches another's keys. A user's answers live in
//! one hash (one field per request shape), so accepting an event for the user drops them
//! all with one `UNLINK`:
//!
//! ```text
//! georec:<region>:<version>:rec:<user id>      hash: <shape hash> -> {head, ranked}
//! georec:<region>:<version>:sim:<count>:<item id>
//! georec:<region>:events                       stream of accepted events (model::events)
//! georec:<region>:recent:<user id>             the user's recent events, newest first
//! georec:<region>:served:<user id>             during a rollout: item -> version, arm, time
//!                                              it was recommended to the user (30 min)
//! georec:<region>:<version>:users              HyperLogLog of users answered by a version
//! georec:<region>:trend:<unix hour>            hash: item -> events in that hour (crate::trend)
//! ```
//!
//! Each cached recommendation records the head of the user's recent-event list it was
//! computed with, and a lookup reads that head in the same round trip: an answer computed
//! before the user's latest event is never served, whatever the order in which a slow
//! computation's write and the event's invalidation reach Redis.
//!
//! Redis is an optimisation, never a dependency: every call has a deadline, failures only
//! make the caller compute from the model, and the [`Breaker`] stops paying deadlines while
//! Redis is down. A background [`Cache::monitor`] pings on an interval, which keeps health
//! current and closes the breaker again when Redis is back, even without traffic.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::future::Future;

use model::events::{self, LiveEvent, RECENT_MAX, RECENT_TTL_SECS};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, RedisResult};
use serde::{Deserialize, Serialize};

use crate::answer::{Ranked, RecommendQuery};
use crate::breaker::{Breaker, BreakerState};
use crate::metrics::CacheMetrics;
use crate::settings::CacheSettings;

/// Keys per SCAN step of a clear: large enough to finish quickly, small enough that each
/// step blocks Redis for well under a millisecond.
const SCAN_BATCH: usize = 1000;
/// Deadline of each step of an admin clear: not on the request path, and SCAN over a big
/// keyspace is slower than a GET.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Appends a batch of events atomically: each goes to the region's stream (its entry id is
/// the event id) and to its user's recent list (trimmed, TTL refreshed); then the users'
/// cached answers for the resident versions are unlinked. An event the client named
/// (`event_id`) whose (user, event id) was stored within [`events::DEDUP_TTL_SECS`] stores
/// nothing: its original stream id is returned instead. A batch with an event of an erased
/// user stores nothing and returns `{'!erased', user}`. Otherwise returns the event ids in
/// order, then for each event the record of its item having been recommended to its user
/// (`version \t arm \t unix time`, with `\t c` once an earlier event converted it; or nil),
/// for conversion attribution, then for each event `1` if it was a duplicate, else `0`. The
/// first event on a recommended item marks it.
///
/// `KEYS[1]` stream, `KEYS[2]` the erased set, `KEYS[3..3+n]` the recent list of each event's
/// user, `KEYS[3+n..3+2n]` each event's user's served record, `KEYS[3+2n..3+3n]` each event's
/// dedup key (the stream key again for an unnamed event), the rest cache hashes to unlink;
/// `ARGV` = recent max, recent TTL, n, dedup TTL, then user, item, type, ts, event id (empty:
/// none) per event. The field names are those of `LiveEvent::stream_fields`.
const APPEND_SCRIPT: &str = r"
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local user = ARGV[5 + 5 * i]
  if redis.call('SISMEMBER', KEYS[2], user) == 1 then
    return {'!erased', user}
  end
end
local ids = {}
local served = {}
local dups = {}
for i = 0, n - 1 do
  local base = 5 + 5 * i
  local user, item, kind, ts, eid = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local prior = false
  if eid ~= '' then
    prior = redis.call('GET', KEYS[3 + 2 * n + i])
  end
  if prior then
    ids[#ids + 1] = prior
    served[#served + 1] = false
    dups[#dups + 1] = '1'
  else
    local id
    if eid ~= '' then
      id = redis.call('XADD', KEYS[1], '*', 'user', user, 'item', item, 'type', kind, 'ts', ts, 'eid', eid)
      redis.call('SET', KEYS[3 + 2 * n + i], id, 'EX', ARGV[4])
    else
      id = redis.call('XADD', KEYS[1], '*', 'user', user, 'item', item, 'type', kind, 'ts', ts)
    end
    local recent = KEYS[3 + i]
    redis.call('LPUSH', recent, id .. '\t' .. ts .. '\t' .. kind .. '\t' .. item)
    redis.call('LTRIM', recent, 0, tonumber(ARGV[1]) - 1)
    redis.call('EXPIRE', recent, ARGV[2])
    ids[#ids + 1] = id
    local rec = redis.call('HGET', KEYS[3 + n + i], item)
    if rec and string.sub(rec, -2) ~= '\tc' then
      -- The first event on this recommended item: marked, so the item converts once.
      redis.call('HSET', KEYS[3 + n + i], item, rec .. '\tc')
    end
    served[#served + 1] = rec
    dups[#dups + 1] = '0'
  end
end
for j = 3 + 3 * n, #KEYS do
  redis.call('UNLINK', KEYS[j])
end
for i = 1, n do
  ids[#ids + 1] = served[i]
end
for i = 1, n do
  ids[#ids + 1] = dups[i]
end
return ids
";

/// Caches an answer only while the region's erasure generation (`KEYS[1]`) is still the one
/// it was computed at (`ARGV[1]`): `HSET KEYS[2] ARGV[2] ARGV[3]`, `EXPIRE KEYS[2] ARGV[4]`.
const PUT_IF_CURRENT_SCRIPT: &str = r"
local gen = tonumber(redis.call('GET', KEYS[1]) or '0')
if gen ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
";

/// Erases a user's live data that sits under known keys, atomically with recording the
/// erasure: adds `ARGV[1]` to the erased set `KEYS[1]`, raises the generation `KEYS[2]`,
/// appends `user`, `at` (`ARGV[2]`) to the erasure stream `KEYS[3]`, and deletes the user's
/// recent list `KEYS[4]` and served records `KEYS[5]`. Returns the generation, then how
/// many of the two keys existed.
const ERASE_SCRIPT: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local gen = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], '*', 'user', ARGV[1], 'at', ARGV[2])
local recent = redis.call('DEL', KEYS[4])
local served = redis.call('DEL', KEYS[5])
return {gen, recent, served}
";

/// Records what a rollout's version recommended to a user, unless the user was erased:
/// `KEYS[1]` erased set, `KEYS[2]` the user's served records, `KEYS[3]` the version's user
/// count; `ARGV` = user, attribution window, user-count TTL, record, then the items.
const SERVED_SCRIPT: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
for i = 5, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[4])
end
if #ARGV >= 5 then
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('PFADD', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
";

/// What an erasure removed from a region's Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasedData {
    /// The region's erasure generation after this one.
    pub gen: u64,
    /// The user's recent-event list (0 or 1).
    pub recent: u64,
    /// The user's served-items record (0 or 1).
    pub served: u64,
    /// Cached answers (one hash per model version).
    pub cached: u64,
    /// Remembered event ids.
    pub event_ids: u64,
    /// The user's events still in the region's stream (not yet ingested).
    pub stream_entries: u64,
}

/// First segments of a region's keys that are not model versions.
const RESERVED: [&str; 7] = ["recent", "served", "eid", "events", "erased", "erasures", "trend"];

/// `s` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How long a recommendation can earn a conversion (and its served record lives).
pub const ATTRIBUTION_WINDOW: Duration = Duration::from_secs(30 * 60);
/// Lifetime of a version's user count once nothing adds to it.
const USERS_TTL_SECS: u64 = 7 * 24 * 3600;

/// An item recommended to a user during a rollout, read back when the user acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRecord {
    pub version: String,
    pub arm: model::rollout::Arm,
    /// Unix seconds.
    pub at: i64,
    /// An earlier event already converted this recommended item.
    pub converted: bool,
}

impl ServedRecord {
    fn encode(&self) -> String {
        format!("{}\t{}\t{}", self.version, self.arm.as_str(), self.at)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('\t');
        let (version, arm, at) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
        let converted = parts.next() == Some("c");
        let arm = match arm {
            "stable" => model::rollout::Arm::Stable,
            "candidate" => model::rollout::Arm::Candidate,
            _ => return None,
        };
        Some(Self { version: version.to_string(), arm, at, converted })
    }
}

/// What storing a batch of events returned.
#[derive(Debug, Default)]
pub struct Appended {
    /// The stream ids, in the order of the events.
    pub ids: Vec<String>,
    /// Per event: the record of its item having been recommended to its user, if any.
    pub served: Vec<Option<ServedRecord>>,
    /// Per event: its (user, `event_id`) was stored before; nothing new was stored, and its
    /// id is the original one.
    pub duplicate: Vec<bool>,
}

/// Where one recommendation answer is cached, and the user's recent-event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecKeys {
    /// `georec:<region>:<version>:rec:<user>`
    pub hash: String,
    /// The request shape within the hash.
    pub field: String,
    /// `georec:<region>:recent:<user>`
    pub recent: String,
}

/// What one round trip to Redis said about a recommendation.
#[derive(Debug, Default)]
pub struct Lookup {
    /// A cached answer computed with the user's current event head.
    pub cached: Option<Ranked>,
    /// Newest entry of the user's recent-event list (`None`: no events, or Redis unusable).
    pub head: Option<String>,
    /// The region's erasure generation (`None`: Redis unusable).
    pub gen: Option<u64>,
    /// The user was erased on request in this region.
    pub erased: bool,
}

/// A cached recommendation, the recent-list head and the erasure generation it was computed
/// with: a later event or a later erasure (whose user it may have used) makes it stale.
#[derive(Serialize, Deserialize)]
struct Entry<H, R> {
    head: Option<H>,
    #[serde(default)]
    gen: u64,
    ranked: R,
}

/// Why a batch of events was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The batch holds an event of a user erased on request: nothing was stored.
    #[error("user {user_id:?} was erased on request in this region")]
    Erased { user_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis URL {url:?}")]
    Url {
        url: String,
        #[source]
        source: RedisError,
    },
    #[error("Redis is considered down (breaker open); retrying by itself")]
    BreakerOpen,
    #[error("Redis {op} did not answer within {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("Redis {op} failed")]
    Redis {
        op: &'static str,
        #[source]
        source: RedisError,
    },
}

/// Tells caches apart in [`CONNECTIONS`] (tests run several nodes in one process).
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connection to each cache's Redis, by cache id. An actix worker drives
    /// its own connection on its own runtime, so a Redis round trip needs no hop to another
    /// thread and back (two wake-ups per call with one shared connection).
    static CONNECTIONS: RefCell<Vec<(u64, ConnectionManager)>> = const { RefCell::new(Vec::new()) };
}

pub struct Cache {
    /// For this cache's per-thread connections ([`CONNECTIONS`]); each reconnects by itself
    /// and is created lazily, so a node starts even with Redis down.
    client: redis::Client,
    config: ConnectionManagerConfig,
    id: u64,
    breaker: Breaker,
    settings: CacheSettings,
    region: String,
    /// `georec:<region>:`
    prefix: String,
    /// [`APPEND_SCRIPT`], hashed once (its SHA1 is what `EVALSHA` sends).
    append: redis::Script,
    /// [`PUT_IF_CURRENT_SCRIPT`].
    put_if_current: redis::Script,
    /// [`ERASE_SCRIPT`].
    erase: redis::Script,
    /// [`SERVED_SCRIPT`].
    served: redis::Script,
    /// The last call succeeded (health says "down" after any failure until one succeeds).
    last_ok: AtomicBool,
    metrics: CacheMetrics,
}

impl Cache {
    /// Must be called inside a Tokio runtime: the connection manager's reconnects run there.
    pub fn new(
        region: &str,
        redis_url: &str,
        settings: CacheSettings,
        metrics: CacheMetrics,
    ) -> Result<Self, CacheError> {
        let url_err = |source| CacheError::Url { url: redis_url.to_string(), source };
        let client = redis::Client::open(redis_url).map_err(url_err)?;
        // Our own deadline wraps every call; the manager's own limits only bound its
        // background reconnects, which should be quick and few (the breaker paces retries).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(ADMIN_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let breaker = Breaker::new(settings.breaker_failures, settings.breaker_cooldown);
        metrics.redis_up.set(0);
        Ok(Self {
            client,
            config,
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            breaker,
            settings,
            region: region.to_string(),
            prefix: format!("georec:{region}:"),
            append: redis::Script::new(APPEND_SCRIPT),
            put_if_current: redis::Script::new(PUT_IF_CURRENT_SCRIPT),
            erase: redis::Script::new(ERASE_SCRIPT),
            served: redis::Script::new(SERVED_SCRIPT),
            last_ok: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn recommendation_keys(&self, version: &str, q: &RecommendQuery) -> RecKeys {
        RecKeys {
            hash: self.user_hash(version, &q.user_id),
            field: format!("{:016x}", q.shape_hash()),
            recent: events::recent_key(&self.region, &q.user_id),
        }
    }

    fn user_hash(&self, version: &str, user_id: &str) -> String {
        format!("{}{version}:rec:{user_id}", self.prefix)
    }

    pub fn similar_key(&self, version: &str, item_id: &str, count: usize) -> String {
        format!("{}{version}:sim:{count}:{item_id}", self.prefix)
    }

    /// Redis answers and the breaker is closed.
    pub fn is_up(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed) && self.breaker.state() == BreakerState::Closed
    }

    /// The region whose keys this cache holds.
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The cached answer under `key`; `None` when absent, unreadable, or Redis is unusable.
    pub async fn get(&self, key: &str) -> Option<Ranked> {
        let found: Option<Vec<u8>> = self.call("GET", redis::cmd("GET").arg(key), None).await.ok().flatten();
        let ranked = found.and_then(|bytes| match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                // Written by another build with a different shape: recompute and overwrite.
                tracing::warn!(key, error = %e, "unreadable cache entry");
                self.metrics.errors.inc();
                None
            }
        });
        match ranked {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        }
        ranked
    }

    /// One round trip: the cached answer (unless `skip_cache`) and the user's event head.
    /// An entry computed with another head is stale and counts as a miss.
    pub async fn lookup(&self, keys: &RecKeys, user_id: &str, skip_cache: bool) -> Lookup {
        let mut pipe = redis::pipe();
        pipe.cmd("LINDEX").arg(&keys.recent).arg(0);
        pipe.cmd("GET").arg(events::erased_gen_key(&self.region));
        pipe.cmd("SISMEMBER").arg(events::erased_key(&self.region)).arg(user_id);
        if !skip_cache {
            pipe.cmd("HGET").arg(&keys.hash).arg(&keys.field);
        }
        type Reply = (Option<String>, Option<u64>, bool, Option<Vec<u8>>);
        let reply: Result<Reply, _> = self
            .exec("LOOKUP", None, |mut c| async move {
                if skip_cache {
                    pipe.query_async::<(Option<String>, Option<u64>, bool)>(&mut c)
                        .await
                        .map(|(head, gen, erased)| (head, gen, erased, None))
                } else {
                    pipe.query_async(&mut c).await
                }
            })
            .await;
        let Ok((head, gen, erased, found)) = reply else { return Lookup::default() };
        let gen = gen.unwrap_or(0);
        if skip_cache || erased {
            return Lookup { cached: None, head, gen: Some(gen), erased };
        }
        let cached = found.and_then(|bytes| match serde_json::from_slice::<Entry<String, Ranked>>(&bytes) {
            Ok(e) if e.head == head && e.gen == gen => Some(e.ranked),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(key = keys.hash, error = %e, "unreadable cache entry");
                self.metrics.errors.inc();
                None
            }
        });
        match cached {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        }
        Lookup { cached, head, gen: Some(gen), erased }
    }

    /// The user's recent events, newest first, with their event ids; `None` when Redis
    /// could not be read. Entries that do not parse are logged and skipped.
    pub async fn recent(&self, keys: &RecKeys, user_id: &str) -> Option<Vec<(String, LiveEvent)>> {
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(&keys.recent).arg(0).arg(-1);
        let raw: Vec<String> = self.call("LRANGE", &cmd, None).await.ok()?;
        let parsed = raw
            .iter()
            .filter_map(|s| match LiveEvent::decode_recent(user_id, s) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(key = keys.recent, entry = s, error = %e, "unreadable recent event");
                    None
                }
            })
            .collect();
        Some(parsed)
    }

    /// Cache an answer computed with event head `head` at erasure generation `gen`, unless an
    /// erasure happened since (then the answer may use an erased user, or be of one). Best
    /// effort.
    pub async fn put_recommendation(&self, keys: &RecKeys, head: Option<&str>, gen: u64, ranked: &Ranked) {
        let Ok(bytes) = serde_json::to_vec(&Entry { head, gen, ranked }) else { return };
        let ttl = self.ttl().as_secs().max(1);
        let mut inv = self.put_if_current.key(events::erased_gen_key(&self.region));
        inv.key(&keys.hash).arg(gen).arg(&keys.field).arg(bytes).arg(ttl);
        let _ =
            self.exec::<(), _, _>("HSET", None, |mut c| async move { inv.invoke_async(&mut c).await }).await;
    }

    /// Append `events` atomically (see [`APPEND_SCRIPT`]) and drop their users' cached
    /// answers for `versions` (those resident). Returns the event ids, in order, and what
    /// was recommended. On a timeout the events may or may not have been stored; on any other
    /// error none were.
    pub async fn append_events(
        &self,
        events: &[LiveEvent],
        versions: &[&str],
        timeout: Duration,
    ) -> Result<Appended, AppendError> {
        let mut inv = self.append.key(events::stream_key(&self.region));
        inv.key(events::erased_key(&self.region));
        for e in events {
            inv.key(events::recent_key(&self.region, &e.user_id));
        }
        for e in events {
            inv.key(self.served_key(&e.user_id));
        }
        for e in events {
            match &e.event_id {
                Some(id) => inv.key(events::dedup_key(&self.region, &e.user_id, id)),
                None => inv.key(events::stream_key(&self.region)),
            };
        }
        let mut users: Vec<&str> = events.iter().map(|e| e.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        for v in versions {
            for u in &users {
                inv.key(self.user_hash(v, u));
            }
        }
        inv.arg(RECENT_MAX).arg(RECENT_TTL_SECS).arg(events.len()).arg(events::DEDUP_TTL_SECS);
        for e in events {
            let eid = e.event_id.as_deref().unwrap_or("");
            inv.arg(&e.user_id).arg(&e.item_id).arg(e.kind.as_str()).arg(e.ts).arg(eid);
        }
        let reply: Vec<Option<String>> = self
            .exec_unguarded("APPEND", Some(timeout), |mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        let n = events.len();
        if reply.first().and_then(|r| r.as_deref()) == Some("!erased") {
            let user_id = reply.get(1).cloned().flatten().unwrap_or_default();
            return Err(AppendError::Erased { user_id });
        }
        let ids = reply.iter().take(n).map(|id| id.clone().unwrap_or_default()).collect();
        let served = (0..n)
            .map(|i| reply.get(n + i).cloned().flatten().and_then(|s| ServedRecord::decode(&s)))
            .collect();
        let duplicate =
            (0..n).map(|i| reply.get(2 * n + i).cloned().flatten().as_deref() == Some("1")).collect();
        Ok(Appended { ids, served, duplicate })
    }

    fn served_key(&self, user_id: &str) -> String {
        format!("{}served:{user_id}", self.prefix)
    }

    fn users_key(&self, version: &str) -> String {
        format!("{}{version}:users", self.prefix)
    }

    /// Remember that `items` were recommended to `user_id` by `record.version` (for
    /// conversions, [`ATTRIBUTION_WINDOW`]) and count the user for that version. Best effort,
    /// one round trip; the caller runs it off the response path.
    pub async fn record_served(&self, user_id: &str, items: &[&str], record: &ServedRecord) {
        // In one script, so nothing is recorded of a user erased meanwhile.
        let mut inv = self.served.key(events::erased_key(&self.region));
        inv.key(self.served_key(user_id)).key(self.users_key(&record.version));
        inv.arg(user_id).arg(ATTRIBUTION_WINDOW.as_secs()).arg(USERS_TTL_SECS).arg(record.encode());
        for item in items {
            inv.arg(*item);
        }
        let _ = self
            .exec::<(), _, _>("SERVED", None, |mut c| async move { inv.invoke_async(&mut c).await })
            .await;
    }

    /// Erase `user_id`'s live data in this region and record the erasure (see
    /// [`ERASE_SCRIPT`]): its recent list and served records at once with the record, then
    /// its cached answers of every version, its event-id keys and its entries in the event
    /// stream. From the record on, the user's events are refused and answers computed
    /// before are stale. Safe to repeat.
    pub async fn erase_user(&self, user_id: &str, now: i64) -> Result<ErasedData, CacheError> {
        let mut inv = self.erase.key(events::erased_key(&self.region));
        inv.key(events::erased_gen_key(&self.region))
            .key(events::erasures_key(&self.region))
            .key(events::recent_key(&self.region, user_id))
            .key(self.served_key(user_id))
            .arg(user_id)
            .arg(now);
        let (gen, recent, served): (u64, u64, u64) =
            self.exec_unguarded("ERASE", Some(ADMIN_TIMEOUT), |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        // Cached answers: `<prefix><version>:rec:<user>` for any version (no ':' in versions).
        let escaped = glob_escape(user_id);
        let cached = self
            .unlink_matching(&format!("{}*:rec:{escaped}", self.prefix), |rest| {
                rest.split_once(':').is_some_and(|(version, tail)| {
                    model::names::valid_version(version)
                        && !RESERVED.contains(&version)
                        && tail.strip_prefix("rec:") == Some(user_id)
                })
            })
            .await?;
        let dedup = events::dedup_prefix(&self.region, user_id);
        let event_ids = self.unlink_matching(&format!("{}*", glob_escape(&dedup)), |_| true).await?;
        let stream_entries = self.delete_stream_entries(user_id).await?;
        Ok(ErasedData { gen, recent, served, cached, event_ids, stream_entries })
    }

    /// SCAN + UNLINK of the keys matching `pattern` whose remainder after the region prefix
    /// passes `exact` (the pattern can match more than meant). Returns how many went.
    async fn unlink_matching(&self, pattern: &str, exact: impl Fn(&str) -> bool) -> Result<u64, CacheError> {
        let mut cursor = 0u64;
        let mut removed = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<String>) = self.call("SCAN", &scan, Some(ADMIN_TIMEOUT)).await?;
            let keys: Vec<String> =
                keys.into_iter().filter(|k| k.strip_prefix(&self.prefix).is_some_and(&exact)).collect();
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                removed += self.call::<u64>("UNLINK", &unlink, Some(ADMIN_TIMEOUT)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// XDEL every entry of `user_id` in the region's event stream (pages of [`SCAN_BATCH`]).
    async fn delete_stream_entries(&self, user_id: &str) -> Result<u64, CacheError> {
        let key = events::stream_key(&self.region);
        let mut start = "-".to_string();
        let mut deleted = 0u64;
        loop {
            let mut range = redis::cmd("XRANGE");
            range.arg(&key).arg(&start).arg("+").arg("COUNT").arg(SCAN_BATCH);
            let page: Vec<(String, Vec<(String, String)>)> =
                self.call("XRANGE", &range, Some(ADMIN_TIMEOUT)).await?;
            let Some((last, _)) = page.last() else { return Ok(deleted) };
            let last = last.clone();
            let ids: Vec<&String> = page
                .iter()
                .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "user" && v == user_id))
                .map(|(id, _)| id)
                .collect();
            if !ids.is_empty() {
                let mut xdel = redis::cmd("XDEL");
                xdel.arg(&key).arg(ids);
                deleted += self.call::<u64>("XDEL", &xdel, Some(ADMIN_TIMEOUT)).await?;
            }
            if page.len() < SCAN_BATCH {
                return Ok(deleted);
            }
            start = format!("({last}");
        }
    }

    /// The region's erasure generation and erased users (one round trip).
    pub async fn erased_users(&self) -> Result<(u64, Vec<String>), CacheError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("GET").arg(events::erased_gen_key(&self.region));
        pipe.cmd("SMEMBERS").arg(events::erased_key(&self.region));
        let (gen, users): (Option<u64>, Vec<String>) =
            self.exec("ERASED", None, |mut c| async move { pipe.query_async(&mut c).await }).await?;
        Ok((gen.unwrap_or(0), users))
    }

    /// Distinct users answered by each of `versions` in this region (0 when unknown).
    pub async fn users(&self, versions: &[&str]) -> Vec<u64> {
        let mut pipe = redis::pipe();
        for v in versions {
            pipe.cmd("PFCOUNT").arg(self.users_key(v));
        }
        let counts: Result<Vec<u64>, _> =
            self.exec("PFCOUNT", None, |mut c| async move { pipe.query_async(&mut c).await }).await;
        counts.unwrap_or_else(|_| vec![0; versions.len()])
    }

    /// Store `value` with the jittered TTL. Best effort: a failure is counted and ignored.
    pub async fn put(&self, key: &str, value: &Ranked) {
        let Ok(bytes) = serde_json::to_vec(value) else { return };
        let ttl = self.ttl().as_secs().max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(bytes).arg("EX").arg(ttl);
        let _ = self.call::<()>("SET", &cmd, None).await;
    }

    /// The configured TTL scaled by a random factor in `1 +/- jitter`.
    fn ttl(&self) -> Duration {
        let pct = f64::from(self.settings.ttl_jitter_pct) / 100.0;
        let factor = if pct > 0.0 { rand::random_range(1.0 - pct..=1.0 + pct) } else { 1.0 };
        self.settings.ttl.mul_f64(factor)
    }

    /// Delete every cached answer of this region (all versions: `<version>:rec:*` and
    /// `<version>:sim:*`) with SCAN + UNLINK: Redis stays responsive (no `KEYS`, no blocking
    /// `DEL` of big values). Events, recent lists, served records, event ids and erasures are
    /// data, not cache, and stay. Returns the keys removed.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        self.unlink_matching(&format!("{}*", self.prefix), |rest| {
            rest.split_once(':').is_some_and(|(version, tail)| {
                model::names::valid_version(version)
                    && !RESERVED.contains(&version)
                    && (tail.starts_with("rec:") || tail.starts_with("sim:"))
            })
        })
        .await
    }

    /// Redis's `used_memory_human` and the keys of its database (`INFO memory`, `DBSIZE`).
    pub async fn memory(&self) -> Result<(String, u64), CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("INFO").arg("memory").cmd("DBSIZE");
        let (info, keys): (String, u64) =
            self.exec("INFO", None, |mut c| async move { pipe.query_async(&mut c).await }).await?;
        let used = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory_human:"))
            .map_or_else(String::new, |v| v.trim().to_string());
        Ok((used, keys))
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        self.call::<String>("PING", &redis::cmd("PING"), None).await.map(drop)
    }

    /// Ping forever, every `probe_interval`. While the breaker is open, the ping after the
    /// cooldown is the probe that closes it again.
    pub async fn monitor(&self) {
        loop {
            let was_up = self.is_up();
            let result = self.ping().await;
            match (&result, was_up, self.is_up()) {
                (Err(e), true, false) => tracing::warn!(error = %e, "Redis down: answering from the model"),
                (Ok(()), false, true) => tracing::info!("Redis up: caching again"),
                _ => {}
            }
            tokio::time::sleep(self.settings.probe_interval).await;
        }
    }

    /// One Redis command through the breaker and under a deadline.
    async fn call<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
        timeout: Option<Duration>,
    ) -> Result<T, CacheError> {
        self.exec(op, timeout, |mut c| async move { cmd.query_async::<T>(&mut c).await }).await
    }

    /// One round trip (a command, pipeline or script) through the breaker and under a
    /// deadline (default: the cache's).
    pub(crate) async fn exec<T, F, Fut>(
        &self,
        op: &'static str,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(attempt) = self.breaker.try_acquire(Instant::now()) else {
            return Err(CacheError::BreakerOpen);
        };
        let result = self.exec_unguarded(op, timeout, f).await;
        match &result {
            Ok(_) => attempt.succeeded(),
            Err(_) => attempt.failed(Instant::now()),
        }
        self.metrics.redis_up.set(i64::from(self.is_up()));
        result
    }

    /// This thread's connection to the cache's Redis, made on first use on this thread.
    fn connection(&self) -> RedisResult<ConnectionManager> {
        CONNECTIONS.with_borrow_mut(|conns| {
            if let Some((_, c)) = conns.iter().find(|(id, _)| *id == self.id) {
                return Ok(c.clone());
            }
            let c = ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())?;
            conns.push((self.id, c.clone()));
            Ok(c)
        })
    }

    /// One round trip under a deadline, whatever the breaker says: for writes that must be
    /// tried (events), which the cache's slow or failed reads should not refuse.
    async fn exec_unguarded<T, F, Fut>(
        &self,
        op: &'static str,
        timeout: Option<Duration>,
        f: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let timeout = timeout.unwrap_or(self.settings.redis_timeout);
        let result = match self.connection() {
            Err(source) => Err(CacheError::Redis { op, source }),
            Ok(conn) => match tokio::time::timeout(timeout, f(conn)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(source)) => Err(CacheError::Redis { op, source }),
                Err(_) => Err(CacheError::Timeout { op, timeout }),
            },
        };
        match &result {
            Ok(_) => self.last_ok.store(true, Ordering::Relaxed),
            Err(e) => {
                self.last_ok.store(false, Ordering::Relaxed);
                self.metrics.errors.inc();
                tracing::debug!(op, error = %e, "Redis call failed");
            }
        }
        result
    }
}
