//! Nearest users, found exactly through the item -> users lists.
//!
//! A user's similarity to another is the cosine of their weighted item vectors: each weight
//! goes through the model's [`Weighting`], is scaled by the item's IDF factor, and the vector
//! is L2-normalised; the cosine of users `u` and `v` with `n` items in common is then
//! shrunk by `n / (n + shrink)`. The dot product only has terms on shared items, so the users
//! similar to `u` are exactly those on the lists of `u`'s items: [`ItemIndex`] keeps every
//! item's users with their normalised weights, and [`search`] adds up `q_i * x_vi` over the
//! lists of the query's items (the item-major half of a sparse product).
//!
//! On sparse data (most users with a few items, most items with a few users) that costs
//! microseconds. What makes it costly is a very popular item: its list holds a sizeable
//! share of all users. The cost of an entry read is mostly where its user's sum lives: lists
//! are kept twice, by user (so reading one walks the per-user sums forward, which the
//! hardware prefetches) and by weight (so the strongest entries come first); a read in user
//! order costs about a third of one in weight order (1M generated users: 0.55 ms per search
//! against 1.4 ms). The search reads the query's short lists in full, in user order, and the
//! long ones strongest first, a block at a time, always from the list whose next entry could
//! add the most, in the manner of Fagin's threshold algorithm. A user it has not met yet can
//! gain at most `q_i` times the weight at each list's cut, and at most the query's norm over
//! the items not fully read (Cauchy-Schwarz); once that bound falls below the K-th best
//! similarity so far (a lower bound of the final K-th best, as terms only add), no unmet
//! user can enter the answer and reading stops. The users met get their remaining terms by
//! a lookup in their own rows, or by one pass over a list when that is cheaper, and those
//! that cannot reach the K-th best are dropped first. That answer is exact
//! ([`SearchPath::Pruned`]). When a small share of the long lists has been read without the
//! bound stopping the search, it rarely stops later, and the rest of every list is read in
//! user order ([`SearchPath::Full`], exact too). Only when the entries read would exceed a
//! budget does the search stop short of that bound ([`SearchPath::Capped`]): the users met
//! still get exact similarities, but one never met may be missing. Every build reports the
//! share of users on each path and the recall against an exhaustive search on a sample of
//! users.
//!
//! Neighbours are ordered by similarity (descending), then user index, so the result does
//! not depend on the order of the work. Searching takes no lock; each thread keeps scratch
//! arrays the size of the user count (a sum per user, and a shared-item count only when the
//! similarity shrinks by it).

use std::cell::RefCell;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::pace;

/// Similarities at or below this are not neighbours.
pub const MIN_SIMILARITY: f32 = 1e-6;

/// How a search reads lists.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Lists this short (or shorter than the users met so far) are read in full at once.
    short_list: usize,
    /// Entries read from a longer list at a time.
    block: usize,
    /// Once this share of the longer lists' entries has been read strongest first without
    /// the bound stopping the search, the rest is read in user order (see [`search_in`]).
    strongest_share: f32,
}

const READING: Reading = Reading { short_list: 1024, block: 512, strongest_share: 0.05 };

/// Reading a list in user order (the scratch array walked forward) costs about this share
/// of reading it in weight order (a random access per entry).
const IN_ORDER_COST: f32 = 0.33;

/// How an interaction's weight enters the user vectors (and the neighbours' scores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// The summed weight itself (ratings, event weights).
    #[default]
    Raw,
    /// 1 for every interaction: what was chosen, not how often or how strongly.
    Binary,
    /// `ln(1 + w)`: repeat interactions count, with diminishing returns.
    Log,
}

impl Weighting {
    #[inline]
    pub fn apply(self, w: f32) -> f32 {
        match self {
            Weighting::Raw => w,
            Weighting::Binary => 1.0,
            Weighting::Log => w.max(0.0).ln_1p(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Weighting::Raw => "raw",
            Weighting::Binary => "binary",
            Weighting::Log => "log",
        }
    }
}

/// What the similarity of two users is made of (a part of `BuildParams`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub weighting: Weighting,
    /// Exponent of the IDF factor `ln(1 + users / item_users)` of each item; 0 = no IDF.
    pub idf: f32,
    /// Shrinkage: similarity times `n / (n + shrink)`, `n` the number of shared items.
    pub shrink: f32,
    /// Neighbours must be more similar than this.
    pub min_similarity: f32,
}

