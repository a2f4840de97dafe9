//! Publishing a built model: primary first, then every region, pointers flipped last.
//!
//! Order matters because readers trust what they see: payload files go up before the
//! manifest (a version without a manifest does not exist), and a region's pointer moves only
//! after the version was downloaded back *from that region's bucket* and hashed. Every step
//! first checks what is already there, so re-running the same publish completes a half-done
//! one instead of starting over. Regions are independent: one being down fails only itself.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cluster_config::errors::error_chain;
use model::manifest::{self, FileEntry, Manifest, Pointer};
use store::reader::{self, ReadError};
use store::{Bucket, StoreError};

mod local;
mod report;

pub use local::LocalModel;
pub use report::{
    BucketPublished, PointerChange, PublishError, PublishReport, RegionError, RegionReport, Transfer,
};

/// How a version reaches the region buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// model-sync copies primary -> region (server-side when the endpoint is shared).
    Copy,
    /// The store replicates (S3 CRR, MinIO bucket replication); we only wait for it, then
    /// verify. Replication rules should cover `<prefix>models/` only: pointers are ours.
    External { timeout: Duration, poll: Duration },
}

/// Progress notifications, for progress bars; the library prints nothing itself.
#[derive(Debug, Clone)]
pub enum PublishEvent {
    PrimaryFile { file: String, bytes: u64, skipped: bool },
    PrimaryDone,
    RegionStep { region: String, step: &'static str },
    RegionDone { region: String, ok: bool },
}

pub type EventSink = Arc<dyn Fn(PublishEvent) + Send + Sync>;

#[derive(Clone)]
pub struct PublishOptions {
    pub replication: Replication,
    pub on_event: Option<EventSink>,
    /// Move the pointers once verified (`publish`); `false` leaves every pointer as it is, for
    /// a rollout that then offers the version as a candidate ([`crate::rollout`]).
    pub flip: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self { replication: Replication::Copy, on_event: None, flip: true }
    }
}

impl fmt::Debug for PublishOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishOptions")
            .field("replication", &self.replication)
            .field("flip", &self.flip)
            .finish_non_exhaustive()
    }
}

/// Publish the model in `model_dir`: primary, then every region concurrently.
pub async fn publish(
    primary: &Bucket,
    regions: &[Bucket],
    model_dir: &Path,
    opts: PublishOptions,
) -> Result<PublishReport, PublishError> {
    let local = LocalModel::open(model_dir).await?;
    let version = local.version().to_string();
    let emit = |e: PublishEvent| {
        if let Some(f) = &opts.on_event {
            f(e)
        }
    };
    tracing::info!(version = %version, regions = regions.len(), "publishing");

    let primary_done = async {
        let transfer = ensure_version(primary, &local, Source::Local(&local.dir), &emit).await?;
        let pointer =
            if opts.flip { set_pointer(primary, &version).await? } else { PointerChange::NotFlipped };
        Ok::<_, RegionError>(BucketPublished { transfer, pointer })
    };
    let primary_done = primary_done.await.map_err(PublishError::Primary)?;
    emit(PublishEvent::PrimaryDone);

    let outcomes = futures::future::join_all(regions.iter().map(|region| async {
        let outcome = publish_region(primary, region, &local, &opts.replication, opts.flip, &emit).await;
        match &outcome {
            Ok(_) => tracing::info!(region = %region.label(), version = %version, "region published"),
            Err(e) => tracing::warn!(region = %region.label(), version = %version, error = %error_chain(e), "region failed"),
        }
        emit(PublishEvent::RegionDone { region: region.label().to_string(), ok: outcome.is_ok() });
        RegionReport { region: region.label().to_string(), outcome }
    }))
    .await;

    let report = PublishReport { version, primary: primary_done, regions: outcomes };
    if report.failed_regions().is_empty() {
        Ok(report)
    } else {
        Err(PublishError::RegionsFailed { report: Box::new(report) })
    }
}

