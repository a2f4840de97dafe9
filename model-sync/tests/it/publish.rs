//! Publishing: every region verified, failures isolated, re-runs complete the work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use model::manifest::{self, PAYLOAD_FILE};
use model_sync::publish::{PointerChange, PublishError, PublishOptions, RegionError, Replication};
use store::reader::{self, ReadError};
use store::{StoreError, StoreOptions};

use crate::helpers::{model, simple_model, version, Cluster, FOUR, PREFIX};

#[tokio::test]
async fn publishes_to_four_regions_and_each_reads_back_verified() {
    let cluster = Cluster::new(&FOUR, &["ap-south"]);
    let m = model(&version(1), &[(PAYLOAD_FILE, 300_000), ("extra.idx", 1234)]);

    let report = cluster.publish(&m).await.expect("publish");

    assert_eq!(report.version, version(1));
    assert_eq!(report.primary.pointer, PointerChange::Flipped { previous: None });
    assert_eq!(report.regions.len(), 4);
    for b in cluster.all_buckets() {
        let (pointer, v) = reader::fetch_current(&b).await.unwrap_or_else(|e| panic!("{}: {e}", b.label()));
        assert_eq!(pointer.version, version(1));
        assert_eq!(pointer.previous, None);
        assert_eq!(v.manifest, m.manifest);
        for (name, bytes) in &m.files {
            assert_eq!(v.files[name].as_ref(), bytes.as_slice(), "{} {name}", b.label());
        }
    }
    for r in &report.regions {
        let ok = r.outcome.as_ref().expect("region ok");
        assert_eq!(ok.transfer.uploaded.len(), 2, "{}", r.region);
        assert!(ok.transfer.manifest_written);
    }
}

#[tokio::test]
async fn republishing_is_idempotent_and_the_next_version_records_previous() {
    let cluster = Cluster::new(&["eu-west", "us-east"], &["us-east"]);
    let v1 = simple_model(1, 50_000);
    cluster.publish(&v1).await.expect("first publish");

    let again = cluster.publish(&v1).await.expect("re-publish");
    assert_eq!(again.primary.transfer.skipped, [PAYLOAD_FILE]);
    assert!(again.primary.transfer.uploaded.is_empty());
    assert!(!again.primary.transfer.manifest_written);
    assert_eq!(again.primary.pointer, PointerChange::Unchanged);
    for r in &again.regions {
        let ok = r.outcome.as_ref().expect("ok");
        assert_eq!(ok.transfer.skipped, [PAYLOAD_FILE]);
        assert_eq!(ok.pointer, PointerChange::Unchanged);
    }

    let v2 = simple_model(2, 60_000);
    let report = cluster.publish(&v2).await.expect("publish v2");
    for r in &report.regions {
        assert_eq!(
            r.outcome.as_ref().expect("ok").pointer,
            PointerChange::Flipped { previous: Some(version(1)) }
        );
    }
    let p = reader::read_pointer(&cluster.bucket("us-east")).await.expect("read").expect("pointer");
    assert_eq!((p.version, p.previous), (version(2), Some(version(1))));
}

