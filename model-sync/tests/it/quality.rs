//! The quality gates on real data: MovieLens-100K (dense, with timestamps) and Book-Crossing
//! (sparse, no timestamps), fetched by `scripts/fetch-movielens` and
//! `scripts/fetch-bookcrossing` (never committed) and pointed to by `GEOREC_ML100K` and
//! `GEOREC_BOOKCROSSING`; `scripts/test` sets both. Without them a gate says it skipped,
//! except in CI (`CI` set), where it fails.
//!
//! Each gate tunes on a validation split carved from the training part (the test part is
//! never read while tuning), then evaluates the tuned model on the test split: it must do at
//! least as well as popularity (both kinds) and as the untuned exact user-KNN, and the stored
//! neighbours must be the exact ones.

use std::path::PathBuf;

use model::model::BuildParams;
use model::neighbours::Weighting;
use model_sync::dataset::Dataset;
use model_sync::eval::{evaluate, Evaluation, Protocol};
use model_sync::import::{import, Source};
use model_sync::tune::{tune, Grid};

/// The dataset directory in `var`; `None` (after saying so) outside CI when it is unset.
pub fn real_data(var: &str, fetch: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) => Some(dir.into()),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{var} is not set in CI: run {fetch} DIR and export {var}=DIR"
            );
            eprintln!("SKIPPED: set {var} to the data directory ({fetch} fetches it)");
            None
        }
    }
}

fn ndcg(e: &Evaluation, name: &str) -> f64 {
    e.recommender(name).and_then(|r| r.at(10)).map(|m| m.ndcg).unwrap_or_else(|| panic!("no {name} figures"))
}

/// Tune, evaluate the choice, print both, and check the gate every dataset shares.
fn tuned_evaluation(label: &str, data: &Dataset) -> Evaluation {
    let protocol = Protocol::default();
    // A smaller grid than `tune --small` keeps the suite short; it still spans both
    // weightings, IDF on and off, short and long neighbour lists and the blend's ends.
    let grid = Grid {
        weighting: vec![Weighting::Raw, Weighting::Binary],
        idf: vec![0.0, 1.0],
        shrink: vec![0.0],
        neighbours: vec![50, 200],
        popularity_blend: vec![0.0, 0.1, 1.0],
    };
    let t = tune(data, &BuildParams::default(), &protocol, &grid, |_| {}).expect("tuning runs");
    let chosen = t.chosen().clone();
    eprintln!(
        "{label}: tuned on {} validation users ({} settings): {} (validation NDCG@10 {:.4})",
        t.validation_users,
        t.trials.len(),
        chosen.describe(),
        t.trials[t.best].ndcg
    );
    let e = evaluate(data, &chosen, &protocol).expect("evaluation runs");
    let untuned = if e.recommender("user-knn-untuned").is_some() {
        ndcg(&e, "user-knn-untuned")
    } else {
        ndcg(&e, "user-knn")
    };
    let (knn, pop, decayed) = (ndcg(&e, "user-knn"), ndcg(&e, "popularity"), ndcg(&e, "popularity-decayed"));
    eprintln!(
        "{label} test NDCG@10 ({} users, {} split): tuned user-knn {knn:.4}, untuned {untuned:.4}, \
         popularity {pop:.4}, decayed popularity {decayed:.4}; {}",
        e.test_users, e.split.kind, e.search_text
    );
    assert!(knn >= pop, "{label}: tuned user-KNN NDCG@10 {knn:.4} is below popularity {pop:.4}");
    assert!(
        knn >= decayed,
        "{label}: tuned user-KNN NDCG@10 {knn:.4} is below decayed popularity {decayed:.4}"
    );
    assert!(
        knn >= untuned,
        "{label}: tuned user-KNN NDCG@10 {knn:.4} is below the untuned model's {untuned:.4}"
    );
    assert!(e.neighbour_recall >= 0.98, "{label}: neighbour recall {:.4} < 0.98", e.neighbour_recall);
    e
}

#[test]
fn movielens_100k_tuned_user_knn_beats_popularity_and_its_untuned_self() {
    let Some(dir) = real_data("GEOREC_ML100K", "scripts/fetch-movielens") else { return };
    let data = import(&Source::MovieLens(dir)).expect("MovieLens-100K imports");
    assert_eq!((data.users.len(), data.items.len(), data.events.len()), (943, 1682, 100_000));
    assert!(data.item_meta.values().filter(|m| m.name.is_some() && !m.categories.is_empty()).count() > 1600);
    let e = tuned_evaluation("ML-100K", &data);
    assert_eq!(e.split.kind, "time", "MovieLens has timestamps");
    assert!(e.test_users > 900, "almost every user is tested: {}", e.test_users);
    let (knn, pop, random) = (ndcg(&e, "user-knn"), ndcg(&e, "popularity"), ndcg(&e, "random"));
    assert!(knn > 1.25 * pop, "user-KNN NDCG@10 {knn:.4} must clearly beat Popularity {pop:.4}");
    assert!(pop > 3.0 * random, "Popularity {pop:.4} must beat Random {random:.4}");
}

#[test]
fn bookcrossing_tuned_user_knn_beats_popularity_and_its_untuned_self() {
    let Some(dir) = real_data("GEOREC_BOOKCROSSING", "scripts/fetch-bookcrossing") else { return };
    let data = import(&Source::BookCrossing(dir)).expect("Book-Crossing imports");
    let e = tuned_evaluation("Book-Crossing", &data);
    assert_eq!(e.split.kind, "random", "Book-Crossing has no timestamps: the split must say it is random");
    assert!(e.test_users > 10_000, "test users: {}", e.test_users);
}
