//! Deterministic synthetic shop data, for demos, load tests and CI without a licensed dataset.
//!
//! The shape is chosen so user-KNN has real structure to find and the Popularity baseline has
//! a real skew to exploit: items belong to categories, each user prefers one or two categories
//! ([`PREFERRED_SHARE`] of their events fall there), popularity within a category is Zipf-like,
//! event types are mostly views, and recent days are busier than old ones.
//!
//! Everything comes from one `ChaCha8Rng` seeded with [`GenerateParams::seed`] and is drawn in
//! a fixed order, so a seed always gives byte-identical data. Sampling uses per-category
//! cumulative popularity tables and a binary search, so 20M events need no per-event
//! allocation beyond the event itself.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Event, ImportReport, ItemMeta};

/// Share of a user's events in their preferred categories (when other categories exist).
pub const PREFERRED_SHARE: f64 = 0.9;

/// Event types: name, weight, probability.
pub const EVENT_TYPES: [(&str, f32, f64); 3] =
    [("view", 1.0, 0.80), ("add_to_cart", 3.0, 0.15), ("purchase", 5.0, 0.05)];

/// Zipf exponent of popularity within a category: rank r is drawn with weight 1/(r+1)^s.
const ZIPF_S: f64 = 1.0;

/// Recency skew: the position in the time span is U^(1/RECENCY), density ∝ x^(RECENCY-1), so
/// with 2 the last day is about twice as busy as the middle one and the first nearly idle.
const RECENCY: f64 = 2.0;

/// Readable category names, used when there are no more categories than names.
const NAMES: [&str; 24] = [
    "electronics",
    "books",
    "fashion",
    "home-garden",
    "sports",
    "toys",
    "beauty",
    "grocery",
    "automotive",
    "music",
    "movies",
    "health",
    "pets",
    "office",
    "jewelry",
    "shoes",
    "outdoor",
    "kitchen",
    "baby",
    "games",
    "tools",
    "furniture",
    "crafts",
    "travel",
];

/// What to generate. Sizes of 0 give an empty dataset; more categories than items are
/// reduced to one per item so that no category is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub users: u32,
    pub items: u32,
    pub categories: u32,
    /// Mean events per user; every user gets at least one.
    pub events_per_user: f64,
    /// Length of the time span, ending at `start_ts + days * 86400`.
    pub days: u32,
    pub seed: u64,
    /// Start of the time span (unix seconds). A fixed default keeps output independent of
    /// the clock.
    pub start_ts: i64,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            users: 10_000,
            items: 3_000,
            categories: 20,
            events_per_user: 20.0,
            days: 90,
            seed: 42,
            start_ts: 1_704_067_200, // 2024-01-01T00:00:00Z
        }
    }
}

/// Name of category `c` of `total`.
pub fn category_name(c: u32, total: u32) -> String {
    match NAMES.get(c as usize) {
        Some(name) if total as usize <= NAMES.len() => (*name).to_string(),
        _ => format!("category-{c:02}"),
    }
}

/// Generate the synthetic shop described in the module docs.
pub fn generate(p: &GenerateParams) -> Dataset {
    generate_with_prefs(p).0
}

/// Items of each category in popularity order, with cumulative Zipf weights.
struct Catalog {
    /// Category `c` owns `items[offsets[c]..offsets[c + 1]]`.
    offsets: Vec<usize>,
    items: Vec<u32>,
    cum: Vec<f64>,
}

