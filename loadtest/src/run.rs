//! The load engine: open loop (requests on a fixed schedule) or closed loop (N connections
//! back to back), feeding one collector task that owns the [`Stats`].
//!
//! Open loop is coordinated-omission safe: request `i` is due at `start + i / rate` whatever
//! happened before, and its latency runs from that due time, not from when it was actually
//! sent. If the target (or this process) stalls for 300 ms, the requests due during the stall
//! report up to 300 ms more, instead of the schedule quietly waiting for the target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, Instant, Interval};

use crate::client::{Client, ErrorKind, Outcome};
use crate::plan::{Load, Plan, PlanError};
use crate::progress::{self, Progress, Window};
use crate::stats::{Sample, Stats};
use crate::users::Sampler;

type Samples = mpsc::UnboundedSender<Sample>;

/// Run `plan`. Measurement starts at `epoch` (times in the [`Stats`] count from it); load
/// starts `plan.warmup` earlier, so pass `Instant::now() + plan.warmup` to start at once.
/// Returns when every started request has answered or timed out.
pub async fn execute(
    plan: &Plan,
    users: Sampler,
    epoch: Instant,
    progress: Progress,
) -> Result<Stats, RunError> {
    plan.validate()?;
    let client = Client::new(plan.url(), plan.timeout, plan.count).map_err(RunError::Client)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(collect(rx, epoch, progress));
    match plan.load {
        Load::Open { rate, max_in_flight } => {
            open_loop(plan, client, users, epoch, rate, max_in_flight, tx).await
        }
        Load::Closed { connections } => closed_loop(plan, client, users, epoch, connections, tx).await,
    }
    collector.await.map_err(|e| RunError::Collector(e.to_string()))
}

async fn open_loop(
    plan: &Plan,
    client: Client,
    users: Sampler,
    epoch: Instant,
    rate: f64,
    max_in_flight: usize,
    tx: Samples,
) {
    let start = epoch.checked_sub(plan.warmup).unwrap_or(epoch);
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut measured = 0u64;
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let counted = due >= epoch;
        if counted && plan.bound.reached(due - epoch, measured) {
            break;
        }
        // Returns at once when behind: late sends keep their due time, so lateness is measured.
        sleep_until(due).await;
        measured += u64::from(counted);
        let user = users.sample(&mut rng).to_string();
        let hint = plan.hints.pick(&mut rng).map(str::to_string);
        let at = due.saturating_duration_since(epoch);
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            if counted {
                let _ = tx.send(Sample {
                    at,
                    latency: Duration::ZERO,
                    outcome: Outcome::failed(ErrorKind::Overload),
                });
            }
            continue;
        };
        let (client, tx) = (client.clone(), tx.clone());
        tokio::spawn(async move {
            let outcome = client.recommend(&user, hint.as_deref()).await;
            let latency = Instant::now().saturating_duration_since(due);
            if counted {
                let _ = tx.send(Sample { at, latency, outcome });
            }
            drop(permit);
        });
    }
    // Every permit back means every request finished (each is bounded by the timeout).
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
}

async fn closed_loop(
    plan: &Plan,
    client: Client,
    users: Sampler,
    epoch: Instant,
    connections: usize,
    tx: Samples,
) {
    let start = epoch.checked_sub(plan.warmup).unwrap_or(epoch);
    let started = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..connections {
        let (client, tx, users, started) = (client.clone(), tx.clone(), users.clone(), started.clone());
        let (hints, bound) = (plan.hints.clone(), plan.bound);
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed.wrapping_add(w as u64));
        workers.spawn(async move {
            sleep_until(start).await;
            loop {
                let sent = Instant::now();
                let counted = sent >= epoch;
                if counted && bound.reached(sent - epoch, started.fetch_add(1, Ordering::Relaxed)) {
                    break;
                }
                let user = users.sample(&mut rng).to_string();
                let outcome = client.recommend(&user, hints.pick(&mut rng)).await;
                if counted {
                    let _ = tx.send(Sample { at: sent - epoch, latency: sent.elapsed(), outcome });
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Owns the stats; prints progress between samples.
async fn collect(mut rx: mpsc::UnboundedReceiver<Sample>, epoch: Instant, progress: Progress) -> Stats {
    let mut stats = Stats::new();
    let mut window = Window::default();
    let mut ticker = progress.interval().map(|every| tokio::time::interval_at(epoch + every, every));
    let mut last = epoch;
    loop {
        tokio::select! {
            sample = rx.recv() => match sample {
                Some(s) => {
                    stats.record(&s);
                    window.record(&s);
                }
                None => break,
            },
            _ = tick(&mut ticker) => {
                let now = Instant::now();
                progress::show(progress, &window.line(now - epoch, now - last));
                last = now;
            }
        }
    }
    let now = Instant::now();
    if now > last && progress != Progress::Off {
        progress::show(progress, &window.line(now.saturating_duration_since(epoch), now - last));
    }
    progress::finish(progress);
    stats
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the stats collector failed: {0}")]
    Collector(String),
}
