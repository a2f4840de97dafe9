//! `loadtest run --target URL ...`, `loadtest scenario NAME` and `loadtest shop`: parse, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::{execute, Cli};
use loadtest::scenario::ScenarioError;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cluster_config::telemetry::init(cli.log_json);
    match execute(cli, std::env::vars().collect()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadtest: error: {e:#}");
            match e.downcast_ref::<ScenarioError>() {
                Some(ScenarioError::Interrupted) => ExitCode::from(130),
                _ => ExitCode::from(2),
            }
        }
    }
}
