//! Offline evaluation: a per-user holdout (by time, or seeded at random when the data has no
//! usable timestamps), full ranking over every item, the model against its untuned self and
//! three baselines, each metric with its standard error, and the recall of the stored
//! neighbours against an exhaustive exact search.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::build::{build, build_sampled, BuildError};
use crate::dataset::{Dataset, Event};
use crate::par::par_map;
use model::model::{BuildParams, Model, Query, Scored};

/// How the data is split and what is measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Protocol {
    /// Share of each user's distinct items held out for testing (the latest ones when the
    /// split is by time).
    pub holdout: f64,
    /// Users with fewer distinct items than this stay entirely in training.
    pub min_items: usize,
    pub cutoffs: Vec<usize>,
    /// Users sampled to measure neighbour recall (all when fewer).
    pub recall_sample: usize,
    /// How held-out items are chosen.
    #[serde(default)]
    pub split: SplitKind,
    /// Seed of a random split.
    #[serde(default)]
    pub seed: u64,
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            holdout: 0.2,
            min_items: 5,
            cutoffs: vec![10, 20],
            recall_sample: 1000,
            split: SplitKind::Auto,
            seed: 42,
        }
    }
}

/// Which of a user's items are held out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    /// By time when the data has timestamps that differ, at random otherwise.
    #[default]
    Auto,
    /// The latest items by last interaction time (ties by input order).
    Time,
    /// Items drawn at random with the protocol's seed.
    Random,
}

/// What a split did, in words an operator can check.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SplitReport {
    /// `time` or `random`: the split actually used.
    pub kind: String,
    /// Why, when `auto` chose.
    pub reason: String,
    /// Set when the time values look like ordinals (order numbers) rather than unix seconds.
    pub warning: Option<String>,
}

/// Unix seconds before this (1973-03-03) are unlikely to be real times in interaction data.
const PLAUSIBLE_UNIX_SECONDS: i64 = 100_000_000;