async fn publish_region(
    primary: &Bucket,
    region: &Bucket,
    local: &LocalModel,
    replication: &Replication,
    flip: bool,
    emit: &(impl Fn(PublishEvent) + Sync),
) -> Result<BucketPublished, RegionError> {
    let step = |step| emit(PublishEvent::RegionStep { region: region.label().to_string(), step });
    let transfer = match replication {
        Replication::Copy => {
            step("copying");
            ensure_version(region, local, Source::Bucket(primary), &|_| {}).await?
        }
        Replication::External { timeout, poll } => {
            step("waiting for replication");
            await_replica(region, &local.manifest, *timeout, *poll).await?;
            Transfer::default()
        }
    };
    if !flip {
        return Ok(BucketPublished { transfer, pointer: PointerChange::NotFlipped });
    }
    step("flipping pointer");
    let pointer = set_pointer(region, local.version()).await?;
    Ok(BucketPublished { transfer, pointer })
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Local(&'a Path),
    Bucket(&'a Bucket),
}

/// Make `dst` hold `local`'s version, verified by downloading it back. Skips what is
/// already there; re-sends files that fail verification once.
async fn ensure_version(
    dst: &Bucket,
    local: &LocalModel,
    src: Source<'_>,
    emit: &(impl Fn(PublishEvent) + Sync),
) -> Result<Transfer, RegionError> {
    let (m, version) = (&local.manifest, local.version());
    let manifest_key = manifest::manifest_key(dst.prefix(), version);
    let differs =
        || RegionError::ManifestDiffers { bucket: dst.label().to_string(), version: version.to_string() };
    // An existing manifest for this name must be ours, or we would overwrite its files.
    let existing = dst.get(&manifest_key).await?;
    if let Some(bytes) = &existing {
        if Manifest::from_json(bytes).ok().as_ref() != Some(m) {
            return Err(differs());
        }
    }
    let mut t = Transfer::default();
    for entry in &m.files {
        let key = manifest::file_key(dst.prefix(), version, &entry.name);
        let present =
            dst.head(&key).await?.is_some_and(|o| o.size == entry.size && o.sha256() == Some(&entry.sha256));
        if present {
            t.skipped.push(entry.name.clone());
        } else {
            send(dst, src, version, entry).await?;
            t.uploaded.push(entry.name.clone());
        }
        if matches!(src, Source::Local(_)) {
            emit(PublishEvent::PrimaryFile { file: entry.name.clone(), bytes: entry.size, skipped: present });
        }
    }
    if existing.is_none() {
        dst.put_bytes(&manifest_key, local.manifest_bytes.clone().into()).await?;
        t.manifest_written = true;
    }
    for attempt in 0..2 {
        let (found, problems) = reader::check_version(dst, version).await?;
        if found != *m {
            return Err(differs());
        }
        let Some(first) = problems.first().cloned() else { return Ok(t) };
        if attempt == 1 {
            return Err(first.into_error(dst, version).into());
        }
        for p in problems {
            tracing::warn!(bucket = %dst.label(), version = %version, file = %p.file, defect = ?p.defect, "re-sending file that failed verification");
            if let Some(entry) = m.file(&p.file) {
                send(dst, src, version, entry).await?;
            }
            t.repaired.push(p.file);
        }
    }
    Ok(t)
}

async fn send(dst: &Bucket, src: Source<'_>, version: &str, entry: &FileEntry) -> Result<(), StoreError> {
    let key = manifest::file_key(dst.prefix(), version, &entry.name);
    match src {
        Source::Local(dir) => dst.put_file(&key, &dir.join(&entry.name), &entry.sha256).await,
        Source::Bucket(b) => {
            dst.copy_from(b, &manifest::file_key(b.prefix(), version, &entry.name), &key).await
        }
    }
}

/// Poll `region` until the store's own replication delivered `m` intact, or time out.
/// A store failure (unreachable, denied) ends the wait at once: it will not fix itself.
async fn await_replica(
    region: &Bucket,
    m: &Manifest,
    timeout: Duration,
    poll: Duration,
) -> Result<(), RegionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let version = &m.model_version;
    loop {
        let last = match reader::check_version(region, version).await {
            Ok((found, _)) if found != *m => {
                let (bucket, version) = (region.label().to_string(), version.clone());
                return Err(RegionError::ManifestDiffers { bucket, version });
            }
            Ok((_, problems)) => match problems.into_iter().next() {
                None => return Ok(()),
                Some(p) => p.into_error(region, version),
            },
            Err(e @ (ReadError::NotFound { .. } | ReadError::MissingFile { .. })) => e,
            Err(e) => return Err(e.into()),
        };
        tracing::debug!(bucket = %region.label(), version = %version, waiting_for = %last, "replica not complete yet");
        if tokio::time::Instant::now() + poll > deadline {
            let (bucket, version) = (region.label().to_string(), version.clone());
            return Err(RegionError::ReplicationTimeout {
                bucket,
                version,
                waited: timeout,
                last: Some(last),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Point `bucket` at `version` (which the caller verified there). The pointer it replaces
/// becomes `previous`, so gc keeps it and rollback can return to it.
pub async fn set_pointer(bucket: &Bucket, version: &str) -> Result<PointerChange, ReadError> {
    let old = reader::read_pointer(bucket).await?;
    if old.as_ref().is_some_and(|p| p.version == version) {
        return Ok(PointerChange::Unchanged);
    }
    let previous = old.map(|p| p.version);
    let pointer = Pointer {
        version: version.to_string(),
        previous: previous.clone(),
        updated_at: manifest::rfc3339(manifest::now_unix()),
        // A plain flip ends any rollout in the region: the pointer names one version.
        candidate: None,
    };
    bucket.put_bytes(&manifest::pointer_key(bucket.prefix()), pointer.to_json().into()).await?;
    tracing::info!(bucket = %bucket.label(), version = %version, previous = ?previous, "pointer flipped");
    Ok(PointerChange::Flipped { previous })
}
