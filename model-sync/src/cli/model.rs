//! `build`, `evaluate` and `inspect`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tracing::info;

use crate::build::build as build_model;
use crate::dataset::Dataset;
use crate::eval::{
    evaluate as run_evaluation, Evaluation, LiveProtocol, Protocol, RecommenderScores, SplitKind,
};
use crate::tune::{tune as run_tuning, Grid};
use crate::{dataset, ingest, model_dir};
use cluster_config::ClusterConfig;
use model::blob;
use model::manifest::{self, Manifest, MANIFEST_FILE, PAYLOAD_FILE};
use model::model::BuildParams;
use model::neighbours::Weighting;
use store::Credentials;

use super::units::human_bytes;

/// `--weighting`: a [`Weighting`] as the command line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightingArg {
    /// The summed weight itself (ratings, event weights).
    Raw,
    /// 1 for every interaction: what was chosen, not how often or how strongly.
    Binary,
    /// `ln(1 + w)`: repeat interactions count, with diminishing returns.
    Log,
}

impl From<WeightingArg> for Weighting {
    fn from(w: WeightingArg) -> Self {
        match w {
            WeightingArg::Raw => Weighting::Raw,
            WeightingArg::Binary => Weighting::Binary,
            WeightingArg::Log => Weighting::Log,
        }
    }
}

/// Model parameters shared by `build`, `evaluate`, `tune` and `run`. They start from the
/// defaults, or from a parameters file (`tune` writes `DATA/params.json`, which is read when
/// present unless `--untuned`); any flag given overrides the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ParamArgs {
    /// Parameters file (JSON, as `tune` writes it); default: DATA/params.json when it exists.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// Ignore DATA/params.json: start from the defaults.
    #[arg(long, conflicts_with = "params")]
    pub untuned: bool,
    /// Neighbours kept per user (K of user-KNN) [default: 50].
    #[arg(long)]
    pub neighbours: Option<usize>,
    /// How interaction weights enter similarities and scores [default: raw].
    #[arg(long, value_enum)]
    pub weighting: Option<WeightingArg>,
    /// Same as --weighting binary.
    #[arg(long, conflicts_with = "weighting")]
    pub binary: bool,
    /// Exponent of the items' IDF factor in user vectors, 0..=4 (0 = none) [default: 0].
    #[arg(long)]
    pub idf: Option<f64>,
    /// Shrink similarities by n/(n+S), n = items two users share (0 = none) [default: 0].
    #[arg(long)]
    pub shrink: Option<f64>,
    /// Neighbours must be more similar than this [default: 0].
    #[arg(long)]
    pub min_similarity: Option<f64>,
    /// Share of popularity in user-KNN scores, 0..=1 [default: 0].
    #[arg(long)]
    pub popularity_blend: Option<f64>,
    /// List entries a neighbour search reads before capping the longest lists [default: 4000000].
    #[arg(long)]
    pub scan_budget: Option<u64>,
    /// Half-life of item popularity decay, in days (0 = no decay) [default: 14].
    #[arg(long)]
    pub half_life_days: Option<f64>,
    /// Seed for every random choice [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Where the parameters came from, for the output.
pub const TUNED_FILE: &str = "params.json";

