//! Operating on what is published: `status`, `rollback` and `gc`.
//!
//! All three see a bucket the way readers do: a version is a `models/<v>/` directory *with*
//! a manifest; a directory without one is an interrupted (or in-progress) upload and is
//! never offered as a version. Pointers name the current and previous versions, which gc
//! never deletes and rollback only moves to a version verified in that bucket.

use std::collections::BTreeMap;

use crate::publish::{set_pointer, PointerChange};
use cluster_config::errors::error_chain;
use model::manifest::{self, Pointer};
use store::reader::{self, ObjectProblem, ReadError};
use store::{Bucket, ListedObject, Location, StoreError};

/// One `models/<version>/` directory.
#[derive(Debug, Clone)]
pub struct VersionDir {
    pub version: String,
    pub objects: Vec<ListedObject>,
    /// Has a manifest, i.e. is a version.
    pub complete: bool,
}

impl VersionDir {
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}

/// Every version directory in the bucket, by name (= creation time).
pub async fn list_version_dirs(bucket: &Bucket) -> Result<Vec<VersionDir>, StoreError> {
    let root = format!("{}{}", bucket.prefix(), manifest::MODELS_DIR);
    let mut dirs: BTreeMap<String, VersionDir> = BTreeMap::new();
    for o in bucket.list(&root).await? {
        let Some((version, file)) = o.key[root.len()..].split_once('/') else { continue };
        let dir = dirs.entry(version.to_string()).or_insert_with(|| VersionDir {
            version: version.to_string(),
            objects: Vec::new(),
            complete: false,
        });
        dir.complete |= file == manifest::MANIFEST_FILE;
        dir.objects.push(o);
    }
    Ok(dirs.into_values().collect())
}

// ---------------------------------------------------------------- status

#[derive(Debug)]
pub enum VersionCheck {
    Intact,
    Defective(Vec<ObjectProblem>),
    /// The manifest itself could not be read or understood (or the store failed).
    Unreadable(ReadError),
}

#[derive(Debug)]
pub struct VersionStatus {
    pub version: String,
    pub objects: usize,
    pub bytes: u64,
    pub current: bool,
    pub previous: bool,
    /// Checked for the current version, and for every version with `deep`.
    pub check: Option<VersionCheck>,
}