impl Similarity {
    #[inline]
    fn finish(&self, dot: f32, shared: u32) -> f32 {
        if self.shrink > 0.0 {
            let n = shared as f32;
            dot * n / (n + self.shrink)
        } else {
            dot
        }
    }

    fn floor(&self) -> f32 {
        self.min_similarity.max(MIN_SIMILARITY)
    }
}

/// One non-zero of a sparse vector; vectors are sorted by `idx`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub idx: u32,
    pub val: f32,
}

/// The item-major copy of the users' normalised vectors, derived from the matrix (never
/// stored): every item's users with their normalised weight, twice: strongest first (ties
/// by user), for a search that may stop early, and by user, for reading a whole list with
/// the scratch arrays walked forward (several times faster than jumping about them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ItemIndex {
    offsets: Vec<usize>,
    users: Vec<u32>,
    values: Vec<f32>,
    /// The same lists in user order.
    users_in_order: Vec<u32>,
    values_in_order: Vec<f32>,
    /// `1 / ||v||` of each user's weighted vector (0 for an empty one).
    user_scale: Vec<f32>,
    /// IDF factor of each item.
    item_scale: Vec<f32>,
    similarity: Option<Similarity>,
}

impl ItemIndex {
    /// Transpose `matrix` (users x items) with the weighting of `sim`; paced ([`pace::tick`]).
    pub fn build(matrix: &Matrix, sim: Similarity) -> Self {
        let (n_users, n_items) = (matrix.rows(), matrix.cols());
        let indices = matrix.indices();
        let data = matrix.data();
        let indptr = matrix.indptr();
        let mut offsets = vec![0usize; n_items + 1];
        for chunk in indices.chunks(1 << 16) {
            for &i in chunk {
                offsets[i as usize + 1] += 1;
            }
            pace::tick();
        }
        for i in 0..n_items {
            offsets[i + 1] += offsets[i];
        }
        let item_scale: Vec<f32> = (0..n_items)
            .map(|i| {
                let df = (offsets[i + 1] - offsets[i]).max(1) as f64;
                if sim.idf == 0.0 {
                    1.0
                } else {
                    ((1.0 + n_users as f64 / df).ln().powf(f64::from(sim.idf))) as f32
                }
            })
            .collect();
        let mut user_scale = vec![0f32; n_users];
        for (u, scale) in user_scale.iter_mut().enumerate() {
            let r = indptr.outer_inds_sz(u);
            let sq: f64 = indices[r.clone()]
                .iter()
                .zip(&data[r])
                .map(|(&i, &w)| f64::from(sim.weighting.apply(w) * item_scale[i as usize]).powi(2))
                .sum();
            *scale = if sq > 0.0 { (1.0 / sq.sqrt()) as f32 } else { 0.0 };
            if u % 4096 == 0 {
                pace::tick();
            }
        }
        let mut next = offsets.clone();
        let mut users = vec![0u32; indices.len()];
        let mut values = vec![0f32; indices.len()];
        for (u, &scale) in user_scale.iter().enumerate() {
            if u % 1024 == 0 {
                pace::tick();
            }
            let r = indptr.outer_inds_sz(u);
            for (&i, &w) in indices[r.clone()].iter().zip(&data[r]) {
                let slot = &mut next[i as usize];
                users[*slot] = u as u32;
                values[*slot] = sim.weighting.apply(w) * item_scale[i as usize] * scale;
                *slot += 1;
            }
        }
        // Users are in increasing order within each list: keep that copy. Then strongest
        // first (the sort is stable), so a search meets first the users an item matters most to.
        let (users_in_order, values_in_order) = (users.clone(), values.clone());
        let mut pairs: Vec<(f32, u32)> = Vec::new();
        for i in 0..n_items {
            let r = offsets[i]..offsets[i + 1];
            if r.len() > 1 {
                pairs.clear();
                pairs.extend(values[r.clone()].iter().copied().zip(users[r.clone()].iter().copied()));
                pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
                for (k, (x, v)) in pairs.iter().enumerate() {
                    values[r.start + k] = *x;
                    users[r.start + k] = *v;
                }
            }
            if i % 256 == 0 {
                pace::tick();
            }
        }
        Self {
            offsets,
            users,
            values,
            users_in_order,
            values_in_order,
            user_scale,
            item_scale,
            similarity: Some(sim),
        }
    }