impl ParamArgs {
    /// The parameters in effect, and where they started from (the file read, if any).
    pub fn resolve(&self, data: Option<&Path>) -> anyhow::Result<(BuildParams, Option<PathBuf>)> {
        let file = match (&self.params, data) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(dir)) if !self.untuned && dir.join(TUNED_FILE).is_file() => {
                Some(dir.join(TUNED_FILE))
            }
            _ => None,
        };
        let mut p = match &file {
            Some(f) => {
                let text = std::fs::read(f).with_context(|| format!("reading parameters {}", f.display()))?;
                serde_json::from_slice::<BuildParams>(&text)
                    .with_context(|| format!("parsing parameters {}", f.display()))?
            }
            None => BuildParams::default(),
        };
        fn set<T>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut p.neighbours, self.neighbours);
        set(
            &mut p.weighting,
            self.weighting.map(Weighting::from).or(self.binary.then_some(Weighting::Binary)),
        );
        set(&mut p.idf, self.idf);
        set(&mut p.shrink, self.shrink);
        set(&mut p.min_similarity, self.min_similarity);
        set(&mut p.popularity_blend, self.popularity_blend);
        set(&mut p.scan_budget, self.scan_budget);
        set(&mut p.popularity_half_life_days, self.half_life_days);
        set(&mut p.seed, self.seed);
        p.validate()?;
        Ok((p, file))
    }

    /// [`ParamArgs::resolve`], saying on stderr which file the parameters came from.
    pub fn resolve_and_say(&self, data: Option<&Path>) -> anyhow::Result<BuildParams> {
        let (p, file) = self.resolve(data)?;
        match file {
            Some(f) => eprintln!("parameters from {} (with any flags given): {}", f.display(), p.describe()),
            None => eprintln!("parameters: {}", p.describe()),
        }
        Ok(p)
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
    /// Users sampled to measure neighbour recall against an exhaustive exact search.
    #[arg(long, default_value_t = 1000)]
    pub recall_sample: usize,
    /// How held-out items are chosen: by time when the data has timestamps that differ,
    /// at random (seeded) otherwise.
    #[arg(long, value_enum, default_value_t = SplitKind::Auto)]
    pub split: SplitKind,
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
/// (the configuration is only loaded, by `config`, then). With `--events`, users erased on
/// request are left out of both, and the erasures honoured come back for the manifest.
pub async fn load_input(
    a: &InputArgs,
    config: impl FnOnce() -> anyhow::Result<ClusterConfig>,
) -> anyhow::Result<(Dataset, Option<manifest::Erasures>)> {
    let base = match &a.data {
        Some(dir) => dataset::read_dir(dir)?,
        None => Dataset::default(),
    };
    if !a.events {
        return Ok((base, None));
    }
    let config = config()?;
    let creds = Credentials::from_env(std::env::vars()).await;
    let primary = super::scope::primary_bucket(&config, &creds);
    let log = ingest::read_events(&primary).await?;
    let (users, items) = (base.users.len(), base.items.len());
    let merged = ingest::merge(base, &log.events);
    eprintln!(
        "events: {} from {} batch object(s) in {}/{} ({} duplicate(s) dropped, {} client retries by event_id); \
         {} new user(s), {} new item(s)",
        log.events.len(),
        log.objects,
        config.primary.bucket,
        ingest::events_prefix(&config.primary.prefix),
        log.duplicates,
        log.retried,
        merged.users.len() - users,
        merged.items.len() - items,
    );
    let erasures = ingest::read_tombstones(&primary).await?;
    let (kept, left_out) = ingest::without_erased(merged, &erasures);
    eprintln!(
        "erasures: {} user(s) erased on request ({} record object(s)); {left_out} of their interactions left out",
        erasures.len(),
        erasures.objects
    );
    Ok((kept, Some(erasures.honoured())))
}

/// Build from `data`, read since `started` (so the read time is reported).
pub fn build(
    a: &BuildArgs,
    data: Dataset,
    erasures: Option<&manifest::Erasures>,
    started: Instant,
) -> anyhow::Result<()> {
    let params = a.params.resolve_and_say(a.input.data.as_deref())?;
    if let Some(v) = a.model_version.as_deref().filter(|v| !manifest::valid_version(v)) {
        anyhow::bail!("invalid --model-version {v:?}: use letters, digits, '-', '_' and '.' (max 64)");
    }
    let read_time = started.elapsed();
    info!(users = data.users.len(), items = data.items.len(), events = data.events.len(), "dataset read");
    let built = build_model(&data, &params)?;
    let evaluation =
        if a.evaluate { Some(run_evaluation(&data, &params, &Protocol::default())?) } else { None };

    let written =
        model_dir::write(&a.out, &built, &params, a.model_version.as_deref(), evaluation.as_ref(), erasures)
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
    println!("  {}", built.search.describe(params.neighbours));
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
    let protocol = Protocol {
        holdout: a.holdout,
        recall_sample: a.recall_sample,
        split: a.split,
        ..Protocol::default()
    };
    let params = a.params.resolve_and_say(a.input.data.as_deref())?;
    let e = run_evaluation(&data, &params, &protocol)?;
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
    let params = a.params.resolve_and_say(a.input.data.as_deref())?;
    let e = crate::eval::evaluate_live(data, &params, &protocol)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(());
    }
    println!("protocol: {}", e.protocol_text);
    println!(
        "split at {} ({}), training interactions {}, test users {} ({} known to the model, {} new)",
        e.split_ts,
        model::manifest::rfc3339(e.split_ts),
        e.train_interactions,
        e.test_users,
        e.known_users,
        e.test_users - e.known_users
    );
    print_scores(&e.protocol.cutoffs, &e.recommenders);
    println!(
        "live fold-in per user (vector + neighbour search + scoring): p50 {:.0} us, p99 {:.0} us",
        e.live_p50_us, e.live_p99_us
    );
    Ok(())
}

pub fn print_evaluation(e: &Evaluation) {
    println!("protocol: {}", e.protocol_text);
    if let Some(w) = &e.split.warning {
        println!("warning: {w}");
    }
    println!("parameters: {}", e.params_text);
    println!(
        "test users {}, held-out items {}, training interactions {}",
        e.test_users, e.test_items, e.train_interactions
    );
    print_scores(&e.protocol.cutoffs, &e.recommenders);
    println!("{}", e.search_text);
}

