//! model: the georec user-similarity model, its published format and its request-time use.
//! model-sync builds and publishes models with it; region nodes decode and serve them.
//!
//! # Layout
//! - [`model`]: the model and its scoring (`recommend`, `popular`, `knn`); [`matrix`]: the
//!   user-item weights it holds.
//! - [`neighbours`]: exact nearest users through the item -> users lists, searched by
//!   [`model::Model::knn`] at build and request time.
//! - [`blob`]: the `model.bin` encoding and its checked decoder.
//! - [`manifest`]: the published layout of a model version (keys, manifest, pointer);
//!   [`names`]: what a version name may be.
//! - [`live`]: request-time fold-in of a user's new interactions.
//! - [`events`]: live events, the contract between region nodes (`POST /events`) and
//!   `model-sync ingest`: keys, fields, validation (the Redis calls stay with each side).
//! - [`rollout`]: a candidate version beside the serving one (shadow or a sticky split),
//!   users' arms, and the per-version figures nodes report to the controller.
//! - [`pace`]: yield points for long CPU loops that share cores with request threads.

pub mod blob;
pub mod events;
pub mod live;
pub mod manifest;
pub mod matrix;
pub mod model;
pub mod names;
pub mod neighbours;
pub mod pace;
pub mod rollout;