    /// Number of users of `item`.
    #[inline]
    pub fn degree(&self, item: u32) -> usize {
        self.offsets[item as usize + 1] - self.offsets[item as usize]
    }

    /// Users of `item`, strongest first.
    pub fn users(&self, item: u32) -> &[u32] {
        &self.users[self.offsets[item as usize]..self.offsets[item as usize + 1]]
    }

    fn list(&self, item: u32) -> (&[u32], &[f32]) {
        let r = self.offsets[item as usize]..self.offsets[item as usize + 1];
        (&self.users[r.clone()], &self.values[r])
    }

    /// `item`'s list in user order.
    fn list_in_order(&self, item: u32) -> (&[u32], &[f32]) {
        let r = self.offsets[item as usize]..self.offsets[item as usize + 1];
        (&self.users_in_order[r.clone()], &self.values_in_order[r])
    }

    fn similarity(&self) -> Similarity {
        self.similarity.expect("an index built from a matrix")
    }

    /// The normalised vector of `(item, weight)` pairs (sorted by item, one per item): the
    /// query for a user's row or for a live history.
    pub fn vector(&self, items: &[u32], weights: &[f32]) -> Vec<Entry> {
        let sim = self.similarity();
        let scaled = |(&i, &w): (&u32, &f32)| sim.weighting.apply(w) * self.item_scale[i as usize];
        let sq: f64 = items.iter().zip(weights).map(|p| f64::from(scaled(p)).powi(2)).sum();
        if sq <= 0.0 {
            return Vec::new();
        }
        let inv = (1.0 / sq.sqrt()) as f32;
        items.iter().zip(weights).map(|p| Entry { idx: *p.0, val: scaled(p) * inv }).collect()
    }

    /// Normalised weight of `item` in user `v`'s vector (0 when `v` does not have it).
    fn value(&self, matrix: &Matrix, v: u32, item: u32) -> f32 {
        let r = matrix.indptr().outer_inds_sz(v as usize);
        match matrix.indices()[r.clone()].binary_search(&item) {
            Ok(k) => {
                let w = matrix.data()[r.start + k];
                self.similarity().weighting.apply(w)
                    * self.item_scale[item as usize]
                    * self.user_scale[v as usize]
            }
            Err(_) => 0.0,
        }
    }

    /// Bytes held, for logs.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.len() * 8 + self.users.len() * 16 + self.user_scale.len() * 4 + self.item_scale.len() * 4
    }
}

/// Whether user `v`'s entry of weight `x` comes before the entry `(cut_user, cut_value)` of
/// the same list in weight order (weight descending, then user ascending).
#[inline]
fn read_before(v: u32, x: f32, cut_user: u32, cut_value: f32) -> bool {
    x > cut_value || (x == cut_value && v < cut_user)
}

impl ItemIndex {
    /// The entry at position `cut` of `item`'s list in weight order (`cut` < its length).
    fn cut(&self, item: u32, cut: usize) -> (u32, f32) {
        let (users, values) = self.list(item);
        (users[cut], values[cut])
    }
}

/// How a search got its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath {
    /// Every list of the query's items scanned: exact.
    Full,
    /// Stopped before the longest lists, which could not change the answer: exact.
    Pruned,
    /// The budget ran out: the longest lists were scanned over their strongest entries only.
    Capped,
}

/// A search's answer: `(user, similarity)`, best first, ties by user index.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub neighbours: Vec<(u32, f32)>,
    pub path: SearchPath,
    /// List entries read (the cost of the search).
    pub scanned: u64,
}

/// The count's top bit marks a user still in the running while the search completes.
const SURVIVOR_SHIFT: u32 = 31;
const SURVIVOR: u32 = 1 << SURVIVOR_SHIFT;
/// A lookup in a user's row costs about this many list entries read in order.
const LOOKUP_COST: usize = 8;

