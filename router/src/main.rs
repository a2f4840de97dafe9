//! `router [--config regions.toml] [--listen ADDR]`: see the library docs.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use cluster_config::ClusterConfig;
use cluster_config::{AdminToken, ADMIN_TOKEN_VAR};
use router::settings::{Cli, Settings};
use router::AppState;
use tracing::{info, warn};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cluster_config::telemetry::init(cli.json_logs);

    let settings = match ClusterConfig::load(&cli.config, std::env::vars()) {
        Err(e) => return fail(e),
        Ok(cluster) => match Settings::new(&cluster, cli.listen.as_deref(), &cli.tuning) {
            Err(e) => return fail(e),
            Ok(s) => s,
        },
    };
    let admin_token = AdminToken::from_env();
    if admin_token.is_none() {
        warn!("{ADMIN_TOKEN_VAR} is not set: POST /failover will answer 403");
    }
    let listener = match TcpListener::bind(settings.listen) {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", settings.listen)),
    };
    let state = match AppState::new(settings, admin_token) {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot set up metrics: {e}")),
    };
    info!(
        listen = %listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
        regions = ?state.regions.names(),
        rate_limits = state.limiter.is_some(),
        "router listening"
    );
    // Probes and the acceptor need little: one thread. Requests run on the worker threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let served = runtime.block_on(async {
        let signalled = match signalled() {
            Ok(s) => s,
            Err(e) => return Err(std::io::Error::other(format!("cannot watch for SIGTERM: {e}"))),
        };
        router::run(listener, state, signalled).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("server failed: {e}")),
    }
}

/// Completes on the first SIGINT or SIGTERM: stop gracefully.
fn signalled() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    Ok(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        info!(signal = name, "stopping: requests in flight finish");
    })
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("router: {e}");
    ExitCode::from(2)
}
