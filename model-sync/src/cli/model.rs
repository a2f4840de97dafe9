//! `build`, `evaluate` and `inspect`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tracing::info;

use crate::build::build as build_model;
use crate::dataset::Dataset;
use crate::eval::{evaluate as run_evaluation, Evaluation, LiveProtocol, Protocol, RecommenderScores};
use crate::manifest::{self, Manifest, MANIFEST_FILE, PAYLOAD_FILE};
use crate::model::BuildParams;
use crate::store::Credentials;
use crate::{blob, dataset, ingest, model_dir};

/// Model parameters shared by `build` and `evaluate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ParamArgs {
    /// Neighbours kept per user (K of user-KNN).
    #[arg(long, default_value_t = BuildParams::default().neighbours)]
    pub neighbours: usize,
    /// HNSW links per node (M).
    #[arg(long, default_value_t = BuildParams::default().hnsw_m)]
    pub hnsw_m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = BuildParams::default().hnsw_ef_construction)]
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (>= --neighbours).
    #[arg(long, default_value_t = BuildParams::default().hnsw_ef_search)]
    pub ef_search: usize,
    /// Half-life of item popularity decay, in days (0 = no decay).
    #[arg(long, default_value_t = BuildParams::default().popularity_half_life_days)]
    pub half_life_days: f64,
    /// Treat every interaction as weight 1 instead of its rating/event weight.
    #[arg(long)]
    pub binary: bool,
    /// Seed for every random choice.
    #[arg(long, default_value_t = BuildParams::default().seed)]
    pub seed: u64,
}

impl ParamArgs {
    pub fn params(&self) -> BuildParams {
        BuildParams {
            neighbours: self.neighbours,
            hnsw_m: self.hnsw_m,
            hnsw_ef_construction: self.ef_construction,
            hnsw_ef_search: self.ef_search.max(self.neighbours),
            popularity_half_life_days: self.half_life_days,
            binary: self.binary,
            seed: self.seed,
        }
    }
}

/// What `build` and `evaluate` read: a dataset directory, ingested live events, or both.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Dataset directory written by `import` or `generate`.
    #[arg(long, required_unless_present = "events")]
    pub data: Option<PathBuf>,
    /// Add every event batch `ingest` stored in the primary bucket (deduplicated by region and
    /// event id, weighted by type); without --data the events alone are the dataset.
    #[arg(long)]
    pub events: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  model-sync build --data data/ml100k --out models/ml100k --evaluate\n  \
model-sync build --data data/shop --events --out models/shop")]
pub struct BuildArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Directory to write model.bin and manifest.json into (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Version name; default: <UTC time>-<first 8 hex of the payload sha256>.
    #[arg(long = "model-version", value_name = "VERSION")]
    pub model_version: Option<String>,
    /// Also run `evaluate` and store its figures in the manifest.
    #[arg(long)]
    pub evaluate: bool,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  model-sync evaluate --data data/ml100k --json")]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Share of each user's latest distinct items held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Users sampled to measure HNSW neighbour recall.
    #[arg(long, default_value_t = 1000)]
    pub recall_sample: usize,
    /// Measure the live fold-in instead (what region nodes serve as `user-knn-live`): a
    /// global time split; each test user's first new items after it are folded in as live
    /// events, their later items are predicted. Compared with the plain model and popularity.
    #[arg(long)]
    pub live: bool,
    /// With --live: distinct new items revealed per test user as live events.
    #[arg(long, default_value_t = 5, requires = "live")]
    pub reveal: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub params: ParamArgs,
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Local model directory (manifest.json + payload).
    #[arg(long)]
    pub model: PathBuf,
}

/// Read the input of `build` / `evaluate`: `--data`, plus the ingested events with `--events`
/// (the configuration is only loaded then).
pub async fn load_input(cli: &super::Cli, a: &InputArgs) -> anyhow::Result<Dataset> {
    let base = match &a.data {
        Some(dir) => dataset::read_dir(dir)?,
        None => Dataset::default(),
    };
    if !a.events {
        return Ok(base);
    }
    let config = cli.load_config()?;
    let creds = Credentials::from_env(std::env::vars()).await;
    let primary = super::store::primary_bucket(&config, &creds);
    let log = ingest::read_events(&primary).await?;
    let (users, items) = (base.users.len(), base.items.len());
    let merged = ingest::merge(base, &log.events);
    eprintln!(
        "events: {} from {} batch object(s) in {}/{} ({} duplicate(s) dropped); {} new user(s), {} new item(s)",
        log.events.len(),
        log.objects,
        config.primary.bucket,
        ingest::events_prefix(&config.primary.prefix),
        log.duplicates,
        merged.users.len() - users,
        merged.items.len() - items,
    );
    Ok(merged)
}

