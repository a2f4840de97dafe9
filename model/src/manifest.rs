//! The published layout of a model version: the contract between model-sync and the nodes.
//!
//! ```text
//! <prefix>models/<version>/model.bin       payload (see `blob`)
//! <prefix>models/<version>/manifest.json   written last; lists every file's size and sha256
//! <prefix>current.json                     the region's pointer: which version serves
//! ```
//!
//! A version exists for readers only once its manifest exists, so an interrupted upload is
//! never visible. A pointer is flipped only after its version is verified in that bucket.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Payload format this build writes (3: neighbours searched exactly, no HNSW graph).
pub const FORMAT_VERSION: u32 = 3;
/// Oldest payload format this build still reads (2 carries an HNSW graph, which is skipped).
pub const OLDEST_READABLE_FORMAT: u32 = 2;

/// Whether this build reads payloads and manifests of format `v`.
pub fn is_readable(v: u32) -> bool {
    (OLDEST_READABLE_FORMAT..=FORMAT_VERSION).contains(&v)
}
pub const PAYLOAD_FILE: &str = "model.bin";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const POINTER_FILE: &str = "current.json";
pub const MODELS_DIR: &str = "models/";

/// Key of the directory holding `version` under `prefix`.
pub fn version_dir(prefix: &str, version: &str) -> String {
    format!("{prefix}{MODELS_DIR}{version}/")
}

pub fn manifest_key(prefix: &str, version: &str) -> String {
    format!("{}{MANIFEST_FILE}", version_dir(prefix, version))
}

pub fn file_key(prefix: &str, version: &str, file: &str) -> String {
    format!("{}{file}", version_dir(prefix, version))
}

pub fn pointer_key(prefix: &str) -> String {
    format!("{prefix}{POINTER_FILE}")
}

pub use crate::names::valid_version;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub users: u64,
    pub items: u64,
    pub interactions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub model_version: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// sha256 of the canonical input (events in order, metadata), so two builds from the
    /// same data can be recognised.
    pub input_fingerprint: String,
    /// Build parameters, as `build::BuildParams` serialises them.
    pub parameters: serde_json::Value,
    pub counts: Counts,
    /// Offline evaluation figures, when the build ran one.
    #[serde(default)]
    pub evaluation: Option<serde_json::Value>,
    /// The user erasures this model honours (built without those users), when it was built
    /// from ingested events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasures: Option<Erasures>,
    pub files: Vec<FileEntry>,
}

/// How many erasure records a model was built honouring, up to which one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasures {
    /// Users left out.
    pub count: u64,
    /// The newest erasure honoured (RFC 3339), `None` when there was none.
    pub through: Option<String>,
    /// The same in unix seconds (0: none).
    pub through_unix: i64,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// A region's (or the primary's) pointer to the version it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    pub version: String,
    /// The version served before this one; `gc` keeps it for rollback.
    #[serde(default)]
    pub previous: Option<String>,
    pub updated_at: String,
    /// A version under rollout beside `version` (see [`crate::rollout`]); absent in pointers
    /// of older builds, which older nodes read without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<crate::rollout::Candidate>,
}

impl Pointer {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("pointer serialises");
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Size and sha256 of a local file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// RFC 3339 (seconds, UTC) for a unix time; times beyond jiff's range (years -9999..=9999)
/// are clamped to its ends.
pub fn rfc3339(unix_secs: i64) -> String {
    let at = jiff::Timestamp::from_second(unix_secs).unwrap_or(if unix_secs < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `YYYYMMDDTHHMMSSZ` for a unix time: the time part of a model version.
pub fn compact_time(unix_secs: i64) -> String {
    rfc3339(unix_secs).replace(['-', ':'], "")
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(compact_time(1_700_000_000), "20231114T221320Z");
        assert_eq!(rfc3339(-86_400), "1969-12-31T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn keys_and_versions() {
        assert_eq!(manifest_key("georec/", "v1"), "georec/models/v1/manifest.json");
        assert_eq!(pointer_key(""), "current.json");
        assert!(valid_version("20231114T221320Z-deadbeef"));
        assert!(!valid_version("../x"));
        assert!(!valid_version(""));
    }
}
