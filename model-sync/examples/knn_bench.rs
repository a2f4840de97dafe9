//! Latency of `Model::knn` (the exact search through the item lists) on a built model, as a
//! region node calls it for a live fold-in.
//!
//!   cargo run --release -p model-sync --example knn_bench -- target/bench-build/model-100k/model.bin [queries]
//!
//! Decodes the payload, then searches with the vectors of an evenly spread sample of users
//! (each user left out of its own answer) on one thread, and prints p50/p99/max per query,
//! then the same queries on every core for throughput, and the recall@K of the stored
//! neighbour lists (which are `knn` answers) against exact neighbours for 1000 users.

use std::time::{Duration, Instant};

use anyhow::Context;
use model::blob;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().context("usage: knn_bench MODEL.bin [QUERIES]")?;
    let queries: usize = args.next().map(|q| q.parse()).transpose()?.unwrap_or(20_000);
    let t = Instant::now();
    let model = blob::decode(std::fs::File::open(&path).with_context(|| format!("opening {path}"))?)?;
    let users = model.users.len();
    println!(
        "decoded {path} in {:.2}s: {users} users, {} items",
        t.elapsed().as_secs_f64(),
        model.items.len()
    );
    let k = model.params.neighbours;
    let step = (users / queries.max(1)).max(1);
    let sample: Vec<(u32, Vec<_>)> =
        (0..users).step_by(step).take(queries).map(|u| (u as u32, model.user_vector(u as u32))).collect();

    // Warm up this thread's scratch space, then time every query.
    for (u, v) in sample.iter().take(100) {
        model.knn(v, k, Some(*u));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(sample.len());
    let mut found = 0usize;
    let budget = model::live::LIVE_SCAN_BUDGET;
    let mut capped = 0usize;
    let mut slowest: Vec<(Duration, u64, usize, model::neighbours::SearchPath)> = Vec::new();
    for (u, v) in &sample {
        let t = Instant::now();
        let f = model.knn_within(v, k, Some(*u), budget);
        times.push(t.elapsed());
        slowest.push((t.elapsed(), f.scanned, v.len(), f.path));
        found += f.neighbours.len();
        capped += usize::from(f.path == model::neighbours::SearchPath::Capped);
    }
    times.sort_unstable();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    if std::env::var_os("KNN_SLOWEST").is_some() {
        for s in slowest.iter().take(10) {
            println!("slow: {:?} scanned {} items {} {:?}", s.0, s.1, s.2, s.3);
        }
    }
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "knn k={k} budget={budget}: {} queries on 1 thread: p50 {:.0} us, p99 {:.0} us, max {:.0} us, mean {:.1} neighbours, {capped} capped",
        times.len(),
        us(at(0.50)),
        us(at(0.99)),
        us(at(1.0)),
        found as f64 / times.len() as f64
    );

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for chunk in sample.chunks(sample.len().div_ceil(threads)) {
            let model = &model;
            s.spawn(move || {
                for (u, v) in chunk {
                    model.knn(v, k, Some(*u));
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!("{threads} threads: {:.0} queries/s", sample.len() as f64 / secs);
    let (recall, users) = model_sync::build::stored_recall(&model, 1000, model.params.seed);
    println!("neighbour recall@{k} vs exact cosine: {recall:.4} ({users} users)");
    Ok(())
}
