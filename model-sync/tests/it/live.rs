//! The live fold-in on real data (MovieLens-100K via `GEOREC_ML100K`, as in `quality`):
//! after a global time split, folding a user's first new items into their vector must rank
//! their later items better than the model without them.

use model::model::BuildParams;
use model_sync::eval::{evaluate_live, LiveProtocol};
use model_sync::import::{import, Source};

#[test]
fn movielens_100k_live_fold_in_beats_the_plain_model() {
    let Some(dir) = crate::quality::real_data("GEOREC_ML100K", "scripts/fetch-movielens") else { return };
    let data = import(&Source::MovieLens(dir)).expect("MovieLens-100K imports");
    let e = evaluate_live(&data, &BuildParams::default(), &LiveProtocol::default()).expect("evaluation runs");
    let ndcg = |name: &str| e.recommender(name).and_then(|r| r.at(10)).map(|m| m.ndcg).expect("figures");
    let (live, plain, popular) = (ndcg("live"), ndcg("plain"), ndcg("popular"));
    eprintln!(
        "ML-100K live split: {} test users ({} known): NDCG@10 live {live:.4}, plain {plain:.4}, \
         popular {popular:.4}; fold-in p50 {:.0} us, p99 {:.0} us",
        e.test_users, e.known_users, e.live_p50_us, e.live_p99_us
    );
    assert!(e.test_users >= 100, "too few test users: {}", e.test_users);
    assert!(live > 1.1 * plain, "live NDCG@10 {live:.4} must beat the plain model's {plain:.4}");
    assert!(live > popular, "live NDCG@10 {live:.4} must beat popularity {popular:.4}");
}
