//! One immutable, fully built model version: what a request reads from start to finish.
//!
//! Everything a request needs that is derived from the model (the item-major index that
//! neighbour searches and similar items read) is built when the payload is decoded, before
//! the snapshot is published, so the request path never builds or locks anything. Answers come from the model's own
//! `recommend` / `popular`, so they match what model-sync computes offline.

use std::borrow::Cow;

use model::events::LiveEvent;
use model::live::{self, sum_by_item, union};
use model::manifest::Manifest;
use model::model::{Model, Query, Scored};

use crate::answer::{Ranked, RankedItem, RecommendQuery, Strategy};
use crate::figures::Figures;
use crate::similar;

#[derive(Debug)]
pub struct ModelSnapshot {
    /// The manifest's `model_version`; part of every cache key.
    pub version: String,
    pub manifest: Manifest,
    pub model: Model,
    /// Unix seconds when this snapshot was built.
    pub loaded_at: i64,
    /// What this node measured for this version since it loaded it.
    pub figures: Figures,
}

/// A user's recent events in the terms of one model. Events on items the model does not
/// know are left out: they can be neither scored nor recommended.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LiveHistory {
    /// Items of events newer than the model (`ts > reference_ts`), weights summed by item,
    /// sorted by item.
    fold: Vec<(u32, f32)>,
    /// Items of every recent event, sorted and unique: never recommended back.
    seen: Vec<u32>,
}

impl LiveHistory {
    pub fn new(model: &Model, events: &[(String, LiveEvent)]) -> Self {
        let (mut fold, mut seen) = (Vec::new(), Vec::new());
        for (_, e) in events {
            let Some(item) = model.item_index(&e.item_id) else { continue };
            seen.push(item);
            if e.ts > model.reference_ts {
                fold.push((item, e.kind.weight()));
            }
        }
        seen.sort_unstable();
        seen.dedup();
        Self { fold: sum_by_item(fold), seen }
    }

    /// Some events are newer than the model, so the answer is computed live.
    pub fn folds_in(&self) -> bool {
        !self.fold.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("model {version}: manifest says {what} {expected}, the payload has {actual}")]
    CountMismatch { version: String, what: &'static str, expected: u64, actual: u64 },
    #[error("model {version} has no users or no items: nothing could be recommended")]
    Empty { version: String },
}

impl ModelSnapshot {
    /// Check the decoded model against its manifest and build the derived indices.
    pub fn new(manifest: Manifest, model: Model, loaded_at: i64) -> Result<Self, SnapshotError> {
        let version = manifest.model_version.clone();
        let c = &manifest.counts;
        for (what, expected, actual) in [
            ("users", c.users, model.users.len() as u64),
            ("items", c.items, model.items.len() as u64),
            ("interactions", c.interactions, model.interactions),
        ] {
            if expected != actual {
                return Err(SnapshotError::CountMismatch { version, what, expected, actual });
            }
        }
        if model.users.is_empty() || model.items.is_empty() {
            return Err(SnapshotError::Empty { version });
        }
        Ok(Self { version, manifest, model, loaded_at, figures: Figures::default() })
    }

    /// User-KNN for known users with neighbours; popularity otherwise. The user's own items
    /// (unless `include_seen`) and `exclude` are never returned.
    pub fn recommend(&self, q: &RecommendQuery) -> Ranked {
        self.recommend_live(q, &LiveHistory::default())
    }

    /// [`Self::recommend`] with the user's recent events: items of every recent event are
    /// never returned (unless `include_seen`), and events newer than the model are added to
    /// the user's vector (history + events, or events alone for a user the model does not
    /// know), whose neighbours are searched in the model's item lists now (`user-knn-live`).
    pub fn recommend_live(&self, q: &RecommendQuery, live: &LiveHistory) -> Ranked {
        self.recommend_without(q, live, &[])
    }

