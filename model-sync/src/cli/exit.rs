//! [`Exit`]: a failure that ends `model-sync` with an exit code of its own.

/// A failure with its own exit code, for callers that branch on it (cron, CI): `main`
/// exits with `code` instead of 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: u8,
    pub message: String,
}
