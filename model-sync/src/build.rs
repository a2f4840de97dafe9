//! Dataset -> [`Model`]: aggregate, index items, find every user's neighbours exactly,
//! rank popularity.
//!
//! Deterministic: ids are sorted, events aggregated in sorted order, every user's neighbour
//! search independent of the others, and neighbour lists ordered by (similarity desc, user
//! asc). The same dataset and parameters give a byte-identical `model.bin` on any machine.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::dataset::Dataset;
use crate::par::par_map;
use model::matrix::Matrix;
use model::model::{decay, BuildParams, Derived, Model, ParamError};
use model::neighbours::{search_exhaustive, SearchPath};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the dataset has no interactions: nothing to build a model from")]
    Empty,
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// A built model and how it was made.
#[derive(Debug)]
pub struct Built {
    pub model: Model,
    /// sha256 of the input (events in order, item metadata).
    pub fingerprint: String,
    pub timings: Vec<(&'static str, Duration)>,
    /// How the neighbours were found.
    pub search: SearchStats,
}

/// Which path each user's neighbour search took, and how well it did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchStats {
    /// Users whose search scanned every list of their items (exact).
    pub full: usize,
    /// Users whose search stopped before lists that could not change the answer (exact).
    pub pruned: usize,
    /// Users whose search hit the scan budget (approximate).
    pub capped: usize,
    /// List entries read, over all users.
    pub scanned: u64,
    /// Mean recall@K against an exhaustive exact search on a sample of users.
    pub recall: f64,
    pub recall_users: usize,
}

