//! Tracing set-up shared by the georec binaries: `RUST_LOG` filter, text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber; logs go to stderr so command output stays on stdout. Text
/// logs are coloured only when stderr is a terminal, so files, pipes and CI logs get no ANSI
/// escape codes.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests calling into binaries' code) is harmless: keep the first.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
