//! `loadtest shop`: simulated shoppers with hidden tastes, for comparing model versions by
//! what users do with their recommendations rather than by latency.
//!
//! Each simulated shopper is a real user of a model, whose taste is the one or two
//! categories that dominate their history in that model ([`taste`]). A session asks for 10
//! recommendations, then posts an event (`POST /events`) on each returned item of the
//! shopper's taste with probability `p_match`, and on one random item of the model with
//! probability `p_noise`. Sessions start open loop at a fixed rate ([`engine`]); what came
//! back is tallied per (model version, arm) ([`report`]).
//!
//! # Layout
//! - [`taste`]: the taste rule and the [`taste::World`] of shoppers and item categories.
//! - [`client`]: the two calls a session makes, and the answer fields it reads (`arm`).
//! - [`engine`]: the plan, the open-loop schedule and one session.
//! - [`report`]: the tally, the 95% Wilson interval, arm stickiness, text and JSON.

pub mod client;
pub mod engine;
pub mod report;
pub mod taste;

pub use engine::{run, ShopPlan};
pub use report::{ShopReport, Tally};
pub use taste::{Shopper, World};

/// Why a shop run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode model {path}")]
    Model {
        path: std::path::PathBuf,
        #[source]
        source: model::blob::DecodeError,
    },
    #[error("no user of the model has a taste: its items have no categories")]
    NoTastes,
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("{name} {value} must be a probability within 0..=1")]
    Probability { name: &'static str, value: f64 },
    #[error("--rate {0} must be a positive number of sessions per second")]
    Rate(f64),
    #[error("--max-in-flight must be at least 1")]
    MaxInFlight,
    #[error("--sessions must be at least 1")]
    Sessions,
    #[error("invalid --target {0:?}: expected http://host:port")]
    Target(String),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the tally collector failed: {0}")]
    Collector(String),
}
