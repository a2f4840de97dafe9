//! model-sync: interaction data in, verified versioned model blobs out, in every region.
//!
//! # Layout
//! - Elsewhere: the cluster configuration (`regions.toml`) in `cluster-config`; the model, its
//!   format, search, fold-in and the live-event contract in `model`; S3 access and the
//!   verified reader in `store`.
//! - [`dataset`]: interactions in memory and their normalised on-disk form.
//! - [`build`] (with [`par`]): dataset -> model; [`eval`]: offline metrics; [`tune`]:
//!   parameters chosen on a validation split.
//! - [`ingest`]: region event streams -> verified batches in the primary bucket, and back;
//!   [`run`]: the retrain loop (ingest, build, evaluate, publish if not worse);
//!   [`model_dir`]: the local model directory `build` writes and `publish` reads.
//! - [`rollout`]: a published version offered as a candidate step by step (shadow, split),
//!   guarded by the region nodes' figures, promoted or rolled back; its record in the
//!   primary bucket.

pub mod build;
pub mod cli;
pub mod dataset;
pub mod eval;
pub mod ingest;
pub mod model_dir;
pub mod par;
pub mod tune;
// publish + status/rollback/gc, through the `store` crate's buckets and verified reads.
pub mod admin;
pub mod generate;
pub mod import;
pub mod publish;
pub mod rollout;
pub mod run;
