//! What a publish reports: what each bucket got and where its pointer went, and why the
//! publish, or one region of it, failed.

use std::path::PathBuf;
use std::time::Duration;

use cluster_config::errors::error_chain;
use store::reader::ReadError;
use store::StoreError;

/// What happened to a bucket's pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointerChange {
    /// Moved from `previous` (`None`: first publish there).
    Flipped { previous: Option<String> },
    /// Already pointed at the version (a re-run, or rollback to the current version).
    Unchanged,
    /// Left as it was on purpose: published for a rollout, which offers the version as a
    /// candidate instead.
    NotFlipped,
}

/// One bucket's share of a publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Files uploaded or copied now.
    pub uploaded: Vec<String>,
    /// Files already present with the right size and sha256.
    pub skipped: Vec<String>,
    /// Files that were present but failed verification, and were re-sent.
    pub repaired: Vec<String>,
    pub manifest_written: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketPublished {
    pub transfer: Transfer,
    pub pointer: PointerChange,
}

#[derive(Debug)]
pub struct RegionReport {
    pub region: String,
    pub outcome: Result<BucketPublished, RegionError>,
}

#[derive(Debug)]
pub struct PublishReport {
    pub version: String,
    pub primary: BucketPublished,
    pub regions: Vec<RegionReport>,
}

impl PublishReport {
    pub fn failed_regions(&self) -> Vec<&str> {
        self.regions.iter().filter(|r| r.outcome.is_err()).map(|r| r.region.as_str()).collect()
    }
}

/// Why one bucket did not get the version.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{bucket}: version {version} exists there with a different manifest; refusing to overwrite it")]
    ManifestDiffers { bucket: String, version: String },
    #[error("{bucket}: version {version} was not replicated and verified within {waited:?}")]
    ReplicationTimeout {
        bucket: String,
        version: String,
        waited: Duration,
        #[source]
        last: Option<ReadError>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}")]
    ReadLocal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid manifest")]
    LocalManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has format {found}; this build publishes format {supported}")]
    LocalFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("{version:?} is not a valid version name")]
    InvalidVersion { version: String },
    #[error(
        "{path} does not match its manifest ({actual_size} bytes, sha256 {actual_sha}; manifest: \
         {expected_size} bytes, sha256 {expected_sha}); rebuild the model"
    )]
    LocalMismatch {
        path: PathBuf,
        expected_size: u64,
        expected_sha: String,
        actual_size: u64,
        actual_sha: String,
    },
    #[error("publishing to the primary bucket failed; no region was touched")]
    Primary(#[source] RegionError),
    #[error("{}", regions_failed(report))]
    RegionsFailed { report: Box<PublishReport> },
}

fn regions_failed(report: &PublishReport) -> String {
    let mut s = format!(
        "version {} was not published to region(s) {}; the other regions serve it. Re-run the same \
         publish to complete it.",
        report.version,
        report.failed_regions().join(", ")
    );
    for r in &report.regions {
        if let Err(e) = &r.outcome {
            s.push_str(&format!("\n  {}", error_chain(e)));
        }
    }
    s
}
