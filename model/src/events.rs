//! Live interaction events: the contract between region nodes, which append them to their
//! Redis (`POST /events`), and `model-sync ingest`, which drains them into the primary bucket.
//!
//! In each region's Redis:
//! - stream [`stream_key`]: one entry per accepted event, fields `user`, `item`, `type`, `ts`,
//!   and `eid` when the client named the event; the stream entry id (`<ms>-<seq>`) is the
//!   event id, unique within the region;
//! - string [`dedup_key`]: for an event the client named (`event_id`, 1 to
//!   [`MAX_EVENT_ID_LEN`] bytes), the stream id it was stored under, for [`DEDUP_TTL_SECS`]:
//!   the same (user, event_id) again within that time stores nothing new;
//! - list [`recent_key`]: the user's latest events, newest first, at most [`RECENT_MAX`],
//!   each `<event id>\t<ts>\t<type>\t<item>` ([`LiveEvent::encode_recent`]); it expires
//!   [`RECENT_TTL_SECS`] after the user's last event. Its head (newest entry) names the
//!   user's latest event uniquely, which is how nodes tell a cached answer is stale.
//!
//! - set [`erased_key`]: users erased on request in this region (`DELETE /users/{id}`), and
//!   counter [`erased_gen_key`], raised at each erasure: a cached answer computed before the
//!   latest erasure may use an erased user as a neighbour, so it is stale;
//! - stream [`erasures_key`]: one entry per erasure, fields `user`, `at` (unix seconds), for
//!   `model-sync` to record in the primary bucket.
//!
//! `model-sync ingest` reads the stream with the consumer group [`CONSUMER_GROUP`], writes
//! batches, then acknowledges and deletes what it wrote, so delivery is at least once and
//! the event id makes it exactly once in the data; (user, `event_id`) makes a client's retry
//! in another region (after a failover) count once too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Consumer group `model-sync ingest` reads every region's stream with.
pub const CONSUMER_GROUP: &str = "model-sync";
/// Events kept per user in the recent list.
pub const RECENT_MAX: usize = 200;
/// The recent list lives this long after the user's last event (30 days).
pub const RECENT_TTL_SECS: u64 = 30 * 86_400;
/// Longest user or item id accepted.
pub const MAX_ID_LEN: usize = 256;
/// How far in the future an event timestamp may be (clock skew between shop and region).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;
/// Longest client-chosen `event_id` accepted.
pub const MAX_EVENT_ID_LEN: usize = 128;
/// How long a region remembers a client's `event_id` (24 hours).
pub const DEDUP_TTL_SECS: u64 = 24 * 3600;

/// The region's event stream.
pub fn stream_key(region: &str) -> String {
    format!("georec:{region}:events")
}

/// A user's recent events in a region.
pub fn recent_key(region: &str, user_id: &str) -> String {
    format!("georec:{region}:recent:{user_id}")
}

/// The users erased in a region.
pub fn erased_key(region: &str) -> String {
    format!("georec:{region}:erased")
}

/// Raised at every erasure in a region.
pub fn erased_gen_key(region: &str) -> String {
    format!("georec:{region}:erased:gen")
}

/// A region's erasure records, drained by `model-sync`.
pub fn erasures_key(region: &str) -> String {
    format!("georec:{region}:erasures")
}

/// Where a region remembers the stream id of `user_id`'s event `event_id`. The user id is
/// length-prefixed, so no (user, event id) pair shares a key with another.
pub fn dedup_key(region: &str, user_id: &str, event_id: &str) -> String {
    format!("{}{event_id}", dedup_prefix(region, user_id))
}

/// The prefix of every [`dedup_key`] of `user_id` in `region`.
pub fn dedup_prefix(region: &str, user_id: &str) -> String {
    format!("georec:{region}:eid:{}:{user_id}:", user_id.len())
}

/// What the user did; each type weighs like in generated data and the default import table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    AddToCart,
    Purchase,
}

