//! The model directory being published, checked against its own manifest first.

use std::path::{Path, PathBuf};

use super::report::PublishError;
use model::manifest::{self, Manifest};

/// A verified local model directory.
#[derive(Debug, Clone)]
pub struct LocalModel {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// `manifest.json` exactly as built, uploaded as-is.
    pub manifest_bytes: Vec<u8>,
}

impl LocalModel {
    /// Read `dir/manifest.json` and check every listed file's size and sha256.
    pub async fn open(dir: &Path) -> Result<Self, PublishError> {
        let path = dir.join(manifest::MANIFEST_FILE);
        let read = |path: &Path, source| PublishError::ReadLocal { path: path.to_path_buf(), source };
        let bytes = tokio::fs::read(&path).await.map_err(|e| read(&path, e))?;
        let m = Manifest::from_json(&bytes)
            .map_err(|source| PublishError::LocalManifest { path: path.clone(), source })?;
        if !manifest::is_readable(m.format_version) {
            let (found, supported) = (m.format_version, manifest::FORMAT_VERSION);
            return Err(PublishError::LocalFormat { path, found, supported });
        }
        if !manifest::valid_version(&m.model_version) {
            return Err(PublishError::InvalidVersion { version: m.model_version });
        }
        for entry in &m.files {
            let file = dir.join(&entry.name);
            let p = file.clone();
            let hashed = tokio::task::spawn_blocking(move || manifest::hash_file(&p))
                .await
                .map_err(|e| read(&file, std::io::Error::other(e)))?;
            let (size, sha) = hashed.map_err(|e| read(&file, e))?;
            if size != entry.size || sha != entry.sha256 {
                return Err(PublishError::LocalMismatch {
                    path: file,
                    expected_size: entry.size,
                    expected_sha: entry.sha256.clone(),
                    actual_size: size,
                    actual_sha: sha,
                });
            }
        }
        Ok(Self { dir: dir.to_path_buf(), manifest: m, manifest_bytes: bytes })
    }

    pub fn version(&self) -> &str {
        &self.manifest.model_version
    }
}
