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
//! - [`plan`]: what a run does (target, rate, bounds, probabilities, seed).
//! - [`engine`]: the open-loop schedule and one session.
//! - [`report`]: the tally, the 95% Wilson interval, arm stickiness, text and JSON.

pub mod client;
pub mod engine;
pub mod plan;
pub mod report;
pub mod taste;
