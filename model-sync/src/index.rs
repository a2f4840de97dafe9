//! Nearest-neighbour users with `hnsw_rs` over sparse, L2-normalised user vectors.
//!
//! Distance is `1 - cosine`. Points are inserted one at a time in user order: `hnsw_rs`
//! seeds its level generator with a constant, so a serial build is deterministic and a node
//! can rebuild exactly the index the model was built with from the model alone.

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;
use indicatif::ProgressBar;

use crate::model::{BuildParams, Model};

/// One non-zero of a sparse vector; vectors are sorted by `idx`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub idx: u32,
    pub val: f32,
}

/// `1 - cos(a, b)` for L2-normalised sparse vectors (merge join on sorted indices).
#[derive(Debug, Clone, Copy, Default)]
pub struct SparseCosine;

impl Distance<Entry> for SparseCosine {
    fn eval(&self, a: &[Entry], b: &[Entry]) -> f32 {
        (1.0 - sparse_dot(a, b)).max(0.0)
    }
}

pub fn sparse_dot(a: &[Entry], b: &[Entry]) -> f32 {
    // Branch-free merge: both cursors advance on equal indices, one of them otherwise. This
    // is the hot loop of index construction, where mispredicted branches dominate.
    let (mut i, mut j, mut dot) = (0, 0, 0f32);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.idx == y.idx {
            dot += x.val * y.val;
        }
        i += usize::from(x.idx <= y.idx);
        j += usize::from(y.idx <= x.idx);
    }
    dot
}

/// L2-normalise `(item, weight)` pairs (sorted by item) into a vector for the index.
pub fn normalise(items: &[u32], weights: &[f32], binary: bool) -> Vec<Entry> {
    let w = |x: f32| if binary { 1.0 } else { x };
    let norm = weights.iter().map(|&x| f64::from(w(x)).powi(2)).sum::<f64>().sqrt() as f32;
    if norm == 0.0 {
        return Vec::new();
    }
    items.iter().zip(weights).map(|(&idx, &x)| Entry { idx, val: w(x) / norm }).collect()
}

/// The users of a model in an HNSW graph.
pub struct UserIndex {
    hnsw: Hnsw<'static, Entry, SparseCosine>,
    ef_search: usize,
}

impl std::fmt::Debug for UserIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserIndex").field("points", &self.hnsw.get_nb_point()).finish()
    }
}

impl UserIndex {
    /// Insert every user of `model`, in order; deterministic for the same model.
    pub fn build(model: &Model, progress: &ProgressBar) -> Self {
        Self::build_from(model.users.len(), |u| user_vector(model, u), &model.params, progress)
    }

    pub(crate) fn build_from(
        n: usize,
        vector: impl Fn(u32) -> Vec<Entry>,
        p: &BuildParams,
        progress: &ProgressBar,
    ) -> Self {
        let hnsw = Hnsw::new(p.hnsw_m, n.max(1), 16, p.hnsw_ef_construction, SparseCosine);
        progress.set_length(n as u64);
        for u in 0..n {
            let v = vector(u as u32);
            if !v.is_empty() {
                hnsw.insert_slice((&v, u));
            }
            progress.inc(1);
        }
        progress.finish_and_clear();
        Self { hnsw, ef_search: p.hnsw_ef_search }
    }

    /// The `k` most similar users to `v` (similarity > 0), best first, ties by user index;
    /// `skip` (the user itself) is left out.
    pub fn search(&self, v: &[Entry], k: usize, skip: Option<u32>) -> Vec<(u32, f32)> {
        if v.is_empty() || k == 0 {
            return Vec::new();
        }
        let want = k + usize::from(skip.is_some());
        let found = self.hnsw.search(v, want, self.ef_search.max(want));
        let mut out: Vec<(u32, f32)> = found
            .iter()
            .map(|n| (n.d_id as u32, 1.0 - n.distance))
            .filter(|&(u, sim)| Some(u) != skip && sim > 1e-6)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

/// The normalised vector of a user of the model.
pub fn user_vector(model: &Model, user: u32) -> Vec<Entry> {
    let (items, weights) = model.user_items(user);
    normalise(items, weights, model.params.binary)
}

/// Exact top-`k` neighbours of `user` by cosine, computed with a sparse product against the
/// item-major (CSC) copy of the normalised matrix. Used to measure the index's recall.
pub fn exact_neighbours(
    normalised: &crate::model::Matrix,
    csc: &crate::model::Matrix,
    user: u32,
    k: usize,
) -> Vec<(u32, f32)> {
    let row = normalised.outer_view(user as usize).expect("user in range");
    // row (1 x items) * X^T (items x users): column-major X gives each item's users.
    let mut sims = vec![0f32; normalised.rows()];
    for (&i, &x) in row.indices().iter().zip(row.data()) {
        let col = csc.outer_view(i as usize).expect("item in range");
        for (&v, &y) in col.indices().iter().zip(col.data()) {
            sims[v as usize] += x * y;
        }
    }
    let mut out: Vec<(u32, f32)> = sims
        .into_iter()
        .enumerate()
        .filter(|&(v, s)| v as u32 != user && s > 1e-6)
        .map(|(v, s)| (v as u32, s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}
