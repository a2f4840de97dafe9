//! Download, verify and decode one model version: the only place that touches payload bytes.
//!
//! Memory during a swap must stay under 2x the model + 100 MB while the old snapshot keeps
//! serving. So the payload is never held in memory: `reader::download_version` streams each
//! file to a scratch directory while hashing it, the model is decoded from the file through
//! a small buffer, and the directory is removed as soon as decoding ends (either way).

use std::path::{Path, PathBuf};

use model_sync::blob::{self, DecodeError};
use model_sync::manifest::{Manifest, PAYLOAD_FILE};
use model_sync::model::Model;
use model_sync::reader::{self, ReadError};
use model_sync::store::Bucket;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("version {version}: the manifest lists no {PAYLOAD_FILE}")]
    NoPayload { version: String },
    #[error("cannot use scratch directory {path} for the download")]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("version {version}: {PAYLOAD_FILE} does not decode")]
    Decode {
        version: String,
        #[source]
        source: DecodeError,
    },
    #[error("version {version}: decoding was interrupted")]
    Interrupted {
        version: String,
        #[source]
        source: crate::background::Interrupted,
    },
}

/// Fetch `version` from `bucket` into a fresh directory under `scratch`, verify every file
/// against its manifest, decode the model (on a background thread), remove the directory.
pub async fn load_version(
    bucket: &Bucket,
    version: &str,
    scratch: &Path,
) -> Result<(Manifest, Model), LoadError> {
    // Unique per call: several nodes may share a process (tests) and a scratch directory.
    let dir = scratch.join(format!("georec-{}-{version}-{:016x}", bucket.label(), rand::random::<u64>()));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|source| LoadError::Scratch { path: dir.clone(), source })?;
    let loaded = download_and_decode(bucket, version, &dir).await;
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the download directory");
    }
    loaded
}

async fn download_and_decode(
    bucket: &Bucket,
    version: &str,
    dir: &Path,
) -> Result<(Manifest, Model), LoadError> {
    let manifest = reader::download_version(bucket, version, dir).await?;
    if manifest.file(PAYLOAD_FILE).is_none() {
        return Err(LoadError::NoPayload { version: version.to_string() });
    }
    let path = dir.join(PAYLOAD_FILE);
    let decoded = crate::background::run("decode", move || {
        let file = std::fs::File::open(&path).map_err(DecodeError::Io)?;
        blob::decode(file)
    })
    .await
    .map_err(|source| LoadError::Interrupted { version: version.to_string(), source })?;
    let model = decoded.map_err(|source| LoadError::Decode { version: version.to_string(), source })?;
    Ok((manifest, model))
}
