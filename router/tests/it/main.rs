//! Integration tests: the real router (`router::run`) on 127.0.0.1:0 in front of in-process
//! fake region nodes whose behaviour the tests switch at runtime.

mod admin;
mod compat;
mod conformance;
mod connections;
mod docs;
mod erasure;
mod failover;
mod fuzz;
mod helpers;
mod latency;
mod misbehaving;
mod process;
mod rate_limit;
mod residency;
mod routing;
mod status_page;
mod tls;
