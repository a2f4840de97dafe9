//! `region-node --region us-west [--config regions.toml]`: CLI, environment, bind, serve.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use cluster_config::ClusterConfig;
use region_node::settings::{AdminToken, Settings};
use region_node::Node;
use store::{Bucket, Credentials, Location, StoreOptions};

/// Serve one region's recommendations from its bucket's current model and its Redis.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Environment: GEOREC_ADMIN_TOKEN (admin routes), AWS_ACCESS_KEY_ID / \
AWS_SECRET_ACCESS_KEY (or the AWS chain), GEOREC__<SECTION>__<KEY> overrides, RUST_LOG."
)]
struct Cli {
    /// Region to serve, as named in the config file.
    #[arg(long)]
    region: String,
    /// Cluster configuration file.
    #[arg(long, env = "GEOREC_CONFIG", default_value = "regions.toml")]
    config: PathBuf,
    /// Address to bind instead of the region's `listen`.
    #[arg(long)]
    listen: Option<String>,
    /// For rollout tests and drills only: make a model version fail a share of its
    /// computations or answer slower, e.g. `20261207T101500Z-ab12cd34:error=0.3,delay_ms=20`;
    /// several versions separated by `;`.
    #[arg(long, env = "GEOREC_INJECT_FAULT")]
    inject_fault: Option<String>,
    /// Log JSON lines instead of text.
    #[arg(long = "log-json", env = "GEOREC_LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cluster_config::telemetry::init(cli.log_json);
    let cluster = ClusterConfig::load(&cli.config, std::env::vars())?;
    let token = AdminToken::from_env();
    let mut settings = Settings::from_cluster(&cluster, &cli.region, cli.listen.as_deref(), token)?;
    settings.faults = cli
        .inject_fault
        .as_deref()
        .map(region_node::rollout::Fault::parse_list)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--inject-fault / GEOREC_INJECT_FAULT: {e}"))?
        .unwrap_or_default();
    for f in &settings.faults {
        tracing::warn!(version = %f.version, error_share = f.error_share, delay_ms = f.delay.as_millis() as u64, "fault injection is on");
    }
    let location = Location::region(cluster.region(&cli.region)?);
    let bucket = Bucket::new(
        &cli.region,
        location,
        &Credentials::from_env(std::env::vars()).await,
        StoreOptions::default(),
    );

    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot bind {} (region {})", settings.listen, cli.region))?;
    tracing::info!(region = %cli.region, listen = %listener.local_addr()?, admin = settings.admin_token.is_some(), "region-node starting");
    let node = Node::new(settings, bucket)?;
    let _background = node.start();
    region_node::http::run(listener, node)?.await?;
    tracing::info!("stopped");
    Ok(())
}
