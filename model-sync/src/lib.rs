//! model-sync: interaction data in, verified versioned model blobs out, in every region.
//!
//! # Layout
//! - [`config`]: `regions.toml`, the cluster configuration every georec binary loads.
//! - [`dataset`]: interactions in memory and their normalised on-disk form.
//! - [`manifest`]: the published layout of a model version (keys, manifest, pointer).
//! - [`model`]: the user-similarity model and its scoring; [`blob`]: its `model.bin` encoding.
//! - [`build`]: dataset -> model; [`index`]: HNSW over sparse user vectors; [`eval`]: offline metrics.
//! - [`events`]: live events, the contract between region nodes (`POST /events`) and `ingest`.

pub mod blob;
pub mod build;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod eval;
pub mod events;
pub mod index;
pub mod manifest;
pub mod model;
pub mod telemetry;
// store/reader/publish/admin: S3 buckets, verified reads, publish + status/rollback/gc.
pub mod admin;
pub mod generate;
pub mod import;
pub mod publish;
pub mod reader;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
