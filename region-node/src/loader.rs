//! Download, verify and decode one model version: the only place that touches payload bytes.
//!
//! Memory during a swap must stay under 2x the model + 100 MB while the old snapshot keeps
//! serving, and the swap must not compete with the request threads for disk and page cache.
//! So the payload is never stored, in memory or on disk: it is decoded on a background thread
//! as it downloads ([`reader::stream_version`]), hashed on the way, and the decoded model is
//! used only if the whole file matches its manifest entry.

use cluster_config::SwapPriority;
use model::blob::{self, DecodeError};
use model::manifest::{Manifest, PAYLOAD_FILE};
use model::model::Model;
use store::reader::{self, ReadError};
use store::Bucket;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("version {version}: the manifest lists no {PAYLOAD_FILE}")]
    NoPayload { version: String },
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

/// Fetch `version` from `bucket`, verify every file against its manifest and decode the
/// model (on a background thread, while it downloads).
/// The decoding thread runs at `priority`.
pub async fn load_version(
    bucket: &Bucket,
    version: &str,
    priority: SwapPriority,
) -> Result<(Manifest, Model), LoadError> {
    let (manifest, decoded) = reader::stream_version(bucket, version, PAYLOAD_FILE, |payload| {
        crate::background::run("decode", priority, move || blob::decode(payload))
    })
    .await?;
    let decoded = decoded.ok_or_else(|| LoadError::NoPayload { version: version.to_string() })?;
    let decoded =
        decoded.map_err(|source| LoadError::Interrupted { version: version.to_string(), source })?;
    let model = decoded.map_err(|source| LoadError::Decode { version: version.to_string(), source })?;
    Ok((manifest, model))
}
