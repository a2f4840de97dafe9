//! [`StoreError`] and how SDK failures are sorted into it.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{label}: cannot reach S3 at {endpoint} while accessing {bucket}/{key}; is the store up?")]
    Unreachable {
        label: String,
        endpoint: String,
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "{label}: access denied ({code}) on {bucket}/{key}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    )]
    AccessDenied {
        label: String,
        bucket: String,
        key: String,
        code: String,
        #[source]
        source: BoxError,
    },
    #[error("{label}: bucket {bucket:?} does not exist (at {endpoint}) while accessing {key}")]
    NoSuchBucket {
        label: String,
        endpoint: String,
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("{label}: {op} {bucket}/{key} failed")]
    Other {
        label: String,
        op: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("{label}: cannot read local file {path} for {bucket}/{key}")]
    LocalFile {
        label: String,
        path: String,
        bucket: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Connect failure or timeout: the store (or the network to it) is down.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }

    pub fn is_access_denied(&self) -> bool {
        matches!(self, StoreError::AccessDenied { .. })
    }
}

/// The bucket an operation was on, as its errors name it.
pub(super) struct Place<'a> {
    pub label: &'a str,
    /// `None`: AWS S3 itself.
    pub endpoint: Option<&'a str>,
    pub bucket: &'a str,
}

impl Place<'_> {
    pub(super) fn other(&self, op: &'static str, key: &str, source: BoxError) -> StoreError {
        let (label, bucket, key) = (self.label.to_string(), self.bucket.to_string(), key.to_string());
        StoreError::Other { label, op, bucket, key, source }
    }

    /// Sort an SDK failure into what the operator has to do about it.
    pub(super) fn classify<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let label = self.label.to_string();
        let bucket = self.bucket.to_string();
        let endpoint = self.endpoint.unwrap_or("the AWS default endpoint").to_string();
        let key = key.to_string();
        let unreachable = match &err {
            SdkError::TimeoutError(_) => true,
            SdkError::DispatchFailure(d) => d.is_io() || d.is_timeout(),
            _ => false,
        };
        if unreachable {
            return StoreError::Unreachable { label, endpoint, bucket, key, source: Box::new(err) };
        }
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_string);
        // Missing credentials surface as a dispatch failure before any request is sent.
        let no_creds = matches!(&err, SdkError::DispatchFailure(_)) && chain_mentions(&err, "credentials");
        match code.as_deref() {
            Some("NoSuchBucket") => {
                StoreError::NoSuchBucket { label, endpoint, bucket, key, source: Box::new(err) }
            }
            Some(
                c @ ("AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"),
            ) => {
                let code = c.to_string();
                StoreError::AccessDenied { label, bucket, key, code, source: Box::new(err) }
            }
            _ if status == Some(403) || no_creds => {
                let code =
                    code.unwrap_or_else(|| if no_creds { "no credentials" } else { "HTTP 403" }.into());
                StoreError::AccessDenied { label, bucket, key, code, source: Box::new(err) }
            }
            _ => StoreError::Other { label, op, bucket, key, source: Box::new(err) },
        }
    }
}

fn chain_mentions(err: &(dyn std::error::Error + 'static), needle: &str) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.to_string().to_ascii_lowercase().contains(needle) {
            return true;
        }
        cur = e.source();
    }
    false
}
