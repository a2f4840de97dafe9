//! The user-similarity model: what `build` produces, `blob` encodes and region nodes serve.
//!
//! A model is immutable once built. Users and items are sorted by their string id, so an
//! id is found by binary search and the same input always yields the same indices.

use std::cell::RefCell;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::neighbours::{self, Entry, ItemIndex, Similarity, Weighting};

/// Parameters of a build; stored in the model and the manifest. `model-sync tune` chooses
/// the similarity and scoring ones on a validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredParams")]
pub struct BuildParams {
    /// Neighbours kept per user (the K of user-KNN).
    pub neighbours: usize,
    /// How interaction weights enter similarities and scores.
    pub weighting: Weighting,
    /// Exponent of each item's IDF factor `ln(1 + users / item_users)` in the user vectors
    /// (0 = none): shared rare items make users more alike than shared bestsellers.
    pub idf: f64,
    /// Shrink a similarity by `n / (n + shrink)`, `n` the items two users share (0 = none).
    pub shrink: f64,
    /// Neighbours must be more similar than this (cosine after shrinkage).
    pub min_similarity: f64,
    /// Share of (recency-decayed) popularity in a user-KNN score, both scaled to 1 at their
    /// best item: 0 = neighbours only, 1 = popularity only.
    pub popularity_blend: f64,
    /// List entries a neighbour search reads before it caps the longest lists (see
    /// [`crate::neighbours`]); exact below it.
    pub scan_budget: u64,
    /// Half-life of the recency decay of item popularity, in days.
    pub popularity_half_life_days: f64,
    /// Seed for every random choice made while building or evaluating.
    pub seed: u64,
}

impl Default for BuildParams {
    fn default() -> Self {
        Self {
            neighbours: 50,
            weighting: Weighting::Raw,
            idf: 0.0,
            shrink: 0.0,
            min_similarity: 0.0,
            popularity_blend: 0.0,
            scan_budget: DEFAULT_SCAN_BUDGET,
            popularity_half_life_days: 14.0,
            seed: 42,
        }
    }
}

/// Default [`BuildParams::scan_budget`].
pub const DEFAULT_SCAN_BUDGET: u64 = 4_000_000;

impl BuildParams {
    pub fn similarity(&self) -> Similarity {
        Similarity {
            weighting: self.weighting,
            idf: self.idf as f32,
            shrink: self.shrink as f32,
            min_similarity: self.min_similarity as f32,
        }
    }

    /// Whether the parameters that shape the answers (similarity, K, blend) are the defaults.
    pub fn is_untuned(&self) -> bool {
        let d = BuildParams::default();
        self.similarity() == d.similarity()
            && self.neighbours == d.neighbours
            && self.popularity_blend == d.popularity_blend
    }

    /// One line: the parameters that shape the answers.
    pub fn describe(&self) -> String {
        format!(
            "k={} weighting={} idf={} shrink={} min_sim={} pop_blend={}",
            self.neighbours,
            self.weighting.name(),
            self.idf,
            self.shrink,
            self.min_similarity,
            self.popularity_blend
        )
    }

    /// Every parameter within its range, else the first one that is not.
    pub fn validate(&self) -> Result<(), ParamError> {
        let bad = |name, reason: &str| Err(ParamError { name, reason: reason.into() });
        if self.neighbours == 0 || self.neighbours > 1000 {
            return bad("neighbours", "must be in 1..=1000");
        }
        if !(self.idf.is_finite() && (0.0..=4.0).contains(&self.idf)) {
            return bad("idf", "must be in 0..=4");
        }
        if !(self.shrink.is_finite() && self.shrink >= 0.0) {
            return bad("shrink", "must be a non-negative number");
        }
        if !(self.min_similarity.is_finite() && (0.0..1.0).contains(&self.min_similarity)) {
            return bad("min_similarity", "must be in [0, 1)");
        }
        if !(self.popularity_blend.is_finite() && (0.0..=1.0).contains(&self.popularity_blend)) {
            return bad("popularity_blend", "must be in [0, 1]");
        }
        if self.scan_budget < 1000 {
            return bad("scan_budget", "must be at least 1000 list entries");
        }
        if !(self.popularity_half_life_days.is_finite() && self.popularity_half_life_days >= 0.0) {
            return bad("popularity_half_life_days", "must be a non-negative number");
        }
        Ok(())
    }
}

/// A build parameter out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid build parameter {name}: {reason}")]
pub struct ParamError {
    pub name: &'static str,
    pub reason: String,
}