impl Catalog {
    fn new(category_of: &[u32], categories: u32, rng: &mut ChaCha8Rng) -> Catalog {
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); categories as usize];
        for (item, &c) in category_of.iter().enumerate() {
            members[c as usize].push(item as u32);
        }
        let mut offsets = vec![0];
        let (mut items, mut cum) =
            (Vec::with_capacity(category_of.len()), Vec::with_capacity(category_of.len()));
        for mut m in members {
            // Shuffled so the bestsellers are not simply the lowest ids.
            m.shuffle(rng);
            let mut total = 0.0;
            for (rank, item) in m.into_iter().enumerate() {
                total += 1.0 / ((rank + 1) as f64).powf(ZIPF_S);
                items.push(item);
                cum.push(total);
            }
            offsets.push(items.len());
        }
        Catalog { offsets, items, cum }
    }

    /// A Zipf-weighted item of category `c`, which must be non-empty.
    fn sample(&self, c: u32, rng: &mut ChaCha8Rng) -> u32 {
        let (lo, hi) = (self.offsets[c as usize], self.offsets[c as usize + 1]);
        let cum = &self.cum[lo..hi];
        let x = rng.random::<f64>() * cum.last().copied().unwrap_or(0.0);
        let k = cum.partition_point(|&v| v <= x).min(cum.len().saturating_sub(1));
        self.items[lo + k]
    }
}

