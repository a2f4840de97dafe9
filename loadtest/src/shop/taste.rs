//! A shopper's hidden taste, derived from the model that knows them.
//!
//! **The rule.** Sum the user's item weights in the model (the aggregated interaction
//! weights of [`Model::user_items`]) by each item's primary category. The taste is the
//! heaviest category, plus the second heaviest when it weighs at least
//! [`SECOND_CATEGORY_RATIO`] of the first; ties go to the category whose name sorts first.
//! Items without a category count for nothing; a user with none has no taste and is not
//! simulated. `model-sync generate` gives each user one or two preferred categories and puts
//! 90% of their events there, so a one-category user's stray events (spread over the other
//! categories) stay well under a third of the preferred one, while a two-category user's
//! second category is about as heavy as the first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use model::model::Model;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The second category joins the taste when it weighs at least this share of the first.
pub const SECOND_CATEGORY_RATIO: f32 = 1.0 / 3.0;

/// One simulated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shopper {
    pub user_id: String,
    /// One or two category names, heaviest first.
    pub taste: Vec<String>,
}

impl Shopper {
    pub fn likes(&self, category: &str) -> bool {
        self.taste.iter().any(|c| c == category)
    }
}

/// The taste of user index `user` in `model` (see the module docs); empty when none of the
/// user's items has a category.
pub fn taste_of(model: &Model, user: u32) -> Vec<String> {
    let (items, weights) = model.user_items(user);
    let mut by_category: HashMap<u32, f32> = HashMap::new();
    for (&item, &w) in items.iter().zip(weights) {
        if let Some(&c) = model.item_categories(item).first() {
            *by_category.entry(c).or_default() += w;
        }
    }
    let mut ranked: Vec<(u32, f32)> = by_category.into_iter().collect();
    // Categories are sorted by name in the model, so index order is name order.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let name = |c: u32| model.categories[c as usize].clone();
    match ranked.as_slice() {
        [] => Vec::new(),
        [(first, _)] => vec![name(*first)],
        [(first, w1), (second, w2), ..] => {
            if *w2 >= SECOND_CATEGORY_RATIO * *w1 {
                vec![name(*first), name(*second)]
            } else {
                vec![name(*first)]
            }
        }
    }
}

/// What the simulation knows: the shoppers and every item's primary category (shared, cheap
/// to clone).
#[derive(Debug, Clone)]
pub struct World {
    pub shoppers: Arc<[Shopper]>,
    /// Item id -> primary category; items of a recommendation are matched against it.
    pub categories: Arc<HashMap<String, String>>,
    /// Every item id, for noise events.
    pub items: Arc<[String]>,
}

impl World {
    /// A world from parts (tests, other sources); noise events pick among the items of
    /// `categories`.
    pub fn new(shoppers: Vec<Shopper>, categories: HashMap<String, String>) -> Result<Self, TasteError> {
        if shoppers.is_empty() {
            return Err(TasteError::NoUsers);
        }
        let mut items: Vec<String> = categories.keys().cloned().collect();
        items.sort_unstable();
        Ok(World { shoppers: shoppers.into(), categories: Arc::new(categories), items: items.into() })
    }

    /// The shoppers of `model`: every user with a taste, or `users` of them chosen by a
    /// seeded shuffle (the same seed picks the same users).
    pub fn from_model(model: &Model, users: Option<usize>, seed: u64) -> Result<Self, TasteError> {
        if users == Some(0) {
            return Err(TasteError::NoUsers);
        }
        let mut shoppers: Vec<Shopper> = (0..model.users.len() as u32)
            .filter_map(|u| {
                let taste = taste_of(model, u);
                (!taste.is_empty()).then(|| Shopper { user_id: model.users[u as usize].clone(), taste })
            })
            .collect();
        if shoppers.is_empty() {
            return Err(TasteError::NoTastes);
        }
        if let Some(n) = users.filter(|&n| n < shoppers.len()) {
            shoppers.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5109_7a57));
            shoppers.truncate(n);
            shoppers.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        }
        let categories = (0..model.items.len() as u32)
            .filter_map(|i| Some((model.items[i as usize].clone(), model.item_category(i)?.to_string())))
            .collect();
        let items = model.items.clone();
        Ok(World { shoppers: shoppers.into(), categories: Arc::new(categories), items: items.into() })
    }

    /// [`World::from_model`] on a model directory or its `model.bin`.
    pub fn load(path: &Path, users: Option<usize>, seed: u64) -> Result<Self, TasteError> {
        let file = if path.is_dir() { path.join("model.bin") } else { path.to_path_buf() };
        let reader =
            std::fs::File::open(&file).map_err(|source| TasteError::Read { path: file.clone(), source })?;
        let model =
            model::blob::decode(reader).map_err(|source| TasteError::Model { path: file.clone(), source })?;
        Self::from_model(&model, users, seed)
    }

    /// The category of a recommended item: the model's, else the one the answer named.
    pub fn category_of<'a>(&'a self, item_id: &str, answered: Option<&'a str>) -> Option<&'a str> {
        self.categories.get(item_id).map(String::as_str).or(answered)
    }
}

/// Why there are no shoppers.
#[derive(Debug, thiserror::Error)]
pub enum TasteError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode model {path}")]
    Model {
        path: std::path::PathBuf,
        #[source]
        source: model::blob::DecodeError,
    },
    #[error("no user of the model has a taste: its items have no categories")]
    NoTastes,
    #[error("--users must be at least 1")]
    NoUsers,
}
