//! `build`, `evaluate` and `inspect`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tracing::info;

use crate::build::build as build_model;
use crate::eval::{evaluate as run_evaluation, Evaluation, Protocol};
use crate::manifest::{self, Counts, FileEntry, Manifest, FORMAT_VERSION, MANIFEST_FILE, PAYLOAD_FILE};
use crate::model::BuildParams;
use crate::{blob, dataset};

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
    fn params(&self) -> BuildParams {
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

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  model-sync build --data data/ml100k --out models/ml100k --evaluate")]
pub struct BuildArgs {
    /// Dataset directory written by `import` or `generate`.
    #[arg(long)]
    pub data: PathBuf,
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
    /// Dataset directory written by `import` or `generate`.
    #[arg(long)]
    pub data: PathBuf,
    /// Share of each user's latest distinct items held out for testing.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Users sampled to measure HNSW neighbour recall.
    #[arg(long, default_value_t = 1000)]
    pub recall_sample: usize,
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

pub fn build(a: &BuildArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let params = a.params.params();
    let data = dataset::read_dir(&a.data)?;
    let read_time = started.elapsed();
    info!(users = data.users.len(), items = data.items.len(), events = data.events.len(), "dataset read");
    let built = build_model(&data, &params)?;
    let evaluation =
        if a.evaluate { Some(run_evaluation(&data, &params, &Protocol::default())?) } else { None };

    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let payload_path = a.out.join(PAYLOAD_FILE);
    let t = Instant::now();
    let file = std::fs::File::create(&payload_path)
        .with_context(|| format!("creating {}", payload_path.display()))?;
    blob::encode(&built.model, file).with_context(|| format!("writing {}", payload_path.display()))?;
    let encode_time = t.elapsed();
    let (size, sha256) = manifest::hash_file(&payload_path)?;
    let now = manifest::now_unix();
    let version = match &a.model_version {
        Some(v) if manifest::valid_version(v) => v.clone(),
        Some(v) => {
            anyhow::bail!("invalid --model-version {v:?}: use letters, digits, '-', '_' and '.' (max 64)")
        }
        None => format!("{}-{}", manifest::compact_time(now), &sha256[..8]),
    };
    let m = &built.model;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_version: version.clone(),
        created_at: manifest::rfc3339(now),
        input_fingerprint: built.fingerprint.clone(),
        parameters: serde_json::to_value(&params)?,
        counts: Counts {
            users: m.users.len() as u64,
            items: m.items.len() as u64,
            interactions: m.interactions,
        },
        evaluation: evaluation.as_ref().map(serde_json::to_value).transpose()?,
        files: vec![FileEntry { name: PAYLOAD_FILE.into(), size, sha256 }],
    };
    std::fs::write(a.out.join(MANIFEST_FILE), manifest.to_json())?;

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

pub fn evaluate(a: &EvaluateArgs) -> anyhow::Result<()> {
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        anyhow::bail!("--holdout must be between 0 and 1 (exclusive), got {}", a.holdout);
    }
    let data = dataset::read_dir(&a.data)?;
    let protocol = Protocol { holdout: a.holdout, recall_sample: a.recall_sample, ..Protocol::default() };
    let e = run_evaluation(&data, &a.params.params(), &protocol)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print_evaluation(&e);
    }
    Ok(())
}

pub fn print_evaluation(e: &Evaluation) {
    println!("protocol: {}", e.protocol_text);
    println!(
        "test users {}, held-out items {}, training interactions {}",
        e.test_users, e.test_items, e.train_interactions
    );
    print!("{:<12}", "recommender");
    for k in &e.protocol.cutoffs {
        print!(
            " {:>8} {:>8} {:>8} {:>8}",
            format!("P@{k}"),
            format!("R@{k}"),
            format!("HR@{k}"),
            format!("NDCG@{k}")
        );
    }
    println!();
    for r in &e.recommenders {
        print!("{:<12}", r.name);
        for a in &r.at {
            let m = &a.metrics;
            print!(" {:>8.4} {:>8.4} {:>8.4} {:>8.4}", m.precision, m.recall, m.hit_rate, m.ndcg);
        }
        println!();
    }
    println!(
        "HNSW neighbour recall@{} vs exact cosine: {:.4} ({} users)",
        e.neighbours_k, e.neighbour_recall, e.neighbour_recall_users
    );
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