impl SearchStats {
    pub fn describe(&self, k: usize) -> String {
        let n = (self.full + self.pruned + self.capped).max(1) as f64;
        let pct = |x: usize| 100.0 * x as f64 / n;
        format!(
            "neighbours: exact {:.1}% (all lists {:.1}%, pruned {:.1}%), capped at the scan budget {:.1}%; \
             {:.1} list entries read per user; recall@{k} against exhaustive exact search {:.4} ({} users sampled)",
            pct(self.full + self.pruned),
            pct(self.full),
            pct(self.pruned),
            pct(self.capped),
            self.scanned as f64 / n,
            self.recall,
            self.recall_users
        )
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
pub fn progress(label: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(label);
    pb
}

/// Build a model; its stored neighbours are checked against an exhaustive search for
/// [`RECALL_SAMPLE`] users.
pub fn build(data: &Dataset, params: &BuildParams) -> Result<Built, BuildError> {
    build_sampled(data, params, RECALL_SAMPLE)
}

/// [`build`] with the recall checked on `recall_sample` users (0: not checked, recall 1).
pub fn build_sampled(
    data: &Dataset,
    params: &BuildParams,
    recall_sample: usize,
) -> Result<Built, BuildError> {
    params.validate()?;
    if data.events.is_empty() {
        return Err(BuildError::Empty);
    }
    let mut timings = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name, timings: &mut Vec<_>| {
        timings.push((name, t.elapsed()));
        t = Instant::now();
    };
    let fingerprint = fingerprint(data);
    lap("fingerprint", &mut timings);

    // Sorted ids of users and items that have events; maps from dataset index to model index.
    let (users, user_map) = sorted_ids(&data.users, data.events.iter().map(|e| e.user));
    let (items, item_map) = sorted_ids(&data.items, data.events.iter().map(|e| e.item));
    let reference_ts = data.events.iter().map(|e| e.ts).max().unwrap_or(0);

    // Aggregate (user, item) pairs by summing weights; popularity decays with age.
    let mut popularity = vec![0f64; items.len()];
    let mut keyed: Vec<(u64, f32)> = Vec::with_capacity(data.events.len());
    for e in &data.events {
        let (u, i) = (user_map[e.user as usize], item_map[e.item as usize]);
        let w = params.weighting.apply(e.weight);
        let age = if e.ts == 0 { 0 } else { reference_ts - e.ts };
        popularity[i as usize] += f64::from(w) * decay(age, params.popularity_half_life_days);
        keyed.push(((u64::from(u) << 32) | u64::from(i), e.weight));
    }
    keyed.sort_unstable_by_key(|k| k.0);
    let mut indptr = vec![0usize; users.len() + 1];
    let mut indices = Vec::with_capacity(keyed.len());
    let mut values: Vec<f32> = Vec::with_capacity(keyed.len());
    let mut last = u64::MAX;
    for (key, w) in keyed {
        if key == last {
            *values.last_mut().expect("a previous value") += w;
            continue;
        }
        last = key;
        indptr[(key >> 32) as usize + 1] += 1;
        indices.push(key as u32);
        values.push(w);
    }
    for u in 0..users.len() {
        indptr[u + 1] += indptr[u];
    }
    let matrix = Matrix::new((users.len(), items.len()), indptr, indices, values);
    lap("aggregate", &mut timings);

    let (item_names, categories, item_cat_offsets, item_cat_ids) = item_tables(data, &items, &item_map);

    let mut model = Model {
        params: params.clone(),
        reference_ts,
        interactions: data.events.len() as u64,
        users,
        items,
        item_names,
        categories,
        item_cat_offsets,
        item_cat_ids,
        matrix,
        neighbour_offsets: Vec::new(),
        neighbour_ids: Vec::new(),
        neighbour_sims: Vec::new(),
        popularity: popularity.into_iter().map(|p| p as f32).collect(),
        derived: Derived::default(),
    };
    model.derive();
    lap("item index", &mut timings);
    if recall_sample == NO_NEIGHBOURS {
        return Ok(Built { model, fingerprint, timings, search: SearchStats::default() });
    }
    let (offsets, ids, sims, mut search) = search_all(&model, params.neighbours);
    (model.neighbour_offsets, model.neighbour_ids, model.neighbour_sims) = (offsets, ids, sims);
    lap("neighbours", &mut timings);
    (search.recall, search.recall_users) = stored_recall(&model, recall_sample, params.seed);
    lap("recall check", &mut timings);
    Ok(Built { model, fingerprint, timings, search })
}

/// `recall_sample` for a model without stored neighbours: the item index and everything else
/// but no neighbour lists (every user has none). For benchmarks of the search itself.
pub const NO_NEIGHBOURS: usize = usize::MAX;

/// Users whose stored neighbours every build checks against an exhaustive search.
pub const RECALL_SAMPLE: usize = 1000;

/// Every user's neighbours through [`Model::knn_within`] with its own vector, itself left
/// out, so a stored list is exactly what a request-time search answers for that user;
/// searched on every core, in an order that does not change the result.
fn search_all(model: &Model, k: usize) -> (Vec<u64>, Vec<u32>, Vec<f32>, SearchStats) {
    let pb = progress("neighbours");
    let n = model.users.len();
    pb.set_length(n as u64);
    let budget = model.params.scan_budget;
    let found = par_map(n, |u| {
        pb.inc(1);
        let q = model.user_vector(u as u32);
        model.knn_within(&q, k, Some(u as u32), budget)
    });
    pb.finish_and_clear();
    let mut stats = SearchStats::default();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    let total = found.iter().map(|f| f.neighbours.len()).sum();
    let (mut ids, mut sims) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for f in found {
        match f.path {
            SearchPath::Full => stats.full += 1,
            SearchPath::Pruned => stats.pruned += 1,
            SearchPath::Capped => stats.capped += 1,
        }
        stats.scanned += f.scanned;
        ids.extend(f.neighbours.iter().map(|n| n.0));
        sims.extend(f.neighbours.iter().map(|n| n.1));
        offsets.push(ids.len() as u64);
    }
    (offsets, ids, sims, stats)
}

/// Mean recall@K of the model's stored neighbour lists against an exhaustive exact search
/// (every list scanned, no pruning, no budget) on a seeded sample of users. A stored
/// neighbour counts as found when its similarity reaches the K-th exact similarity, so ties
/// at the boundary are not penalised. Users without any exact neighbour are not counted.
pub fn stored_recall(model: &Model, sample: usize, seed: u64) -> (f64, usize) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let k = model.params.neighbours;
    let mut users: Vec<u32> = (0..model.users.len() as u32).collect();
    users.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5EED));
    users.truncate(sample);
    let per_user = par_map(users.len(), |n| {
        let u = users[n];
        let q = model.user_vector(u);
        let exact = search_exhaustive(&model.derived.index, &model.matrix, &q, k, Some(u));
        let threshold = exact.last()?.1 - 1e-5;
        let found = model.neighbours(u).filter(|&(_, s)| s >= threshold).count().min(exact.len());
        Some(found as f64 / exact.len() as f64)
    });
    let counted: Vec<f64> = per_user.into_iter().flatten().collect();
    let recall = if counted.is_empty() { 1.0 } else { counted.iter().sum::<f64>() / counted.len() as f64 };
    (recall, counted.len())
}

