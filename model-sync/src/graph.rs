//! The users' HNSW graph, flattened: extracted from `hnsw_rs` after the build, stored in
//! `model.bin` and searched by [`Model::knn`](crate::model::Model::knn) at request time.
//!
//! A user is in the graph when its normalised vector is not empty. Each such user has a level
//! `0..=top`; layer `l` holds the users of level `l` or more. Layer 0 is a CSR indexed by user,
//! the upper layers a CSR over their sorted member lists (which follow from the levels, so
//! they are not stored). Every neighbour list is sorted by user index, so the structure is a
//! canonical function of the graphs `hnsw_rs` built. Search starts at `entry`, the first user
//! inserted at the top level (`hnsw_rs` replaces its entry point only on a strictly higher
//! level), and is plain HNSW: greedy descent through the upper layers, beam search at layer 0.
//!
//! The build inserts shards of the users into separate `hnsw_rs` graphs (see
//! [`crate::index`]); [`Graph::join`] makes one graph of them: the first shard's upper layers
//! and entry point, and at layer 0 every user's own-shard links plus links to its nearest
//! users in the other shards.
//!
//! Similarities are computed against the model's matrix rows, each divided by the user's L2
//! norm (precomputed here, not stored); the query is scattered into a thread-local dense
//! array once, so each candidate costs a gather over its own row. Searching takes no lock and,
//! once a thread's scratch space has grown to the model's size, allocates only its answer.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;

use crate::index::Entry;
use crate::model::Matrix;

/// Level of a user that is not in the graph (its vector is empty).
pub const ABSENT: u8 = u8::MAX;

/// Similarities at or below this are not neighbours.
pub const MIN_SIMILARITY: f32 = 1e-6;

/// A graph that breaks an invariant: what the decoder reports for a corrupt graph section.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidGraph(String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, InvalidGraph> {
    Err(InvalidGraph(msg.into()))
}

/// The HNSW graph over a model's users; see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Level of each user, [`ABSENT`] for users not in the graph.
    levels: Vec<u8>,
    /// Where every search starts: a user at the top level; `None` when the graph is empty.
    entry: Option<u32>,
    /// `layers[l]`: layer `l`; layer 0 has every user as a member, absent ones without links.
    layers: Vec<Layer>,
    /// Each user's matrix row and the L2 norm of its (effective) weights, side by side so a
    /// distance costs one cache miss less; derived from the matrix, not stored.
    rows: Vec<Row>,
    /// Matrix weights count as 1 (`BuildParams::binary`).
    binary: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    start: usize,
    len: u32,
    norm: f32,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Layer {
    /// Users of this layer, sorted; empty for layer 0, where position = user.
    members: Vec<u32>,
    /// Links of the `j`th member are `links[offsets[j]..offsets[j + 1]]`, sorted by user.
    offsets: Vec<u64>,
    links: Vec<u32>,
}

impl Layer {
    fn links_at(&self, pos: usize) -> &[u32] {
        &self.links[self.offsets[pos] as usize..self.offsets[pos + 1] as usize]
    }
}

/// One layer's adjacency as stored: offsets and links over the layer's sorted members.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerParts {
    pub offsets: Vec<u64>,
    pub links: Vec<u32>,
}

