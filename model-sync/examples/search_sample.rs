//! The neighbour search on a sample of a dataset's users, without building every user's
//! list: per path, the users, list entries read and time per search, at the build's budget
//! and at smaller ones, with recall against an exhaustive search.
//!
//!   cargo run --release -p model-sync --example search_sample -- DATA_DIR [USERS] [BUDGET...]

use std::time::Instant;

use anyhow::Context;
use model::model::BuildParams;
use model::neighbours::{search_exhaustive, SearchPath};
use model_sync::build::{build_sampled, NO_NEIGHBOURS};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: search_sample DATA_DIR [USERS] [BUDGET...]")?;
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let mut budgets: Vec<u64> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if budgets.is_empty() {
        budgets.push(BuildParams::default().scan_budget);
    }
    let data = model_sync::dataset::read_dir(std::path::Path::new(&dir))?;
    let t = Instant::now();
    let model = build_sampled(&data, &BuildParams::default(), NO_NEIGHBOURS)?.model;
    println!(
        "{} users, {} items; model without neighbours in {:.1}s",
        model.users.len(),
        model.items.len(),
        t.elapsed().as_secs_f64()
    );
    let k = model.params.neighbours;
    let step = (model.users.len() / n.max(1)).max(1);
    let users: Vec<u32> = (0..model.users.len() as u32).step_by(step).take(n).collect();
    let exact: Vec<Vec<(u32, f32)>> = users
        .iter()
        .map(|&u| search_exhaustive(&model.derived.index, &model.matrix, &model.user_vector(u), k, Some(u)))
        .collect();
    for budget in budgets {
        let (mut paths, mut scanned, mut recall, mut counted) = ([0usize; 3], 0u64, 0f64, 0usize);
        let mut times = Vec::with_capacity(users.len());
        let cpu_start = thread_cpu_ns();
        for (&u, ex) in users.iter().zip(&exact) {
            let q = model.user_vector(u);
            let t = Instant::now();
            let f = model.knn_within(&q, k, Some(u), budget);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            paths[match f.path {
                SearchPath::Full => 0,
                SearchPath::Pruned => 1,
                SearchPath::Capped => 2,
            }] += 1;
            scanned += f.scanned;
            if let Some(last) = ex.last() {
                let found = f.neighbours.iter().filter(|n| n.1 >= last.1 - 1e-5).count().min(ex.len());
                recall += found as f64 / ex.len() as f64;
                counted += 1;
            }
        }
        let cpu_us = thread_cpu_ns()
            .zip(cpu_start)
            .map(|(end, start)| (end - start) as f64 / 1e3 / users.len() as f64);
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "budget {budget}: full {} pruned {} capped {}; {:.0} entries per user; mean {:.0} us (on-CPU {}), p50 {:.0}, \
             p99 {:.0}; recall@{k} {:.4}; all users at this rate: {:.0} s on one core",
            paths[0],
            paths[1],
            paths[2],
            scanned as f64 / users.len() as f64,
            mean,
            cpu_us.map_or("unknown".to_string(), |c| format!("{c:.0} us")),
            times[times.len() / 2],
            times[(times.len() * 99 / 100).min(times.len() - 1)],
            recall / counted.max(1) as f64,
            mean * model.users.len() as f64 / 1e6
        );
    }
    Ok(())
}

/// Nanoseconds this thread has spent on a CPU (`/proc/thread-self/schedstat`, Linux): the
/// measure that a busy machine's time slicing does not inflate.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