impl Protocol {
    pub fn describe(&self, split: &SplitReport) -> String {
        let chosen = match split.kind.as_str() {
            "time" => format!(
                "the latest {:.0}% of their distinct items (by last interaction time, at least one)",
                self.holdout * 100.0
            ),
            _ => format!(
                "{:.0}% of their distinct items drawn at random (seed {}, at least one)",
                self.holdout * 100.0,
                self.seed
            ),
        };
        format!(
            "per-user {} holdout ({}): for each user with >= {} distinct items, {chosen} form the \
             test set; the model is built on the rest. Each test user gets a ranking over all items \
             except their training items; an item is relevant if held out for that user. Metrics \
             are averaged over test users, +- one standard error.",
            if split.kind == "time" { "temporal" } else { "random" },
            split.reason,
            self.min_items,
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

impl Metrics {
    fn zip(&self, o: &Metrics, f: impl Fn(f64, f64) -> f64) -> Metrics {
        Metrics {
            precision: f(self.precision, o.precision),
            recall: f(self.recall, o.recall),
            hit_rate: f(self.hit_rate, o.hit_rate),
            ndcg: f(self.ndcg, o.ndcg),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AtK {
    pub k: usize,
    pub metrics: Metrics,
    /// Standard error of each mean (sample standard deviation / sqrt(users)).
    #[serde(default)]
    pub stderr: Metrics,
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

    pub fn stderr_at(&self, k: usize) -> Option<&Metrics> {
        self.at.iter().find(|a| a.k == k).map(|a| &a.stderr)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub protocol: Protocol,
    pub protocol_text: String,
    #[serde(default)]
    pub split: SplitReport,
    /// The model's parameters, in one line.
    #[serde(default)]
    pub params_text: String,
    pub train_interactions: usize,
    pub test_users: usize,
    pub test_items: usize,
    /// `user-knn` (the parameters given), `user-knn-untuned` (the defaults, when the given
    /// parameters differ), `popularity` (users per item), `popularity-decayed` (what nodes
    /// serve to unknown users), `random`.
    pub recommenders: Vec<RecommenderScores>,
    /// Mean recall@K of the stored neighbours against an exhaustive exact search.
    pub neighbour_recall: f64,
    pub neighbour_recall_users: usize,
    pub neighbours_k: usize,
    /// Shares of users on each search path; see [`crate::build::SearchStats`].
    #[serde(default)]
    pub search_text: String,
}

impl Evaluation {
    pub fn recommender(&self, name: &str) -> Option<&RecommenderScores> {
        self.recommenders.iter().find(|r| r.name == name)
    }
}

/// The held-out items of each test user, by user id.
pub type TestSet = HashMap<String, HashSet<String>>;

/// Split `data` per user: (training events, test items by user id, what was done).
pub fn split(data: &Dataset, p: &Protocol) -> (Dataset, TestSet, SplitReport) {
    let (lo, hi) = data.events.iter().fold((i64::MAX, i64::MIN), |(lo, hi), e| (lo.min(e.ts), hi.max(e.ts)));
    let varied = !data.events.is_empty() && lo != hi;
    let (random, reason) = match p.split {
        SplitKind::Time => (false, "by time, as asked".to_string()),
        SplitKind::Random => (true, "at random, as asked".to_string()),
        SplitKind::Auto if varied => (false, "the data has timestamps".to_string()),
        SplitKind::Auto if data.events.is_empty() => (true, "no events".to_string()),
        SplitKind::Auto => {
            (true, format!("every event has the same time ({lo}): no order to split by, so at random"))
        }
    };
    let warning = (varied && hi < PLAUSIBLE_UNIX_SECONDS).then(|| {
        format!(
            "time values run from {lo} to {hi}: they look like ordinals (order numbers), not unix seconds; \
             the split orders by them, but recency decay in days means little"
        )
    });
    let report = SplitReport { kind: if random { "random" } else { "time" }.to_string(), reason, warning };

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
    let mut test: TestSet = HashMap::new();
    for (u, mut items) in by_user {
        if items.len() < p.min_items {
            continue;
        }
        items.sort_unstable();
        if random {
            // Seeded per user, so the draw does not depend on the order users are visited in.
            let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ (u64::from(u) << 20) ^ 0x9E37_79B9);
            items.shuffle(&mut rng);
        }
        let n_test = ((items.len() as f64 * p.holdout).round() as usize).max(1);
        for &(_, _, i) in &items[items.len() - n_test..] {
            held.insert((u, i));
            test.entry(data.users[u as usize].clone()).or_default().insert(data.items[i as usize].clone());
        }
    }
    let mut train = data.clone();
    train.events =
        data.events.iter().filter(|e| !held.contains(&(e.user, e.item))).copied().collect::<Vec<Event>>();
    (train, test, report)
}

/// A ranking function for one test user: (model user index, items to rank, how many).
type Ranker<'a> = dyn Fn(u32, &Query<'_>) -> Vec<Scored> + Sync + 'a;

/// Per-user metrics of rankers over the test users the model knows: for each ranker and
/// cutoff, the sums of each metric and of its square; and the number of users.
pub(crate) struct Scoring {
    pub sums: Vec<Vec<(Metrics, Metrics)>>,
    pub users: usize,
    pub items: usize,
}

pub(crate) fn score_rankers(
    model: &Model,
    test: &TestSet,
    cutoffs: &[usize],
    rankers: &[&Ranker<'_>],
) -> Scoring {
    let max_k = cutoffs.iter().copied().max().unwrap_or(10);
    let mut users: Vec<(u32, Vec<u32>)> = test
        .iter()
        .filter_map(|(user, relevant)| {
            let u = model.user_index(user)?;
            let mut r: Vec<u32> = relevant.iter().filter_map(|i| model.item_index(i)).collect();
            r.sort_unstable();
            // Held-out items the model never saw still count as relevant (and are unreachable).
            let unknown = relevant.len() - r.len();
            r.extend(std::iter::repeat_n(u32::MAX, unknown));
            Some((u, r))
        })
        .collect();
    users.sort_unstable();
    let q = Query { count: max_k, exclude: &[], categories: None };
    let per_user = par_map(users.len(), |n| {
        let (u, relevant) = &users[n];
        rankers
            .iter()
            .map(|rank| {
                let ranked = rank(*u, &q);
                let hits: Vec<bool> =
                    ranked.iter().map(|s| relevant.binary_search(&s.item).is_ok()).collect();
                cutoffs.iter().map(|&k| metrics(&hits, relevant.len(), k)).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    let mut sums = vec![vec![(Metrics::default(), Metrics::default()); cutoffs.len()]; rankers.len()];
    for user in &per_user {
        for (r, per_k) in user.iter().enumerate() {
            for (c, m) in per_k.iter().enumerate() {
                let (s, sq) = &mut sums[r][c];
                *s = s.zip(m, |a, b| a + b);
                *sq = sq.zip(m, |a, b| a + b * b);
            }
        }
    }
    Scoring { sums, users: users.len(), items: users.iter().map(|u| u.1.len()).sum() }
}

/// Build on the training split and score the model, its untuned self and the baselines.
pub fn evaluate(data: &Dataset, params: &BuildParams, p: &Protocol) -> Result<Evaluation, BuildError> {
    let (train, test, split_report) = split(data, p);
    let built = build(&train, params)?;
    let model = &built.model;
    let untuned = (!params.is_untuned())
        .then(|| build_sampled(&train, &BuildParams { seed: params.seed, ..BuildParams::default() }, 0))
        .transpose()?;

    // Count-based popularity (number of users per item) for the TopPop baseline.
    let mut count = vec![0u32; model.items.len()];
    for &i in model.matrix.indices() {
        count[i as usize] += 1;
    }
    let mut by_count: Vec<u32> = (0..model.items.len() as u32).collect();
    by_count.sort_by(|&a, &b| count[b as usize].cmp(&count[a as usize]).then(a.cmp(&b)));

    let knn = |u: u32, q: &Query<'_>| model.recommend(u, q);
    let untuned_knn = |u: u32, q: &Query<'_>| match &untuned {
        Some(b) => b.model.recommend(u, q),
        None => Vec::new(),
    };
    let popularity = |u: u32, q: &Query<'_>| {
        let seen = model.user_items(u).0;
        by_count
            .iter()
            .filter(|i| seen.binary_search(i).is_err())
            .take(q.count)
            .map(|&i| Scored { item: i, score: count[i as usize] as f32 })
            .collect()
    };
    let decayed = |u: u32, q: &Query<'_>| model.popular(model.user_items(u).0, q);
    let random = |u: u32, q: &Query<'_>| {
        let seen = model.user_items(u).0;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ u64::from(u));
        let n = model.items.len() as u32;
        let mut out: Vec<u32> = Vec::with_capacity(q.count);
        let available = model.items.len() - seen.len();
        while out.len() < q.count.min(available) {
            let i = rng.random_range(0..n);
            if seen.binary_search(&i).is_err() && !out.contains(&i) {
                out.push(i);
            }
        }
        out.into_iter().map(|item| Scored { item, score: 0.0 }).collect()
    };
    let mut names = vec!["user-knn", "popularity", "popularity-decayed", "random"];
    let mut rankers: Vec<&Ranker<'_>> = vec![&knn, &popularity, &decayed, &random];
    if untuned.is_some() {
        names.insert(1, "user-knn-untuned");
        rankers.insert(1, &untuned_knn);
    }
    let scoring = score_rankers(model, &test, &p.cutoffs, &rankers);
    let recommenders = scores(&names, &scoring, &p.cutoffs);
    let (neighbour_recall, neighbour_recall_users) = if p.recall_sample == crate::build::RECALL_SAMPLE {
        (built.search.recall, built.search.recall_users)
    } else {
        crate::build::stored_recall(model, p.recall_sample, params.seed)
    };
    Ok(Evaluation {
        protocol: p.clone(),
        protocol_text: p.describe(&split_report),
        split: split_report,
        params_text: params.describe(),
        train_interactions: train.events.len(),
        test_users: scoring.users,
        test_items: scoring.items,
        recommenders,
        neighbour_recall,
        neighbour_recall_users,
        neighbours_k: params.neighbours,
        search_text: built.search.describe(params.neighbours),
    })
}

/// Precision, recall, hit rate and NDCG at `k` of one ranking.
fn metrics(hits: &[bool], relevant: usize, k: usize) -> Metrics {
    let top = &hits[..hits.len().min(k)];
    let h = top.iter().filter(|&&x| x).count() as f64;
    let dcg: f64 =
        top.iter().enumerate().filter(|(_, &x)| x).map(|(r, _)| 1.0 / (r as f64 + 2.0).log2()).sum();
    let idcg: f64 = (0..relevant.min(k)).map(|r| 1.0 / (r as f64 + 2.0).log2()).sum();
    Metrics {
        precision: h / k as f64,
        recall: h / relevant.max(1) as f64,
        hit_rate: f64::from(u8::from(h > 0.0)),
        ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
    }
}

fn add(m: &mut Metrics, hits: &[bool], relevant: usize, k: usize) {
    let x = metrics(hits, relevant, k);
    *m = m.zip(&x, |a, b| a + b);
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
        let fold = model::live::sum_by_item(fold);
        let revealed_idx: Vec<u32> = fold.iter().map(|&(i, _)| i).collect();
        let seen = model::live::union(history, &revealed_idx);
        test_users += 1;
        known_users += usize::from(user.is_some());

        let started = std::time::Instant::now();
        let mut live = model::live::recommend_live(model, user, &fold, &seen, &q);
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
        recommenders: means(&["live", "plain", "popular"], sums, &p.cutoffs, test_users),
        live_p50_us: pct(0.5).unwrap_or(0.0),
        live_p99_us: pct(0.99).unwrap_or(0.0),
    })
}

/// Per-recommender sums of per-user metrics -> averages (no standard errors).
fn means(names: &[&str], sums: Vec<Vec<Metrics>>, cutoffs: &[usize], users: usize) -> Vec<RecommenderScores> {
    let n = users.max(1) as f64;
    names
        .iter()
        .zip(sums)
        .map(|(name, per_k)| RecommenderScores {
            name: name.to_string(),
            at: cutoffs
                .iter()
                .zip(per_k)
                .map(|(&k, m)| AtK { k, metrics: m.zip(&m, |a, _| a / n), stderr: Metrics::default() })
                .collect(),
        })
        .collect()
}

/// Sums and sums of squares -> means and their standard errors.
pub(crate) fn scores(names: &[&str], s: &Scoring, cutoffs: &[usize]) -> Vec<RecommenderScores> {
    let n = s.users.max(1) as f64;
    names
        .iter()
        .zip(&s.sums)
        .map(|(name, per_k)| RecommenderScores {
            name: name.to_string(),
            at: cutoffs
                .iter()
                .zip(per_k)
                .map(|(&k, (sum, sq))| {
                    let mean = sum.zip(sum, |a, _| a / n);
                    // Sample variance (n - 1), then the standard error of the mean.
                    let var =
                        sq.zip(
                            &mean,
                            |q, m| if n > 1.0 { ((q - n * m * m) / (n - 1.0)).max(0.0) } else { 0.0 },
                        );
                    AtK { k, metrics: mean, stderr: var.zip(&var, |v, _| (v / n).sqrt()) }
                })
                .collect(),
        })
        .collect()
}