/// Per-thread sums of a search, one slot per user. Every term is positive (weights are), so
/// a user's sum only grows: 0 means not met yet.
#[derive(Default)]
struct Scratch {
    /// Each user's partial dot product.
    acc: Vec<f32>,
    /// Each user's shared-item count, kept only when the similarity shrinks by it (`counting`);
    /// its top bit marks a survivor while a search completes.
    shared: Vec<u32>,
    counting: bool,
    /// The users met, each once.
    touched: Vec<u32>,
    tmp: Vec<f32>,
    best: Vec<(u32, f32)>,
    survivors: Vec<u32>,
}

/// Add `q` times the entries `(users, values)` that `keep` selects to their users' sums,
/// noting each user met for the first time in `touched`.
#[inline(always)]
fn add_entries<const COUNT: bool>(
    acc: &mut [f32],
    shared: &mut [u32],
    touched: &mut Vec<u32>,
    (users, values): (&[u32], &[f32]),
    q: f32,
    keep: impl Fn(u32, f32) -> bool,
) {
    // Branch-free: whether a user is new is a coin flip to the branch predictor, so every
    // user is written to the end of `touched` and only a new one is kept.
    let mut n = touched.len();
    touched.resize(n + users.len(), 0);
    for (&v, &x) in users.iter().zip(values) {
        let kept = keep(v, x);
        let term = if kept { q * x } else { 0.0 };
        let sum = &mut acc[v as usize];
        touched[n] = v;
        if COUNT {
            let count = &mut shared[v as usize];
            n += usize::from((*count & !SURVIVOR) == 0 && kept);
            *count += u32::from(kept);
        } else {
            n += usize::from((*sum == 0.0) & (term != 0.0));
        }
        *sum += term;
    }
    touched.truncate(n);
}

impl Scratch {
    fn prepare(&mut self, users: usize, counting: bool) {
        if self.acc.len() < users {
            self.acc.resize(users, 0.0);
            self.shared.resize(users, 0);
        }
        self.counting = counting;
    }

    fn reset(&mut self) {
        for &v in &self.touched {
            self.acc[v as usize] = 0.0;
        }
        if self.counting {
            for &v in &self.touched {
                self.shared[v as usize] = 0;
            }
        }
        self.touched.clear();
        self.best.clear();
    }

    fn add(&mut self, list: (&[u32], &[f32]), q: f32, keep: impl Fn(u32, f32) -> bool) {
        if self.counting {
            add_entries::<true>(&mut self.acc, &mut self.shared, &mut self.touched, list, q, keep);
        } else {
            add_entries::<false>(&mut self.acc, &mut self.shared, &mut self.touched, list, q, keep);
        }
    }

    /// Add `q` times the entries `range` of `item`'s list (weight order) to their users.
    fn scan(&mut self, index: &ItemIndex, item: u32, q: f32, range: std::ops::Range<usize>) {
        let (users, values) = index.list(item);
        self.add((&users[range.clone()], &values[range]), q, |_, _| true);
    }

    /// Add `q` times the entries of `item`'s list not among the first `cut` in weight order
    /// (all of them when `cut` is 0) to their users, reading the list in user order.
    fn scan_in_order(&mut self, index: &ItemIndex, item: u32, q: f32, cut: usize) {
        let list = index.list_in_order(item);
        if cut == 0 {
            self.add(list, q, |_, _| true);
        } else {
            let (cut_user, cut_value) = index.cut(item, cut);
            self.add(list, q, |v, x| !read_before(v, x, cut_user, cut_value));
        }
    }

    /// Add `q` times the entries of `item`'s list not among the first `cut` in weight order
    /// to the survivors among their users, reading the list in user order.
    fn complete_in_order(&mut self, index: &ItemIndex, item: u32, q: f32, cut: usize) {
        let (users, values) = index.list_in_order(item);
        let (cut_user, cut_value) = index.cut(item, cut);
        for (&v, &x) in users.iter().zip(values) {
            let count = &mut self.shared[v as usize];
            let keep =
                ((*count & SURVIVOR) >> SURVIVOR_SHIFT) & u32::from(!read_before(v, x, cut_user, cut_value));
            self.acc[v as usize] += q * x * keep as f32;
            *count += keep * u32::from(self.counting);
        }
    }

