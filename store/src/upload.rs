//! Uploads: single PUT for small objects, multipart above the threshold.

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{Bucket, StoreError, SHA256_METADATA};

impl Bucket {
    /// Upload `bytes` with its sha256 in user metadata (in parts above the threshold).
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let meta = sha_metadata(manifest_sha(&bytes));
        if (bytes.len() as u64) <= self.options.multipart_threshold {
            return self.put_single(key, bytes, meta).await;
        }
        let part = self.options.part_size.max(1) as usize;
        let parts = (0..bytes.len()).step_by(part).map(|at| bytes.slice(at..(at + part).min(bytes.len())));
        let parts: Vec<Bytes> = parts.collect();
        self.put_multipart(key, meta, futures::stream::iter(parts.into_iter().map(Ok))).await
    }

    /// Upload a local file whose sha256 is already known (in parts above the threshold,
    /// reading one part at a time).
    pub async fn put_file(&self, key: &str, path: &Path, sha256: &str) -> Result<(), StoreError> {
        let local = |source| StoreError::LocalFile {
            label: self.label.clone(),
            path: path.display().to_string(),
            bucket: self.location.bucket.clone(),
            key: key.to_string(),
            source,
        };
        let meta = sha_metadata(sha256.to_string());
        let size = tokio::fs::metadata(path).await.map_err(local)?.len();
        if size <= self.options.multipart_threshold {
            let bytes = tokio::fs::read(path).await.map_err(local)?;
            return self.put_single(key, Bytes::from(bytes), meta).await;
        }
        let file = tokio::fs::File::open(path).await.map_err(local)?;
        let part = self.options.part_size.max(1);
        let parts = futures::stream::unfold((file, size), move |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; part.min(left) as usize];
            let read = file.read_exact(&mut buf).await.map(|_| Bytes::from(buf));
            Some((read, (file, left.saturating_sub(part))))
        });
        let parts = futures::StreamExt::map(parts, |r| r.map_err(local));
        self.put_multipart(key, meta, parts).await
    }

    async fn put_single(
        &self,
        key: &str,
        bytes: Bytes,
        meta: HashMap<String, String>,
    ) -> Result<(), StoreError> {
        let req = self.client.put_object().bucket(&self.location.bucket).key(key);
        req.set_metadata(Some(meta))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.classify("PutObject", key, e))?;
        Ok(())
    }

    /// Multipart upload; aborted on any failure so no orphaned parts are billed.
    async fn put_multipart(
        &self,
        key: &str,
        meta: HashMap<String, String>,
        parts: impl futures::Stream<Item = Result<Bytes, StoreError>>,
    ) -> Result<(), StoreError> {
        let bucket = &self.location.bucket;
        let create = self.client.create_multipart_upload().bucket(bucket).key(key).set_metadata(Some(meta));
        let created = create.send().await.map_err(|e| self.classify("CreateMultipartUpload", key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            let source = "CreateMultipartUpload returned no upload id".into();
            return Err(self.other("CreateMultipartUpload", key, source));
        };
        match self.upload_parts(key, &upload_id, parts).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let abort =
                    self.client.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id);
                if let Err(abort_err) = abort.send().await {
                    let abort_err = self.classify("AbortMultipartUpload", key, abort_err);
                    tracing::warn!(bucket = %self.label, key, error = %abort_err, "cannot abort multipart upload");
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: impl futures::Stream<Item = Result<Bytes, StoreError>>,
    ) -> Result<(), StoreError> {
        use futures::StreamExt;
        let bucket = &self.location.bucket;
        let mut parts = std::pin::pin!(parts);
        let mut done = Vec::new();
        let mut number = 0i32;
        while let Some(part) = parts.next().await {
            number += 1;
            let req = self.client.upload_part().bucket(bucket).key(key).upload_id(upload_id);
            let out = req
                .part_number(number)
                .body(ByteStream::from(part?))
                .send()
                .await
                .map_err(|e| self.classify("UploadPart", key, e))?;
            let etag = out.e_tag().map(str::to_string);
            done.push(CompletedPart::builder().part_number(number).set_e_tag(etag).build());
            tracing::debug!(bucket = %self.label, key, part = number, "uploaded part");
        }
        let upload = CompletedMultipartUpload::builder().set_parts(Some(done)).build();
        let req = self.client.complete_multipart_upload().bucket(bucket).key(key).upload_id(upload_id);
        req.multipart_upload(upload)
            .send()
            .await
            .map_err(|e| self.classify("CompleteMultipartUpload", key, e))?;
        Ok(())
    }
}

fn manifest_sha(bytes: &[u8]) -> String {
    model::manifest::sha256_hex(bytes)
}

fn sha_metadata(sha256: String) -> HashMap<String, String> {
    HashMap::from([(SHA256_METADATA.to_string(), sha256)])
}
