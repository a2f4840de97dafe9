//! Latency of the requests a model swap overlaps, against the steady latency before it.
//!
//! Closed-loop load on one region node (N connections, every request `force_refresh`, so
//! each answer is computed from the model); at FLIP_AT seconds it runs FLIP, a shell command
//! that points the node's region at another version. Afterwards it places the swap from what
//! it saw: the swap ended before the first answer from the new version was read, and took
//! what the node's `georec_model_swap_duration_seconds` says. It prints the steady p99 before
//! the flip, the slowest request that overlapped the swap, and the slowest request in an
//! equally long window just before the flip (what the machine does without a swap), each
//! against the target (2x the steady p99).
//!
//!   cargo run --release -p loadtest --example swap_latency -- URL USERS CONNECTIONS SECONDS FLIP_AT FLIP
//!
//! USERS: requests go to users `u0000000` .. (generated data's ids), uniformly at random.
//!
//! With `SWAP_LATENCY_TRACE=FILE` it also writes every request (start on CLOCK_MONOTONIC, the
//! clock of `perf record -k mono`, and latency, in ns) with the windows it placed, as JSON, so
//! the slow requests can be matched against a scheduler trace (`scripts/swap-stalls`).

use std::time::Duration;

use anyhow::{bail, Context};
use loadtest::client::Client;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// Requests in the first second are not part of the steady figures (connections opening).
const WARM_UP: Duration = Duration::from_secs(1);
/// Added before the swap's start as placed from the answers: the window is a little wider
/// than the swap, never narrower.
const MARGIN: Duration = Duration::from_millis(50);

struct Request {
    at: Duration,
    latency: Duration,
    version: Option<String>,
    ok: bool,
}

impl Request {
    fn done(&self) -> Duration {
        self.at + self.latency
    }

    fn overlaps(&self, from: Duration, to: Duration) -> bool {
        self.at < to && self.done() > from
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, users, connections, seconds, flip_at, flip] = args.as_slice() else {
        bail!("usage: swap_latency URL USERS CONNECTIONS SECONDS FLIP_AT FLIP (see the file's header)");
    };
    let users: u32 = users.parse().context("USERS: a number of users")?;
    let connections: u64 = connections.parse().context("CONNECTIONS: a number")?;
    let run_for = Duration::from_secs_f64(seconds.parse().context("SECONDS: seconds of load")?);
    let flip_at = Duration::from_secs_f64(flip_at.parse().context("FLIP_AT: seconds into the run")?);
    if users == 0 || connections == 0 || flip_at <= WARM_UP || flip_at >= run_for {
        bail!("need USERS > 0, CONNECTIONS > 0 and {WARM_UP:?} < FLIP_AT < SECONDS");
    }
    let base = url.trim_end_matches('/').to_string();
    let client =
        Client::new(format!("{base}/recommendations"), Duration::from_secs(5), 10)?.force_refresh(true);
    let before =
        client.recommend("u0000000", None).await.model_version.context("the node does not answer")?;
    let swaps_before = swap_seconds(&base).await?;

