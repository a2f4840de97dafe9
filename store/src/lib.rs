//! store: one S3 bucket (+ key prefix) of the cluster, the few object operations model-sync
//! and the region nodes need, and the verified reader nodes load models through.
//!
//! Every call is bounded: a short connect timeout and few retries, so an unreachable region
//! fails its part of a publish in seconds instead of stalling the others for minutes. Errors
//! are classified ([`StoreError`]) because the operator's fix differs: start the store, fix
//! the credentials, or create the bucket.
//!
//! # Layout
//! - The crate root: [`Location`], [`Credentials`], [`StoreOptions`] and [`Bucket`] with its
//!   object calls (get, streamed and hashed reads, head, copy, list, delete); `error`: the
//!   classification ([`StoreError`]); `upload`: single and multipart uploads.
//! - [`reader`]: published versions read back whole and verified (`stream_version`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use cluster_config::{PrimaryStore, RegionConfig};

mod error;
pub mod reader;
mod upload;

pub use error::StoreError;
use error::{BoxError, Place};

/// User-metadata key (`x-amz-meta-sha256`) holding an object's lower-case hex sha256, so a
/// re-run can skip objects already uploaded without downloading them.
pub const SHA256_METADATA: &str = "sha256";

/// Where a bucket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// S3-compatible endpoint (MinIO, s3s); `None` is AWS S3 itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
    /// SigV4 signing region.
    pub signing_region: String,
}

impl Location {
    pub fn primary(p: &PrimaryStore) -> Self {
        let (endpoint, bucket, prefix) = (p.endpoint.clone(), p.bucket.clone(), p.prefix.clone());
        Self { endpoint, bucket, prefix, signing_region: p.cloud_region.clone() }
    }

    pub fn region(r: &RegionConfig) -> Self {
        let (endpoint, bucket, prefix) = (r.s3.endpoint.clone(), r.s3.bucket.clone(), r.s3.prefix.clone());
        Self { endpoint, bucket, prefix, signing_region: r.cloud_region.clone() }
    }
}

/// How to authenticate. The library never reads the environment: the CLI decides.
// Built once per command; boxing the SdkConfig would only make callers noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Explicit keys (tests, or `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` read by the CLI).
    Static { access_key: String, secret_key: String },
    /// Whatever the default AWS chain resolved (profiles, SSO, instance roles...).
    Sdk(aws_config::SdkConfig),
}

impl Credentials {
    /// Static keys when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are both in `env` (and
    /// no session token), else the default AWS chain. Binaries pass `std::env::vars()`.
    pub async fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Credentials {
        let env: HashMap<String, String> = env.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let var = |k: &str| env.get(k).cloned();
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_SESSION_TOKEN")) {
            (Some(access_key), Some(secret_key), None) => Credentials::Static { access_key, secret_key },
            _ => Credentials::Sdk(aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await),
        }
    }
}

/// Timeouts, retries and multipart sizes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub connect_timeout: Duration,
    /// Per attempt; bounds one request, not a whole body download.
    pub attempt_timeout: Duration,
    /// Including the first attempt.
    pub max_attempts: u32,
    /// Files larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// S3 requires at least 5 MiB per part except the last.
    pub part_size: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(120),
            max_attempts: 3,
            multipart_threshold: 16 << 20,
            part_size: 16 << 20,
        }
    }
}

/// One bucket + prefix, labelled with its region name (or `primary`) for messages.
#[derive(Debug, Clone)]
pub struct Bucket {
    label: String,
    location: Location,
    options: StoreOptions,
    client: aws_sdk_s3::Client,
}

/// What `HEAD` says about an object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub size: u64,
    pub metadata: HashMap<String, String>,
    pub etag: Option<String>,
}

impl ObjectInfo {
    /// The sha256 recorded in user metadata at upload time, if any.
    pub fn sha256(&self) -> Option<&str> {
        self.metadata.get(SHA256_METADATA).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
}

/// An object's body being downloaded ([`Bucket::get_stream`]).
pub struct ObjectStream<'a> {
    bucket: &'a Bucket,
    key: String,
    body: aws_sdk_s3::primitives::ByteStream,
}

/// Size and sha256 of an object as its chunks go by, with yield points for a paced thread
/// ([`model::pace`]) between 16 KiB pieces.
#[derive(Default)]
pub(crate) struct StreamDigest {
    size: u64,
    hasher: Sha256,
}

impl StreamDigest {
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        for piece in chunk.chunks(16 * 1024) {
            self.hasher.update(piece);
            model::pace::tick();
        }
    }

    /// `(size, sha256 hex)`.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

impl ObjectStream<'_> {
    /// The next chunk; `None` at the end of the object.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, StoreError>> {
        let chunk = self.body.next().await?;
        Some(chunk.map_err(|e| self.bucket.err_body(&self.key, e)))
    }
}

