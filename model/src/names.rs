//! Names shared by the published layout and the rollout contract.

/// Model versions are `YYYYMMDDTHHMMSSZ-<8 hex>`: they sort by creation time, and contain
/// only characters safe in object keys and URLs.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !v.starts_with('.')
}