impl Graph {
    /// Flatten the graph `hnsw_rs` built over the rows of `matrix` (data ids = user indices,
    /// inserted in increasing user order).
    pub fn from_hnsw<D>(hnsw: &Hnsw<'_, Entry, D>, matrix: &Matrix, binary: bool) -> Self
    where
        D: Distance<Entry> + Send + Sync,
    {
        Self::extract(hnsw, matrix, binary, true)
    }

    /// [`Graph::from_hnsw`] for a graph over some of the users only (a shard of the build),
    /// to be joined with the others by [`Graph::join`].
    pub fn shard_from_hnsw<D>(hnsw: &Hnsw<'_, Entry, D>, matrix: &Matrix, binary: bool) -> Self
    where
        D: Distance<Entry> + Send + Sync,
    {
        Self::extract(hnsw, matrix, binary, false)
    }

    fn extract<D>(hnsw: &Hnsw<'_, Entry, D>, matrix: &Matrix, binary: bool, complete: bool) -> Self
    where
        D: Distance<Entry> + Send + Sync,
    {
        let n = matrix.rows();
        let mut levels = vec![ABSENT; n];
        if hnsw.get_nb_point() == 0 {
            // (hnsw_rs's point iterator expects an entry point.)
            let layer0 = LayerParts { offsets: vec![0; n + 1], links: Vec::new() };
            return Self::checked(levels, None, vec![layer0], matrix, binary, complete)
                .expect("an empty graph is consistent");
        }
        let points = hnsw.get_point_indexation();
        let top = hnsw.get_max_level_observed();
        for p in points {
            levels[p.get_origin_id()] = p.get_point_id().0;
        }
        // Points of a layer are kept in insertion order: the first one at the top level is
        // the entry point (`check_entry_point` only replaces it on a strictly higher level).
        let entry = points.get_layer_iterator(usize::from(top)).next().map(|p| p.get_origin_id() as u32);
        let mut lists: Vec<Vec<Vec<u32>>> =
            (0..=top).map(|l| vec![Vec::new(); count_at(&levels, l)]).collect();
        let members: Vec<Vec<u32>> = (0..=top).map(|l| members_at(&levels, l)).collect();
        for p in points {
            let u = p.get_origin_id() as u32;
            let level = p.get_point_id().0;
            // hnsw_rs also records a few links above a point's own level; search never reads them.
            for (l, neighbours) in
                p.get_neighborhood_id().into_iter().enumerate().take(usize::from(level) + 1)
            {
                let pos = match l {
                    0 => u as usize,
                    _ => match members[l].binary_search(&u) {
                        Ok(pos) => pos,
                        Err(_) => continue,
                    },
                };
                let mut list: Vec<u32> = neighbours
                    .iter()
                    .map(|nb| nb.get_origin_id() as u32)
                    .filter(|&v| {
                        v != u && levels[v as usize] != ABSENT && usize::from(levels[v as usize]) >= l
                    })
                    .collect();
                list.sort_unstable();
                list.dedup();
                lists[l][pos] = list;
            }
        }
        let parts = lists
            .into_iter()
            .map(|layer| {
                let mut offsets = Vec::with_capacity(layer.len() + 1);
                offsets.push(0u64);
                let mut links = Vec::with_capacity(layer.iter().map(Vec::len).sum());
                for list in layer {
                    links.extend_from_slice(&list);
                    offsets.push(links.len() as u64);
                }
                LayerParts { offsets, links }
            })
            .collect();
        Self::checked(levels, entry, parts, matrix, binary, complete)
            .expect("the graph extracted from hnsw_rs is consistent")
    }

    /// One graph over every user from graphs over disjoint shards of them: the layer-0 links
    /// of each user are its links in its own shard plus `cross[u]`, its nearest users in the
    /// other shards. The upper layers and entry point are those of the first shard that has
    /// users; the other shards' users are at level 0 (their upper layers, unreachable from
    /// that entry point, are dropped). `shards` is not empty.
    pub fn join(shards: &[Graph], shard_of: impl Fn(u32) -> usize, cross: &[Vec<u32>]) -> Self {
        let first = shards.iter().position(|g| g.entry.is_some()).unwrap_or(0);
        let main = &shards[first];
        let n = main.levels.len();
        let levels: Vec<u8> = (0..n as u32)
            .map(|u| match shards[shard_of(u)].levels[u as usize] {
                ABSENT => ABSENT,
                level if shard_of(u) == first => level,
                _ => 0,
            })
            .collect();
        let mut layer0 = LayerParts { offsets: Vec::with_capacity(n + 1), links: Vec::new() };
        layer0.offsets.push(0);
        let mut list = Vec::new();
        for u in 0..n as u32 {
            list.clear();
            list.extend_from_slice(shards[shard_of(u)].links(u));
            list.extend_from_slice(&cross[u as usize]);
            list.sort_unstable();
            list.dedup();
            layer0.links.extend_from_slice(&list);
            layer0.offsets.push(layer0.links.len() as u64);
        }
        let layers = std::iter::once(layer0)
            .chain(
                main.layers[1..]
                    .iter()
                    .map(|l| LayerParts { offsets: l.offsets.clone(), links: l.links.clone() }),
            )
            .collect();
        let graph = Self {
            levels,
            entry: main.entry,
            layers: Vec::new(),
            rows: main.rows.clone(),
            binary: main.binary,
        };
        graph.with_layers(layers).expect("joined shards are consistent")
    }

    fn with_layers(self, layers: Vec<LayerParts>) -> Result<Self, InvalidGraph> {
        let Self { levels, entry, rows, binary, .. } = self;
        Self::validate(levels, entry, layers, rows, binary, true)
    }

    /// A graph from its stored parts (`layers[l]` for `l` in `0..=top`), checking every
    /// invariant search relies on against `matrix`, the rows of the users.
    pub fn new(
        levels: Vec<u8>,
        entry: Option<u32>,
        layers: Vec<LayerParts>,
        matrix: &Matrix,
        binary: bool,
    ) -> Result<Self, InvalidGraph> {
        Self::checked(levels, entry, layers, matrix, binary, true)
    }

    /// `complete`: every user with a vector is in the graph (not so for a shard).
    fn checked(
        levels: Vec<u8>,
        entry: Option<u32>,
        layers: Vec<LayerParts>,
        matrix: &Matrix,
        binary: bool,
        complete: bool,
    ) -> Result<Self, InvalidGraph> {
        let n = matrix.rows();
        if levels.len() != n {
            return invalid(format!("{} levels for {n} users", levels.len()));
        }
        Self::validate(levels, entry, layers, rows(matrix, binary), binary, complete)
    }

    fn validate(
        levels: Vec<u8>,
        entry: Option<u32>,
        layers: Vec<LayerParts>,
        rows: Vec<Row>,
        binary: bool,
        complete: bool,
    ) -> Result<Self, InvalidGraph> {
        let n = levels.len();
        for (u, (&level, row)) in levels.iter().zip(&rows).enumerate() {
            if u % 16384 == 0 {
                crate::pace::tick();
            }
            // Exactly the users whose normalised vector is not empty (`index::normalise`).
            let has_vector = row.norm != 0.0;
            if (level != ABSENT && !has_vector) || (complete && level == ABSENT && has_vector) {
                return invalid(format!("user {u}: level {level} does not match its vector"));
            }
        }
        let top = levels.iter().copied().filter(|&l| l != ABSENT).max();
        match (top, entry) {
            (None, None) if layers.len() == 1 => {}
            (None, _) => return invalid("an empty graph has an entry point or upper layers"),
            (Some(_), None) => return invalid("no entry point"),
            (Some(top), Some(e)) => {
                if levels.get(e as usize) != Some(&top) {
                    return invalid(format!("entry point {e} is not at the top level {top}"));
                }
                if layers.len() != usize::from(top) + 1 {
                    return invalid(format!("{} layers for top level {top}", layers.len()));
                }
            }
        }
        let mut out = Vec::with_capacity(layers.len());
        for (l, parts) in layers.into_iter().enumerate() {
            let members = if l == 0 { Vec::new() } else { members_at(&levels, l as u8) };
            let size = if l == 0 { n } else { members.len() };
            let LayerParts { offsets, links } = parts;
            if !crate::blob::is_offsets(&offsets, size, links.len()) {
                return invalid(format!("layer {l}: offsets are inconsistent"));
            }
            let layer = Layer { members, offsets, links };
            for pos in 0..size {
                if pos % 1024 == 0 {
                    crate::pace::tick();
                }
                let u = if l == 0 { pos as u32 } else { layer.members[pos] };
                let list = layer.links_at(pos);
                if l == 0 && levels[u as usize] == ABSENT && !list.is_empty() {
                    return invalid(format!("user {u} is not in the graph but has links"));
                }
                let in_layer =
                    |v: u32| levels.get(v as usize).is_some_and(|&lv| lv != ABSENT && usize::from(lv) >= l);
                if !list.iter().all(|&v| v != u && in_layer(v)) || !list.windows(2).all(|w| w[0] < w[1]) {
                    return invalid(format!(
                        "layer {l}: links of user {u} are out of range, unsorted or not in the layer"
                    ));
                }
            }
            out.push(layer);
        }
        Ok(Self { levels, entry, layers: out, rows, binary })
    }

    /// Level of each user ([`ABSENT`] when not in the graph).
    pub fn levels(&self) -> &[u8] {
        &self.levels
    }

    pub fn entry(&self) -> Option<u32> {
        self.entry
    }

    /// Stored parts of layer `l` in `0..=top` (see [`Graph::new`]).
    pub fn layer_parts(&self) -> impl Iterator<Item = (&[u64], &[u32])> + '_ {
        self.layers.iter().map(|l| (l.offsets.as_slice(), l.links.as_slice()))
    }

    /// Number of layers (top level + 1; 0 only for a model without users).
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Links of `user` at layer 0.
    pub fn links(&self, user: u32) -> &[u32] {
        self.layers.first().map_or(&[], |l| l.links_at(user as usize))
    }

    /// The `k` users most similar to `query` (an L2-normalised sparse vector over the items
    /// of `matrix`) with similarity above [`MIN_SIMILARITY`], best first, ties by user index,
    /// `skip` left out; beam width `ef` (at least `k`) at layer 0.
    pub fn search(
        &self,
        matrix: &Matrix,
        query: &[Entry],
        k: usize,
        ef: usize,
        skip: Option<u32>,
    ) -> Vec<(u32, f32)> {
        let Some(entry) = self.entry else { return Vec::new() };
        if k == 0 || query.is_empty() || matrix.rows() != self.levels.len() {
            return Vec::new();
        }
        SCRATCH.with_borrow_mut(|s| {
            s.prepare(matrix.rows(), matrix.cols());
            for e in query {
                if let Some(d) = s.dense.get_mut(e.idx as usize) {
                    *d += e.val;
                }
            }
            let out = self.search_scattered(matrix, s, entry, k, ef.max(k), skip);
            for e in query {
                if let Some(d) = s.dense.get_mut(e.idx as usize) {
                    *d = 0.0;
                }
            }
            out
        })
    }

    fn search_scattered(
        &self,
        matrix: &Matrix,
        s: &mut Scratch,
        entry: u32,
        k: usize,
        ef: usize,
        skip: Option<u32>,
    ) -> Vec<(u32, f32)> {
        let (indices, data) = (matrix.indices(), matrix.data());
        let Scratch { dense, visited, touched, batch, sims, candidates, results } = s;
        let dense = &*dense;
        let sim = |v: u32| -> Scored {
            let row = self.rows[v as usize];
            let range = row.start..row.start + row.len as usize;
            let mut dot = 0f32;
            if self.binary {
                for &i in &indices[range] {
                    dot += dense[i as usize];
                }
            } else {
                for (&i, &w) in indices[range.clone()].iter().zip(&data[range]) {
                    dot += dense[i as usize] * w;
                }
            }
            Scored { sim: dot / row.norm, user: v }
        };

        // Greedy descent: move to the best neighbour until none is better, layer by layer.
        let mut cur = sim(entry);
        for layer in self.layers[1..].iter().rev() {
            // (`cur` is always a member: the entry point is at the top, links stay in the layer.)
            while let Ok(pos) = layer.members.binary_search(&cur.user) {
                match layer.links_at(pos).iter().map(|&v| sim(v)).max().filter(|b| *b > cur) {
                    Some(better) => cur = better,
                    None => break,
                }
            }
        }

        // Beam search at layer 0; `skip` is walked through but never returned.
        candidates.clear();
        results.clear();
        let mut visit = |v: u32| {
            let (word, bit) = (v as usize / 64, 1u64 << (v % 64));
            let new = visited[word] & bit == 0;
            visited[word] |= bit;
            if new {
                touched.push(v);
            }
            new
        };
        visit(cur.user);
        candidates.push(cur);
        if Some(cur.user) != skip {
            results.push(Reverse(cur));
        }
        let layer0 = &self.layers[0];
        while let Some(c) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c < w.0) {
                break;
            }
            // Unvisited neighbours first, then their similarities in one go: the row loads of
            // independent users overlap, where the heap updates in between would stall them.
            batch.clear();
            batch.extend(layer0.links_at(c.user as usize).iter().copied().filter(|&v| visit(v)));
            sims.clear();
            sims.extend(batch.iter().map(|&v| sim(v)));
            for &e in sims.iter() {
                let v = e.user;
                if results.len() < ef || results.peek().is_some_and(|w| e > w.0) {
                    candidates.push(e);
                    if Some(v) != skip {
                        results.push(Reverse(e));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        for &v in touched.iter() {
            visited[v as usize / 64] = 0;
        }
        touched.clear();
        let mut out: Vec<(u32, f32)> = results
            .drain()
            .map(|r| r.0)
            .filter(|e| e.sim > MIN_SIMILARITY)
            .map(|e| (e.user, e.sim))
            .collect();
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

/// A user and its similarity to the query; greater is better (higher similarity, then lower
/// user index), so equal similarities still give one deterministic order.
#[derive(Debug, Clone, Copy)]
struct Scored {
    sim: f32,
    user: u32,
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim.total_cmp(&other.sim).then(other.user.cmp(&self.user))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scored {}

/// Per-thread search state, grown to the largest model searched and reused.
#[derive(Default)]
struct Scratch {
    /// The query's weights by item; all zero between searches.
    dense: Vec<f32>,
    /// One bit per user (small enough to stay in cache), and the users whose bit is set.
    visited: Vec<u64>,
    touched: Vec<u32>,
    /// Unvisited neighbours of the current candidate and their similarities.
    batch: Vec<u32>,
    sims: Vec<Scored>,
    candidates: BinaryHeap<Scored>,
    results: BinaryHeap<Reverse<Scored>>,
}

impl Scratch {
    fn prepare(&mut self, users: usize, items: usize) {
        if self.dense.len() < items {
            self.dense.resize(items, 0.0);
        }
        if self.visited.len() < users.div_ceil(64) {
            self.visited.resize(users.div_ceil(64), 0);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Each row's place in the matrix and the L2 norm of its effective weights, computed as
/// [`crate::index::normalise`] does.
fn rows(matrix: &Matrix, binary: bool) -> Vec<Row> {
    let indptr = matrix.indptr();
    let indptr = indptr.to_proper();
    let data = matrix.data();
    (0..matrix.rows())
        .map(|u| {
            if u % 4096 == 0 {
                crate::pace::tick();
            }
            let (start, end) = (indptr[u], indptr[u + 1]);
            let sq: f64 =
                data[start..end].iter().map(|&x| f64::from(if binary { 1.0 } else { x }).powi(2)).sum();
            Row { start, len: (end - start) as u32, norm: sq.sqrt() as f32 }
        })
        .collect()
}

fn count_at(levels: &[u8], l: u8) -> usize {
    if l == 0 {
        levels.len()
    } else {
        levels.iter().filter(|&&x| x != ABSENT && x >= l).count()
    }
}

fn members_at(levels: &[u8], l: u8) -> Vec<u32> {
    if l == 0 {
        return Vec::new();
    }
    (0..levels.len() as u32).filter(|&u| levels[u as usize] != ABSENT && levels[u as usize] >= l).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::build;
    use crate::generate::{generate, GenerateParams};
    use crate::index::{normalise, sparse_dot, user_vector};
    use crate::model::{BuildParams, Model};

    fn params() -> BuildParams {
        BuildParams {
            neighbours: 10,
            hnsw_m: 8,
            hnsw_ef_construction: 48,
            hnsw_ef_search: 32,
            ..BuildParams::default()
        }
    }

    fn model(users: u32, items: u32, p: &BuildParams) -> Model {
        let data =
            generate(&GenerateParams { users, items, events_per_user: 12.0, ..GenerateParams::default() });
        build(&data, p).expect("builds").model
    }

    /// Exact top-`k` by brute force over every user.
    fn exact(m: &Model, q: &[Entry], k: usize, skip: Option<u32>) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = (0..m.users.len() as u32)
            .filter(|&u| Some(u) != skip)
            .map(|u| (u, sparse_dot(q, &user_vector(m, u))))
            .filter(|&(_, s)| s > MIN_SIMILARITY)
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    /// Share of the exact top-k reached, counting a found neighbour when its similarity
    /// reaches the k-th exact one (ties at the boundary are not penalised).
    fn recall(found: &[(u32, f32)], exact: &[(u32, f32)]) -> Option<f64> {
        let threshold = exact.last()?.1 - 1e-5;
        Some(found.iter().filter(|f| f.1 >= threshold).count().min(exact.len()) as f64 / exact.len() as f64)
    }

    #[test]
    fn stored_neighbours_are_what_knn_answers_for_the_users_own_vector() {
        let p = params();
        let m = model(1500, 400, &p);
        for u in 0..m.users.len() as u32 {
            let stored: Vec<(u32, f32)> = m.neighbours(u).collect();
            assert_eq!(stored, m.knn(&user_vector(&m, u), p.neighbours, Some(u)), "user {u}");
        }
    }

    #[test]
    fn knn_recall_against_exact_neighbours_is_high() {
        let p = BuildParams::default();
        let m = model(4000, 800, &p);
        let (mut own, mut folded, mut n) = (0.0, 0.0, 0);
        for u in (0..m.users.len() as u32).step_by(7) {
            let v = user_vector(&m, u);
            let Some(r) = recall(&m.knn(&v, p.neighbours, Some(u)), &exact(&m, &v, p.neighbours, Some(u)))
            else {
                continue;
            };
            own += r;
            // A live fold-in: the user's history minus its first item, plus recent events on
            // two items its nearest neighbour has and it has not.
            let (items, weights) = m.user_items(u);
            let mut it: Vec<u32> = items[1..].to_vec();
            let mut w: Vec<f32> = weights[1..].to_vec();
            let nearest = m.neighbours(u).next().map_or(0, |n| n.0);
            let recent = m.user_items(nearest).0.iter().filter(|i| items.binary_search(i).is_err());
            for &extra in recent.take(2) {
                if let Err(at) = it.binary_search(&extra) {
                    it.insert(at, extra);
                    w.insert(at, 2.0);
                }
            }
            let q = normalise(&it, &w, false);
            folded +=
                recall(&m.knn(&q, p.neighbours, None), &exact(&m, &q, p.neighbours, None)).unwrap_or(1.0);
            n += 1;
        }
        let (own, folded) = (own / f64::from(n), folded / f64::from(n));
        eprintln!("knn recall@{} over {n} users: own vectors {own:.4}, folded-in {folded:.4}", p.neighbours);
        assert!(own >= 0.95 && folded >= 0.95, "recall own {own:.4}, folded {folded:.4}");
    }

    #[test]
    fn knn_follows_its_contract() {
        let p = params();
        let m = model(600, 200, &p);
        let v = user_vector(&m, 3);
        let got = m.knn(&v, 25, Some(3));
        assert!(!got.is_empty() && got.len() <= 25);
        assert!(got.iter().all(|&(u, s)| u != 3 && s > MIN_SIMILARITY && s <= 1.0 + 1e-5));
        assert!(got.windows(2).all(|w| w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0)));
        let with_self = m.knn(&v, 25, None);
        assert_eq!(with_self[0].0, 3, "a user is its own nearest neighbour");
        assert!((with_self[0].1 - 1.0).abs() < 1e-5);
        // ef grows with k: asking for more than ef_search still fills up.
        assert!(m.knn(&v, 100, None).len() > p.hnsw_ef_search);
        assert!(m.knn(&v, 0, None).is_empty());
        assert!(m.knn(&[], 5, None).is_empty());
        // Items the model does not have are ignored.
        let mut unknown = v.clone();
        unknown.push(Entry { idx: 10_000_000, val: 0.5 });
        assert_eq!(m.knn(&unknown, 25, Some(3)), got);
        // The same answer from other threads (each has its own scratch space).
        let answers: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| m.knn(&v, 25, Some(3)))).collect();
            hs.into_iter().map(|h| h.join().expect("no panic")).collect()
        });
        assert!(answers.iter().all(|a| *a == got));
    }

    #[test]
    fn the_graph_is_well_formed() {
        let p = params();
        let m = model(800, 300, &p);
        let g = &m.graph;
        let top = g.levels().iter().copied().filter(|&l| l != ABSENT).max().expect("users");
        assert_eq!(g.layer_count(), usize::from(top) + 1);
        assert!(top >= 1, "800 users with M = 8 reach level 1");
        let e = g.entry().expect("entry point");
        assert_eq!(g.levels()[e as usize], top);
        // The entry point is the first user (in insertion order = user order) at the top.
        assert_eq!(g.levels().iter().position(|&l| l == top), Some(e as usize));
        let linked = (0..m.users.len() as u32).filter(|&u| !g.links(u).is_empty()).count();
        assert!(linked > 790, "{linked} of 800 users have links");
        // Shards are joined: users link into the other shard, whose users sit at level 0.
        let shard = |u: u32| u as usize % crate::index::SHARDS;
        let across =
            (0..m.users.len() as u32).filter(|&u| g.links(u).iter().any(|&v| shard(v) != shard(u))).count();
        assert!(across > 790, "{across} of 800 users link to another shard");
        assert!((0..m.users.len() as u32).all(|u| shard(u) == shard(e) || g.levels()[u as usize] == 0));
    }

    #[test]
    fn inconsistent_graphs_are_refused() {
        let p = params();
        let m = model(300, 100, &p);
        let g = &m.graph;
        let parts = || -> Vec<LayerParts> {
            g.layer_parts().map(|(o, l)| LayerParts { offsets: o.to_vec(), links: l.to_vec() }).collect()
        };
        let rebuild = |levels: Vec<u8>, entry: Option<u32>, layers: Vec<LayerParts>| {
            Graph::new(levels, entry, layers, &m.matrix, false)
        };
        assert_eq!(rebuild(g.levels().to_vec(), g.entry(), parts()).expect("valid"), *g);

        let top = g.levels().iter().copied().max().expect("users");
        let low = g.levels().iter().position(|&l| l < top).expect("a lower user") as u32;
        assert!(rebuild(g.levels().to_vec(), Some(low), parts()).is_err(), "entry below the top");
        assert!(rebuild(g.levels().to_vec(), None, parts()).is_err(), "no entry");
        assert!(rebuild(g.levels()[1..].to_vec(), g.entry(), parts()).is_err(), "levels short");
        let mut absent = g.levels().to_vec();
        absent[low as usize] = ABSENT;
        assert!(rebuild(absent, g.entry(), parts()).is_err(), "a user with a vector left out");
        assert!(rebuild(g.levels().to_vec(), g.entry(), parts()[..1].to_vec()).is_err(), "layers missing");

        let mut out_of_range = parts();
        out_of_range[0].links[0] = m.users.len() as u32;
        assert!(rebuild(g.levels().to_vec(), g.entry(), out_of_range).is_err());
        let mut unsorted = parts();
        let first = &mut unsorted[0];
        let (a, b) = (first.offsets[0] as usize, first.offsets[1] as usize);
        assert!(b - a >= 2);
        first.links.swap(a, a + 1);
        assert!(rebuild(g.levels().to_vec(), g.entry(), unsorted).is_err());
        let mut self_link = parts();
        self_link[0].links[0] = 0;
        assert!(rebuild(g.levels().to_vec(), g.entry(), self_link).is_err());
        let mut offsets = parts();
        offsets[0].offsets[1] = offsets[0].offsets[2] + 1;
        assert!(rebuild(g.levels().to_vec(), g.entry(), offsets).is_err());
        let mut upper = parts();
        let l0_only = (0..m.users.len() as u32).find(|&u| g.levels()[u as usize] == 0).expect("level 0 user");
        upper[1].links[0] = l0_only;
        assert!(rebuild(g.levels().to_vec(), g.entry(), upper).is_err(), "upper link to a level-0 user");
    }
}
