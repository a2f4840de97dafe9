//! region-node: serves one region's recommendations from a hot-swapped model, caching
//! answers in the region's Redis.
//!
//! # Layout
//! - [`settings`]: what a node runs with, resolved from `regions.toml` + CLI by `main`.
//! - [`background`]: decode and build threads below the request workers' CPU priority.
//! - [`loader`]: download + verify + decode one version (the only code touching payload bytes).
//! - [`snapshot`]: one immutable model version; [`similar`]: item-item cosine from the
//!   model's item-major index.
//! - [`swap`]: the [`swap::ModelSlot`] (one `ArcSwap`) and the poller that replaces its snapshot.
//! - [`rollout`]: the serving pair (stable and candidate) and arms; [`figures`]: what a node
//!   measures per version.
//! - [`cache`]: cache-aside in Redis behind timeouts and a [`breaker`]; [`flight`]: single-flight.
//! - [`answer`]: queries and ranked answers; [`service`]: snapshot + cache + single-flight.
//! - [`metrics`]: the Prometheus registry; [`report`]: health and stats.
//! - [`topology`]: the other regions from `regions.toml`; [`peers`]: probes of and requests
//!   to their nodes; [`trend`]: items' interactions per hour, for measured trends.
//! - [`node`]: the state shared by everything above; [`http`]: actix-web routes over it.
//!
//! Only [`http`] knows about actix. `main` parses the CLI, reads the environment, builds a
//! [`Node`], binds and calls [`http::run`].

pub mod answer;
pub mod background;
pub mod breaker;
pub mod cache;
pub mod erasure;
pub mod figures;
pub mod flight;
pub mod http;
pub mod loader;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod report;
pub mod rollout;
pub mod service;
pub mod settings;
pub mod similar;
pub mod snapshot;
pub mod swap;
pub mod topology;
pub mod trend;

pub use node::{Background, Node};
pub use settings::Settings;
