//! model-sync: interaction data in, verified versioned model blobs out, in every region.
//!
//! # Layout
//! - The cluster configuration (`regions.toml`) lives in the `cluster-config` crate.
//! - [`dataset`]: interactions in memory and their normalised on-disk form.
//! - [`manifest`]: the published layout of a model version (keys, manifest, pointer).
//! - [`model`]: the user-similarity model and its scoring; [`blob`]: its `model.bin` encoding;
//!   [`matrix`]: the user-item weights it holds.
//! - [`build`]: dataset -> model; [`eval`]: offline metrics; [`tune`]: parameters chosen on a
//!   validation split.
//! - [`neighbours`]: exact nearest users through the item -> users lists, searched by
//!   [`model::Model::knn`] at build and request time.
//! - [`live`]: request-time fold-in of a user's new interactions.
//! - [`events`]: live events, the contract between region nodes (`POST /events`) and `ingest`.
//! - [`ingest`]: region event streams -> verified batches in the primary bucket, and back;
//!   [`run`]: the retrain loop (ingest, build, evaluate, publish if not worse);
//!   [`model_dir`]: the local model directory `build` writes and `publish` reads.

pub mod blob;
pub mod build;
pub mod cli;
pub mod dataset;
pub mod eval;
pub mod events;
pub mod ingest;
pub mod live;
pub mod manifest;
pub mod matrix;
pub mod model;
pub mod model_dir;
pub mod neighbours;
pub mod pace;
pub mod par;
pub mod tune;
// store/reader/publish/admin: S3 buckets, verified reads, publish + status/rollback/gc.
pub mod admin;
pub mod generate;
pub mod import;
pub mod publish;
pub mod reader;
pub mod run;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
