//! The domain's questions and answers, independent of HTTP and of where an answer came from.
//!
//! A [`Ranked`] list is what gets cached: it is a pure function of (model version, query),
//! so it can be stored in Redis under a key naming both and served to any later caller.

use serde::{Deserialize, Serialize};

/// Most items one answer may hold (`count` is 1..=this).
pub const MAX_COUNT: usize = 100;
/// Answers hold this many items when the request does not say.
pub const DEFAULT_COUNT: usize = 10;

/// How a list was ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Items of the user's nearest neighbours, weighted by similarity.
    UserKnn,
    /// User-KNN with the user's events newer than the model folded into their vector and
    /// neighbours found exactly through the model's item lists at request time.
    UserKnnLive,
    /// Recency-decayed popularity: unknown users, users without neighbours, trending.
    Popular,
    /// Items chosen by the same users, cosine-normalised (`/items/{id}/similar`).
    ItemCosine,
}

impl Strategy {
    /// The wire name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::UserKnn => "user-knn",
            Strategy::UserKnnLive => "user-knn-live",
            Strategy::Popular => "popular",
            Strategy::ItemCosine => "item-cosine",
        }
    }
}

/// Where an answer came from on this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Cache,
    Model,
}

/// One ranked item, with its name and primary category when the data had them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Item)]
pub struct RankedItem {
    pub item_id: String,
    pub score: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// The item's primary category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub category: Option<String>,
}

/// A ranked list and how it was made; the unit of caching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    pub strategy: Strategy,
    pub items: Vec<RankedItem>,
}

/// A recommendation request in canonical form: `exclude` and `categories` sorted and
/// deduplicated, so requests that differ only in order share one cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendQuery {
    pub user_id: String,
    pub count: usize,
    pub exclude: Vec<String>,
    /// Empty: no category filter.
    pub categories: Vec<String>,
    /// Also return items the user already has (FastAPI `exclude_purchased: false`).
    pub include_seen: bool,
    /// Answered outside the user's residency zone: nothing about the user is stored (see
    /// `cluster_config::RESIDENCY_HEADER`).
    pub transit: bool,
}

impl RecommendQuery {
    pub fn new(
        user_id: impl Into<String>,
        count: usize,
        mut exclude: Vec<String>,
        mut categories: Vec<String>,
    ) -> Self {
        exclude.sort_unstable();
        exclude.dedup();
        categories.sort_unstable();
        categories.dedup();
        Self { user_id: user_id.into(), count, exclude, categories, include_seen: false, transit: false }
    }

    /// Everything but the user that changes the answer, hashed (FNV-1a, stable across
    /// builds and platforms, unlike `DefaultHasher`). Lists are length-prefixed so
    /// `["ab"]` and `["a", "b"]` differ.
    pub fn shape_hash(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(&(self.count as u64).to_le_bytes());
        h.write(&[u8::from(self.include_seen)]);
        for list in [&self.exclude, &self.categories] {
            h.write(&(list.len() as u64).to_le_bytes());
            for s in list {
                h.write(&(s.len() as u64).to_le_bytes());
                h.write(s.as_bytes());
            }
        }
        h.0
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(exclude: &[&str], categories: &[&str]) -> RecommendQuery {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        RecommendQuery::new("u1", 10, v(exclude), v(categories))
    }

    #[test]
    fn shape_ignores_order_and_duplicates_but_not_content() {
        assert_eq!(q(&["b", "a", "a"], &[]).shape_hash(), q(&["a", "b"], &[]).shape_hash());
        assert_ne!(q(&["ab"], &[]).shape_hash(), q(&["a", "b"], &[]).shape_hash());
        assert_ne!(q(&["a"], &[]).shape_hash(), q(&[], &["a"]).shape_hash());
        let mut seen = q(&[], &[]);
        seen.include_seen = true;
        assert_ne!(seen.shape_hash(), q(&[], &[]).shape_hash());
        let mut more = q(&[], &[]);
        more.count = 11;
        assert_ne!(more.shape_hash(), q(&[], &[]).shape_hash());
    }

    #[test]
    fn wire_names_are_stable() {
        let r = Ranked {
            strategy: Strategy::UserKnn,
            items: vec![RankedItem { item_id: "i1".into(), score: 0.5, name: None, category: None }],
        };
        let json = serde_json::to_string(&r).expect("serialises");
        assert_eq!(json, r#"{"strategy":"user-knn","items":[{"item_id":"i1","score":0.5}]}"#);
        assert_eq!(serde_json::to_string(&Source::Cache).expect("serialises"), "\"cache\"");
        for st in [Strategy::UserKnn, Strategy::UserKnnLive, Strategy::Popular, Strategy::ItemCosine] {
            assert_eq!(serde_json::to_string(&st).expect("serialises"), format!("\"{}\"", st.as_str()));
        }
    }
}