/// Sorted unique ids among `used`, and a map from dataset index to sorted index.
fn sorted_ids(names: &[String], used: impl Iterator<Item = u32>) -> (Vec<String>, Vec<u32>) {
    let mut present = vec![false; names.len()];
    for i in used {
        present[i as usize] = true;
    }
    let mut order: Vec<u32> = (0..names.len() as u32).filter(|&i| present[i as usize]).collect();
    order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    let mut map = vec![u32::MAX; names.len()];
    for (new, &old) in order.iter().enumerate() {
        map[old as usize] = new as u32;
    }
    (order.iter().map(|&i| names[i as usize].clone()).collect(), map)
}

type ItemTables = (Vec<String>, Vec<String>, Vec<u32>, Vec<u32>);

fn item_tables(data: &Dataset, items: &[String], item_map: &[u32]) -> ItemTables {
    let mut names = vec![String::new(); items.len()];
    let mut cats_by_item: Vec<&[String]> = vec![&[]; items.len()];
    for (&old, meta) in &data.item_meta {
        let new = item_map[old as usize];
        if new == u32::MAX {
            continue;
        }
        names[new as usize] = meta.name.clone().unwrap_or_default();
        cats_by_item[new as usize] = &meta.categories;
    }
    let categories: Vec<String> =
        cats_by_item.iter().flat_map(|c| c.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    for cats in cats_by_item {
        for c in cats {
            let id = categories.binary_search(c).expect("collected above") as u32;
            if !ids[*offsets.last().expect("non-empty") as usize..].contains(&id) {
                ids.push(id);
            }
        }
        offsets.push(ids.len() as u32);
    }
    (names, categories, offsets, ids)
}

/// sha256 over the events in input order and the item metadata in id order.
pub fn fingerprint(data: &Dataset) -> String {
    let mut h = Sha256::new();
    for e in &data.events {
        h.update(data.users[e.user as usize].as_bytes());
        h.update([0]);
        h.update(data.items[e.item as usize].as_bytes());
        h.update([0]);
        h.update(e.weight.to_le_bytes());
        h.update(e.ts.to_le_bytes());
    }
    let mut meta: Vec<_> = data.item_meta.iter().map(|(i, m)| (&data.items[*i as usize], m)).collect();
    meta.sort_by(|a, b| a.0.cmp(b.0));
    for (id, m) in meta {
        h.update(id.as_bytes());
        h.update([1]);
        h.update(m.name.as_deref().unwrap_or("").as_bytes());
        for c in &m.categories {
            h.update([2]);
            h.update(c.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ItemMeta;
    use model::blob;
    use model::model::Query;

    /// Two taste groups: users 0-9 like items a*, users 10-19 like items b*.
    fn groups() -> Dataset {
        let mut b = Dataset::builder();
        for u in 0..20 {
            let group = if u < 10 { "a" } else { "b" };
            for i in 0..6 {
                // Each user misses one item of their group, so there is something to recommend.
                if i != u % 6 {
                    b.push(
                        &format!("u{u:02}"),
                        &format!("{group}{i}"),
                        1.0 + (i % 3) as f32,
                        1_000 + i64::from(i),
                    );
                }
            }
        }
        b.push("u00", "b0", 1.0, 500);
        b.meta("a1", ItemMeta { name: Some("Apple".into()), categories: vec!["fruit".into(), "red".into()] });
        b.finish()
    }

    fn params() -> BuildParams {
        BuildParams { neighbours: 5, ..BuildParams::default() }
    }

    #[test]
    fn same_input_gives_byte_identical_models() {
        let a = blob::encode_to_vec(&build(&groups(), &params()).unwrap().model);
        let b = blob::encode_to_vec(&build(&groups(), &params()).unwrap().model);
        assert_eq!(a, b);
        let other = BuildParams { neighbours: 4, ..params() };
        assert_ne!(a, blob::encode_to_vec(&build(&groups(), &other).unwrap().model));
    }

    #[test]
    fn neighbours_come_from_the_same_group_and_recommendations_exclude_seen_items() {
        let built = build(&groups(), &params()).unwrap();
        let m = &built.model;
        let u = m.user_index("u03").unwrap();
        assert!(m.neighbours(u).all(|(v, s)| m.users[v as usize].as_str() < "u10" && s > 0.0));
        let recs = m.recommend(u, &Query { count: 3, exclude: &[], categories: None });
        let ids: Vec<&str> = recs.iter().map(|s| m.items[s.item as usize].as_str()).collect();
        // u03 misses a3 (3 % 6) and has every other a-item.
        assert_eq!(ids.first(), Some(&"a3"), "{ids:?}");
        let (seen, _) = m.user_items(u);
        assert!(recs.iter().all(|s| seen.binary_search(&s.item).is_err()));
        let a3 = m.item_index("a3").unwrap();
        let without = m.recommend(u, &Query { count: 3, exclude: &[a3], categories: None });
        assert!(without.iter().all(|s| s.item != a3));
    }

    #[test]
    fn metadata_and_category_filter() {
        let m = build(&groups(), &params()).unwrap().model;
        let a1 = m.item_index("a1").unwrap();
        assert_eq!(m.item_name(a1), Some("Apple"));
        assert_eq!(m.item_category(a1), Some("fruit"));
        let red = m.category_index("red").unwrap();
        let cats = [red];
        let recs = m.popular(&[], &Query { count: 10, exclude: &[], categories: Some(&cats) });
        assert_eq!(recs.iter().map(|s| s.item).collect::<Vec<_>>(), [a1]);
    }

    #[test]
    fn blob_round_trips_and_rejects_damage() {
        let m = build(&groups(), &params()).unwrap().model;
        let bytes = blob::encode_to_vec(&m);
        assert_eq!(blob::decode(&bytes[..]).unwrap(), m);
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(blob::decode(&bytes[..cut]).is_err(), "truncated at {cut} must fail");
        }
        let mut wrong_version = bytes.clone();
        wrong_version[8] = 99;
        assert!(matches!(
            blob::decode(&wrong_version[..]),
            Err(blob::DecodeError::UnsupportedFormat { found: 99, .. })
        ));
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 0xff;
        assert!(blob::decode(&flipped[..]).is_err());
    }

    #[test]
    fn empty_dataset_and_bad_params_are_refused() {
        assert!(matches!(build(&Dataset::default(), &params()), Err(BuildError::Empty)));
        let bad = BuildParams { popularity_blend: 1.5, ..params() };
        assert!(build(&groups(), &bad).unwrap_err().to_string().contains("popularity_blend"));
    }
}
