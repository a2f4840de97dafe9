//! Item-item similarity: items most often chosen by the same users, cosine-normalised.
//!
//! The model stores users x items by row; "who chose item i" comes from the item-major index
//! every model derives when it is built or decoded ([`model::neighbours::ItemIndex`],
//! the one its neighbour search reads), so a query touches only the users of `i` and their
//! items: `sim(i, j) = |U(i) ∩ U(j)| / sqrt(|U(i)| * |U(j)|)` over binary choices.

use model::model::{top_k, Model, Scored};
use model::pace;

/// The `count` items most similar to `item` (never `item` itself), ties by item index.
pub fn similar(model: &Model, item: u32, count: usize) -> Vec<Scored> {
    let index = &model.derived.index;
    let mut shared = vec![0u32; model.items.len()];
    let mut touched = Vec::new();
    for (n, &u) in index.users(item).iter().enumerate() {
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
    let di = index.degree(item) as f64;
    let candidates = touched.into_iter().filter(|&j| j != item).map(|j| {
        let score = f64::from(shared[j as usize]) / (di * index.degree(j) as f64).sqrt();
        Scored { item: j, score: score as f32 }
    });
    top_k(candidates, count)
}

#[cfg(test)]
mod tests {
    use model::model::BuildParams;
    use model_sync::build::build;
    use model_sync::dataset::Dataset;

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
        let params = BuildParams { neighbours: 2, ..BuildParams::default() };
        build(&b.finish(), &params).expect("builds").model
    }

    #[test]
    fn the_item_index_lists_each_items_users() {
        let m = model();
        let t = &m.derived.index;
        let a = m.item_index("a").expect("a");
        let mut users: Vec<&str> = t.users(a).iter().map(|&u| m.users[u as usize].as_str()).collect();
        users.sort_unstable();
        assert_eq!(users, ["u1", "u2", "u3"]);
        assert_eq!(t.degree(m.item_index("d").expect("d")), 1);
    }

    #[test]
    fn cosine_of_co_occurrence() {
        let m = model();
        let a = m.item_index("a").expect("a");
        let got: Vec<(&str, f32)> =
            similar(&m, a, 10).iter().map(|s| (m.items[s.item as usize].as_str(), s.score)).collect();
        // b: 2 / sqrt(3 * 2); c: 1 / sqrt(3 * 2); d never shares a user with a.
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "b");
        assert!((got[0].1 - (2.0 / 6f32.sqrt())).abs() < 1e-6);
        assert_eq!(got[1].0, "c");
        assert!((got[1].1 - (1.0 / 6f32.sqrt())).abs() < 1e-6);
    }
}
