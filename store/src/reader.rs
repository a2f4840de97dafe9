//! Reading published versions back, verified: the contract region nodes load models through.
//!
//! A version is only ever handed out whole and checked: its manifest exists and has a format
//! this build understands, and every file it lists has exactly the listed size and sha256.
//! Anything else is a typed [`ReadError`], so a node keeps serving its current model instead
//! of loading a half-replicated or corrupted one.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{Bucket, StoreError, StreamDigest};
use model::manifest::{self, FileEntry, Manifest, Pointer};

/// A version whose every file matched its manifest entry when downloaded.
#[derive(Debug, Clone)]
pub struct VerifiedVersion {
    pub manifest: Manifest,
    /// File name (as in the manifest) -> contents.
    pub files: BTreeMap<String, Bytes>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{bucket}: no pointer at {key}: nothing has been published there yet")]
    NoPointer { bucket: String, key: String },
    #[error("{bucket}: pointer {key} is not valid")]
    BadPointer {
        bucket: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{bucket}: {version:?} is not a valid version name")]
    InvalidVersion { bucket: String, version: String },
    #[error("{bucket}: version {version} does not exist (no {key})")]
    NotFound { bucket: String, version: String, key: String },
    #[error("{bucket}: manifest {key} is not valid")]
    BadManifest {
        bucket: String,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{bucket}: manifest {key} is for version {found}, not {version}")]
    WrongVersion { bucket: String, key: String, version: String, found: String },
    #[error("{bucket}: version {version} has format {found}; this build reads format {supported}")]
    UnsupportedFormat { bucket: String, version: String, found: u32, supported: u32 },
    #[error("{bucket}: version {version}: file {file} is missing")]
    MissingFile { bucket: String, version: String, file: String },
    #[error("{bucket}: version {version}: file {file} is truncated: {actual} of {expected} bytes")]
    Truncated { bucket: String, version: String, file: String, expected: u64, actual: u64 },
    #[error("{bucket}: version {version}: file {file} has {actual} bytes, manifest says {expected}")]
    SizeMismatch { bucket: String, version: String, file: String, expected: u64, actual: u64 },
    #[error(
        "{bucket}: version {version}: file {file} is corrupt: sha256 {actual}, manifest says {expected}"
    )]
    ChecksumMismatch { bucket: String, version: String, file: String, expected: String, actual: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReadError {
    /// The version is absent or incomplete here (as opposed to the store failing).
    pub fn is_missing_or_corrupt(&self) -> bool {
        !matches!(self, ReadError::Store(_) | ReadError::NoPointer { .. } | ReadError::BadPointer { .. })
    }
}

/// What is wrong with one listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    Missing,
    Truncated {
        expected: u64,
        actual: u64,
    },
    /// Longer than the manifest says.
    SizeMismatch {
        expected: u64,
        actual: u64,
    },
    ChecksumMismatch {
        expected: String,
        actual: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    pub file: String,
    pub defect: Defect,
}

impl ObjectProblem {
    pub fn into_error(self, bucket: &Bucket, version: &str) -> ReadError {
        let (bucket, version, file) = (bucket.label().to_string(), version.to_string(), self.file);
        match self.defect {
            Defect::Missing => ReadError::MissingFile { bucket, version, file },
            Defect::Truncated { expected, actual } => {
                ReadError::Truncated { bucket, version, file, expected, actual }
            }
            Defect::SizeMismatch { expected, actual } => {
                ReadError::SizeMismatch { bucket, version, file, expected, actual }
            }
            Defect::ChecksumMismatch { expected, actual } => {
                ReadError::ChecksumMismatch { bucket, version, file, expected, actual }
            }
        }
    }
}

/// Compare what was found for `entry` (`None`: absent) with the manifest.
pub fn judge(entry: &FileEntry, found: Option<(u64, &str)>) -> Option<Defect> {
    let (size, sha) = match found {
        None => return Some(Defect::Missing),
        Some(f) => f,
    };
    if size < entry.size {
        Some(Defect::Truncated { expected: entry.size, actual: size })
    } else if size > entry.size {
        Some(Defect::SizeMismatch { expected: entry.size, actual: size })
    } else if !sha.eq_ignore_ascii_case(&entry.sha256) {
        Some(Defect::ChecksumMismatch { expected: entry.sha256.clone(), actual: sha.to_string() })
    } else {
        None
    }
}

/// The bucket's pointer, or `None` if nothing was ever published there.
pub async fn read_pointer(bucket: &Bucket) -> Result<Option<Pointer>, ReadError> {
    let key = manifest::pointer_key(bucket.prefix());
    let Some(bytes) = bucket.get(&key).await? else { return Ok(None) };
    let label = bucket.label().to_string();
    let pointer = Pointer::from_json(&bytes).map_err(|source| ReadError::BadPointer {
        bucket: label.clone(),
        key,
        source,
    })?;
    if !manifest::valid_version(&pointer.version) {
        return Err(ReadError::InvalidVersion { bucket: label, version: pointer.version });
    }
    Ok(Some(pointer))
}

/// The manifest of `version`, checked for name and format but not its files.
pub async fn read_manifest(bucket: &Bucket, version: &str) -> Result<Manifest, ReadError> {
    let label = bucket.label().to_string();
    if !manifest::valid_version(version) {
        return Err(ReadError::InvalidVersion { bucket: label, version: version.to_string() });
    }
    let key = manifest::manifest_key(bucket.prefix(), version);
    let Some(bytes) = bucket.get(&key).await? else {
        return Err(ReadError::NotFound { bucket: label, version: version.to_string(), key });
    };
    // Format first: a newer format may not even parse as today's Manifest.
    if let Some(found) = format_of(&bytes).filter(|f| !manifest::is_readable(*f)) {
        let (version, supported) = (version.to_string(), manifest::FORMAT_VERSION);
        return Err(ReadError::UnsupportedFormat { bucket: label, version, found, supported });
    }
    let m = Manifest::from_json(&bytes).map_err(|source| ReadError::BadManifest {
        bucket: label.clone(),
        key: key.clone(),
        source,
    })?;
    if m.model_version != version {
        let (version, found) = (version.to_string(), m.model_version);
        return Err(ReadError::WrongVersion { bucket: label, key, version, found });
    }
    Ok(m)
}

fn format_of(bytes: &[u8]) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("format_version")?.as_u64().and_then(|f| u32::try_from(f).ok())
}

/// Stream every file of `version` through sha256 and list every defect (none: intact).
/// Used by status and before flipping pointers; nothing is kept in memory.
pub async fn check_version(
    bucket: &Bucket,
    version: &str,
) -> Result<(Manifest, Vec<ObjectProblem>), ReadError> {
    let m = read_manifest(bucket, version).await?;
    let mut problems = Vec::new();
    for entry in &m.files {
        problems.extend(check_file(bucket, version, entry).await?);
    }
    Ok((m, problems))
}

/// Stream one listed file through sha256 and judge it against its entry.
async fn check_file(
    bucket: &Bucket,
    version: &str,
    entry: &FileEntry,
) -> Result<Option<ObjectProblem>, ReadError> {
    let key = manifest::file_key(bucket.prefix(), version, &entry.name);
    let found = bucket.get_hashed(&key).await?;
    let defect = judge(entry, found.as_ref().map(|(s, h)| (*s, h.as_str())));
    Ok(defect.map(|defect| ObjectProblem { file: entry.name.clone(), defect }))
}

/// Like [`check_version`], failing on the first defect.
pub async fn verify_version(bucket: &Bucket, version: &str) -> Result<Manifest, ReadError> {
    let (m, problems) = check_version(bucket, version).await?;
    match problems.into_iter().next() {
        Some(p) => Err(p.into_error(bucket, version)),
        None => Ok(m),
    }
}

/// Download `version` whole and verify every file against its manifest.
pub async fn fetch_version(bucket: &Bucket, version: &str) -> Result<VerifiedVersion, ReadError> {
    let m = read_manifest(bucket, version).await?;
    let mut files = BTreeMap::new();
    for entry in &m.files {
        let key = manifest::file_key(bucket.prefix(), version, &entry.name);
        let bytes = bucket.get(&key).await?;
        let sha = bytes.as_ref().map(|b| manifest::sha256_hex(b));
        let found = bytes.as_ref().zip(sha.as_deref()).map(|(b, h)| (b.len() as u64, h));
        if let Some(defect) = judge(entry, found) {
            return Err(ObjectProblem { file: entry.name.clone(), defect }.into_error(bucket, version));
        }
        if let Some(b) = bytes {
            files.insert(entry.name.clone(), b);
        }
    }
    Ok(VerifiedVersion { manifest: m, files })
}

/// The version the bucket's pointer names, downloaded and verified.
pub async fn fetch_current(bucket: &Bucket) -> Result<(Pointer, VerifiedVersion), ReadError> {
    let Some(pointer) = read_pointer(bucket).await? else {
        let key = manifest::pointer_key(bucket.prefix());
        return Err(ReadError::NoPointer { bucket: bucket.label().to_string(), key });
    };
    let version = fetch_version(bucket, &pointer.version).await?;
    Ok((pointer, version))
}

/// Chunks of a streamed payload held between the download and its consumer: the memory a
/// streamed load adds is this many chunks (tens of KiB each), whatever the model size.
const STREAM_CHUNKS: usize = 8;

/// A payload file as it downloads, read by a consumer on its own (blocking) thread: the
/// download task feeds it chunk by chunk, holding at most [`STREAM_CHUNKS`] ahead.
/// It ends when the download does; a download that failed part-way also just ends it (the
/// consumer sees a short file, and [`stream_version`] returns the download's error).
#[derive(Debug)]
pub struct PayloadReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for PayloadReader {
    /// Blocks while the next chunk downloads: call it on a thread of its own, never on an
    /// async runtime's thread.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// Load `version` without storing its payload anywhere: the manifest is read, every other
/// file it lists is verified, and the file named `payload` is handed to `consume` as a
/// [`PayloadReader`] while it downloads and is hashed (a decoder reads it on its own thread).
/// `consume`'s value is returned only if the whole file then matches its manifest entry;
/// otherwise (truncated, corrupt, missing, download failed) the typed error, whatever
/// `consume` made of the bytes. A consumer that stops reading early does not cut the check
/// short: the rest is still downloaded and hashed. `Ok((manifest, None))`: the manifest lists
/// no `payload`.
pub async fn stream_version<T, Fut>(
    bucket: &Bucket,
    version: &str,
    payload: &str,
    consume: impl FnOnce(PayloadReader) -> Fut,
) -> Result<(Manifest, Option<T>), ReadError>
where
    Fut: std::future::Future<Output = T>,
{
    let m = read_manifest(bucket, version).await?;
    for entry in m.files.iter().filter(|e| e.name != payload) {
        if let Some(problem) = check_file(bucket, version, entry).await? {
            return Err(problem.into_error(bucket, version));
        }
    }
    let Some(entry) = m.file(payload).cloned() else { return Ok((m, None)) };
    let key = manifest::file_key(bucket.prefix(), version, &entry.name);
    let problem = |defect| ObjectProblem { file: entry.name.clone(), defect }.into_error(bucket, version);
    let Some(mut body) = bucket.get_stream(&key).await? else { return Err(problem(Defect::Missing)) };
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    let consumed = consume(PayloadReader { chunks: rx, current: Bytes::new() });
    let download = async move {
        let mut digest = StreamDigest::default();
        let mut reader = Some(tx);
        while let Some(chunk) = body.next_chunk().await {
            let chunk = chunk?;
            digest.update(&chunk);
            if let Some(tx) = &reader {
                if tx.send(chunk).await.is_err() {
                    // The consumer is done; the check still needs the rest.
                    reader = None;
                }
            }
        }
        drop(reader);
        Ok::<_, StoreError>(digest.finish())
    };
    let (downloaded, value) = tokio::join!(download, consumed);
    let (size, sha) = downloaded?;
    match judge(&entry, Some((size, &sha))) {
        Some(defect) => Err(problem(defect)),
        None => Ok((m, Some(value))),
    }
}