impl Bucket {
    /// Build a client for `location`. Path-style addressing is used whenever an endpoint is
    /// given, since S3-compatible servers rarely have wildcard DNS for virtual hosts.
    pub fn new(
        label: impl Into<String>,
        location: Location,
        creds: &Credentials,
        options: StoreOptions,
    ) -> Self {
        let mut b = match creds {
            Credentials::Static { access_key, secret_key } => aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    access_key.clone(),
                    secret_key.clone(),
                    None,
                    None,
                    "model-sync-static",
                )),
            Credentials::Sdk(sdk) => aws_sdk_s3::config::Builder::from(sdk),
        };
        b = b
            .region(Region::new(location.signing_region.clone()))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(options.connect_timeout)
                    .operation_attempt_timeout(options.attempt_timeout)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(options.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(2)),
            )
            // Integrity is ours (sha256 of every file); the SDK's default CRC trailers
            // (aws-chunked) are not understood by every S3-compatible server.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &location.endpoint {
            b = b.endpoint_url(endpoint.clone()).force_path_style(true);
        }
        let client = aws_sdk_s3::Client::from_conf(b.build());
        Self { label: label.into(), location, options, client }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn prefix(&self) -> &str {
        &self.location.prefix
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The object's bytes, or `None` if there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let Some(out) = self.get_object(key).await? else { return Ok(None) };
        let body = out.body.collect().await.map_err(|e| self.err_body(key, e))?;
        Ok(Some(body.into_bytes()))
    }

    /// The object's body as it arrives, chunk by chunk, or `None` if there is no such key.
    pub async fn get_stream(&self, key: &str) -> Result<Option<ObjectStream<'_>>, StoreError> {
        let Some(out) = self.get_object(key).await? else { return Ok(None) };
        Ok(Some(ObjectStream { bucket: self, key: key.to_string(), body: out.body }))
    }

    /// Stream the object through sha256 without holding it: `(size, sha256 hex)`.
    pub async fn get_hashed(&self, key: &str) -> Result<Option<(u64, String)>, StoreError> {
        let Some(mut body) = self.get_stream(key).await? else { return Ok(None) };
        let mut digest = StreamDigest::default();
        while let Some(chunk) = body.next_chunk().await {
            digest.update(&chunk?);
        }
        Ok(Some(digest.finish()))
    }

    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, StoreError> {
        match self.client.get_object().bucket(&self.location.bucket).key(key).send().await {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.classify("GetObject", key, e)),
        }
    }

    /// Size and user metadata, or `None` if there is no such key.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self.client.head_object().bucket(&self.location.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                metadata: out.metadata().cloned().unwrap_or_default(),
                etag: out.e_tag().map(str::to_string),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.classify("HeadObject", key, e)),
        }
    }

    /// Copy `src_key` of `src` to `key` here, metadata included: server-side when both
    /// buckets are behind the same endpoint, else downloaded and re-uploaded.
    pub async fn copy_from(&self, src: &Bucket, src_key: &str, key: &str) -> Result<(), StoreError> {
        if src.location.endpoint != self.location.endpoint {
            let Some(bytes) = src.get(src_key).await? else {
                let source = format!("source {}/{src_key} does not exist", src.location.bucket).into();
                return Err(src.other("GetObject", src_key, source));
            };
            return self.put_bytes(key, bytes).await;
        }
        let source = format!("{}/{}", src.location.bucket, encode_key(src_key));
        let req = self.client.copy_object().bucket(&self.location.bucket).key(key).copy_source(source);
        req.send().await.map_err(|e| self.classify("CopyObject", key, e))?;
        Ok(())
    }

    /// Every object under `prefix` (a full key prefix), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify("ListObjectsV2", prefix, e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push(ListedObject {
                        key: key.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Delete `keys` in batches of 1000 (the DeleteObjects limit). Missing keys are fine.
    pub async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(1000) {
            let first = batch.first().map(String::as_str).unwrap_or_default();
            let ids = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.other("DeleteObjects", first, e.into()))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| self.other("DeleteObjects", first, e.into()))?;
            let req = self.client.delete_objects().bucket(&self.location.bucket).delete(delete);
            let out = req.send().await.map_err(|e| self.classify("DeleteObjects", first, e))?;
            if let Some(e) = out.errors().first() {
                let key = e.key().unwrap_or(first);
                let msg = format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or(""));
                return Err(self.other("DeleteObjects", key, msg.into()));
            }
        }
        Ok(())
    }
}

// This bucket's failures as `StoreError`s (sorted in error.rs).
impl Bucket {
    fn place(&self) -> Place<'_> {
        Place {
            label: &self.label,
            endpoint: self.location.endpoint.as_deref(),
            bucket: &self.location.bucket,
        }
    }

    fn other(&self, op: &'static str, key: &str, source: BoxError) -> StoreError {
        self.place().other(op, key, source)
    }

    fn err_body(&self, key: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        self.other("GetObject (body)", key, Box::new(e))
    }

    fn classify<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.place().classify(op, key, err)
    }
}

/// Percent-encode a key for `x-amz-copy-source`, keeping `/` as the separator.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