    /// Add the term `q * x` to survivor `v`.
    #[inline]
    fn complete(&mut self, v: u32, q: f32, x: f32) {
        self.acc[v as usize] += q * x;
        self.shared[v as usize] += u32::from(self.counting);
    }

    #[inline]
    fn value(&self, v: u32, sim: &Similarity) -> f32 {
        if self.counting {
            sim.finish(self.acc[v as usize], self.shared[v as usize] & !SURVIVOR)
        } else {
            self.acc[v as usize]
        }
    }

    /// Whether at least `k` touched users (`skip` left out) are already more similar than
    /// `bound`: a pass that only reads.
    fn at_least_above(&self, k: usize, bound: f32, skip: Option<u32>, sim: &Similarity) -> bool {
        let mut n = 0;
        for &v in &self.touched {
            if Some(v) != skip && self.value(v, sim) > bound {
                n += 1;
                if n >= k {
                    return true;
                }
            }
        }
        false
    }

    /// The `k`-th best similarity so far among touched users (`skip` left out), a lower
    /// bound of the final `k`-th best: every term and the shared count only grow.
    fn kth(&mut self, k: usize, skip: Option<u32>, sim: &Similarity) -> Option<f32> {
        let mut tmp = std::mem::take(&mut self.tmp);
        tmp.clear();
        tmp.extend(self.touched.iter().filter(|&&v| Some(v) != skip).map(|&v| self.value(v, sim)));
        let kth =
            (k > 0 && tmp.len() >= k).then(|| *tmp.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1);
        self.tmp = tmp;
        kth
    }

