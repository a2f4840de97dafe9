//! Rollback and gc: pointers only move to verified versions; gc never deletes them.

use model::manifest::{self, PAYLOAD_FILE};
use model_sync::admin::{self, RollbackError};
use model_sync::publish::PointerChange;
use store::reader::{self, ReadError};

use crate::helpers::{noise, simple_model, version, Cluster, PREFIX};

#[tokio::test]
async fn rollback_verifies_everywhere_then_flips() {
    let cluster = Cluster::new(&["eu-west", "us-east"], &[]);
    let (v1, v2) = (simple_model(1, 20_000), simple_model(2, 20_000));
    cluster.publish(&v1).await.expect("v1");
    cluster.publish(&v2).await.expect("v2");
    let regions = cluster.region_buckets();

    let report = admin::rollback(&regions, &version(1)).await.expect("rollback");
    for (label, change) in &report.buckets {
        assert_eq!(*change, PointerChange::Flipped { previous: Some(version(2)) }, "{label}");
    }
    for b in &regions {
        let (p, v) = reader::fetch_current(b).await.expect("v1 intact");
        assert_eq!((p.version, p.previous), (version(1), Some(version(2))));
        assert_eq!(v.files[PAYLOAD_FILE].as_ref(), v1.files[PAYLOAD_FILE].as_slice());
    }

    // v2 corrupt in us-east only: refused everywhere, no pointer moves.
    let path = cluster.object_path("us-east", &manifest::file_key(PREFIX, &version(2), PAYLOAD_FILE));
    std::fs::write(&path, noise(20_000, 9)).expect("corrupt");
    let err = admin::rollback(&regions, &version(2)).await.expect_err("refused");
    let RollbackError::NotRollbackable { failures, .. } = &err else { panic!("{err:?}") };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].bucket, "us-east");
    assert!(matches!(failures[0].error, ReadError::ChecksumMismatch { .. }));
    assert!(err.to_string().contains("us-east"), "{err}");
    for b in &regions {
        let p = reader::read_pointer(b).await.expect("read").expect("pointer");
        assert_eq!(p.version, version(1), "{}", b.label());
    }

    let e = admin::rollback(&regions, &version(7)).await.expect_err("never published");
    assert!(matches!(e, RollbackError::NotRollbackable { ref failures, .. } if failures.len() == 2), "{e:?}");
}

#[tokio::test]
async fn gc_keeps_newest_current_and_previous() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    for n in 1..=4 {
        cluster.publish(&simple_model(n, 5_000)).await.expect("publish");
    }
    let buckets = cluster.all_buckets();
    admin::rollback(&buckets, &version(2)).await.expect("rollback"); // current 2, previous 4
    let eu = cluster.bucket("eu-west");
    // An abandoned upload older than the newest version, and one that may still be running.
    for n in [3u32, 5] {
        let v = format!("{}-stale", version(n));
        eu.put_bytes(&manifest::file_key(PREFIX, &v, PAYLOAD_FILE), noise(10, 1).into()).await.expect("put");
    }

    let dry = admin::gc(&buckets, 1, true).await;
    let eu_dry = dry.buckets.iter().find(|b| b.label == "eu-west").expect("listed");
    let o = eu_dry.outcome.as_ref().expect("ok");
    assert_eq!(o.deleted, [version(1), version(3)]);
    assert_eq!(o.incomplete_deleted, [format!("{}-stale", version(3))]);
    assert_eq!(admin::list_version_dirs(&eu).await.expect("list").len(), 6, "dry run deletes nothing");

    let report = admin::gc(&buckets, 1, false).await;
    for b in &report.buckets {
        let o = b.outcome.as_ref().expect("gc ok");
        assert_eq!(o.kept, [version(2), version(4)], "{}", b.label);
    }
    let left: Vec<String> =
        admin::list_version_dirs(&eu).await.expect("list").into_iter().map(|d| d.version).collect();
    assert_eq!(left, [version(2), version(4), format!("{}-stale", version(5))]);
    for b in &buckets {
        reader::fetch_current(b).await.expect("current survives");
        reader::fetch_version(b, &version(4)).await.expect("previous survives");
    }
    assert!(eu.head(&manifest::manifest_key(PREFIX, &version(1))).await.expect("head").is_none());
}