/// Parameters as stored: today's fields, and those of format 2 (`binary`, the HNSW
/// settings), which still decode (`binary: true` is `weighting: binary`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StoredParams {
    neighbours: usize,
    weighting: Option<Weighting>,
    idf: f64,
    shrink: f64,
    min_similarity: f64,
    popularity_blend: f64,
    scan_budget: u64,
    popularity_half_life_days: f64,
    seed: u64,
    binary: bool,
    #[allow(dead_code)]
    hnsw_m: Option<usize>,
    #[allow(dead_code)]
    hnsw_ef_construction: Option<usize>,
    #[allow(dead_code)]
    hnsw_ef_search: Option<usize>,
}

impl Default for StoredParams {
    fn default() -> Self {
        let d = BuildParams::default();
        Self {
            neighbours: d.neighbours,
            weighting: None,
            idf: d.idf,
            shrink: d.shrink,
            min_similarity: d.min_similarity,
            popularity_blend: d.popularity_blend,
            scan_budget: d.scan_budget,
            popularity_half_life_days: d.popularity_half_life_days,
            seed: d.seed,
            binary: false,
            hnsw_m: None,
            hnsw_ef_construction: None,
            hnsw_ef_search: None,
        }
    }
}

impl From<StoredParams> for BuildParams {
    fn from(s: StoredParams) -> Self {
        let legacy = if s.binary { Weighting::Binary } else { Weighting::Raw };
        BuildParams {
            neighbours: s.neighbours,
            weighting: s.weighting.unwrap_or(legacy),
            idf: s.idf,
            shrink: s.shrink,
            min_similarity: s.min_similarity,
            popularity_blend: s.popularity_blend,
            scan_budget: s.scan_budget,
            popularity_half_life_days: s.popularity_half_life_days,
            seed: s.seed,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub params: BuildParams,
    /// Latest event time in the data (unix seconds); "now" for recency.
    pub reference_ts: i64,
    /// Events read before (user, item) aggregation.
    pub interactions: u64,
    /// Sorted user ids.
    pub users: Vec<String>,
    /// Sorted item ids.
    pub items: Vec<String>,
    /// Item names by item index; empty when the source had none.
    pub item_names: Vec<String>,
    /// Category names, sorted.
    pub categories: Vec<String>,
    /// Categories of item `i` are `item_cat_ids[item_cat_offsets[i]..item_cat_offsets[i+1]]`,
    /// primary first.
    pub item_cat_offsets: Vec<u32>,
    pub item_cat_ids: Vec<u32>,
    /// Aggregated user-item weights (users x items).
    pub matrix: Matrix,
    /// Neighbours of user `u` are `neighbour_ids/sims[neighbour_offsets[u]..neighbour_offsets[u+1]]`,
    /// by descending similarity.
    pub neighbour_offsets: Vec<u64>,
    pub neighbour_ids: Vec<u32>,
    pub neighbour_sims: Vec<f32>,
    /// Recency-decayed popularity by item.
    pub popularity: Vec<f32>,
    /// Derived from the fields above by [`Model::derive`], never stored.
    pub derived: Derived,
}

/// What a model computes from its stored fields once, before serving: the item-major index
/// searched for neighbours, and items in order of popularity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Derived {
    pub index: ItemIndex,
    /// Items by descending popularity, ties by item index.
    pub popularity_order: Vec<u32>,
}

/// One ranked item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub item: u32,
    pub score: f32,
}

/// What to leave out and how many to return.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub count: usize,
    /// Item indices never to return (besides the user's own items).
    pub exclude: &'a [u32],
    /// When set, only items in one of these categories (indices into `categories`).
    pub categories: Option<&'a [u32]>,
}

impl Model {
    pub fn user_index(&self, id: &str) -> Option<u32> {
        self.users.binary_search_by(|u| u.as_str().cmp(id)).ok().map(|i| i as u32)
    }

    pub fn item_index(&self, id: &str) -> Option<u32> {
        self.items.binary_search_by(|u| u.as_str().cmp(id)).ok().map(|i| i as u32)
    }

    pub fn category_index(&self, name: &str) -> Option<u32> {
        self.categories.binary_search_by(|c| c.as_str().cmp(name)).ok().map(|i| i as u32)
    }

    pub fn item_categories(&self, item: u32) -> &[u32] {
        let i = item as usize;
        &self.item_cat_ids[self.item_cat_offsets[i] as usize..self.item_cat_offsets[i + 1] as usize]
    }

    pub fn item_name(&self, item: u32) -> Option<&str> {
        let n = &self.item_names[item as usize];
        (!n.is_empty()).then_some(n.as_str())
    }

