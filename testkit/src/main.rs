//! `local-s3`: the local cluster's object store (`scripts/up`), every bucket of `regions.toml`
//! in one s3s-fs server over a directory. Not for production: use MinIO or S3 there.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use cluster_config::ClusterConfig;

/// Run an S3-compatible store (s3s-fs) over a local directory for the local cluster.
#[derive(Debug, Parser)]
#[command(
    name = "local-s3",
    version,
    after_help = "Example:\n  AWS_ACCESS_KEY_ID=georec AWS_SECRET_ACCESS_KEY=georec-secret \\\n    local-s3 --root .georec/s3 --listen 127.0.0.1:9000"
)]
pub struct LocalS3Args {
    /// Cluster configuration (its buckets); env overrides GEOREC__SECTION__KEY apply.
    #[arg(long, env = "GEOREC_CONFIG", default_value = "regions.toml")]
    pub config: PathBuf,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "GEOREC_LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub log_json: bool,
    /// Directory holding the buckets (one sub-directory each); created if missing.
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Access key clients must sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,
    /// Secret key clients must sign with.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = LocalS3Args::parse();
    cluster_config::telemetry::init(args.log_json);
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: &LocalS3Args) -> anyhow::Result<()> {
    let config = ClusterConfig::load(&a.config, std::env::vars())?;
    let mut buckets = vec![config.primary.bucket.clone()];
    buckets.extend(config.regions.values().map(|r| r.s3.bucket.clone()));
    buckets.sort();
    buckets.dedup();
    let (addr, stop) = testkit::serve_dir(&a.root, a.listen, &buckets, &a.access_key, &a.secret_key)
        .with_context(|| format!("starting the local S3 store on {} over {}", a.listen, a.root.display()))?;
    println!("local-s3 listening on http://{addr} (buckets: {})", buckets.join(", "));
    tracing::info!(%addr, root = %a.root.display(), "local S3 store ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::LocalS3Args::command().debug_assert();
    }
}
