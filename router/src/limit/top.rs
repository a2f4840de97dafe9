//! [`TopLimited`]: the clients refused most often, for `/regions` and the status page.
//!
//! Only refused requests touch it, so its lock is never on the path of a request that is
//! served. It holds at most [`TRACKED`] clients: when a new one is refused while it is full,
//! the least refused is replaced and the newcomer inherits its count (the space-saving
//! algorithm), so a heavy hitter is never pushed out by a crowd of one-off keys. Clients not
//! refused for [`FORGET_AFTER`] are dropped on each sweep.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::class::Class;
use super::key::ClientKey;

/// Clients counted at most.
pub const TRACKED: usize = 256;
/// A client not refused for this long leaves the list.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct TopLimited {
    clients: Mutex<HashMap<ClientKey, Counts>>,
}

#[derive(Debug, Clone, Copy)]
struct Counts {
    by_class: [u64; 3],
    last: Instant,
}

impl Counts {
    fn total(&self) -> u64 {
        self.by_class.iter().sum()
    }
}

/// One of the clients refused most often.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitedClient {
    /// The address, or an API key shortened to a label that does not reveal it.
    pub key: String,
    /// Requests refused (429) since it entered the list.
    pub limited: u64,
    pub reads: u64,
    pub events: u64,
    pub admin: u64,
    pub last_limited_ms_ago: u64,
}

impl TopLimited {
    /// `key` was refused a request of `class`.
    pub fn record(&self, key: &ClientKey, class: Class) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get_mut(key) {
            c.by_class[class as usize] += 1;
            c.last = now;
            return;
        }
        let mut counts = Counts { by_class: [0; 3], last: now };
        if clients.len() >= TRACKED {
            let least = clients.iter().min_by_key(|(_, c)| c.total()).map(|(k, c)| (*k, c.total()));
            if let Some((k, total)) = least {
                clients.remove(&k);
                counts.by_class[class as usize] = total;
            }
        }
        counts.by_class[class as usize] += 1;
        clients.insert(*key, counts);
    }

    /// The `n` clients refused most, most first.
    pub fn top(&self, n: usize) -> Vec<LimitedClient> {
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<(&ClientKey, &Counts)> = clients.iter().collect();
        list.sort_by_key(|(_, c)| std::cmp::Reverse(c.total()));
        list.into_iter()
            .take(n)
            .map(|(k, c)| LimitedClient {
                key: k.to_string(),
                limited: c.total(),
                reads: c.by_class[Class::Reads as usize],
                events: c.by_class[Class::Events as usize],
                admin: c.by_class[Class::Admin as usize],
                last_limited_ms_ago: now.duration_since(c.last).as_millis() as u64,
            })
            .collect()
    }

    /// Drop clients not refused for [`FORGET_AFTER`].
    pub fn forget_old(&self) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.retain(|_, c| now.duration_since(c.last) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn addr(i: u32) -> ClientKey {
        ClientKey::Addr(IpAddr::V4(Ipv4Addr::from(i)))
    }

    #[test]
    fn heavy_hitters_stay_on_top_of_a_crowd_of_one_off_keys() {
        let top = TopLimited::default();
        for _ in 0..50 {
            top.record(&addr(1), Class::Reads);
        }
        top.record(&addr(1), Class::Events);
        for i in 100..(100 + 10 * TRACKED as u32) {
            top.record(&addr(i), Class::Reads);
        }
        let list = top.top(3);
        assert_eq!(list[0].key, "0.0.0.1");
        assert_eq!((list[0].limited, list[0].reads, list[0].events), (51, 50, 1));
        assert_eq!(top.clients.lock().expect("lock").len(), TRACKED);
    }
}