    /// Primary category name of an item.
    pub fn item_category(&self, item: u32) -> Option<&str> {
        self.item_categories(item).first().map(|&c| self.categories[c as usize].as_str())
    }

    /// Items of user `u` (sorted indices) and their weights.
    pub fn user_items(&self, user: u32) -> (&[u32], &[f32]) {
        let range = self.matrix.indptr().outer_inds_sz(user as usize);
        (&self.matrix.indices()[range.clone()], &self.matrix.data()[range])
    }

    pub fn neighbours(&self, user: u32) -> impl Iterator<Item = (u32, f32)> + '_ {
        let u = user as usize;
        let range = self.neighbour_offsets[u] as usize..self.neighbour_offsets[u + 1] as usize;
        self.neighbour_ids[range.clone()].iter().copied().zip(self.neighbour_sims[range].iter().copied())
    }

    /// Compute [`Derived`] from the stored fields (paced, see [`crate::pace`]). Every
    /// constructor of a model calls it before the model is used.
    pub fn derive(&mut self) {
        let index = ItemIndex::build(&self.matrix, self.params.similarity());
        let mut order: Vec<u32> = (0..self.items.len() as u32).collect();
        order.sort_by(|&a, &b| {
            self.popularity[b as usize].total_cmp(&self.popularity[a as usize]).then(a.cmp(&b))
        });
        self.derived = Derived { index, popularity_order: order };
    }

    /// The normalised vector of `(item, weight)` pairs (sorted by item, unique) under the
    /// model's similarity: a query for [`Model::knn`].
    pub fn vector(&self, items: &[u32], weights: &[f32]) -> Vec<Entry> {
        self.derived.index.vector(items, weights)
    }

    /// The normalised vector of a user of the model.
    pub fn user_vector(&self, user: u32) -> Vec<Entry> {
        let (items, weights) = self.user_items(user);
        self.vector(items, weights)
    }

    /// The `k` users most similar to `query` (from [`Model::vector`]), `skip` left out:
    /// exact unless the search reads more than `budget` list entries; see
    /// [`crate::neighbours`]. Lock-free and deterministic.
    pub fn knn_within(&self, query: &[Entry], k: usize, skip: Option<u32>, budget: u64) -> neighbours::Found {
        neighbours::search(&self.derived.index, &self.matrix, query, k, skip, budget)
    }

    /// [`Model::knn_within`] with the build's budget: (user, similarity), best first.
    pub fn knn(&self, query: &[Entry], k: usize, skip: Option<u32>) -> Vec<(u32, f32)> {
        self.knn_within(query, k, skip, self.params.scan_budget).neighbours
    }

    /// User-KNN: items of the user's neighbours weighted by similarity, minus the user's own.
    pub fn recommend(&self, user: u32, q: &Query<'_>) -> Vec<Scored> {
        let neighbours: Vec<(u32, f32)> = self.neighbours(user).collect();
        let (seen, _) = self.user_items(user);
        self.recommend_from(&neighbours, seen, q)
    }

    /// Score items from a neighbour list (stored, or found at request time) excluding `seen`
    /// (sorted item indices) and `q.exclude`: `sum over neighbours v of sim(u, v) * w(v, i)`,
    /// blended with popularity by `popularity_blend` (both scaled to 1 at their best item).
    /// Empty when no neighbour has an item: the caller decides what to serve instead.
    pub fn recommend_from(&self, neighbours: &[(u32, f32)], seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        ITEM_SCRATCH.with_borrow_mut(|s| {
            if s.scores.len() < self.items.len() {
                s.scores.resize(self.items.len(), 0.0);
            }
            let weighting = self.params.weighting;
            for &(v, sim) in neighbours {
                let (items, weights) = self.user_items(v);
                for (&i, &w) in items.iter().zip(weights) {
                    let add = sim * weighting.apply(w);
                    if add.is_nan() || add <= 0.0 {
                        continue;
                    }
                    let slot = &mut s.scores[i as usize];
                    if *slot == 0.0 {
                        s.touched.push(i);
                    }
                    *slot += add;
                }
            }
            let blend = self.params.popularity_blend.clamp(0.0, 1.0) as f32;
            let max_score = s.touched.iter().map(|&i| s.scores[i as usize]).fold(0f32, f32::max);
            let out = if max_score <= 0.0 {
                Vec::new()
            } else if blend == 0.0 {
                let c = s.touched.iter().map(|&i| Scored { item: i, score: s.scores[i as usize] });
                self.top(c, seen, q)
            } else {
                let pop_scale = self.max_popularity().recip();
                let blended = |i: u32, knn: f32| {
                    let pop = self.popularity[i as usize] * pop_scale;
                    (1.0 - blend) * knn / max_score + blend * if pop.is_finite() { pop } else { 0.0 }
                };
                let from_neighbours =
                    s.touched.iter().map(|&i| Scored { item: i, score: blended(i, s.scores[i as usize]) });
                // The best items no neighbour has are the most popular ones allowed.
                let scores = &s.scores;
                let allowed = self.allowed(seen, q);
                let popular_only = self
                    .derived
                    .popularity_order
                    .iter()
                    .copied()
                    .filter(|&i| scores[i as usize] == 0.0 && allowed(i))
                    .take(q.count)
                    .map(|i| Scored { item: i, score: blended(i, 0.0) });
                self.top(from_neighbours.chain(popular_only), seen, q)
            };
            for &i in &s.touched {
                s.scores[i as usize] = 0.0;
            }
            s.touched.clear();
            out
        })
    }

    fn max_popularity(&self) -> f32 {
        self.derived.popularity_order.first().map_or(0.0, |&i| self.popularity[i as usize])
    }

    /// Recency-decayed popularity, for users the model does not know.
    pub fn popular(&self, seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        let allowed = self.allowed(seen, q);
        self.derived
            .popularity_order
            .iter()
            .copied()
            .filter(|&i| allowed(i))
            .take(q.count)
            .map(|i| Scored { item: i, score: self.popularity[i as usize] })
            .collect()
    }

    /// Whether an item may be returned: not in `seen` or `q.exclude`, within `q.categories`.
    fn allowed<'a>(&'a self, seen: &'a [u32], q: &'a Query<'_>) -> impl Fn(u32) -> bool + 'a {
        move |item: u32| {
            seen.binary_search(&item).is_err()
                && !q.exclude.contains(&item)
                && q.categories.is_none_or(|cats| self.item_categories(item).iter().any(|c| cats.contains(c)))
        }
    }

    /// The best `q.count` candidates not in `seen`/`q.exclude` and within `q.categories`;
    /// ties broken by item id so answers are deterministic.
    fn top(&self, candidates: impl Iterator<Item = Scored>, seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        let allowed = self.allowed(seen, q);
        top_k(candidates.filter(|s| allowed(s.item)), q.count)
    }
}