/// P/R/HR/NDCG at each cutoff, one row per recommender, NDCG with its standard error.
fn print_scores(cutoffs: &[usize], recommenders: &[RecommenderScores]) {
    print!("{:<19}", "recommender");
    for k in cutoffs {
        print!(
            " {:>8} {:>8} {:>8} {:>17}",
            format!("P@{k}"),
            format!("R@{k}"),
            format!("HR@{k}"),
            format!("NDCG@{k} (+-se)")
        );
    }
    println!();
    for r in recommenders {
        print!("{:<19}", r.name);
        for a in &r.at {
            let m = &a.metrics;
            let ndcg = if a.stderr.ndcg > 0.0 {
                format!("{:.4} +-{:.4}", m.ndcg, a.stderr.ndcg)
            } else {
                format!("{:.4}", m.ndcg)
            };
            print!(" {:>8.4} {:>8.4} {:>8.4} {:>17}", m.precision, m.recall, m.hit_rate, ndcg);
        }
        println!();
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  model-sync tune --data data/bookcrossing-ds\n  \
model-sync tune --data data/ml100k --small --json")]
pub struct TuneArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the chosen parameters (JSON); default: DATA/params.json.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Share of each user's distinct items held out (test, then validation).
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// How held-out items are chosen (see `evaluate --split`).
    #[arg(long, value_enum, default_value_t = SplitKind::Auto)]
    pub split: SplitKind,
    /// A smaller grid (20 settings per weighting, 2 weightings): for a quick run.
    #[arg(long)]
    pub small: bool,
    /// Print the trials as JSON.
    #[arg(long)]
    pub json: bool,
    /// Parameters not in the grid (half-life, scan budget, seed, ...) come from here.
    #[command(flatten)]
    pub params: ParamArgs,
}

pub fn tune(a: &TuneArgs, data: Dataset) -> anyhow::Result<()> {
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        anyhow::bail!("--holdout must be between 0 and 1 (exclusive), got {}", a.holdout);
    }
    let out = match (&a.out, &a.input.data) {
        (Some(f), _) => f.clone(),
        (None, Some(dir)) => dir.join(TUNED_FILE),
        (None, None) => anyhow::bail!("--out FILE is needed when there is no --data directory"),
    };
    // The base: defaults and flags, never an earlier tuning's choice.
    let base = ParamArgs { untuned: a.params.params.is_none(), ..a.params.clone() }.resolve(None)?.0;
    let grid = if a.small { Grid::small() } else { Grid::default() };
    let protocol = Protocol { holdout: a.holdout, split: a.split, ..Protocol::default() };
    eprintln!("tuning over {} settings ...", grid.size());
    let started = Instant::now();
    let json = a.json;
    let mut header = false;
    let t = run_tuning(&data, &base, &protocol, &grid, |trial| {
        if json {
            return;
        }
        if !header {
            println!("{:<70} {:>17} {:>8} {:>8}", "setting", "NDCG@10 (+-se)", "R@10", "HR@10");
            header = true;
        }
        println!(
            "{:<70} {:>17} {:>8.4} {:>8.4}",
            trial.params.describe(),
            format!("{:.4} +-{:.4}", trial.ndcg, trial.ndcg_stderr),
            trial.recall,
            trial.hit_rate
        );
    })?;
    let chosen = t.chosen().clone();
    std::fs::write(&out, serde_json::to_vec_pretty(&chosen)?)
        .with_context(|| format!("writing {}", out.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    println!(
        "protocol (validation split carved from the training part; the test part is never read): {}",
        t.protocol_text
    );
    if let Some(w) = &t.split.warning {
        println!("warning: {w}");
    }
    println!(
        "fit on {} interactions, {} validation users, {} settings in {:.1}s",
        t.fit_interactions,
        t.validation_users,
        t.trials.len(),
        started.elapsed().as_secs_f64()
    );
    let best = &t.trials[t.best];
    println!("chosen: {} (validation NDCG@10 {:.4} +-{:.4})", chosen.describe(), best.ndcg, best.ndcg_stderr);
    if let Some(u) = t.untuned() {
        println!("untuned defaults: validation NDCG@10 {:.4} +-{:.4}", u.ndcg, u.ndcg_stderr);
    }
    println!("written to {} (`build` and `evaluate` with --data read it from there)", out.display());
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_from_the_tuned_file_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let args = ParamArgs::default();
        assert_eq!(args.resolve(Some(dir.path())).unwrap(), (BuildParams::default(), None));
        let tuned = BuildParams {
            weighting: Weighting::Binary,
            idf: 1.0,
            popularity_blend: 0.3,
            ..BuildParams::default()
        };
        std::fs::write(dir.path().join(TUNED_FILE), serde_json::to_vec(&tuned).unwrap()).unwrap();
        let (p, file) = args.resolve(Some(dir.path())).unwrap();
        assert_eq!((p, file), (tuned.clone(), Some(dir.path().join(TUNED_FILE))));
        let flags = ParamArgs { popularity_blend: Some(0.0), neighbours: Some(20), ..ParamArgs::default() };
        let (p, _) = flags.resolve(Some(dir.path())).unwrap();
        assert_eq!(p, BuildParams { popularity_blend: 0.0, neighbours: 20, ..tuned });
        let untuned = ParamArgs { untuned: true, ..ParamArgs::default() };
        assert_eq!(untuned.resolve(Some(dir.path())).unwrap().0, BuildParams::default());
        let bad = ParamArgs { popularity_blend: Some(2.0), ..ParamArgs::default() };
        let e = bad.resolve(None).unwrap_err().to_string();
        assert!(e.contains("popularity_blend"), "{e}");
    }
}
