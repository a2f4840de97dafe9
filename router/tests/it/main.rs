//! Integration tests: the real router (`router::run`) on 127.0.0.1:0 in front of in-process
//! fake region nodes whose behaviour the tests switch at runtime.

mod admin;
mod connections;
mod failover;
mod helpers;
mod latency;
mod process;
mod routing;
mod status_page;
