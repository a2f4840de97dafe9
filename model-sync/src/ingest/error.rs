//! [`IngestError`]: why a region's ingest, or reading the ingested batches back, failed.

use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{region}: invalid redis_url {url:?}; fix regions.{region}.redis_url")]
    RedisUrl {
        region: String,
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{region}: cannot reach Redis at {url}; is it running? (regions.{region}.redis_url)")]
    RedisUnreachable {
        region: String,
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{region}: Redis {op} on {key} at {url} failed")]
    Redis {
        region: String,
        url: String,
        op: &'static str,
        key: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{region}: unexpected Redis reply to {op} on {key}: {detail}")]
    RedisReply { region: String, op: &'static str, key: String, detail: String },
    #[error(
        "{region}: cannot write event batch {key} to the primary bucket; its events stay in the \
         stream for the next ingest"
    )]
    Write {
        region: String,
        key: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "{region}: event batch {key} does not read back as written from the primary bucket ({detail}), \
         even after writing it again; its events stay in the stream"
    )]
    Unverified { region: String, key: String, detail: String },
    #[error("cannot read ingested event batches from the primary bucket")]
    Read(#[source] Box<StoreError>),
    #[error("{region}: cannot read the versions the region serves")]
    Serving {
        region: String,
        #[source]
        source: Box<store::reader::ReadError>,
    },
    #[error("{key}:{line}: {message} (an ingested event batch in the primary bucket is damaged)")]
    BadBatch { key: String, line: usize, message: String },
}
