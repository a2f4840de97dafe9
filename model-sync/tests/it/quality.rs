//! The quality gate on real data: MovieLens-100K, fetched by `scripts/fetch-movielens`
//! (never committed) and pointed to by `GEOREC_ML100K`. `scripts/test` always sets it.

use model_sync::eval::{evaluate, Protocol};
use model_sync::import::{import, Source};
use model_sync::model::BuildParams;

#[test]
fn movielens_100k_user_knn_beats_popularity_and_hnsw_recall_is_high() {
    let Some(dir) = std::env::var_os("GEOREC_ML100K") else {
        eprintln!(
            "SKIPPED: set GEOREC_ML100K to a MovieLens-100K directory (scripts/fetch-movielens fetches it)"
        );
        return;
    };
    let data = import(&Source::MovieLens(dir.into())).expect("MovieLens-100K imports");
    assert_eq!((data.users.len(), data.items.len(), data.events.len()), (943, 1682, 100_000));
    assert!(data.item_meta.values().filter(|m| m.name.is_some() && !m.categories.is_empty()).count() > 1600);

    let e = evaluate(&data, &BuildParams::default(), &Protocol::default()).expect("evaluation runs");
    let ndcg = |name: &str| e.recommender(name).and_then(|r| r.at(10)).map(|m| m.ndcg).expect("figures");
    let (knn, pop, random) = (ndcg("user-knn"), ndcg("popularity"), ndcg("random"));
    eprintln!(
        "ML-100K NDCG@10: user-knn {knn:.4}, popularity {pop:.4}, random {random:.4}; neighbour recall {:.4}",
        e.neighbour_recall
    );
    assert!(e.test_users > 900, "almost every user is tested: {}", e.test_users);
    assert!(knn > 1.25 * pop, "user-KNN NDCG@10 {knn:.4} must clearly beat Popularity {pop:.4}");
    assert!(pop > 3.0 * random, "Popularity {pop:.4} must beat Random {random:.4}");
    assert!(e.neighbour_recall >= 0.95, "HNSW neighbour recall {:.4} < 0.95", e.neighbour_recall);
}
