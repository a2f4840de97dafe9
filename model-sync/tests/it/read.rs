//! What readers (region nodes) see: only whole, verified versions.

use model::manifest::{self, PAYLOAD_FILE};
use model_sync::admin::{self, VersionCheck};
use store::reader::{self, Defect, ReadError};

use crate::helpers::{noise, simple_model, version, Cluster, PREFIX};

#[tokio::test]
async fn corruption_is_reported_by_status_and_refused_by_readers() {
    let cluster = Cluster::new(&["eu-west", "us-west"], &[]);
    let m = simple_model(1, 100_000);
    cluster.publish(&m).await.expect("publish");
    let key = manifest::file_key(PREFIX, m.version(), PAYLOAD_FILE);
    let path = cluster.object_path("eu-west", &key);

    let mut bytes = std::fs::read(&path).expect("object");
    bytes[50_000] ^= 0x01;
    std::fs::write(&path, &bytes).expect("flip a bit");

    let eu = cluster.bucket("eu-west");
    let e = reader::fetch_current(&eu).await.expect_err("corrupt");
    let ReadError::ChecksumMismatch { ref bucket, ref file, ref expected, .. } = e else { panic!("{e:?}") };
    assert_eq!(
        (bucket.as_str(), file.as_str(), expected.as_str()),
        ("eu-west", PAYLOAD_FILE, m.manifest.files[0].sha256.as_str())
    );
    reader::fetch_current(&cluster.bucket("us-west")).await.expect("other region intact");

    let report = admin::status(Some(&cluster.primary()), &cluster.region_buckets(), false).await;
    let eu_status = report.buckets.iter().find(|b| b.label == "eu-west").expect("listed");
    let state = eu_status.state.as_ref().expect("reachable");
    let current = state.versions.iter().find(|v| v.current).expect("current listed");
    match &current.check {
        Some(VersionCheck::Defective(p)) => {
            assert_eq!(p.len(), 1);
            assert!(matches!(p[0].defect, Defect::ChecksumMismatch { .. }), "{p:?}");
        }
        other => panic!("expected a defect, got {other:?}"),
    }
    let us = report.buckets.iter().find(|b| b.label == "us-west").expect("listed");
    let us_current = us.state.as_ref().expect("ok").versions.iter().find(|v| v.current).expect("current");
    assert!(matches!(us_current.check, Some(VersionCheck::Intact)));

    std::fs::write(&path, &bytes[..60_000]).expect("truncate");
    let e = reader::fetch_version(&eu, m.version()).await.expect_err("truncated");
    assert!(matches!(e, ReadError::Truncated { expected: 100_000, actual: 60_000, .. }), "{e:?}");
    std::fs::remove_file(&path).expect("remove");
    let e = reader::fetch_version(&eu, m.version()).await.expect_err("missing");
    assert!(matches!(e, ReadError::MissingFile { .. }), "{e:?}");
}

#[tokio::test]
async fn an_interrupted_upload_is_never_a_version() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    cluster.publish(&simple_model(1, 10_000)).await.expect("v1");
    let eu = cluster.bucket("eu-west");
    // What a publish killed after the payload and before the manifest leaves behind.
    let v2 = version(2);
    eu.put_bytes(&manifest::file_key(PREFIX, &v2, PAYLOAD_FILE), noise(5000, 2).into()).await.expect("put");

    let e = reader::fetch_version(&eu, &v2).await.expect_err("no manifest");
    assert!(matches!(&e, ReadError::NotFound { version, .. } if *version == v2), "{e:?}");

    let report = admin::status(None, std::slice::from_ref(&eu), true).await;
    let state = report.buckets[0].state.as_ref().expect("reachable");
    let versions: Vec<&str> = state.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, [version(1)]);
    assert_eq!(state.incomplete.len(), 1);
    assert_eq!((state.incomplete[0].version.as_str(), state.incomplete[0].objects), (v2.as_str(), 1));

    let e = admin::rollback(std::slice::from_ref(&eu), &v2).await.expect_err("not a version");
    assert!(e.to_string().contains("refusing to roll back"), "{e}");
}