    /// Offer a candidate to the best `k` kept so far (a sorted list: few candidates get in
    /// once it is full).
    #[inline]
    fn offer(&mut self, k: usize, cand: (u32, f32)) {
        if self.best.len() == k {
            match self.best.last() {
                Some(worst) if neighbour_order(&cand, worst) == Ordering::Less => {
                    self.best.pop();
                }
                _ => return,
            }
        }
        let at = self.best.partition_point(|x| neighbour_order(x, &cand) == Ordering::Less);
        self.best.insert(at, cand);
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The `k` users most similar to `query` (a vector from [`ItemIndex::vector`]), `skip` left
/// out, reading at most about `budget` list entries before capping; see the module docs.
pub fn search(
    index: &ItemIndex,
    matrix: &Matrix,
    query: &[Entry],
    k: usize,
    skip: Option<u32>,
    budget: u64,
) -> Found {
    with_scratch(index, matrix.rows(), |s| search_in(s, index, matrix, query, k, skip, budget, true, READING))
}

/// `f` with this thread's scratch space sized for `users`, left clean afterwards.
fn with_scratch(index: &ItemIndex, users: usize, f: impl FnOnce(&mut Scratch) -> Found) -> Found {
    SCRATCH.with_borrow_mut(|s| {
        s.prepare(users, index.similarity().shrink > 0.0);
        let found = f(s);
        s.reset();
        found
    })
}

/// [`search`] without pruning or budget: every list scanned in full. The reference the
/// recall of [`search`] is measured against.
pub fn search_exhaustive(
    index: &ItemIndex,
    matrix: &Matrix,
    query: &[Entry],
    k: usize,
    skip: Option<u32>,
) -> Vec<(u32, f32)> {
    with_scratch(index, matrix.rows(), |s| {
        search_in(s, index, matrix, query, k, skip, u64::MAX, false, READING)
    })
    .neighbours
}

#[allow(clippy::too_many_arguments)]
fn search_in(
    s: &mut Scratch,
    index: &ItemIndex,
    matrix: &Matrix,
    query: &[Entry],
    k: usize,
    skip: Option<u32>,
    budget: u64,
    prune: bool,
    reading: Reading,
) -> Found {
    let sim = index.similarity();
    let floor = sim.floor();
    if k == 0 {
        return Found { neighbours: Vec::new(), path: SearchPath::Full, scanned: 0 };
    }
    // Shortest lists first.
    let mut order: Vec<(usize, u32, f32)> =
        query.iter().filter(|e| e.val > 0.0).map(|e| (index.degree(e.idx), e.idx, e.val)).collect();
    order.sort_unstable_by_key(|o| (o.0, o.1));

    // Phase 1: short lists in full (all of them without pruning).
    let mut scanned = 0u64;
    let mut j = 0;
    while j < order.len() {
        let (df, item, q) = order[j];
        if prune && (df > reading.short_list.max(s.touched.len()) || scanned + df as u64 > budget) {
            break;
        }
        s.scan_in_order(index, item, q, 0);
        scanned += df as u64;
        j += 1;
    }

    // Phase 2: the longer lists, strongest entries first, a block at a time from the list
    // whose next entry could add the most, until no user not met yet could reach the k-th
    // best similarity so far (exact), or the budget is spent (capped), or nothing is left;
    // or, past `strongest_share` of their entries, the rest of them in user order (exact).
    let left = &order[j..];
    let mut cut = vec![0usize; left.len()];
    let q_left = left.iter().map(|o| o.2 * o.2).sum::<f32>().sqrt();
    let next = |t: usize, cut: &[usize]| {
        let (_, values) = index.list(left[t].1);
        values.get(cut[t]).copied().unwrap_or(0.0)
    };
    let (mut path, mut theta) = (SearchPath::Full, 0f32);
    let mut bound: f32;
    let (mut last_try, mut since_check) = (f32::INFINITY, 0u64);
    // Past this many entries read strongest first, stopping early has become unlikely and
    // the rest of every list is read in user order (unless that would exceed the budget).
    let left_total: u64 = left.iter().map(|o| o.0 as u64).sum();
    let (mut strongest_read, strongest_limit) = (0u64, (left_total as f32 * reading.strongest_share) as u64);
    loop {
        // The most a user can still gain from entries not read: each remaining list adds at
        // most q times the weight at its cut (lists are sorted), and all of them together
        // at most the query's norm over those items (Cauchy-Schwarz).
        let (mut ta, mut pick, mut pick_gain) = (0f32, None, 0f32);
        for (t, &(_, _, q)) in left.iter().enumerate() {
            let gain = q * next(t, &cut);
            ta += gain;
            if gain > pick_gain {
                (pick, pick_gain) = (Some(t), gain);
            }
        }
        bound = ta.min(q_left);
        let Some(t) = pick else { break };
        if bound <= floor {
            path = SearchPath::Pruned;
            break;
        }
        // A check reads every touched user once: only when the reading since the last one
        // paid for it, and the bound has dropped since.
        if since_check * 2 >= s.touched.len() as u64 && bound < 0.95 * last_try && s.touched.len() >= k {
            since_check = 0;
            if s.at_least_above(k, bound, skip, &sim) {
                theta = s.kth(k, skip, &sim).unwrap_or(bound);
                path = SearchPath::Pruned;
                break;
            }
            last_try = bound;
        }
        if scanned >= budget {
            path = SearchPath::Capped;
            break;
        }
        if strongest_read >= strongest_limit && prune && scanned + (left_total - strongest_read) <= budget {
            for (t, &(df, item, q)) in left.iter().enumerate() {
                if cut[t] < df {
                    s.scan_in_order(index, item, q, cut[t]);
                    scanned += (df - cut[t]) as u64;
                    cut[t] = df;
                }
            }
            path = SearchPath::Full;
            break;
        }
        let (df, item, q) = left[t];
        let end = (cut[t] + reading.block).min(df);
        s.scan(index, item, q, cut[t]..end);
        let read = (end - cut[t]) as u64;
        (scanned, since_check, cut[t]) = (scanned + read, since_check + read, end);
        strongest_read += read;
    }

    if path == SearchPath::Full {
        // Once k are kept, a user below the worst of them cannot get in: one comparison.
        let mut at_least = floor;
        for t in 0..s.touched.len() {
            let v = s.touched[t];
            let value = s.value(v, &sim);
            if value > floor && value >= at_least && Some(v) != skip {
                s.offer(k, (v, value));
                if s.best.len() == k {
                    at_least = s.best[k - 1].1;
                }
            }
        }
        return Found { neighbours: s.best.clone(), path, scanned };
    }

    // Users met who can still make the top k: those whose partial similarity plus the most
    // they can still gain reaches the k-th best partial one (a lower bound of the final k-th
    // best; when capped too, which only leaves users unmet).
    if path == SearchPath::Capped {
        theta = s.kth(k, skip, &sim).unwrap_or(0.0);
    }
    let mut survivors = std::mem::take(&mut s.survivors);
    survivors.clear();
    for &v in &s.touched {
        if Some(v) != skip && s.acc[v as usize] + bound >= theta {
            s.shared[v as usize] |= SURVIVOR;
            survivors.push(v);
        }
    }
    // Their terms from the entries not read: by one pass over the rest of a list that only
    // adds to survivors when that is shorter than a lookup in each survivor's row.
    for (t, &(df, item, q)) in left.iter().enumerate() {
        let from = cut[t];
        if from == df {
            continue;
        }
        let (users, values) = index.list(item);
        let (rest, lookups) = (df - from, survivors.len() * LOOKUP_COST);
        let in_order = (df as f32 * IN_ORDER_COST) as usize;
        if in_order < rest.min(lookups) {
            s.complete_in_order(index, item, q, from);
            scanned += df as u64;
        } else if rest < lookups {
            for (&v, &x) in users[from..].iter().zip(&values[from..]) {
                if s.shared[v as usize] & SURVIVOR != 0 {
                    s.complete(v, q, x);
                }
            }
            scanned += (df - from) as u64;
        } else {
            let (cut_user, cut_value) = (users[from], values[from]);
            for &v in &survivors {
                let x = index.value(matrix, v, item);
                // Entries are sorted by (weight desc, user asc): one before the cut was read.
                let read = x > cut_value || (x == cut_value && v < cut_user);
                if x > 0.0 && !read {
                    s.complete(v, q, x);
                }
            }
            scanned += survivors.len() as u64;
        }
    }
    for &v in &survivors {
        s.shared[v as usize] &= !SURVIVOR;
        let value = s.value(v, &sim);
        if value > floor {
            s.offer(k, (v, value));
        }
    }
    s.survivors = survivors;
    Found { neighbours: s.best.clone(), path, scanned }
}

/// Descending similarity, then ascending user.
pub fn neighbour_order(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn top(mut v: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        if v.len() > k {
            v.select_nth_unstable_by(k - 1, neighbour_order);
            v.truncate(k);
        }
        v.sort_unstable_by(neighbour_order);
        v
    }

    fn matrix(rows: &[Vec<(u32, f32)>], items: usize) -> Matrix {
        let mut indptr = vec![0usize];
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        for r in rows {
            for &(i, w) in r {
                idx.push(i);
                val.push(w);
            }
            indptr.push(idx.len());
        }
        Matrix::new((rows.len(), items), indptr, idx, val)
    }

    /// Dense brute force: every pair's cosine (with shrinkage) computed from the rows.
    fn brute(m: &Matrix, index: &ItemIndex, u: u32, k: usize, sim: &Similarity) -> Vec<(u32, f32)> {
        let row = |v: u32| {
            let r = m.indptr().outer_inds_sz(v as usize);
            index.vector(&m.indices()[r.clone()], &m.data()[r])
        };
        let q = row(u);
        let mut out = Vec::new();
        for v in 0..m.rows() as u32 {
            if v == u {
                continue;
            }
            let x = row(v);
            let (mut dot, mut shared) = (0f32, 0u32);
            for a in &q {
                if let Some(b) = x.iter().find(|b| b.idx == a.idx) {
                    dot += a.val * b.val;
                    shared += 1;
                }
            }
            let s = sim.finish(dot, shared);
            if s > sim.floor() {
                out.push((v, s));
            }
        }
        top(out, k)
    }

    /// Skewed random data: item popularity falls off like 1/rank, so some lists are long.
    fn skewed(users: usize, items: u32, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rows: Vec<Vec<(u32, f32)>> = (0..users)
            .map(|_| {
                let n = rng.random_range(1..12);
                let mut r: Vec<(u32, f32)> = (0..n)
                    .map(|_| {
                        let x: f64 = rng.random();
                        ((x * x * x * f64::from(items)) as u32, rng.random_range(1..6) as f32)
                    })
                    .collect();
                r.sort_by_key(|p| p.0);
                r.dedup_by_key(|p| p.0);
                r
            })
            .collect();
        matrix(&rows, items as usize)
    }

    fn close(a: &[(u32, f32)], b: &[(u32, f32)]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x.1 - y.1).abs() < 1e-5)
    }

