//! Live fold-in: recommendations for a user whose latest interactions are newer than the
//! model, computed at request time from the model alone.
//!
//! The user's vector is their history in the model (if any) plus the new interactions,
//! weighted and L2-normalised like every user of the model; its neighbours are found exactly
//! through the item lists ([`Model::knn_within`], at most [`LIVE_SCAN_BUDGET`] list entries
//! read, so a request never pays for a full scan of the longest lists); items are scored
//! from those neighbours as for any user. Region nodes serve this as `user-knn-live`;
//! `model-sync evaluate --live` measures it offline (`model_sync::eval::evaluate_live`).

use crate::model::{Model, Query, Scored};
use crate::neighbours::Entry;

/// List entries one request-time neighbour search reads at most before capping the longest
/// lists: about a millisecond of work on one core.
pub const LIVE_SCAN_BUDGET: u64 = 400_000;

/// Pairs sorted by item, one per item, weights summed.
pub fn sum_by_item(mut pairs: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
    pairs.sort_by_key(|&(item, _)| item);
    pairs.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    pairs
}

/// Sorted union of two sorted, unique lists.
pub fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The user's history in the model (none for `None`) plus `fold` (sorted by item, as
/// [`sum_by_item`] makes it), as a normalised vector for [`Model::knn`].
pub fn live_vector(model: &Model, user: Option<u32>, fold: &[(u32, f32)]) -> Vec<Entry> {
    let (items, weights) = user.map_or((&[][..], &[][..]), |u| model.user_items(u));
    let merged: Vec<(u32, f32)> =
        items.iter().copied().zip(weights.iter().copied()).chain(fold.iter().copied()).collect();
    let (items, weights): (Vec<u32>, Vec<f32>) = sum_by_item(merged).into_iter().unzip();
    model.vector(&items, &weights)
}

/// Neighbours of the user's live vector (the user left out).
pub fn live_neighbours(model: &Model, user: Option<u32>, fold: &[(u32, f32)]) -> Vec<(u32, f32)> {
    let v = live_vector(model, user, fold);
    model
        .knn_within(&v, model.params.neighbours, user, LIVE_SCAN_BUDGET.min(model.params.scan_budget))
        .neighbours
}

/// [`live_neighbours`] without the users of `excluded` (sorted; erased users): the search asks
/// for as many more as could be left out.
pub fn live_neighbours_without(
    model: &Model,
    user: Option<u32>,
    fold: &[(u32, f32)],
    excluded: &[u32],
) -> Vec<(u32, f32)> {
    if excluded.is_empty() {
        return live_neighbours(model, user, fold);
    }
    let k = model.params.neighbours;
    let v = live_vector(model, user, fold);
    let budget = LIVE_SCAN_BUDGET.min(model.params.scan_budget);
    let mut found = model.knn_within(&v, k + excluded.len().min(k), user, budget).neighbours;
    found.retain(|(u, _)| excluded.binary_search(u).is_err());
    found.truncate(k);
    found
}

/// User-KNN from [`live_neighbours`], never returning `seen` (sorted) or `q.exclude`.
pub fn recommend_live(
    model: &Model,
    user: Option<u32>,
    fold: &[(u32, f32)],
    seen: &[u32],
    q: &Query<'_>,
) -> Vec<Scored> {
    model.recommend_from(&live_neighbours(model, user, fold), seen, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_merges_sorted_lists() {
        assert_eq!(union(&[1, 3, 5], &[2, 3, 9]), [1, 2, 3, 5, 9]);
        assert_eq!(union(&[], &[4]), [4]);
    }

    #[test]
    fn sum_by_item_sums_shared_items() {
        assert_eq!(sum_by_item(vec![(4, 1.0), (0, 5.0), (4, 3.0)]), [(0, 5.0), (4, 4.0)]);
    }
}