impl EventType {
    pub const ALL: [EventType; 3] = [EventType::View, EventType::AddToCart, EventType::Purchase];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::AddToCart => "add_to_cart",
            EventType::Purchase => "purchase",
        }
    }

    /// Interaction weight: view 1, add_to_cart 3, purchase 5.
    pub fn weight(self) -> f32 {
        match self {
            EventType::View => 1.0,
            EventType::AddToCart => 3.0,
            EventType::Purchase => 5.0,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unknown event type {0:?} (expected one of: view, add_to_cart, purchase)")]
    UnknownType(String),
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {MAX_ID_LEN} bytes")]
    TooLong { field: &'static str },
    #[error("event_id is longer than {MAX_EVENT_ID_LEN} bytes")]
    EventIdTooLong,
    #[error("{field} must not contain tabs, newlines or other control characters")]
    ControlChar { field: &'static str },
    #[error("ts {ts} is in the future (now is {now} unix seconds; at most {MAX_FUTURE_SKEW_SECS} s of skew allowed; milliseconds are not accepted)")]
    Future { ts: i64, now: i64 },
    #[error("ts {0} is not a valid time (expected unix seconds after 1970)")]
    BadTs(String),
}

impl FromStr for EventType {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, EventError> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| EventError::UnknownType(s.into()))
    }
}

/// One accepted interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub user_id: String,
    pub item_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Unix seconds.
    pub ts: i64,
    /// The client's name for this event (1 to [`MAX_EVENT_ID_LEN`] bytes): a retry with the
    /// same one is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Check an id from a client: non-empty, bounded, no characters that would break the
/// tab-separated dataset files.
pub fn check_id(field: &'static str, id: &str) -> Result<(), EventError> {
    if id.is_empty() {
        return Err(EventError::Empty { field });
    }
    if id.len() > MAX_ID_LEN {
        return Err(EventError::TooLong { field });
    }
    if id.chars().any(char::is_control) {
        return Err(EventError::ControlChar { field });
    }
    Ok(())
}

impl LiveEvent {
    /// Validate a client's event against the current time `now` (unix seconds).
    pub fn validate(&self, now: i64) -> Result<(), EventError> {
        check_id("user_id", &self.user_id)?;
        check_id("item_id", &self.item_id)?;
        if let Some(id) = &self.event_id {
            check_id("event_id", id)?;
            if id.len() > MAX_EVENT_ID_LEN {
                return Err(EventError::EventIdTooLong);
            }
        }
        if self.ts <= 0 {
            return Err(EventError::BadTs(self.ts.to_string()));
        }
        if self.ts > now + MAX_FUTURE_SKEW_SECS {
            return Err(EventError::Future { ts: self.ts, now });
        }
        Ok(())
    }

    /// Stream entry fields, in a fixed order (`eid` last, when there is one).
    pub fn stream_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("user", self.user_id.clone()),
            ("item", self.item_id.clone()),
            ("type", self.kind.as_str().to_string()),
            ("ts", self.ts.to_string()),
        ];
        if let Some(id) = &self.event_id {
            fields.push(("eid", id.clone()));
        }
        fields
    }

    /// Read an event back from stream entry fields (any order; unknown fields ignored).
    pub fn from_stream_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, EventError> {
        let (mut user, mut item, mut kind, mut ts, mut eid) = (None, None, None, None, None);
        for (k, v) in fields {
            match k {
                "user" => user = Some(v),
                "item" => item = Some(v),
                "type" => kind = Some(v),
                "ts" => ts = Some(v),
                "eid" => eid = Some(v),
                _ => {}
            }
        }
        let user_id = user.ok_or(EventError::Missing { field: "user" })?.to_string();
        let item_id = item.ok_or(EventError::Missing { field: "item" })?.to_string();
        let kind = kind.ok_or(EventError::Missing { field: "type" })?.parse()?;
        let ts = ts.ok_or(EventError::Missing { field: "ts" })?;
        let ts = ts.parse().map_err(|_| EventError::BadTs(ts.to_string()))?;
        let event_id = eid.filter(|e| !e.is_empty()).map(str::to_string);
        Ok(Self { user_id, item_id, kind, ts, event_id })
    }

    /// The recent-list entry without its event id: `<ts>\t<type>\t<item>` (the user is the
    /// list's key). Whoever appends prefixes the stream entry id and a tab.
    pub fn encode_recent(&self) -> String {
        format!("{}\t{}\t{}", self.ts, self.kind, self.item_id)
    }

    /// Read a recent-list entry back: `(event id, event)`.
    pub fn decode_recent(user_id: &str, s: &str) -> Result<(String, Self), EventError> {
        let mut parts = s.splitn(4, '\t');
        let id = parts.next().unwrap_or_default().to_string();
        let ts = parts.next().ok_or(EventError::Missing { field: "ts" })?;
        let kind = parts.next().ok_or(EventError::Missing { field: "type" })?.parse()?;
        let item_id = parts.next().ok_or(EventError::Missing { field: "item" })?.to_string();
        let ts = ts.parse().map_err(|_| EventError::BadTs(ts.to_string()))?;
        Ok((id, Self { user_id: user_id.to_string(), item_id, kind, ts, event_id: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> LiveEvent {
        LiveEvent {
            user_id: "u1".into(),
            item_id: "i 9".into(),
            kind: EventType::AddToCart,
            ts: 1_700_000_000,
            event_id: None,
        }
    }

    #[test]
    fn stream_fields_round_trip() {
        let e = ev();
        let fields = e.stream_fields();
        let back = LiveEvent::from_stream_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, e);
        let missing = LiveEvent::from_stream_fields([("user", "u"), ("type", "view"), ("ts", "1")]);
        assert_eq!(missing, Err(EventError::Missing { field: "item" }));
        let named = LiveEvent { event_id: Some("order-7:line-2".into()), ..ev() };
        let fields = named.stream_fields();
        assert_eq!(fields.last().map(|f| f.0), Some("eid"));
        let back = LiveEvent::from_stream_fields(fields.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, named);
    }

    #[test]
    fn recent_round_trip() {
        let e = ev();
        let entry = format!("1-0\t{}", e.encode_recent());
        assert_eq!(LiveEvent::decode_recent("u1", &entry).unwrap(), ("1-0".to_string(), e));
        assert!(LiveEvent::decode_recent("u1", "1-0\tx\tview\ti").is_err());
        assert!(LiveEvent::decode_recent("u1", "1-0\t1\tclick\ti").is_err());
        assert!(LiveEvent::decode_recent("u1", "1-0\t1\tview").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let now = 1_700_000_000;
        assert!(ev().validate(now).is_ok());
        let future = LiveEvent { ts: now + 3600, ..ev() };
        assert!(matches!(future.validate(now), Err(EventError::Future { .. })));
        let empty = LiveEvent { user_id: String::new(), ..ev() };
        assert_eq!(empty.validate(now), Err(EventError::Empty { field: "user_id" }));
        let tab = LiveEvent { item_id: "a\tb".into(), ..ev() };
        assert_eq!(tab.validate(now), Err(EventError::ControlChar { field: "item_id" }));
        let long = LiveEvent { event_id: Some("x".repeat(129)), ..ev() };
        assert_eq!(long.validate(now), Err(EventError::EventIdTooLong));
        assert!(LiveEvent { event_id: Some("x".repeat(128)), ..ev() }.validate(now).is_ok());
        let blank = LiveEvent { event_id: Some(String::new()), ..ev() };
        assert_eq!(blank.validate(now), Err(EventError::Empty { field: "event_id" }));
        assert_ne!(dedup_key("r", "a:1", "x"), dedup_key("r", "a", "1:x"), "length-prefixed users");
        assert_eq!("click".parse::<EventType>(), Err(EventError::UnknownType("click".into())));
        assert_eq!("purchase".parse::<EventType>().unwrap().weight(), 5.0);
    }
}
