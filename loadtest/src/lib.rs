//! loadtest: region-hinted load against a georec router or region node, and failure
//! scenarios on the local cluster that prove the latency, failover and hot-swap claims.
//!
//! # Layout
//! - [`plan`]: what a run does (target, rate or connections, bounds, region-hint mix).
//! - [`users`]: user ids from a model, a file or a generator; uniform or zipf draws.
//! - [`client`]: one request and its [`client::Outcome`] (served by, failover, model
//!   version, error kind).
//! - [`run`]: the open-loop (coordinated-omission safe) and closed-loop engines.
//! - [`stats`]: HdrHistogram latency, per-second timeline and tallies; [`progress`]: the
//!   live line on stderr.
//! - [`report`]: JSON and Markdown; [`chart`]: the latency-over-time SVG with event markers;
//!   [`out`]: the three as files.
//! - [`cluster`]: signals and restarts for the processes `scripts/up` started.
//! - [`scenario`]: failover, hang, hot-swap, redis-down and drain, judged PASS or FAIL.
//! - [`shop`]: simulated shoppers with hidden tastes; conversions per model version and arm.
//! - [`cli`]: the command line.

pub mod chart;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod out;
pub mod plan;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shop;
pub mod stats;
pub mod users;
