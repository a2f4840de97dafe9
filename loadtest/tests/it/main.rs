//! loadtest integration tests: the engines against fake targets on loopback, the reports,
//! user sampling and the scenario judgement. Every run is bounded to a few seconds.

mod cluster;
mod engine;
mod helpers;
mod judge;
mod report;
mod shop;
mod tally;
mod users;
