//! The Redis side of ingest: one region's event stream, read through the consumer group.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value};

use super::error::IngestError;
use model::events::{self, CONSUMER_GROUP};

/// Connecting gives up after this long: an unreachable region fails in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Per command; a full batch read on a healthy Redis takes milliseconds.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream entry id, `<ms>-<seq>`: the event id, unique and increasing within a region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub ms: u64,
    pub seq: u64,
}

impl FromStr for EventId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a stream entry id (<ms>-<seq>)");
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(EventId { ms: ms.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One entry as read. `fields` is `None` when the entry was deleted from the stream while
/// still pending (trimmed before anyone acknowledged it): there is nothing left to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: EventId,
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// A connection to one region's Redis, positioned on its event stream and consumer group.
pub struct RegionStream {
    region: String,
    /// The URL with any password masked, for messages.
    url: String,
    key: String,
    consumer: String,
    conn: MultiplexedConnection,
}

impl RegionStream {
    /// Connect and create the consumer group (at id 0, creating the stream) if it is missing.
    pub async fn connect(region: &str, redis_url: &str, consumer: &str) -> Result<Self, IngestError> {
        let url = redact(redis_url);
        let conn = open(region, redis_url, RESPONSE_TIMEOUT).await?;
        let mut s = RegionStream {
            region: region.to_string(),
            url,
            key: events::stream_key(region),
            consumer: consumer.to_string(),
            conn,
        };
        let mut create = redis::cmd("XGROUP");
        create.arg("CREATE").arg(&s.key).arg(CONSUMER_GROUP).arg("0").arg("MKSTREAM");
        match create.query_async::<Value>(&mut s.conn).await {
            Ok(_) => {}
            // Another ingest created it first: fine.
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(s.err("XGROUP CREATE", e)),
        }
        Ok(s)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Id of the newest entry in the stream now, if any.
    pub async fn newest(&mut self) -> Result<Option<EventId>, IngestError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.key).arg("+").arg("-").arg("COUNT").arg(1);
        let reply = cmd.query_async::<Value>(&mut self.conn).await.map_err(|e| self.err("XREVRANGE", e))?;
        let entries = parse_entries(reply).map_err(|d| self.reply_err("XREVRANGE", d))?;
        Ok(entries.first().map(|e| e.id))
    }

    /// Up to `count` entries: with `after`, this consumer's pending entries (delivered to an
    /// ingest that stopped before acknowledging them) with ids above it; without, new ones.
    pub async fn read(
        &mut self,
        after: Option<EventId>,
        count: usize,
    ) -> Result<Vec<StreamEntry>, IngestError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(CONSUMER_GROUP).arg(&self.consumer).arg("COUNT").arg(count);
        cmd.arg("STREAMS").arg(&self.key);
        match after {
            Some(id) => cmd.arg(id.to_string()),
            None => cmd.arg(">"),
        };
        let reply = cmd.query_async::<Value>(&mut self.conn).await.map_err(|e| self.err("XREADGROUP", e))?;
        parse_read_reply(reply).map_err(|d| self.reply_err("XREADGROUP", d))
    }

    /// Acknowledge and delete `ids` in one transaction: once written and verified, an event
    /// leaves Redis for good.
    pub async fn ack(&mut self, ids: &[EventId]) -> Result<(), IngestError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(EventId::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XACK").arg(&self.key).arg(CONSUMER_GROUP).arg(&ids);
        pipe.cmd("XDEL").arg(&self.key).arg(&ids);
        pipe.query_async::<(i64, i64)>(&mut self.conn).await.map_err(|e| self.err("XACK/XDEL", e))?;
        Ok(())
    }

    fn err(&self, op: &'static str, source: RedisError) -> IngestError {
        let (region, url) = (self.region.clone(), self.url.clone());
        if source.is_io_error() || source.is_connection_refusal() || source.is_timeout() {
            return IngestError::RedisUnreachable { region, url, source };
        }
        IngestError::Redis { region, url, op, key: self.key.clone(), source }
    }

    fn reply_err(&self, op: &'static str, detail: String) -> IngestError {
        IngestError::RedisReply { region: self.region.clone(), op, key: self.key.clone(), detail }
    }
}

/// The URL with its password (if any) replaced, so it can be printed.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `XREADGROUP` reply: nil, or per stream `[key, entries]` (RESP2) / `{key: entries}` (RESP3).
fn parse_read_reply(reply: Value) -> Result<Vec<StreamEntry>, String> {
    let streams: Vec<Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => Ok(kv.swap_remove(1)),
                other => Err(format!("expected [stream, entries], got {other:?}")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(kv) => kv.into_iter().map(|(_, v)| v).collect(),
        other => return Err(format!("expected an array of streams, got {other:?}")),
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(parse_entries(s)?);
    }
    Ok(out)
}

/// A list of `[id, [field, value, ...] | nil]`.
fn parse_entries(v: Value) -> Result<Vec<StreamEntry>, String> {
    let items = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(format!("expected an array of entries, got {other:?}")),
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(mut parts) = item else {
                return Err(format!("expected [id, fields], got {item:?}"));
            };
            if parts.len() != 2 {
                return Err(format!("expected [id, fields], got {} elements", parts.len()));
            }
            let fields = parts.pop().unwrap_or_default();
            let id = text(parts.pop().unwrap_or_default())?;
            let id = id.parse::<EventId>()?;
            let fields = match fields {
                Value::Nil => None,
                Value::Array(flat) if flat.len() % 2 == 0 => {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((bytes(k)?, bytes(v)?));
                    }
                    Some(pairs)
                }
                Value::Map(kv) => Some(
                    kv.into_iter().map(|(k, v)| Ok((bytes(k)?, bytes(v)?))).collect::<Result<_, String>>()?,
                ),
                other => return Err(format!("entry {id}: expected field/value pairs, got {other:?}")),
            };
            Ok(StreamEntry { id, fields })
        })
        .collect()
}

fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

fn text(v: Value) -> Result<String, String> {
    String::from_utf8(bytes(v)?).map_err(|_| "entry id is not UTF-8".to_string())
}

/// A connection to `region`'s Redis (connect within 2 s, each reply within `response_timeout`),
/// its failures named with the region and the redacted URL.
pub(super) async fn open(
    region: &str,
    redis_url: &str,
    response_timeout: Duration,
) -> Result<MultiplexedConnection, IngestError> {
    let url = redact(redis_url);
    let client = redis::Client::open(redis_url).map_err(|source| IngestError::RedisUrl {
        region: region.to_string(),
        url: url.clone(),
        source,
    })?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|source| IngestError::RedisUnreachable { region: region.to_string(), url, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn ids_parse_order_and_print() {
        let a: EventId = "1700000000000-2".parse().unwrap();
        let b: EventId = "1700000000000-10".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1700000000000-10");
        assert!("17".parse::<EventId>().is_err());
        assert!("a-1".parse::<EventId>().is_err());
    }

    #[test]
    fn replies_parse_in_both_protocols_and_keep_deleted_entries() {
        let entries = Value::Array(vec![
            Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("user"), bulk("u1")])]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("georec:x:events"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("georec:x:events"), entries)]);
        for reply in [resp2, resp3] {
            let got = parse_read_reply(reply).unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].fields, Some(vec![(b"user".to_vec(), b"u1".to_vec())]));
            assert_eq!((got[1].id, &got[1].fields), (EventId { ms: 2, seq: 0 }, &None));
        }
        assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
        assert!(parse_read_reply(Value::Int(3)).is_err());
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(redact("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6380"), "redis://127.0.0.1:6380");
    }
}