#[tokio::test]
async fn an_unreachable_region_fails_alone_and_a_rerun_completes_it() {
    let mut cluster = Cluster::new(&FOUR, &["ap-south"]);
    cluster.publish(&simple_model(1, 40_000)).await.expect("v1 everywhere");
    cluster.server_mut("ap-south").stop();

    let v2 = simple_model(2, 40_000);
    let started = Instant::now();
    let err = cluster.publish(&v2).await.expect_err("ap-south is down");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());

    let text = err.to_string();
    assert!(text.contains("ap-south") && text.contains("Re-run"), "{text}");
    let PublishError::RegionsFailed { report } = err else { panic!("unexpected {err:?}") };
    assert_eq!(report.failed_regions(), ["ap-south"]);
    let failed = report.regions.iter().find(|r| r.region == "ap-south").expect("listed");
    match &failed.outcome {
        Err(RegionError::Store(e @ StoreError::Unreachable { .. })) => {
            assert!(e.to_string().contains(&cluster.server("ap-south").endpoint()), "{e}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    for r in ["eu-west", "us-east", "us-west"] {
        let (p, _) = reader::fetch_current(&cluster.bucket(r)).await.expect(r);
        assert_eq!(p.version, version(2), "{r}");
    }

    cluster.server_mut("ap-south").restart();
    let ap = cluster.bucket("ap-south");
    let p = reader::read_pointer(&ap).await.expect("read").expect("pointer");
    assert_eq!(p.version, version(1), "pointer of the failed region was not flipped");

    let report = cluster.publish(&v2).await.expect("re-run completes");
    let ap_report = report.regions.iter().find(|r| r.region == "ap-south").expect("listed");
    let ap_ok = ap_report.outcome.as_ref().expect("ok");
    assert_eq!(ap_ok.pointer, PointerChange::Flipped { previous: Some(version(1)) });
    for r in report.regions.iter().filter(|r| r.region != "ap-south") {
        assert_eq!(r.outcome.as_ref().expect("ok").pointer, PointerChange::Unchanged);
    }
    let (p, v) = reader::fetch_current(&ap).await.expect("ap-south now serves v2");
    assert_eq!(
        (p.version.as_str(), v.files[PAYLOAD_FILE].as_ref()),
        (version(2).as_str(), v2.files[PAYLOAD_FILE].as_slice())
    );
}

#[tokio::test]
async fn a_rerun_repairs_a_corrupted_region_copy() {
    let cluster = Cluster::new(&["eu-west", "us-west"], &[]);
    let m = simple_model(1, 80_000);
    cluster.publish(&m).await.expect("publish");
    let path = cluster.object_path("eu-west", &manifest::file_key(PREFIX, m.version(), PAYLOAD_FILE));
    let mut bytes = std::fs::read(&path).expect("object on disk");
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).expect("corrupt");

    let report = cluster.publish(&m).await.expect("re-run repairs");
    let eu = report.regions.iter().find(|r| r.region == "eu-west").expect("listed");
    assert_eq!(eu.outcome.as_ref().expect("ok").transfer.repaired, [PAYLOAD_FILE]);
    reader::fetch_current(&cluster.bucket("eu-west")).await.expect("intact again");
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_replicate_across_endpoints() {
    let options =
        StoreOptions { multipart_threshold: 5 << 20, part_size: 5 << 20, ..StoreOptions::default() };
    // us-east on its own server: the copy there is a download + multipart re-upload.
    let cluster = Cluster::with_options(&["eu-west", "us-east"], &["us-east"], options);
    let m = simple_model(1, (11 << 20) + 123);

    cluster.publish(&m).await.expect("publish");

    let key = manifest::file_key(PREFIX, m.version(), PAYLOAD_FILE);
    for label in ["primary", "us-east"] {
        let info = cluster.bucket(label).head(&key).await.expect("head").expect("exists");
        assert_eq!(info.size, m.manifest.files[0].size);
        let etag = info.etag.clone().expect("etag");
        assert!(etag.trim_matches('"').ends_with("-3"), "{label}: not multipart: {etag}");
        assert_eq!(info.sha256(), Some(m.manifest.files[0].sha256.as_str()));
    }
    for b in cluster.all_buckets() {
        let (_, v) = reader::fetch_current(&b).await.unwrap_or_else(|e| panic!("{}: {e}", b.label()));
        assert_eq!(v.files[PAYLOAD_FILE].as_ref(), m.files[PAYLOAD_FILE].as_slice());
    }
}

#[tokio::test]
async fn external_replication_waits_for_the_store_then_verifies() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    let m = simple_model(1, 30_000);
    let opts = |timeout| PublishOptions {
        replication: Replication::External { timeout, poll: Duration::from_millis(50) },
        ..PublishOptions::default()
    };

    let err = cluster
        .publish_with(&m.path, opts(Duration::from_millis(300)))
        .await
        .expect_err("nothing replicates");
    let PublishError::RegionsFailed { report } = err else { panic!("unexpected {err:?}") };
    match &report.regions[0].outcome {
        Err(RegionError::ReplicationTimeout { last: Some(ReadError::NotFound { .. }), .. }) => {}
        other => panic!("expected timeout, got {other:?}"),
    }
    assert!(reader::read_pointer(&cluster.bucket("eu-west")).await.expect("read").is_none());

    // A stand-in for bucket replication: copy the objects a little later, manifest last.
    let (primary, region, v) = (cluster.primary(), cluster.bucket("eu-west"), m.version().to_string());
    let replicator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for f in [PAYLOAD_FILE, manifest::MANIFEST_FILE] {
            let key = manifest::file_key(PREFIX, &v, f);
            region.copy_from(&primary, &key, &key).await.expect("replicate");
        }
    });
    let on_event = Some(Arc::new(|_| {}) as model_sync::publish::EventSink);
    let opts = PublishOptions { on_event, ..opts(Duration::from_secs(10)) };
    let report = cluster.publish_with(&m.path, opts).await.expect("replicated");
    replicator.await.expect("replicator");
    assert!(report.regions[0].outcome.as_ref().expect("ok").transfer.uploaded.is_empty());
    let (p, _) = reader::fetch_current(&cluster.bucket("eu-west")).await.expect("verified");
    assert_eq!(p.version, version(1));
}