/// Like [`generate`], also returning each user's preferred categories (for tests; a user
/// with one preferred category has it twice).
fn generate_with_prefs(p: &GenerateParams) -> (Dataset, Vec<[u32; 2]>) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let (n_users, n_items) = (p.users, p.items);
    let n_cats = p.categories.clamp(1, n_items.max(1));
    let mut data = Dataset {
        report: ImportReport {
            source: format!(
                "generate:seed={} users={n_users} items={n_items} categories={n_cats} events_per_user={} days={}",
                p.seed, p.events_per_user, p.days
            ),
            ..ImportReport::default()
        },
        ..Dataset::default()
    };
    if n_users == 0 || n_items == 0 {
        return (data, Vec::new());
    }

    // The first n_cats items seed one category each so none is empty; the rest are random.
    let category_of: Vec<u32> =
        (0..n_items).map(|j| if j < n_cats { j } else { rng.random_range(0..n_cats) }).collect();
    let catalog = Catalog::new(&category_of, n_cats, &mut rng);
    let cat_names: Vec<String> = (0..n_cats).map(|c| category_name(c, n_cats)).collect();

    let mean = if p.events_per_user.is_finite() { p.events_per_user.max(1.0) } else { 1.0 };
    // Extra events beyond the first are geometric with mean `mean - 1`; q is its continue
    // probability. Capped so a pathological draw cannot explode one user.
    let q = 1.0 - 1.0 / mean;
    let cap = (mean * 50.0).ceil() as u64;
    let span = i64::from(p.days).max(1) * 86_400;
    let (view_below, cart_below) = (EVENT_TYPES[0].2, EVENT_TYPES[0].2 + EVENT_TYPES[1].2);

    let mut events: Vec<Event> = Vec::with_capacity((f64::from(n_users) * mean * 1.05) as usize);
    let mut prefs_of = Vec::with_capacity(n_users as usize);
    let mut prefs: Vec<u32> = Vec::with_capacity(2);
    for user in 0..n_users {
        prefs.clear();
        let k = if n_cats >= 2 && rng.random_bool(0.5) { 2 } else { 1 };
        while prefs.len() < k {
            let c = rng.random_range(0..n_cats);
            if !prefs.contains(&c) {
                prefs.push(c);
            }
        }
        prefs.sort_unstable();
        let others = n_cats - k as u32;

        let extra = if q > 0.0 { ((1.0 - rng.random::<f64>()).ln() / q.ln()).floor() as u64 } else { 0 };
        let n = 1 + extra.min(cap);
        let first = events.len();
        for _ in 0..n {
            let c = if others == 0 || rng.random::<f64>() < PREFERRED_SHARE {
                prefs[rng.random_range(0..k)]
            } else {
                // A uniform non-preferred category: skip over the (sorted) preferred ones.
                let mut c = rng.random_range(0..others);
                for &pc in &prefs {
                    if c >= pc {
                        c += 1;
                    }
                }
                c
            };
            let item = catalog.sample(c, &mut rng);
            let t = rng.random::<f64>();
            let weight = if t < view_below {
                EVENT_TYPES[0].1
            } else if t < cart_below {
                EVENT_TYPES[1].1
            } else {
                EVENT_TYPES[2].1
            };
            let pos = rng.random::<f64>().powf(1.0 / RECENCY);
            let ts = p.start_ts + ((pos * span as f64) as i64).min(span - 1);
            events.push(Event { user, item, weight, ts });
        }
        events[first..].sort_by_key(|e| e.ts);
        prefs_of.push([prefs[0], prefs[k - 1]]);
    }

    data.users = (0..n_users).map(|u| format!("u{u:07}")).collect();
    data.items = (0..n_items).map(|j| format!("p{j:06}")).collect();
    data.item_meta = HashMap::with_capacity(n_items as usize);
    for (j, &c) in category_of.iter().enumerate() {
        let meta =
            ItemMeta { name: Some(format!("Product {j}")), categories: vec![cat_names[c as usize].clone()] };
        data.item_meta.insert(j as u32, meta);
    }
    data.report.rows_read = events.len() as u64;
    data.report.rows_ok = events.len() as u64;
    data.events = events;
    (data, prefs_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> GenerateParams {
        GenerateParams { users: 2_000, items: 500, categories: 10, seed, ..GenerateParams::default() }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&small(7));
        let b = generate(&small(7));
        assert_eq!(a.events, b.events);
        assert_eq!(a.item_meta, b.item_meta);
        let c = generate(&small(8));
        assert_ne!(a.events, c.events);
    }

    #[test]
    fn sizes_ids_and_time_span() {
        let p = small(1);
        let d = generate(&p);
        assert_eq!((d.users.len(), d.items.len(), d.item_meta.len()), (2_000, 500, 500));
        assert_eq!((d.users[123].as_str(), d.items[123].as_str()), ("u0000123", "p000123"));
        assert_eq!(d.item_meta[&123].name.as_deref(), Some("Product 123"));
        let mean = d.events.len() as f64 / 2_000.0;
        assert!((mean - 20.0).abs() < 1.5, "mean events per user {mean}");
        let mut per_user = vec![0; 2_000];
        d.events.iter().for_each(|e| per_user[e.user as usize] += 1);
        assert!(per_user.iter().all(|&n| n >= 1));
        let end = p.start_ts + 90 * 86_400;
        assert!(d.events.iter().all(|e| (p.start_ts..end).contains(&e.ts)));
        // Recency: the second half of the span is busier than the first.
        let late = d.events.iter().filter(|e| e.ts >= p.start_ts + 45 * 86_400).count();
        assert!(late as f64 > 0.7 * d.events.len() as f64, "{late}");
        assert_eq!(d.report.rows_ok, d.events.len() as u64);

        let tiny = generate(&GenerateParams { users: 3, items: 2, categories: 20, ..p.clone() });
        assert_eq!((tiny.users.len(), tiny.items.len()), (3, 2));
        assert!(generate(&GenerateParams { users: 0, ..p }).events.is_empty());
    }

    #[test]
    fn category_preference_and_event_type_shares() {
        let (d, prefs) = generate_with_prefs(&small(3));
        let names: Vec<String> = (0..10).map(|c| category_name(c, 10)).collect();
        let cat = |item: u32| {
            let name = &d.item_meta[&item].categories[0];
            names.iter().position(|n| n == name).unwrap() as u32
        };
        let n = d.events.len() as f64;
        let preferred = d.events.iter().filter(|e| prefs[e.user as usize].contains(&cat(e.item))).count();
        let share = preferred as f64 / n;
        assert!((share - PREFERRED_SHARE).abs() < 0.02, "preferred share {share}");
        for (_, w, expected) in EVENT_TYPES {
            let got = d.events.iter().filter(|e| e.weight == w).count() as f64 / n;
            assert!((got - expected).abs() < 0.015, "weight {w}: {got} vs {expected}");
        }
        // Zipf: within a category the top item is far more popular than the median one.
        let mut counts = vec![0u32; 500];
        d.events.iter().for_each(|e| counts[e.item as usize] += 1);
        counts.sort_unstable();
        assert!(counts[499] > 10 * counts[250].max(1), "{} vs {}", counts[499], counts[250]);
    }
}
