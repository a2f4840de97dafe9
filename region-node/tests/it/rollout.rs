//! Two versions on one node: sticky splits, shadow answers that never reach users,
//! conversions counted for the version that recommended, promotion and removal, and a
//! candidate that fails.

use std::time::Duration;

use model::model::Query;
use model::rollout::{arm_for, Arm, Candidate, Mode};
use region_node::rollout::Fault;
use serde_json::{json, Value};

use crate::helpers::*;

const ROLLOUT: &str = "20240102T000000Z-rollout";

fn candidate(n: u32, mode: Mode, share: f64) -> Candidate {
    Candidate { version: version(n), mode, share, rollout_id: ROLLOUT.into() }
}

fn users() -> Vec<String> {
    (0..40).map(|u| format!("u{u:02}")).collect()
}

fn item_ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["item_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_answers_each_user_from_one_sticky_arm_and_counts_conversions_for_it() {
    let node = spawn_node().await;
    let v2 = node.upload(2).await;
    node.point(&version(1), Some(candidate(2, Mode::Split, 0.5))).await;
    node.wait_for_pair(&version(1), Some(&version(2))).await;

    let mut per_arm = [0usize; 2];
    let mut first = std::collections::HashMap::new();
    for pass in 0..2 {
        for user in users() {
            let a = node.recommend(&json!({"user_id": user, "count": 5})).await;
            let want = arm_for(&user, ROLLOUT, 0.5);
            assert_eq!(a["arm"], want.as_str(), "{user}: {a}");
            let v = if want == Arm::Candidate { version(2) } else { version(1) };
            assert_eq!(a["model_version"], v.as_str(), "{user}: {a}");
            if pass == 0 {
                per_arm[usize::from(want == Arm::Candidate)] += 1;
                first.insert(user.clone(), item_ids(&a));
            } else {
                // Cached per version: the same answer again.
                assert_eq!(a["source"], "cache", "{user}: {a}");
                assert_eq!(first[&user], item_ids(&a), "{user}");
            }
            if want == Arm::Candidate {
                let (expected, _) =
                    expected_recommend(&v2, &user, &Query { count: 5, exclude: &[], categories: None });
                assert_items_match(&v2, &a, &expected);
            }
        }
    }
    assert!(per_arm[0] > 5 && per_arm[1] > 5, "both arms get users: {per_arm:?}");

    // A purchase of an item the candidate recommended counts for the candidate, once the
    // node has recorded what it served (off the response path).
    let user =
        users().into_iter().find(|u| arm_for(u, ROLLOUT, 0.5) == Arm::Candidate).expect("a candidate user");
    let item = first[&user][0].clone();
    let redis = node.redis_conn().await;
    let served_key = format!("georec:{REGION}:served:{user}");
    eventually("the answer to be recorded", || {
        let (mut redis, key, item) = (redis.clone(), served_key.clone(), item.clone());
        async move {
            let v: Option<String> =
                redis::cmd("HGET").arg(&key).arg(&item).query_async(&mut redis).await.ok()?;
            v.filter(|v| v.starts_with(&version(2)))
        }
    })
    .await;
    let now = model::manifest::now_unix();
    let events = json!([
        {"user_id": user, "item_id": item, "type": "purchase", "ts": now},
        {"user_id": user, "item_id": "i-never-recommended", "type": "view", "ts": now},
    ]);
    let res = node.post("/events", &events).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    let report = node.rollout_report().await;
    let c = report.candidate.expect("candidate in the report");
    assert_eq!((c.mode, c.share, c.rollout_id.as_str()), (Mode::Split, 0.5, ROLLOUT));
    assert_eq!(c.figures.version, version(2));
    assert_eq!(c.figures.conversions.get("purchase"), Some(&1), "{:?}", c.figures);
    assert_eq!(c.figures.conversions.len(), 1, "{:?}", c.figures);
    assert_eq!(c.figures.converted, 1, "{:?}", c.figures);
    assert!(c.figures.impressions >= c.figures.requests, "{:?}", c.figures);
    // A second event on the same recommended item counts by its type, but the item converts once.
    let again = json!({"user_id": user, "item_id": item, "type": "view", "ts": now});
    assert_eq!(node.post("/events", &again).await.status(), 200);
    let c = node.rollout_report().await.candidate.expect("candidate");
    assert_eq!((c.figures.conversions.get("view"), c.figures.converted), (Some(&1), 1), "{:?}", c.figures);
    let stable = report.stable.expect("stable in the report");
    assert!(stable.conversions.is_empty(), "{stable:?}");
    assert_eq!(c.figures.requests as usize, per_arm[1] * 2);
    assert_eq!(stable.requests as usize, per_arm[0] * 2);
    assert_eq!(c.figures.latency.total(), c.figures.requests);
    // Every candidate answer of the first pass was computed (its cache started empty).
    assert_eq!(c.figures.compute_latency.total() as usize, per_arm[1]);
    assert_eq!(c.figures.errors, 0);
    // Distinct users per version (HyperLogLog: exact at this size).
    let report = eventually("user counts", || async {
        let r = node.rollout_report().await;
        (r.candidate.as_ref()?.figures.users as usize == per_arm[1]).then_some(r)
    })
    .await;
    assert_eq!(report.stable.expect("stable").users as usize, per_arm[0]);
    let text = node.get("/metrics").await.text().await.expect("metrics");
    let line = format!(
        "georec_version_conversions_total{{arm=\"candidate\",type=\"purchase\",version=\"{}\"}} 1",
        version(2)
    );
    assert!(text.contains(&line), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_computes_the_candidate_but_never_changes_an_answer() {
    let node = spawn_node().await;
    let v1 = model_dir(1).model;
    node.upload(2).await;
    node.point(&version(1), Some(candidate(2, Mode::Shadow, 1.0))).await;
    node.wait_for_pair(&version(1), Some(&version(2))).await;
    for user in users() {
        let a = node.recommend(&json!({"user_id": user, "count": 5})).await;
        assert_eq!(
            (a["arm"].as_str(), a["model_version"].as_str()),
            (Some("stable"), Some(version(1).as_str()))
        );
        let (expected, _) =
            expected_recommend(&v1, &user, &Query { count: 5, exclude: &[], categories: None });
        assert_items_match(&v1, &a, &expected);
    }
    let report = eventually("shadow computations", || async {
        let r = node.rollout_report().await;
        let s = &r.candidate.as_ref()?.shadow;
        (s.computed + s.skipped == 40).then_some(r)
    })
    .await;
    let c = report.candidate.expect("candidate");
    assert!(c.shadow.computed > 0, "{:?}", c.shadow);
    assert_eq!(c.shadow.errors, 0);
    assert_eq!(c.shadow.latency.total(), c.shadow.computed);
    let mean = c.shadow.overlap_sum / c.shadow.computed as f64;
    assert!((0.0..=1.0).contains(&mean), "{mean}");
    // The candidate answered nobody.
    assert_eq!(c.figures.requests, 0);
    assert_eq!(report.stable.expect("stable").requests, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_promoted_without_reloading_and_removed_cleanly() {
    let node = spawn_node().await;
    // A pointer as older builds write it (no candidate field) still reads.
    let old =
        format!(r#"{{"version": "{}", "previous": null, "updated_at": "2024-01-01T00:00:00Z"}}"#, version(1));
    let bucket = node.region_bucket();
    bucket.put_bytes(&model::manifest::pointer_key(PREFIX), old.into_bytes().into()).await.expect("pointer");
    node.upload(2).await;
    node.point(&version(1), Some(candidate(2, Mode::Split, 1.0))).await;
    node.wait_for_pair(&version(1), Some(&version(2))).await;
    for user in users().iter().take(10) {
        let a = node.recommend(&json!({"user_id": user})).await;
        assert_eq!(a["arm"], "candidate", "share 1.0 puts everyone in the candidate arm: {a}");
    }
    let swaps = node.metric("georec_model_swaps_total").await;
    // Promotion: the candidate's snapshot becomes the stable one, its counts with it.
    node.point(&version(2), None).await;
    node.wait_for_pair(&version(2), None).await;
    let report = node.rollout_report().await;
    let stable = report.stable.expect("stable");
    assert_eq!(
        (stable.version.as_str(), stable.requests),
        (version(2).as_str(), 10),
        "the same snapshot, not a reload"
    );
    assert!(report.candidate.is_none());
    assert_eq!(node.metric("georec_model_swaps_total").await, swaps + 1.0);
    let a = node.recommend(&json!({"user_id": "u01"})).await;
    assert_eq!((a["arm"].as_str(), a["model_version"].as_str()), (Some("stable"), Some(version(2).as_str())));
    // A new stable version under a running rollout: the candidate leaves while it loads (two
    // versions resident at most) and is loaded again.
    node.upload(3).await;
    node.point(&version(2), Some(candidate(3, Mode::Split, 1.0))).await;
    node.wait_for_pair(&version(2), Some(&version(3))).await;
    node.recommend(&json!({"user_id": "u05"})).await;
    node.upload(4).await;
    node.point(&version(4), Some(candidate(3, Mode::Split, 1.0))).await;
    node.wait_for_pair(&version(4), Some(&version(3))).await;
    let c = node.rollout_report().await.candidate.expect("candidate");
    assert_eq!((c.figures.version.as_str(), c.figures.requests), (version(3).as_str(), 0), "reloaded");
    // Removal: a candidate named and then taken away leaves the stable version alone.
    node.point(&version(2), Some(candidate(3, Mode::Split, 0.5))).await;
    node.wait_for_pair(&version(2), Some(&version(3))).await;
    node.point(&version(2), None).await;
    node.wait_for_pair(&version(2), None).await;
    for user in users() {
        let a = node.recommend(&json!({"user_id": user})).await;
        assert_eq!(
            (a["arm"].as_str(), a["model_version"].as_str()),
            (Some("stable"), Some(version(2).as_str()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_is_counted_while_the_stable_version_answers() {
    let fault = Fault { version: version(2), error_share: 1.0, delay: Duration::ZERO };
    let node = spawn_node_with(Options { faults: vec![fault], ..Options::default() }).await;
    node.upload(2).await;
    node.point(&version(1), Some(candidate(2, Mode::Split, 0.5))).await;
    node.wait_for_pair(&version(1), Some(&version(2))).await;
    let mut failed = 0;
    for user in users() {
        let res = node.post("/recommendations", &json!({"user_id": user})).await;
        assert_eq!(res.status(), 200, "users never see a candidate's failure");
        let a: Value = res.json().await.expect("json");
        assert_eq!(
            (a["arm"].as_str(), a["model_version"].as_str()),
            (Some("stable"), Some(version(1).as_str()))
        );
        failed += usize::from(arm_for(&user, ROLLOUT, 0.5) == Arm::Candidate);
    }
    let report = node.rollout_report().await;
    let c = report.candidate.expect("candidate");
    assert_eq!((c.figures.errors as usize, c.figures.requests), (failed, 0));
    assert_eq!(report.stable.expect("stable").requests, 40);

    // A candidate that cannot be loaded (its bytes do not match its manifest) is reported,
    // and the stable version keeps answering everyone.
    node.point(&version(1), None).await;
    node.wait_for_pair(&version(1), None).await;
    node.upload_corrupt(3).await;
    node.point(&version(1), Some(candidate(3, Mode::Split, 0.5))).await;
    let error =
        eventually("the candidate error", || async { node.rollout_report().await.candidate_error }).await;
    assert!(error.contains(&version(3)) || error.contains("sha256") || error.contains("checksum"), "{error}");
    let h = node.health().await;
    assert_eq!(h["status"], "ready");
    assert!(h["candidate"].is_null(), "{h}");
    for user in users() {
        let a = node.recommend(&json!({"user_id": user})).await;
        assert_eq!(a["model_version"], version(1).as_str());
    }
}
