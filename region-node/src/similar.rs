//! Item-item similarity: items most often chosen by the same users, cosine-normalised.
//!
//! The model stores users x items by row. Finding "who chose item i" that way means scanning
//! every user, so each snapshot builds an item-major copy ([`ItemUsers`], CSC) once, off the
//! request path. A query then touches only the users of `i` and their items:
//! `sim(i, j) = |U(i) ∩ U(j)| / sqrt(|U(i)| * |U(j)|)` over binary choices.

use model_sync::model::{top_k, Model, Scored};
use model_sync::pace;

/// Users of each item: `users[offsets[i]..offsets[i + 1]]`, ascending.
#[derive(Debug, Clone, Default)]
pub struct ItemUsers {
    offsets: Vec<usize>,
    users: Vec<u32>,
}

impl ItemUsers {
    /// Transpose the model's matrix (counting sort: two passes, no per-item allocation), with
    /// yield points for a paced background thread ([`pace`]).
    pub fn build(model: &Model) -> Self {
        let items = model.items.len();
        let mut offsets = vec![0usize; items + 1];
        for chunk in model.matrix.indices().chunks(1 << 16) {
            for &i in chunk {
                offsets[i as usize + 1] += 1;
            }
            pace::tick();
        }
        for i in 0..items {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut users = vec![0u32; model.matrix.indices().len()];
        for u in 0..model.users.len() as u32 {
            // Scattered writes into a fresh array (a page fault per first touch): a few
            // hundred microseconds per 1000 users.
            if u % 64 == 0 {
                pace::tick();
            }
            for &i in model.user_items(u).0 {
                let slot = &mut next[i as usize];
                users[*slot] = u;
                *slot += 1;
            }
        }
        Self { offsets, users }
    }

    pub fn users(&self, item: u32) -> &[u32] {
        let i = item as usize;
        &self.users[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Number of users who chose `item`.
    pub fn degree(&self, item: u32) -> usize {
        let i = item as usize;
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Bytes held, for logs.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.len() * std::mem::size_of::<usize>() + self.users.len() * 4
    }

    /// The `count` items most similar to `item` (never `item` itself), ties by item index.
    pub fn similar(&self, model: &Model, item: u32, count: usize) -> Vec<Scored> {
        let mut shared = vec![0u32; model.items.len()];
        let mut touched = Vec::new();
        for (n, &u) in self.users(item).iter().enumerate() {
            if n % 256 == 0 {
                // A no-op on request threads; the snapshot's warm-up runs this paced.
                pace::tick();
            }
            for &j in model.user_items(u).0 {
                if shared[j as usize] == 0 {
                    touched.push(j);
                }
                shared[j as usize] += 1;
            }
        }
        let di = self.degree(item) as f64;
        let candidates = touched.into_iter().filter(|&j| j != item).map(|j| {
            let score = f64::from(shared[j as usize]) / (di * self.degree(j) as f64).sqrt();
            Scored { item: j, score: score as f32 }
        });
        top_k(candidates, count)
    }
}

#[cfg(test)]
mod tests {
    use model_sync::build::build;
    use model_sync::dataset::Dataset;
    use model_sync::model::BuildParams;

    use super::*;

    fn model() -> Model {
        let mut b = Dataset::builder();
        // a and b share two users, a and c one; d only with c.
        for (u, i) in [
            ("u1", "a"),
            ("u1", "b"),
            ("u2", "a"),
            ("u2", "b"),
            ("u3", "a"),
            ("u3", "c"),
            ("u4", "c"),
            ("u4", "d"),
        ] {
            b.push(u, i, 1.0, 0);
        }
        let params = BuildParams {
            neighbours: 2,
            hnsw_m: 4,
            hnsw_ef_construction: 8,
            hnsw_ef_search: 8,
            ..BuildParams::default()
        };
        build(&b.finish(), &params).expect("builds").model
    }

    #[test]
    fn transposes_the_matrix() {
        let m = model();
        let t = ItemUsers::build(&m);
        let a = m.item_index("a").expect("a");
        let users: Vec<&str> = t.users(a).iter().map(|&u| m.users[u as usize].as_str()).collect();
        assert_eq!(users, ["u1", "u2", "u3"]);
        assert_eq!(t.degree(m.item_index("d").expect("d")), 1);
    }

    #[test]
    fn cosine_of_co_occurrence() {
        let m = model();
        let t = ItemUsers::build(&m);
        let a = m.item_index("a").expect("a");
        let got: Vec<(&str, f32)> =
            t.similar(&m, a, 10).iter().map(|s| (m.items[s.item as usize].as_str(), s.score)).collect();
        // b: 2 / sqrt(3 * 2); c: 1 / sqrt(3 * 2); d never shares a user with a.
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "b");
        assert!((got[0].1 - (2.0 / 6f32.sqrt())).abs() < 1e-6);
        assert_eq!(got[1].0, "c");
        assert!((got[1].1 - (1.0 / 6f32.sqrt())).abs() < 1e-6);
    }
}