    /// [`search`] with lists read in small pieces, so test-sized data takes every path.
    fn small_reading(
        index: &ItemIndex,
        m: &Matrix,
        q: &[Entry],
        k: usize,
        skip: Option<u32>,
        budget: u64,
    ) -> Found {
        let reading = Reading { short_list: 4, block: 3, strongest_share: 0.5 };
        with_scratch(index, m.rows(), |s| search_in(s, index, m, q, k, skip, budget, true, reading))
    }

    #[test]
    fn pruned_search_is_exact_and_capped_search_stays_close() {
        for (weighting, idf, shrink) in
            [(Weighting::Raw, 0.0, 0.0), (Weighting::Binary, 1.0, 5.0), (Weighting::Log, 0.5, 0.0)]
        {
            let sim = Similarity { weighting, idf, shrink, min_similarity: 0.0 };
            let m = skewed(600, 80, 7);
            let index = ItemIndex::build(&m, sim);
            let (mut pruned, mut full, mut capped) = (0, 0, 0);
            for u in 0..m.rows() as u32 {
                let r = m.indptr().outer_inds_sz(u as usize);
                let q = index.vector(&m.indices()[r.clone()], &m.data()[r]);
                let expected = brute(&m, &index, u, 10, &sim);
                let exhaustive = search_exhaustive(&index, &m, &q, 10, Some(u));
                assert!(close(&exhaustive, &expected), "user {u}: {exhaustive:?} vs {expected:?}");
                let found = small_reading(&index, &m, &q, 10, Some(u), u64::MAX);
                assert!(close(&found.neighbours, &expected), "user {u} ({:?})", found.path);
                assert_ne!(found.path, SearchPath::Capped);
                pruned += usize::from(found.path == SearchPath::Pruned);
                full += usize::from(found.path == SearchPath::Full && found.scanned > 4);
                // A budget too small for the longest lists: capped, but every similarity
                // it reports is exact.
                let small = small_reading(&index, &m, &q, 10, Some(u), 40);
                capped += usize::from(small.path == SearchPath::Capped);
                for (v, s) in &small.neighbours {
                    let exact = brute(&m, &index, u, m.rows(), &sim);
                    let e = exact.iter().find(|e| e.0 == *v).expect("a real neighbour");
                    assert!((e.1 - s).abs() < 1e-5);
                }
            }
            assert!(pruned > 50, "pruning should apply on skewed data ({weighting:?}): {pruned}");
            // Lists finished in user order after half of them was read strongest first.
            assert!(full > 50, "some searches read every list ({weighting:?}): {full}");
            assert!(capped > 50, "a small budget caps ({weighting:?}): {capped}");
        }
    }

