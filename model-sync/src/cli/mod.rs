//! The `model-sync` command line. `main.rs` only parses and calls [`run`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use cluster_config::ClusterConfig;

pub mod data;
pub mod erasure;
pub mod exit;
pub mod ingest;
pub mod model;
pub mod protect;
pub mod rollout;
pub mod run;
pub mod scope;
pub mod store;
pub mod units;

pub use exit::Exit;

/// Build user-similarity models from interaction data and publish them, verified and
/// versioned, to every region's bucket.
#[derive(Debug, Parser)]
#[command(name = "model-sync", version, propagate_version = true)]
pub struct Cli {
    /// Cluster configuration (regions, buckets); env overrides GEOREC__SECTION__KEY apply.
    #[arg(long, global = true, env = "GEOREC_CONFIG", default_value = "regions.toml")]
    pub config: PathBuf,

    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "GEOREC_LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import interactions (generic delimited, MovieLens, Olist) into a dataset directory.
    Import(data::ImportArgs),
    /// Generate deterministic synthetic shop data into a dataset directory.
    Generate(data::GenerateArgs),
    /// Build a model from a dataset directory and/or ingested events into a local model directory.
    Build(model::BuildArgs),
    /// Evaluate user-KNN against its untuned self, Popularity and Random on a per-user holdout.
    Evaluate(model::EvaluateArgs),
    /// Choose similarity and scoring parameters on a validation split; writes DATA/params.json.
    Tune(model::TuneArgs),
    /// Upload a built model, replicate it to every region, verify, then flip pointers.
    Publish(store::PublishArgs),
    /// Roll a version out step by step (shadow, split shares) under guards; resume, abort, promote.
    Rollout(rollout::RolloutArgs),
    /// Drain every region's live-event stream into verified batches in the primary bucket.
    Ingest(ingest::IngestArgs),
    /// Users erased on request: where each erasure stands in every region.
    Erasure(erasure::ErasureArgs),
    /// The retrain loop: ingest, build from data + events, evaluate, publish unless worse.
    Run(Box<run::RunArgs>),
    /// Per region: current version, versions present, missing or corrupt objects.
    Status(store::StatusArgs),
    /// Point a region (or all) back at an earlier verified version.
    Rollback(store::RollbackArgs),
    /// Delete old versions, keeping the newest N and every current or previous one.
    Gc(store::GcArgs),
    /// Decode a local model directory and print its contents and decode time.
    Inspect(model::InspectArgs),
    /// Check regions.toml (with env overrides) and print the configuration in effect.
    Config(ConfigArgs),
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  model-sync config\n  model-sync config --get regions.eu-west.redis_url")]
pub struct ConfigArgs {
    /// Print only this key (dotted path, e.g. regions.us-west.listen); strings unquoted.
    #[arg(long)]
    pub get: Option<String>,
}

fn show_config(config: &ClusterConfig, a: &ConfigArgs) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(config)?;
    if let Some(path) = &a.get {
        for part in path.split('.') {
            value = value
                .get(part)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no key {path:?} in the configuration (at {part:?})"))?;
        }
    }
    match value {
        serde_json::Value::String(s) => println!("{s}"),
        serde_json::Value::Array(items) if a.get.is_some() => {
            for i in items {
                println!("{}", i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()));
            }
        }
        other => println!("{}", serde_json::to_string_pretty(&other)?),
    }
    Ok(())
}

impl Cli {
    pub fn load_config(&self) -> anyhow::Result<ClusterConfig> {
        Ok(ClusterConfig::load(&self.config, std::env::vars())?)
    }
}

/// Run one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Import(a) => data::import(a),
        Command::Generate(a) => data::generate(a),
        Command::Build(a) => {
            let started = std::time::Instant::now();
            let (data, erasures) = model::load_input(&a.input, || cli.load_config()).await?;
            model::build(a, data, erasures.as_ref(), started)
        }
        Command::Evaluate(a) => {
            model::evaluate(a, model::load_input(&a.input, || cli.load_config()).await?.0)
        }
        Command::Tune(a) => model::tune(a, model::load_input(&a.input, || cli.load_config()).await?.0),
        Command::Inspect(a) => model::inspect(a),
        Command::Config(a) => show_config(&cli.load_config()?, a),
        Command::Publish(a) => store::publish(&cli.load_config()?, a).await,
        Command::Rollout(a) => rollout::rollout(&cli.load_config()?, a).await,
        Command::Ingest(a) => ingest::ingest(&cli.load_config()?, a).await,
        Command::Erasure(a) => erasure::erasure(&cli.load_config()?, a).await,
        Command::Run(a) => run::run(&cli.load_config()?, a).await,
        Command::Status(a) => store::status(&cli.load_config()?, a).await,
        Command::Rollback(a) => store::rollback(&cli.load_config()?, a).await,
        Command::Gc(a) => store::gc(&cli.load_config()?, a).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