#[derive(Default)]
struct ItemScratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
}

thread_local! {
    static ITEM_SCRATCH: RefCell<ItemScratch> = RefCell::new(ItemScratch::default());
}

/// Descending score, then ascending item index.
pub fn rank_order(a: &Scored, b: &Scored) -> Ordering {
    b.score.total_cmp(&a.score).then(a.item.cmp(&b.item))
}

/// The `k` best by [`rank_order`], without sorting everything.
pub fn top_k(candidates: impl Iterator<Item = Scored>, k: usize) -> Vec<Scored> {
    if k == 0 {
        return Vec::new();
    }
    let mut v: Vec<Scored> = candidates.collect();
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, rank_order);
        v.truncate(k);
    }
    v.sort_unstable_by(rank_order);
    v
}

/// Exponential decay factor for an event `age_secs` old.
pub fn decay(age_secs: i64, half_life_days: f64) -> f64 {
    if half_life_days <= 0.0 {
        return 1.0;
    }
    let age_days = age_secs.max(0) as f64 / 86_400.0;
    0.5f64.powf(age_days / half_life_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_of_format_2_still_read() {
        let old = r#"{"neighbours":20,"hnsw_m":16,"hnsw_ef_construction":100,"hnsw_ef_search":64,"popularity_half_life_days":7.0,"binary":true,"seed":1}"#;
        let p: BuildParams = serde_json::from_str(old).unwrap();
        assert_eq!(
            (p.neighbours, p.weighting, p.popularity_half_life_days, p.seed),
            (20, Weighting::Binary, 7.0, 1)
        );
        let today = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<BuildParams>(&today).unwrap(), p);
        assert!(
            serde_json::from_str::<BuildParams>(r#"{"neighbors":5}"#).is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn top_k_breaks_ties_by_item() {
        let c =
            [(5, 1.0), (2, 3.0), (9, 1.0), (1, 1.0), (7, 2.0)].map(|(item, score)| Scored { item, score });
        let top: Vec<u32> = top_k(c.into_iter(), 4).iter().map(|s| s.item).collect();
        assert_eq!(top, [2, 7, 1, 5]);
    }

    #[test]
    fn decay_halves_per_half_life() {
        assert!((decay(14 * 86_400, 14.0) - 0.5).abs() < 1e-9);
        assert_eq!(decay(-5, 14.0), 1.0);
    }
}