    #[test]
    fn min_similarity_and_skip_are_respected() {
        let m = skewed(200, 40, 3);
        let sim = Similarity { weighting: Weighting::Raw, idf: 0.0, shrink: 0.0, min_similarity: 0.3 };
        let index = ItemIndex::build(&m, sim);
        for u in 0..m.rows() as u32 {
            let r = m.indptr().outer_inds_sz(u as usize);
            let q = index.vector(&m.indices()[r.clone()], &m.data()[r]);
            let found = search(&index, &m, &q, 20, Some(u), u64::MAX);
            assert!(found.neighbours.iter().all(|&(v, s)| v != u && s > 0.3));
            assert!(close(&found.neighbours, &brute(&m, &index, u, 20, &sim)));
        }
    }

    #[test]
    fn weights_and_lists() {
        assert_eq!(Weighting::Binary.apply(7.0), 1.0);
        assert!((Weighting::Log.apply(1.0) - 2f32.ln()).abs() < 1e-7);
        let m = matrix(&[vec![(0, 1.0), (1, 3.0)], vec![(1, 1.0)], vec![(0, 2.0)]], 2);
        let index = ItemIndex::build(
            &m,
            Similarity { weighting: Weighting::Raw, idf: 0.0, shrink: 0.0, min_similarity: 0.0 },
        );
        // Item 1: user 1 (weight 1 of norm 1) before user 0 (3 of sqrt 10).
        assert_eq!(index.users(1), [1, 0]);
        assert_eq!(index.degree(0), 2);
    }
}