#[derive(Debug)]
pub struct IncompleteUpload {
    pub version: String,
    pub objects: usize,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct BucketState {
    pub pointer: Option<Pointer>,
    /// The pointer exists but cannot be read.
    pub pointer_error: Option<ReadError>,
    pub versions: Vec<VersionStatus>,
    pub incomplete: Vec<IncompleteUpload>,
    /// The pointer names a version that has no manifest here: readers cannot load it.
    pub dangling_pointer: Option<ReadError>,
}

#[derive(Debug)]
pub struct BucketStatus {
    pub label: String,
    pub location: Location,
    pub state: Result<BucketState, StoreError>,
}

#[derive(Debug)]
pub struct StatusReport {
    pub buckets: Vec<BucketStatus>,
}

/// Status of `primary` (if given) and `regions`, concurrently. A store that cannot be
/// reached is reported in its entry; it does not fail the whole status.
pub async fn status(primary: Option<&Bucket>, regions: &[Bucket], deep: bool) -> StatusReport {
    let all: Vec<&Bucket> = primary.into_iter().chain(regions).collect();
    let buckets = futures::future::join_all(all.into_iter().map(|b| async move {
        BucketStatus {
            label: b.label().to_string(),
            location: b.location().clone(),
            state: bucket_state(b, deep).await,
        }
    }))
    .await;
    StatusReport { buckets }
}

async fn bucket_state(b: &Bucket, deep: bool) -> Result<BucketState, StoreError> {
    let (pointer, pointer_error) = match reader::read_pointer(b).await {
        Ok(p) => (p, None),
        Err(ReadError::Store(e)) => return Err(e),
        Err(e) => (None, Some(e)),
    };
    let current = pointer.as_ref().map(|p| p.version.as_str());
    let prev = pointer.as_ref().and_then(|p| p.previous.as_deref());
    let mut state = BucketState {
        pointer: None,
        pointer_error,
        versions: vec![],
        incomplete: vec![],
        dangling_pointer: None,
    };
    for dir in list_version_dirs(b).await? {
        if !dir.complete {
            let (objects, bytes) = (dir.objects.len(), dir.bytes());
            state.incomplete.push(IncompleteUpload { version: dir.version, objects, bytes });
            continue;
        }
        let is_current = current == Some(dir.version.as_str());
        let check = if is_current || deep { Some(check(b, &dir.version).await) } else { None };
        state.versions.push(VersionStatus {
            objects: dir.objects.len(),
            bytes: dir.bytes(),
            current: is_current,
            previous: prev == Some(dir.version.as_str()),
            check,
            version: dir.version,
        });
    }
    if let Some(v) = current.filter(|v| !state.versions.iter().any(|s| s.version == *v)) {
        let key = manifest::manifest_key(b.prefix(), v);
        state.dangling_pointer =
            Some(ReadError::NotFound { bucket: b.label().to_string(), version: v.to_string(), key });
    }
    state.pointer = pointer;
    Ok(state)
}

async fn check(b: &Bucket, version: &str) -> VersionCheck {
    match reader::check_version(b, version).await {
        Ok((_, problems)) if problems.is_empty() => VersionCheck::Intact,
        Ok((_, problems)) => VersionCheck::Defective(problems),
        Err(e) => VersionCheck::Unreadable(e),
    }
}

// ---------------------------------------------------------------- rollback

#[derive(Debug)]
pub struct BucketFailure<E> {
    pub bucket: String,
    pub error: E,
}

fn list_failures<E: std::error::Error + 'static>(failures: &[BucketFailure<E>]) -> String {
    // Each error already names its bucket.
    failures.iter().map(|f| format!("\n  {}", error_chain(&f.error))).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("refusing to roll back to {to}: it is missing or corrupt in {}; no pointer was changed{}",
        failures.iter().map(|f| f.bucket.as_str()).collect::<Vec<_>>().join(", "), list_failures(failures))]
    NotRollbackable { to: String, failures: Vec<BucketFailure<ReadError>> },
    #[error("rolled back {} to {to}, but not {}{}",
        flipped.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>().join(", "),
        failed.iter().map(|f| f.bucket.as_str()).collect::<Vec<_>>().join(", "), list_failures(failed))]
    PartiallyFlipped {
        to: String,
        flipped: Vec<(String, PointerChange)>,
        failed: Vec<BucketFailure<ReadError>>,
    },
}

#[derive(Debug)]
pub struct RollbackReport {
    pub to: String,
    /// Per bucket label: what happened to its pointer.
    pub buckets: Vec<(String, PointerChange)>,
}

/// Point every bucket at `to`. It is verified (manifest, sizes, hashes) in *every* bucket
/// before any pointer moves, so a rollback either applies everywhere or nowhere.
pub async fn rollback(buckets: &[Bucket], to: &str) -> Result<RollbackReport, RollbackError> {
    let checks = futures::future::join_all(buckets.iter().map(|b| reader::verify_version(b, to))).await;
    let failures: Vec<_> = buckets
        .iter()
        .zip(checks)
        .filter_map(|(b, r)| r.err().map(|error| BucketFailure { bucket: b.label().to_string(), error }))
        .collect();
    if !failures.is_empty() {
        return Err(RollbackError::NotRollbackable { to: to.to_string(), failures });
    }
    let flips = futures::future::join_all(buckets.iter().map(|b| set_pointer(b, to))).await;
    let (mut flipped, mut failed) = (Vec::new(), Vec::new());
    for (b, r) in buckets.iter().zip(flips) {
        match r {
            Ok(change) => flipped.push((b.label().to_string(), change)),
            Err(error) => failed.push(BucketFailure { bucket: b.label().to_string(), error }),
        }
    }
    if failed.is_empty() {
        Ok(RollbackReport { to: to.to_string(), buckets: flipped })
    } else {
        Err(RollbackError::PartiallyFlipped { to: to.to_string(), flipped, failed })
    }
}

