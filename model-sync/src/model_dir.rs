//! A local model directory as `build` writes it and `publish` reads it: `model.bin` plus
//! `manifest.json` (counts, parameters, evaluation figures, every file's size and sha256).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::build::Built;
use crate::eval::Evaluation;
use model::blob;
use model::manifest::{self, Counts, FileEntry, Manifest, FORMAT_VERSION, MANIFEST_FILE, PAYLOAD_FILE};
use model::model::BuildParams;

#[derive(Debug, thiserror::Error)]
pub enum ModelDirError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model version {0:?}: use letters, digits, '-', '_' and '.' (max 64)")]
    InvalidVersion(String),
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Manifest,
    pub encode_time: Duration,
}

/// Write `built` into `dir` (created). `version`: default `<UTC time>-<8 hex of the payload
/// sha256>`. `evaluation` is recorded in the manifest, where `run` reads it back to compare.
pub fn write(
    dir: &Path,
    built: &Built,
    params: &BuildParams,
    version: Option<&str>,
    evaluation: Option<&Evaluation>,
    erasures: Option<&manifest::Erasures>,
) -> Result<Written, ModelDirError> {
    if let Some(v) = version.filter(|v| !manifest::valid_version(v)) {
        return Err(ModelDirError::InvalidVersion(v.to_string()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelDirError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let payload = dir.join(PAYLOAD_FILE);
    let t = Instant::now();
    let file = std::fs::File::create(&payload).map_err(io(&payload))?;
    blob::encode(&built.model, file).map_err(io(&payload))?;
    let encode_time = t.elapsed();
    let (size, sha256) = manifest::hash_file(&payload).map_err(io(&payload))?;
    let now = manifest::now_unix();
    let version = match version {
        Some(v) => v.to_string(),
        None => format!("{}-{}", manifest::compact_time(now), &sha256[..8]),
    };
    let m = &built.model;
    // Both are plain data structs: serialising them cannot fail.
    let json = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_version: version,
        created_at: manifest::rfc3339(now),
        input_fingerprint: built.fingerprint.clone(),
        parameters: json(serde_json::to_value(params)),
        counts: Counts {
            users: m.users.len() as u64,
            items: m.items.len() as u64,
            interactions: m.interactions,
        },
        evaluation: evaluation.map(|e| json(serde_json::to_value(e))),
        erasures: erasures.cloned(),
        files: vec![FileEntry { name: PAYLOAD_FILE.into(), size, sha256 }],
    };
    let path = dir.join(MANIFEST_FILE);
    std::fs::write(&path, manifest.to_json()).map_err(io(&path))?;
    Ok(Written { manifest, encode_time })
}
