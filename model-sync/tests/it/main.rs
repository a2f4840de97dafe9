//! model-sync integration tests: one binary (link time on 2 cores), real servers on port 0.

mod admin;
mod bookcrossing_import;
mod built_model;
mod erasure;
mod helpers;
mod ingest;
mod live;
mod publish;
mod quality;
mod read;
mod retrain;
mod rollout;