/// Build from `data`, read since `started` (so the read time is reported).
pub fn build(a: &BuildArgs, data: Dataset, started: Instant) -> anyhow::Result<()> {
    let params = a.params.params();
    if let Some(v) = a.model_version.as_deref().filter(|v| !manifest::valid_version(v)) {
        anyhow::bail!("invalid --model-version {v:?}: use letters, digits, '-', '_' and '.' (max 64)");
    }
    let read_time = started.elapsed();
    info!(users = data.users.len(), items = data.items.len(), events = data.events.len(), "dataset read");
    let built = build_model(&data, &params)?;
    let evaluation =
        if a.evaluate { Some(run_evaluation(&data, &params, &Protocol::default())?) } else { None };

    let written = model_dir::write(&a.out, &built, &params, a.model_version.as_deref(), evaluation.as_ref())
        .with_context(|| format!("writing the model to {}", a.out.display()))?;
    let (manifest, encode_time) = (&written.manifest, written.encode_time);
    let (version, size) = (&manifest.model_version, manifest.files[0].size);
    let m = &built.model;

    println!("model {version} written to {}", a.out.display());
    println!(
        "  users {}  items {}  interactions {}  pairs {}  density {:.5}",
        m.users.len(),
        m.items.len(),
        m.interactions,
        m.matrix.nnz(),
        m.matrix.nnz() as f64 / (m.users.len() as f64 * m.items.len() as f64)
    );
    println!("  payload {} ({})", human_bytes(size), manifest.files[0].sha256);
    print!("  time: read {:.2}s", read_time.as_secs_f64());
    for (step, d) in &built.timings {
        print!(", {step} {:.2}s", d.as_secs_f64());
    }
    println!(", encode {:.2}s; total {:.2}s", encode_time.as_secs_f64(), started.elapsed().as_secs_f64());
    if let Some(peak) = peak_rss() {
        println!("  peak memory {}", human_bytes(peak));
    }
    if let Some(e) = &evaluation {
        print_evaluation(e);
    }
    Ok(())
}

pub fn evaluate(a: &EvaluateArgs, data: Dataset) -> anyhow::Result<()> {
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        anyhow::bail!("--holdout must be between 0 and 1 (exclusive), got {}", a.holdout);
    }
    if a.live {
        return evaluate_live(a, &data);
    }
    let protocol = Protocol { holdout: a.holdout, recall_sample: a.recall_sample, ..Protocol::default() };
    let e = run_evaluation(&data, &a.params.params(), &protocol)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print_evaluation(&e);
    }
    Ok(())
}

fn evaluate_live(a: &EvaluateArgs, data: &Dataset) -> anyhow::Result<()> {
    if a.reveal == 0 {
        anyhow::bail!("--reveal must be at least 1");
    }
    let protocol = LiveProtocol { train_share: 1.0 - a.holdout, reveal: a.reveal, ..LiveProtocol::default() };
    let e = crate::eval::evaluate_live(data, &a.params.params(), &protocol)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    println!("protocol: {}", e.protocol_text);
    println!(
        "split at {} ({}), training interactions {}, test users {} ({} known to the model, {} new)",
        e.split_ts,
        crate::manifest::rfc3339(e.split_ts),
        e.train_interactions,
        e.test_users,
        e.known_users,
        e.test_users - e.known_users
    );
    print_scores(&e.protocol.cutoffs, &e.recommenders);
    println!(
        "live fold-in per user (vector + HNSW search + scoring): p50 {:.0} us, p99 {:.0} us",
        e.live_p50_us, e.live_p99_us
    );
    Ok(())
}

pub fn print_evaluation(e: &Evaluation) {
    println!("protocol: {}", e.protocol_text);
    println!(
        "test users {}, held-out items {}, training interactions {}",
        e.test_users, e.test_items, e.train_interactions
    );
    print_scores(&e.protocol.cutoffs, &e.recommenders);
    println!(
        "HNSW neighbour recall@{} vs exact cosine: {:.4} ({} users)",
        e.neighbours_k, e.neighbour_recall, e.neighbour_recall_users
    );
}

/// P/R/HR/NDCG at each cutoff, one row per recommender.
fn print_scores(cutoffs: &[usize], recommenders: &[RecommenderScores]) {
    print!("{:<12}", "recommender");
    for k in cutoffs {
        print!(
            " {:>8} {:>8} {:>8} {:>8}",
            format!("P@{k}"),
            format!("R@{k}"),
            format!("HR@{k}"),
            format!("NDCG@{k}")
        );
    }
    println!();
    for r in recommenders {
        print!("{:<12}", r.name);
        for a in &r.at {
            let m = &a.metrics;
            print!(" {:>8.4} {:>8.4} {:>8.4} {:>8.4}", m.precision, m.recall, m.hit_rate, m.ndcg);
        }
        println!();
    }
}

pub fn inspect(a: &InspectArgs) -> anyhow::Result<()> {
    let (manifest, path) = verify_local(&a.model)?;
    let t = Instant::now();
    let file = std::fs::File::open(&path)?;
    let model = blob::decode(file).with_context(|| format!("decoding {}", path.display()))?;
    let decode = t.elapsed();
    println!(
        "model {} (format {}), created {}",
        manifest.model_version, manifest.format_version, manifest.created_at
    );
    println!(
        "  users {}  items {}  interactions {}  categories {}",
        model.users.len(),
        model.items.len(),
        model.interactions,
        model.categories.len()
    );
    println!(
        "  payload {} verified; decode {:.3}s",
        human_bytes(manifest.files[0].size),
        decode.as_secs_f64()
    );
    if let Some(peak) = peak_rss() {
        println!("  peak memory {}", human_bytes(peak));
    }
    Ok(())
}

/// Check a local model directory's files against its manifest; returns the payload path.
pub fn verify_local(dir: &Path) -> anyhow::Result<(Manifest, PathBuf)> {
    let mpath = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&mpath)
        .with_context(|| format!("reading {} (is this a model directory from `build`?)", mpath.display()))?;
    let manifest = Manifest::from_json(&bytes).with_context(|| format!("parsing {}", mpath.display()))?;
    for f in &manifest.files {
        let (size, sha) =
            manifest::hash_file(&dir.join(&f.name)).with_context(|| format!("reading {}", f.name))?;
        if size != f.size || sha != f.sha256 {
            anyhow::bail!("{}: size/sha256 do not match the manifest (got {size} bytes, {sha})", f.name);
        }
    }
    Ok((manifest, dir.join(PAYLOAD_FILE)))
}

/// Peak resident memory of this process (VmHWM), where /proc provides it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