#[tokio::test]
async fn wrong_credentials_and_missing_buckets_say_what_to_fix() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    let m = simple_model(1, 1000);
    let server = &cluster.shared;
    let wrong = store::Credentials::Static {
        access_key: testkit::ACCESS_KEY.into(),
        secret_key: "not-the-secret".into(),
    };
    let primary = store::Bucket::new(
        "primary",
        server.location("georec-primary", PREFIX),
        &wrong,
        StoreOptions::default(),
    );
    let err =
        model_sync::publish::publish(&primary, &cluster.region_buckets(), &m.path, PublishOptions::default())
            .await
            .expect_err("denied");
    let PublishError::Primary(RegionError::Store(e @ StoreError::AccessDenied { .. })) = &err else {
        panic!("unexpected {err:?}")
    };
    assert!(e.to_string().contains("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"), "{e}");
    assert!(e.to_string().contains("primary"), "{e}");

    let unknown_key = store::Credentials::Static { access_key: "nobody".into(), secret_key: "x".into() };
    let b = store::Bucket::new(
        "eu-west",
        server.location("georec-eu-west", PREFIX),
        &unknown_key,
        StoreOptions::default(),
    );
    let e = reader::read_pointer(&b).await.expect_err("denied");
    assert!(matches!(e, ReadError::Store(StoreError::AccessDenied { .. })), "{e:?}");

    // (s3s-fs answers GETs in a missing bucket with NoSuchKey; listing says NoSuchBucket.)
    let nobucket = server.bucket("georec-nowhere", PREFIX, "eu-west");
    let e = nobucket.list(PREFIX).await.expect_err("no bucket");
    let e @ StoreError::NoSuchBucket { .. } = e else { panic!("{e:?}") };
    assert!(e.to_string().contains("georec-nowhere"), "{e}");
}

#[tokio::test]
async fn a_local_file_that_does_not_match_its_manifest_is_refused() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    let m = simple_model(1, 1000);
    std::fs::write(m.path.join(PAYLOAD_FILE), b"tampered").expect("write");
    let err = cluster.publish(&m).await.expect_err("refused");
    assert!(matches!(err, PublishError::LocalMismatch { .. }), "{err:?}");
    assert!(cluster.primary().list("").await.expect("list").is_empty(), "nothing uploaded");
}