// ---------------------------------------------------------------- gc

#[derive(Debug, Default)]
pub struct GcOutcome {
    pub kept: Vec<String>,
    /// Versions deleted (or, dry run, that would be).
    pub deleted: Vec<String>,
    /// Abandoned incomplete uploads deleted.
    pub incomplete_deleted: Vec<String>,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
}

#[derive(Debug)]
pub struct GcBucket {
    pub label: String,
    pub outcome: Result<GcOutcome, ReadError>,
}

#[derive(Debug)]
pub struct GcReport {
    pub dry_run: bool,
    pub buckets: Vec<GcBucket>,
}

/// Per bucket: keep the newest `keep` versions (at least 1, so a version uploaded but not yet
/// pointed at survives) plus the current and previous ones, delete the rest. Incomplete
/// uploads are deleted only when a newer complete version exists (else one may be running).
pub async fn gc(buckets: &[Bucket], keep: usize, dry_run: bool) -> GcReport {
    let keep = keep.max(1);
    let buckets = futures::future::join_all(buckets.iter().map(|b| async move {
        GcBucket { label: b.label().to_string(), outcome: gc_bucket(b, keep, dry_run).await }
    }))
    .await;
    GcReport { dry_run, buckets }
}

async fn gc_bucket(b: &Bucket, keep: usize, dry_run: bool) -> Result<GcOutcome, ReadError> {
    // An unreadable pointer means we cannot know what is protected: delete nothing.
    let pointer = reader::read_pointer(b).await?;
    let protected: Vec<&str> = pointer
        .iter()
        .flat_map(|p| std::iter::once(p.version.as_str()).chain(p.previous.as_deref()))
        .collect();
    let dirs = list_version_dirs(b).await?;
    let complete: Vec<&VersionDir> = dirs.iter().filter(|d| d.complete).collect();
    let newest_complete = complete.last().map(|d| d.version.clone());
    let newest: Vec<&str> = complete.iter().rev().take(keep).map(|d| d.version.as_str()).collect();
    let mut out = GcOutcome::default();
    for dir in &dirs {
        let v = dir.version.as_str();
        let doomed = if dir.complete {
            !newest.contains(&v) && !protected.contains(&v)
        } else {
            !protected.contains(&v) && newest_complete.as_deref().is_some_and(|n| v < n)
        };
        if !doomed {
            if dir.complete {
                out.kept.push(v.to_string());
            }
            continue;
        }
        if !dry_run {
            delete_dir(b, dir).await?;
        }
        tracing::info!(bucket = %b.label(), version = %v, complete = dir.complete, dry_run, "gc: version deleted");
        out.objects_deleted += dir.objects.len();
        out.bytes_freed += dir.bytes();
        if dir.complete { &mut out.deleted } else { &mut out.incomplete_deleted }.push(v.to_string());
    }
    Ok(out)
}

/// Manifest first: from then on the version no longer exists for readers, even if deleting
/// its files is interrupted (a later gc removes them as an incomplete upload).
async fn delete_dir(b: &Bucket, dir: &VersionDir) -> Result<(), StoreError> {
    let manifest_key = manifest::manifest_key(b.prefix(), &dir.version);
    if dir.complete {
        b.delete(std::slice::from_ref(&manifest_key)).await?;
    }
    let rest: Vec<String> =
        dir.objects.iter().map(|o| o.key.clone()).filter(|k| *k != manifest_key).collect();
    b.delete(&rest).await
}