#[tokio::test]
async fn readers_refuse_unknown_formats_and_report_no_pointer() {
    let cluster = Cluster::new(&["eu-west"], &[]);
    let eu = cluster.bucket("eu-west");
    let e = reader::fetch_current(&eu).await.expect_err("nothing published");
    assert!(matches!(e, ReadError::NoPointer { .. }), "{e:?}");

    let m = simple_model(1, 1000);
    cluster.publish(&m).await.expect("publish");
    let key = manifest::manifest_key(PREFIX, m.version());
    let mut future = serde_json::to_value(&m.manifest).expect("json");
    future["format_version"] = serde_json::json!(manifest::FORMAT_VERSION + 1);
    future["something_new"] = serde_json::json!(true);
    eu.put_bytes(&key, serde_json::to_vec(&future).expect("json").into()).await.expect("put");

    let e = reader::fetch_current(&eu).await.expect_err("newer format");
    assert!(
        matches!(e, ReadError::UnsupportedFormat { found, supported, .. } if found == supported + 1),
        "{e:?}"
    );
}

/// `stream_version` as a node uses it: the payload goes to a reader on its own thread while
/// it downloads, and what the reader made of it counts only if the whole file checks out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_version_hands_over_the_payload_only_when_it_verifies() {
    use std::io::Read;

    use store::reader::{stream_version, PayloadReader, ReadError};
    let s3 = testkit::S3Server::start(&["st-primary", "st-region"]);
    let primary = s3.bucket("st-primary", "p/", "primary");
    let region = s3.bucket("st-region", "p/", "eu-west");
    let local = crate::helpers::simple_model(2, 1_000_000);
    let version = local.version().to_string();
    model_sync::publish::publish(&primary, std::slice::from_ref(&region), &local.path, Default::default())
        .await
        .expect("publish");
    let name = local.manifest.files[0].name.clone();
    let read_all = |mut r: PayloadReader| async move {
        tokio::task::spawn_blocking(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map(|_| v)
        })
        .await
        .expect("reader thread")
    };

    let (m, got) = stream_version(&region, &version, &name, read_all).await.expect("intact");
    assert_eq!(m.model_version, version);
    assert_eq!(got.expect("listed").expect("read"), local.files[&name], "the reader saw the whole file");

    // A reader that stops after 10 bytes: the rest is still downloaded and checked.
    let first_ten = |mut r: PayloadReader| async move {
        tokio::task::spawn_blocking(move || {
            let mut ten = [0u8; 10];
            r.read_exact(&mut ten).map(|()| ten)
        })
        .await
        .expect("reader thread")
    };
    let (_, ten) = stream_version(&region, &version, &name, first_ten).await.expect("intact");
    assert_eq!(&ten.expect("listed").expect("read")[..], &local.files[&name][..10]);

    let (_, none) = stream_version(&region, &version, "not-listed.bin", read_all).await.expect("manifest");
    assert!(none.is_none(), "a file the manifest does not list is not streamed");

    let on_disk = s3.object_path("st-region", &model::manifest::file_key("p/", &version, &name));
    let intact = std::fs::read(&on_disk).unwrap();
    let mut flipped = intact.clone();
    flipped[500_000] ^= 1;
    std::fs::write(&on_disk, &flipped).unwrap();
    let err = stream_version(&region, &version, &name, read_all).await.expect_err("corrupt");
    assert!(matches!(err, ReadError::ChecksumMismatch { .. }), "{err}");
    let err = stream_version(&region, &version, &name, first_ten).await.expect_err("corrupt, read in part");
    assert!(matches!(err, ReadError::ChecksumMismatch { .. }), "{err}");

    std::fs::write(&on_disk, &intact[..intact.len() / 2]).unwrap();
    let err = stream_version(&region, &version, &name, read_all).await.expect_err("truncated");
    assert!(matches!(err, ReadError::Truncated { .. }), "{err}");
}
