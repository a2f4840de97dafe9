//! Items' interactions per hour, so a trend's growth is measured, not guessed.
//!
//! Each accepted event adds one to its item in the hash of the hour of its timestamp,
//! `georec:<region>:trend:<unix hour>`, which expires [`KEEP_HOURS`] after that hour ends.
//! A trending answer over `W` hours reads the last `W` hours (this window) and the `W`
//! before (the previous one): `growth_rate = (this - previous) / max(previous, 1)`.
//! Counting is best effort (off the response path, through the cache's breaker): Redis
//! being down loses counts, never events.

use model::events::LiveEvent;
use redis::Pipeline;

use crate::cache::{Cache, CacheError};

/// Longest window a trending request may ask for (a week).
pub const MAX_WINDOW_HOURS: u32 = 168;
/// Hours a bucket is kept: two of the longest windows.
pub const KEEP_HOURS: i64 = 2 * MAX_WINDOW_HOURS as i64;

/// An item's interactions in a window and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub current: u64,
    pub previous: u64,
}

impl Counts {
    /// `(current - previous) / max(previous, 1)`: 0 when nothing changed, 1.0 for doubling.
    pub fn growth_rate(self) -> f64 {
        (self.current as f64 - self.previous as f64) / (self.previous.max(1) as f64)
    }
}

fn key(region: &str, hour: i64) -> String {
    format!("georec:{region}:trend:{hour}")
}

/// Count `events` in their hours; events older than [`KEEP_HOURS`] or more than an hour
/// ahead of `now` (unix seconds) are not counted.
pub async fn record(cache: &Cache, events: &[LiveEvent], now: i64) -> Result<(), CacheError> {
    let now_hour = now.div_euclid(3600);
    let mut pipe = Pipeline::new();
    let mut any = false;
    for e in events {
        let hour = e.ts.div_euclid(3600);
        if hour < now_hour - KEEP_HOURS || hour > now_hour + 1 {
            continue;
        }
        let k = key(cache.region(), hour);
        pipe.hincr(&k, &e.item_id, 1).ignore();
        pipe.expire_at(&k, (hour + 1 + KEEP_HOURS) * 3600).ignore();
        any = true;
    }
    if !any {
        return Ok(());
    }
    cache.exec("TREND", None, |mut c| async move { pipe.query_async::<()>(&mut c).await }).await
}

/// Each of `items`' counts over the last `window_hours` hours up to `now` (the current
/// hour included) and the same span before.
pub async fn counts(
    cache: &Cache,
    items: &[&str],
    window_hours: u32,
    now: i64,
) -> Result<Vec<Counts>, CacheError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let w = i64::from(window_hours.clamp(1, MAX_WINDOW_HOURS));
    let now_hour = now.div_euclid(3600);
    let mut pipe = Pipeline::new();
    for hour in (now_hour - 2 * w + 1)..=now_hour {
        pipe.cmd("HMGET").arg(key(cache.region(), hour)).arg(items);
    }
    let rows: Vec<Vec<Option<u64>>> =
        cache.exec("TREND", None, |mut c| async move { pipe.query_async(&mut c).await }).await?;
    let mut out = vec![Counts::default(); items.len()];
    for (i, row) in rows.iter().enumerate() {
        let current = i as i64 >= w;
        for (c, n) in out.iter_mut().zip(row) {
            let n = n.unwrap_or(0);
            if current {
                c.current += n;
            } else {
                c.previous += n;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_relative_to_the_previous_window() {
        assert_eq!(Counts { current: 4, previous: 2 }.growth_rate(), 1.0);
        assert_eq!(Counts { current: 1, previous: 2 }.growth_rate(), -0.5);
        assert_eq!(Counts { current: 3, previous: 0 }.growth_rate(), 3.0);
        assert_eq!(Counts::default().growth_rate(), 0.0);
    }
}