    let start = Instant::now();
    let wall = std::time::SystemTime::now();
    let start_mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .context("cannot read CLOCK_MONOTONIC")?;
    let flip = flip.clone();
    let flipper = tokio::spawn(async move {
        tokio::time::sleep(flip_at).await;
        let at = start.elapsed();
        let status = tokio::process::Command::new("sh").arg("-c").arg(&flip).status().await;
        (at, status)
    });
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(c);
                let mut done = Vec::new();
                while start.elapsed() < run_for {
                    let user = format!("u{:07}", rng.random_range(0..users));
                    let sent = Instant::now();
                    let outcome = client.recommend(&user, None).await;
                    done.push(Request {
                        at: sent - start,
                        latency: sent.elapsed(),
                        ok: outcome.is_ok(),
                        version: outcome.model_version,
                    });
                }
                done
            })
        })
        .collect();
    let mut requests = Vec::new();
    for w in workers {
        requests.extend(w.await?);
    }
    let (flipped_at, status) = flipper.await?;
    let status = status.context("cannot run FLIP")?;
    if !status.success() {
        bail!("FLIP failed ({status})");
    }
    let failed = requests.iter().filter(|r| !r.ok).count();
    let Some(first_new) = requests
        .iter()
        .filter(|r| r.version.as_deref().is_some_and(|v| v != before))
        .map(Request::done)
        .min()
    else {
        bail!("no answer came from a version other than {before}: did FLIP point the node's region at another version?");
    };
    let took = Duration::from_secs_f64(swap_seconds(&base).await? - swaps_before);
    let to = first_new;
    let from = to.saturating_sub(took + MARGIN).max(flipped_at);

    let steady: Vec<Duration> =
        requests.iter().filter(|r| r.at >= WARM_UP && r.done() <= flipped_at).map(|r| r.latency).collect();
    let during: Vec<Duration> = requests.iter().filter(|r| r.overlaps(from, to)).map(|r| r.latency).collect();
    let quiet_from = flipped_at.saturating_sub(to - from).max(WARM_UP);
    let quiet: Vec<Duration> =
        requests.iter().filter(|r| r.overlaps(quiet_from, flipped_at)).map(|r| r.latency).collect();
    let (steady_p99, during_max) = (quantile(&steady, 0.99), quantile(&during, 1.0));

    println!(
        "swap_latency: {connections} connections for {run_for:?}, {} requests, {failed} failed",
        requests.len()
    );
    println!(
        "steady ({:.1} s to the flip): {} requests, p50 {}, p99 {}, max {}",
        WARM_UP.as_secs_f64(),
        steady.len(),
        ms(quantile(&steady, 0.5)),
        ms(steady_p99),
        ms(quantile(&steady, 1.0))
    );
    println!(
        "swap from {before}: flipped at {:.2} s, node swap took {}, first new answer at {:.2} s; window {:.2} .. {:.2} s",
        flipped_at.as_secs_f64(),
        ms(took),
        to.as_secs_f64(),
        from.as_secs_f64(),
        to.as_secs_f64()
    );
    // The target: no request slower than twice the steady p99.
    let mark = steady_p99 * 2;
    let against_mark = |max: Duration| if max <= mark { "met" } else { "not met" };
    println!(
        "requests overlapping the swap: {}, p99 {}, max {} (2x steady p99 = {}: {})",
        during.len(),
        ms(quantile(&during, 0.99)),
        ms(during_max),
        ms(mark),
        against_mark(during_max)
    );
    let quiet_max = quantile(&quiet, 1.0);
    println!(
        "same-length window just before the flip (no swap): {} requests, max {} (same mark: {})",
        quiet.len(),
        ms(quiet_max),
        against_mark(quiet_max)
    );
    let mut slowest: Vec<&Request> = requests.iter().filter(|r| r.overlaps(from, to)).collect();
    slowest.sort_unstable_by_key(|r| std::cmp::Reverse(r.latency));
    let show = |r: &&Request| {
        let t = r.at.as_secs_f64() - to.as_secs_f64();
        format!("{} at {t:+.3} s ({})", ms(r.latency), r.version.as_deref().unwrap_or("failed"))
    };
    let clock = |d: Duration| {
        let t = (wall + d).duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:02}:{:02}:{:06.3}", t.as_secs() / 3600 % 24, t.as_secs() / 60 % 60, t.as_secs_f64() % 60.0)
    };
    println!("clock: flip at {} UTC, first new answer at {} UTC", clock(flipped_at), clock(to));
    println!(
        "slowest overlapping (sent relative to the first new answer): {}",
        slowest.iter().take(5).map(show).collect::<Vec<_>>().join(", ")
    );
    if let Some(path) = std::env::var_os("SWAP_LATENCY_TRACE") {
        let ns = |d: Duration| d.as_nanos() as u64;
        let trace = serde_json::json!({
            "clock": "CLOCK_MONOTONIC",
            "start_ns": ns(start_mono),
            "steady_p99_ns": ns(steady_p99),
            "flipped_at_ns": ns(flipped_at),
            "swap_window_ns": [ns(from), ns(to)],
            "quiet_window_ns": [ns(quiet_from), ns(flipped_at)],
            "requests": requests.iter().map(|r| [ns(r.at), ns(r.latency)]).collect::<Vec<_>>(),
        });
        std::fs::write(&path, trace.to_string())
            .with_context(|| format!("cannot write SWAP_LATENCY_TRACE {}", path.to_string_lossy()))?;
    }
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}

/// Total seconds the node has spent swapping (`georec_model_swap_duration_seconds_sum`).
async fn swap_seconds(base: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await?.error_for_status()?.text().await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("georec_model_swap_duration_seconds_sum"))
        .context("the node's /metrics has no georec_model_swap_duration_seconds_sum")?;
    let value = line.rsplit(' ').next().unwrap_or_default();
    value.parse().with_context(|| format!("unreadable metric line {line:?}"))
}

/// The `q` quantile (nearest rank) of `xs`; zero when empty.
fn quantile(xs: &[Duration], q: f64) -> Duration {
    let mut sorted = xs.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
