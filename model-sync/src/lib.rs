//! model-sync: interaction data in, verified versioned model blobs out, in every region.
//!
//! # Layout
//! - [`config`]: `regions.toml`, the cluster configuration every georec binary loads.
//! - [`dataset`]: interactions in memory and their normalised on-disk form.
//! - [`manifest`]: the published layout of a model version (keys, manifest, pointer).

pub mod config;
pub mod dataset;
pub mod manifest;
