use clap::Parser;
use model_sync::cli::{self, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cluster_config::telemetry::init(cli.log_json);
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<cli::Exit>().map_or(std::process::ExitCode::FAILURE, |x| x.code.into())
        }
    }
}
