//! region-node integration tests: real nodes on 127.0.0.1:0, an in-process S3 server,
//! redis-server children. One binary (link time on 2 cores), one module per concern.

mod admin;
mod cache;
mod compat;
mod erasure;
mod events;
mod helpers;
mod input;
mod process;
mod rollout;
mod serve;
mod swap;