    /// [`Self::recommend_live`] never using the users of `excluded` (sorted indices: users
    /// erased on request) as neighbours.
    pub fn recommend_without(&self, q: &RecommendQuery, live: &LiveHistory, excluded: &[u32]) -> Ranked {
        let m = &self.model;
        let exclude: Vec<u32> = q.exclude.iter().filter_map(|id| m.item_index(id)).collect();
        let categories = self.category_filter(&q.categories);
        let query = Query { count: q.count, exclude: &exclude, categories: categories.as_deref() };
        let user = m.user_index(&q.user_id);
        let history = user.map_or(&[][..], |u| m.user_items(u).0);
        let seen: Cow<'_, [u32]> = match (q.include_seen, live.seen.is_empty()) {
            (true, _) => Cow::Borrowed(&[]),
            (false, true) => Cow::Borrowed(history),
            (false, false) => Cow::Owned(union(history, &live.seen)),
        };
        let (strategy, neighbours) = if live.folds_in() {
            (Strategy::UserKnnLive, live::live_neighbours_without(m, user, &live.fold, excluded))
        } else if let Some(u) = user {
            let kept = m.neighbours(u).filter(|(v, _)| excluded.binary_search(v).is_err());
            (Strategy::UserKnn, kept.collect())
        } else {
            return self.describe(Strategy::Popular, m.popular(&seen, &query));
        };
        let knn = m.recommend_from(&neighbours, &seen, &query);
        if knn.is_empty() {
            // No neighbour has anything new (or nothing passes the filters): popular items
            // the user does not have are still better than an empty page.
            return self.describe(Strategy::Popular, m.popular(&seen, &query));
        }
        self.describe(strategy, knn)
    }

    /// What a user erased on request gets: popular items, nothing of their history.
    pub fn recommend_erased(&self, q: &RecommendQuery) -> Ranked {
        let m = &self.model;
        let exclude: Vec<u32> = q.exclude.iter().filter_map(|id| m.item_index(id)).collect();
        let categories = self.category_filter(&q.categories);
        let query = Query { count: q.count, exclude: &exclude, categories: categories.as_deref() };
        self.describe(Strategy::Popular, m.popular(&[], &query))
    }

    /// Items most often chosen together with `item`; see [`similar::similar`].
    pub fn similar(&self, item: u32, count: usize) -> Ranked {
        self.describe(Strategy::ItemCosine, similar::similar(&self.model, item, count))
    }

    /// Recency-decayed popularity, optionally within one category.
    pub fn trending(&self, count: usize, category: Option<&str>) -> Ranked {
        let categories = category.map(|c| self.category_filter(&[c.to_string()]).unwrap_or_default());
        let query = Query { count, exclude: &[], categories: categories.as_deref() };
        self.describe(Strategy::Popular, self.model.popular(&[], &query))
    }

    /// Category names -> indices; `None` (no filter) for an empty list. Unknown names match
    /// nothing, so a filter of only unknown categories yields an empty answer.
    fn category_filter(&self, names: &[String]) -> Option<Vec<u32>> {
        (!names.is_empty()).then(|| names.iter().filter_map(|c| self.model.category_index(c)).collect())
    }

    fn describe(&self, strategy: Strategy, scored: Vec<Scored>) -> Ranked {
        let m = &self.model;
        let items = scored
            .into_iter()
            .map(|s| RankedItem {
                item_id: m.items[s.item as usize].clone(),
                score: s.score,
                name: m.item_name(s.item).map(str::to_string),
                category: m.item_category(s.item).map(str::to_string),
            })
            .collect();
        Ranked { strategy, items }
    }

    /// Pairs of (user, item) with a weight: the matrix's non-zeros.
    pub fn pairs(&self) -> u64 {
        self.model.matrix.nnz() as u64
    }

    /// Share of the user x item matrix that is non-zero.
    pub fn density(&self) -> f64 {
        let cells = self.model.users.len() as f64 * self.model.items.len() as f64;
        if cells == 0.0 {
            0.0
        } else {
            self.pairs() as f64 / cells
        }
    }

    /// Run each query kind a few times before the snapshot goes live: touches the pages
    /// the request path will read (so the first requests after a swap are not slow) and
    /// proves the queries run on this model. Panics surface as a failed swap.
    pub fn warm_up(&self) {
        let m = &self.model;
        let users = m.users.len();
        for u in [0, users / 2, users - 1] {
            let q = RecommendQuery::new(m.users[u].clone(), 10, Vec::new(), Vec::new());
            std::hint::black_box(self.recommend(&q));
            model::pace::tick();
        }
        let unknown = RecommendQuery::new("\u{0}warm-up", 10, Vec::new(), Vec::new());
        let popular = self.recommend(&unknown);
        if let Some(top) = popular.items.first().and_then(|i| m.item_index(&i.item_id)) {
            std::hint::black_box(self.similar(top, 10));
        }
        std::hint::black_box(self.trending(10, m.categories.first().map(String::as_str)));
        tracing::debug!(
            version = %self.version,
            item_index_bytes = self.model.derived.index.heap_bytes(),
            "snapshot warmed up"
        );
    }
}
