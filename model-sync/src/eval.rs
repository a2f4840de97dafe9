//! Offline evaluation: per-user time holdout, full ranking, three recommenders, and the
//! recall of the HNSW neighbours against exact cosine neighbours.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::build::{build, BuildError};
use crate::dataset::{Dataset, Event};
use crate::index::exact_neighbours;
use crate::model::{top_k, BuildParams, Matrix, Model, Query, Scored};

/// How the data is split and what is measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Protocol {
    /// Share of each user's distinct items, latest first, held out for testing.
    pub holdout: f64,
    /// Users with fewer distinct items than this stay entirely in training.
    pub min_items: usize,
    pub cutoffs: Vec<usize>,
    /// Users sampled to measure neighbour recall (all when fewer).
    pub recall_sample: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Self { holdout: 0.2, min_items: 5, cutoffs: vec![10, 20], recall_sample: 1000 }
    }
}

impl Protocol {
    pub fn describe(&self) -> String {
        format!(
            "per-user temporal holdout: for each user with >= {} distinct items, the latest {:.0}% \
             of their distinct items (by last interaction time, at least one) form the test set; \
             the model is built on the rest. Each test user gets a ranking over all items except \
             their training items; an item is relevant if held out for that user. Metrics are \
             averaged over test users.",
            self.min_items,
            self.holdout * 100.0
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub precision: f64,
    pub recall: f64,
    pub hit_rate: f64,
    pub ndcg: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtK {
    pub k: usize,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecommenderScores {
    pub name: String,
    pub at: Vec<AtK>,
}

impl RecommenderScores {
    pub fn at(&self, k: usize) -> Option<&Metrics> {
        self.at.iter().find(|a| a.k == k).map(|a| &a.metrics)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub protocol: Protocol,
    pub protocol_text: String,
    pub train_interactions: usize,
    pub test_users: usize,
    pub test_items: usize,
    pub recommenders: Vec<RecommenderScores>,
    /// Mean recall@K of the stored HNSW neighbours against exact cosine neighbours.
    pub neighbour_recall: f64,
    pub neighbour_recall_users: usize,
    pub neighbours_k: usize,
}

impl Evaluation {
    pub fn recommender(&self, name: &str) -> Option<&RecommenderScores> {
        self.recommenders.iter().find(|r| r.name == name)
    }
}

/// Split `data` per user by time: (training events, test items by user id).
pub fn split(data: &Dataset, p: &Protocol) -> (Dataset, HashMap<String, HashSet<String>>) {
    // Last interaction time of each (user, item); ties by input order keep it deterministic.
    let mut last: HashMap<(u32, u32), (i64, usize)> = HashMap::new();
    for (n, e) in data.events.iter().enumerate() {
        let v = last.entry((e.user, e.item)).or_insert((e.ts, n));
        if (e.ts, n) > *v {
            *v = (e.ts, n);
        }
    }
    let mut by_user: HashMap<u32, Vec<(i64, usize, u32)>> = HashMap::new();
    for (&(u, i), &(ts, n)) in &last {
        by_user.entry(u).or_default().push((ts, n, i));
    }
    let mut held: HashSet<(u32, u32)> = HashSet::new();
    let mut test: HashMap<String, HashSet<String>> = HashMap::new();
    for (u, mut items) in by_user {
        if items.len() < p.min_items {
            continue;
        }
        items.sort_unstable();
        let n_test = ((items.len() as f64 * p.holdout).round() as usize).max(1);
        for &(_, _, i) in &items[items.len() - n_test..] {
            held.insert((u, i));
            test.entry(data.users[u as usize].clone()).or_default().insert(data.items[i as usize].clone());
        }
    }
    let mut train = data.clone();
    train.events =
        data.events.iter().filter(|e| !held.contains(&(e.user, e.item))).copied().collect::<Vec<Event>>();
    (train, test)
}

/// Build on the training split and score user-KNN, Popularity and Random.
pub fn evaluate(data: &Dataset, params: &BuildParams, p: &Protocol) -> Result<Evaluation, BuildError> {
    let (train, test) = split(data, p);
    let built = build(&train, params)?;
    let model = &built.model;
    let max_k = p.cutoffs.iter().copied().max().unwrap_or(10);

    // Count-based popularity (number of users per item) for the TopPop baseline.
    let mut pop_count = vec![0u32; model.items.len()];
    for &i in model.matrix.indices() {
        pop_count[i as usize] += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);

    let mut users: Vec<(&String, &HashSet<String>)> = test.iter().collect();
    users.sort_by(|a, b| a.0.cmp(b.0));
    let names = ["user-knn", "popularity", "random"];
    let mut sums: Vec<Vec<Metrics>> = vec![vec![Metrics::default(); p.cutoffs.len()]; names.len()];
    let mut test_users = 0;
    let mut test_items = 0;
    let q = Query { count: max_k, exclude: &[], categories: None };
    for (user, relevant) in users {
        let Some(u) = model.user_index(user) else { continue };
        test_users += 1;
        test_items += relevant.len();
        let (seen, _) = model.user_items(u);
        let knn = model.recommend(u, &q);
        let pop = top_k(
            (0..model.items.len() as u32)
                .filter(|i| seen.binary_search(i).is_err())
                .map(|i| Scored { item: i, score: pop_count[i as usize] as f32 }),
            max_k,
        );
        let mut unseen: Vec<u32> =
            (0..model.items.len() as u32).filter(|i| seen.binary_search(i).is_err()).collect();
        unseen.shuffle(&mut rng);
        let random: Vec<Scored> =
            unseen.into_iter().take(max_k).map(|item| Scored { item, score: 0.0 }).collect();
        for (r, ranked) in [knn, pop, random].iter().enumerate() {
            let hits: Vec<bool> =
                ranked.iter().map(|s| relevant.contains(&model.items[s.item as usize])).collect();
            for (c, &k) in p.cutoffs.iter().enumerate() {
                add(&mut sums[r][c], &hits, relevant.len(), k);
            }
        }
    }
    let recommenders = scores(&names, sums, &p.cutoffs, test_users);
    let (neighbour_recall, neighbour_recall_users) = neighbour_recall(model, p.recall_sample, params.seed);
    Ok(Evaluation {
        protocol: p.clone(),
        protocol_text: p.describe(),
        train_interactions: train.events.len(),
        test_users,
        test_items,
        recommenders,
        neighbour_recall,
        neighbour_recall_users,
        neighbours_k: params.neighbours,
    })
}

fn add(m: &mut Metrics, hits: &[bool], relevant: usize, k: usize) {
    let top = &hits[..hits.len().min(k)];
    let h = top.iter().filter(|&&x| x).count() as f64;
    let dcg: f64 =
        top.iter().enumerate().filter(|(_, &x)| x).map(|(r, _)| 1.0 / (r as f64 + 2.0).log2()).sum();
    let idcg: f64 = (0..relevant.min(k)).map(|r| 1.0 / (r as f64 + 2.0).log2()).sum();
    m.precision += h / k as f64;
    m.recall += h / relevant.max(1) as f64;
    m.hit_rate += f64::from(u8::from(h > 0.0));
    m.ndcg += if idcg > 0.0 { dcg / idcg } else { 0.0 };
}

/// Mean recall@K of the model's neighbour lists against exact cosine neighbours on a seeded
/// sample of users. A stored neighbour counts as found when its similarity reaches the
/// K-th exact similarity, so ties at the boundary are not penalised.
pub fn neighbour_recall(model: &Model, sample: usize, seed: u64) -> (f64, usize) {
    let k = model.params.neighbours;
    let normalised = normalised_matrix(model);
    let csc = normalised.to_csc();
    let mut users: Vec<u32> = (0..model.users.len() as u32).collect();
    users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5EED));
    users.truncate(sample);
    let mut total = 0.0;
    let mut counted = 0;
    for u in users {
        let exact = exact_neighbours(&normalised, &csc, u, k);
        if exact.is_empty() {
            continue;
        }
        let threshold = exact.last().map(|e| e.1).unwrap_or(0.0) - 1e-5;
        let found = model.neighbours(u).filter(|&(_, s)| s >= threshold).count().min(exact.len());
        total += found as f64 / exact.len() as f64;
        counted += 1;
    }
    (if counted == 0 { 1.0 } else { total / counted as f64 }, counted)
}

/// Rows L2-normalised with the model's weighting, as the index sees them.
pub fn normalised_matrix(model: &Model) -> Matrix {
    let mut data = Vec::with_capacity(model.matrix.nnz());
    for u in 0..model.users.len() as u32 {
        let (items, weights) = model.user_items(u);
        data.extend(crate::index::normalise(items, weights, model.params.binary).into_iter().map(|e| e.val));
        // A user whose weights are all zero keeps zeros, so the structure stays aligned.
        data.resize(data.len().max(model.matrix.indptr().outer_inds_sz(u as usize).end), 0.0);
    }
    let indptr = model.matrix.indptr().to_proper().into_owned();
    Matrix::new((model.matrix.rows(), model.matrix.cols()), indptr, model.matrix.indices().to_vec(), data)
}

/// How the live fold-in is measured: a global time split, with the first events after it
/// revealed as a user's live events and the rest to predict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveProtocol {
    /// Share of events (by time) the model is built on.
    pub train_share: f64,
    /// Distinct items of each test user's first events after the split, fed as live events.
    pub reveal: usize,
    pub cutoffs: Vec<usize>,
}

impl Default for LiveProtocol {
    fn default() -> Self {
        Self { train_share: 0.8, reveal: 5, cutoffs: vec![10, 20] }
    }
}

impl LiveProtocol {
    pub fn describe(&self) -> String {
        format!(
            "global time split: the model is built on the earliest {:.0}% of events; for every user with \
             more than {} distinct new items after the split, their first {} new items (in time order, \
             with their weights) are revealed as live events and the remaining new items are the test \
             set. Rankings exclude the user's training and revealed items for `live` and `popular`; \
             `plain` is the model without the live events (training items excluded). Metrics are \
             averaged over test users; known users are in the model, new users are not.",
            self.train_share * 100.0,
            self.reveal,
            self.reveal
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveEvaluation {
    pub protocol: LiveProtocol,
    pub protocol_text: String,
    /// Events at or before this time (unix seconds) are training data.
    pub split_ts: i64,
    pub train_interactions: usize,
    pub test_users: usize,
    /// Test users the model knows (the rest are new after the split).
    pub known_users: usize,
    /// `live`, `plain`, `popular`.
    pub recommenders: Vec<RecommenderScores>,
    /// Time to fold in and rank for one user (vector, HNSW search, scoring), microseconds.
    pub live_p50_us: f64,
    pub live_p99_us: f64,
}

impl LiveEvaluation {
    pub fn recommender(&self, name: &str) -> Option<&RecommenderScores> {
        self.recommenders.iter().find(|r| r.name == name)
    }
}

/// Score the live fold-in against the plain model and popularity; see [`LiveProtocol`].
pub fn evaluate_live(
    data: &Dataset,
    params: &BuildParams,
    p: &LiveProtocol,
) -> Result<LiveEvaluation, BuildError> {
    let mut order: Vec<usize> = (0..data.events.len()).collect();
    order.sort_by_key(|&n| (data.events[n].ts, n));
    let split_at = ((order.len() as f64 * p.train_share) as usize).min(order.len().saturating_sub(1));
    let split_ts = order.get(split_at).map_or(0, |&n| data.events[n].ts);
    let mut train = data.clone();
    train.events = data.events.iter().filter(|e| e.ts <= split_ts).copied().collect();
    let built = build(&train, params)?;
    let model = &built.model;

    // Each user's events after the split, in time order.
    let mut after: HashMap<u32, Vec<Event>> = HashMap::new();
    for &n in &order {
        let e = data.events[n];
        if e.ts > split_ts {
            after.entry(e.user).or_default().push(e);
        }
    }
    let mut users: Vec<u32> = after.keys().copied().collect();
    users.sort_by(|a, b| data.users[*a as usize].cmp(&data.users[*b as usize]));
    let max_k = p.cutoffs.iter().copied().max().unwrap_or(10);
    let q = Query { count: max_k, exclude: &[], categories: None };
    let mut sums = vec![vec![Metrics::default(); p.cutoffs.len()]; 3];
    let (mut test_users, mut known_users) = (0, 0);
    let mut took = Vec::new();
    for u in users {
        let events = &after[&u];
        let user = model.user_index(&data.users[u as usize]);
        let history: &[u32] = user.map_or(&[], |m| model.user_items(m).0);
        let in_history = |item: u32| {
            let i = model.item_index(&data.items[item as usize]);
            i.is_some_and(|i| history.binary_search(&i).is_ok())
        };
        // Distinct new items in order of first appearance.
        let mut new_items: Vec<u32> = Vec::new();
        for e in events {
            if !new_items.contains(&e.item) && !in_history(e.item) {
                new_items.push(e.item);
            }
        }
        if new_items.len() <= p.reveal {
            continue;
        }
        let revealed = &new_items[..p.reveal];
        let relevant: HashSet<&str> =
            new_items[p.reveal..].iter().map(|&i| data.items[i as usize].as_str()).collect();
        let fold: Vec<(u32, f32)> = events
            .iter()
            .filter(|e| revealed.contains(&e.item))
            .filter_map(|e| Some((model.item_index(&data.items[e.item as usize])?, e.weight)))
            .collect();
        let fold = crate::live::sum_by_item(fold);
        let revealed_idx: Vec<u32> = fold.iter().map(|&(i, _)| i).collect();
        let seen = crate::live::union(history, &revealed_idx);
        test_users += 1;
        known_users += usize::from(user.is_some());

        let started = std::time::Instant::now();
        let mut live = crate::live::recommend_live(model, user, &fold, &seen, &q);
        if live.is_empty() {
            live = model.popular(&seen, &q);
        }
        took.push(started.elapsed().as_secs_f64() * 1e6);
        let plain = match user {
            Some(m) => {
                let r = model.recommend(m, &q);
                if r.is_empty() {
                    model.popular(history, &q)
                } else {
                    r
                }
            }
            None => model.popular(&[], &q),
        };
        let popular = model.popular(&seen, &q);
        for (r, ranked) in [live, plain, popular].iter().enumerate() {
            let hits: Vec<bool> =
                ranked.iter().map(|s| relevant.contains(model.items[s.item as usize].as_str())).collect();
            for (c, &k) in p.cutoffs.iter().enumerate() {
                add(&mut sums[r][c], &hits, relevant.len(), k);
            }
        }
    }
    took.sort_by(f64::total_cmp);
    let pct =
        |q: f64| took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1))).copied();
    Ok(LiveEvaluation {
        protocol: p.clone(),
        protocol_text: p.describe(),
        split_ts,
        train_interactions: train.events.len(),
        test_users,
        known_users,
        recommenders: scores(&["live", "plain", "popular"], sums, &p.cutoffs, test_users),
        live_p50_us: pct(0.5).unwrap_or(0.0),
        live_p99_us: pct(0.99).unwrap_or(0.0),
    })
}

/// Per-recommender sums of per-user metrics -> averages.
fn scores(
    names: &[&str],
    sums: Vec<Vec<Metrics>>,
    cutoffs: &[usize],
    users: usize,
) -> Vec<RecommenderScores> {
    let n = users.max(1) as f64;
    names
        .iter()
        .zip(sums)
        .map(|(name, per_k)| RecommenderScores {
            name: name.to_string(),
            at: cutoffs
                .iter()
                .zip(per_k)
                .map(|(&k, m)| AtK {
                    k,
                    metrics: Metrics {
                        precision: m.precision / n,
                        recall: m.recall / n,
                        hit_rate: m.hit_rate / n,
                        ndcg: m.ndcg / n,
                    },
                })
                .collect(),
        })
        .collect()
}
