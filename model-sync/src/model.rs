//! The user-similarity model: what `build` produces, `blob` encodes and region nodes serve.
//!
//! A model is immutable once built. Users and items are sorted by their string id, so an
//! id is found by binary search and the same input always yields the same indices.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use sprs::CsMatI;

use crate::graph::Graph;
use crate::index::Entry;

/// User-item weights: rows are users, columns items; `u32` indices, `usize` row pointers.
pub type Matrix = CsMatI<f32, u32, usize>;

/// Parameters of a build; stored in the model and the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildParams {
    /// Neighbours kept per user (the K of user-KNN).
    pub neighbours: usize,
    /// HNSW links per node (M).
    pub hnsw_m: usize,
    /// HNSW candidate list size while building.
    pub hnsw_ef_construction: usize,
    /// HNSW candidate list size while searching (at least `neighbours`).
    pub hnsw_ef_search: usize,
    /// Half-life of the recency decay of item popularity, in days.
    pub popularity_half_life_days: f64,
    /// Treat every interaction as weight 1 (implicit feedback) instead of its weight.
    pub binary: bool,
    /// Seed for every random choice made while building or evaluating.
    pub seed: u64,
}

impl Default for BuildParams {
    fn default() -> Self {
        Self {
            neighbours: 50,
            hnsw_m: 16,
            hnsw_ef_construction: 100,
            hnsw_ef_search: 64,
            popularity_half_life_days: 14.0,
            binary: false,
            seed: 42,
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
    /// The users' HNSW graph, searched by [`Model::knn`].
    pub graph: Graph,
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

    /// The `k` users most similar to `query` (an L2-normalised sparse vector from
    /// [`crate::index::normalise`]) through the model's HNSW graph: (user, cosine similarity)
    /// with similarity > 1e-6, best first, ties by user index, `skip` left out. Lock-free and
    /// deterministic; beam width `max(params.hnsw_ef_search, k)`.
    pub fn knn(&self, query: &[Entry], k: usize, skip: Option<u32>) -> Vec<(u32, f32)> {
        self.graph.search(&self.matrix, query, k, self.params.hnsw_ef_search.max(k), skip)
    }

    /// User-KNN: items of the user's neighbours weighted by similarity, minus the user's own.
    pub fn recommend(&self, user: u32, q: &Query<'_>) -> Vec<Scored> {
        let neighbours: Vec<(u32, f32)> = self.neighbours(user).collect();
        let (seen, _) = self.user_items(user);
        self.recommend_from(&neighbours, seen, q)
    }

    /// Score items from a neighbour list (stored, or found at request time) excluding `seen`
    /// (sorted item indices) and `q.exclude`.
    pub fn recommend_from(&self, neighbours: &[(u32, f32)], seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        let mut scores = vec![0f32; self.items.len()];
        for &(v, sim) in neighbours {
            let (items, weights) = self.user_items(v);
            for (&i, &w) in items.iter().zip(weights) {
                scores[i as usize] += sim * self.effective_weight(w);
            }
        }
        let candidates = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(i, s)| Scored { item: i as u32, score: *s });
        self.top(candidates, seen, q)
    }

    /// Recency-decayed popularity, for users the model does not know.
    pub fn popular(&self, seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        let candidates =
            self.popularity.iter().enumerate().map(|(i, s)| Scored { item: i as u32, score: *s });
        self.top(candidates, seen, q)
    }

    pub(crate) fn effective_weight(&self, w: f32) -> f32 {
        if self.params.binary {
            1.0
        } else {
            w
        }
    }

    /// The best `q.count` candidates not in `seen`/`q.exclude` and within `q.categories`;
    /// ties broken by item id so answers are deterministic.
    fn top(&self, candidates: impl Iterator<Item = Scored>, seen: &[u32], q: &Query<'_>) -> Vec<Scored> {
        let allowed = |s: &Scored| {
            seen.binary_search(&s.item).is_err()
                && !q.exclude.contains(&s.item)
                && q.categories
                    .is_none_or(|cats| self.item_categories(s.item).iter().any(|c| cats.contains(c)))
        };
        top_k(candidates.filter(allowed), q.count)
    }
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
