//! Fabricated model directories and a small cluster of s3s-fs servers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::manifest::{self, Counts, FileEntry, Manifest};
use model_sync::publish::{self, PublishError, PublishOptions, PublishReport};
use store::{Bucket, StoreOptions};
use testkit::S3Server;

pub const PREFIX: &str = "georec/";

/// Version names sort by creation time, as the real ones do.
pub fn version(n: u32) -> String {
    format!("2024010{n}T000000Z-0000000{n}")
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A model directory as `model-sync build` writes it: payload files + manifest.json.
pub struct LocalModel {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl LocalModel {
    pub fn version(&self) -> &str {
        &self.manifest.model_version
    }
}

pub fn model(version: &str, files: &[(&str, usize)]) -> LocalModel {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut entries = Vec::new();
    let mut contents = BTreeMap::new();
    let seed = u64::from_str_radix(&manifest::sha256_hex(version.as_bytes())[..12], 16).expect("hex");
    for (i, (name, len)) in files.iter().enumerate() {
        let bytes = noise(*len, seed + i as u64);
        std::fs::write(dir.path().join(name), &bytes).expect("write payload");
        entries.push(FileEntry {
            name: name.to_string(),
            size: bytes.len() as u64,
            sha256: manifest::sha256_hex(&bytes),
        });
        contents.insert(name.to_string(), bytes);
    }
    let m = Manifest {
        format_version: manifest::FORMAT_VERSION,
        model_version: version.to_string(),
        created_at: "2024-01-01T00:00:00Z".into(),
        input_fingerprint: manifest::sha256_hex(version.as_bytes()),
        parameters: serde_json::json!({"neighbours": 20}),
        counts: Counts { users: 3, items: 4, interactions: 5 },
        evaluation: None,
        erasures: None,
        files: entries,
    };
    std::fs::write(dir.path().join(manifest::MANIFEST_FILE), m.to_json()).expect("write manifest");
    LocalModel { path: dir.path().to_path_buf(), _dir: dir, manifest: m, files: contents }
}

/// A payload-only model of one `model.bin` of `len` random bytes.
pub fn simple_model(n: u32, len: usize) -> LocalModel {
    model(&version(n), &[(manifest::PAYLOAD_FILE, len)])
}

/// The primary and some regions on a shared server; `isolated` regions each get their own
/// server, so a test can stop one without touching the others.
pub struct Cluster {
    pub shared: S3Server,
    pub own: BTreeMap<String, S3Server>,
    pub regions: Vec<String>,
    pub options: StoreOptions,
}

pub fn bucket_name(label: &str) -> String {
    format!("georec-{label}")
}

impl Cluster {
    pub fn new(regions: &[&str], isolated: &[&str]) -> Cluster {
        Self::with_options(regions, isolated, StoreOptions::default())
    }

    pub fn with_options(regions: &[&str], isolated: &[&str], options: StoreOptions) -> Cluster {
        let mut shared_buckets = vec![bucket_name("primary")];
        let mut own = BTreeMap::new();
        for r in regions {
            if isolated.contains(r) {
                own.insert(r.to_string(), S3Server::start(&[&bucket_name(r)]));
            } else {
                shared_buckets.push(bucket_name(r));
            }
        }
        let names: Vec<&str> = shared_buckets.iter().map(String::as_str).collect();
        let shared = S3Server::start(&names);
        Cluster { shared, own, regions: regions.iter().map(|r| r.to_string()).collect(), options }
    }

    pub fn server(&self, label: &str) -> &S3Server {
        self.own.get(label).unwrap_or(&self.shared)
    }

    pub fn server_mut(&mut self, label: &str) -> &mut S3Server {
        self.own.get_mut(label).expect("region has its own server")
    }

    pub fn bucket(&self, label: &str) -> Bucket {
        self.server(label).bucket_with(&bucket_name(label), PREFIX, label, self.options.clone())
    }

    pub fn primary(&self) -> Bucket {
        self.bucket("primary")
    }

    pub fn region_buckets(&self) -> Vec<Bucket> {
        self.regions.iter().map(|r| self.bucket(r)).collect()
    }

    /// Primary and every region.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        std::iter::once(self.primary()).chain(self.region_buckets()).collect()
    }

    /// On-disk bytes of an object, so tests can corrupt or truncate it.
    pub fn object_path(&self, label: &str, key: &str) -> PathBuf {
        self.server(label).object_path(&bucket_name(label), key)
    }

    pub async fn publish(&self, m: &LocalModel) -> Result<PublishReport, PublishError> {
        self.publish_with(m.path.as_path(), PublishOptions::default()).await
    }

    pub async fn publish_with(
        &self,
        dir: &Path,
        opts: PublishOptions,
    ) -> Result<PublishReport, PublishError> {
        publish::publish(&self.primary(), &self.region_buckets(), dir, opts).await
    }
}

pub const FOUR: [&str; 4] = ["ap-south", "eu-west", "us-east", "us-west"];
