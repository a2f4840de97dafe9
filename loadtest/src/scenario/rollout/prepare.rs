//! Before any load: the dataset variants, five builds, the base published everywhere, and
//! every node restarted with faults injected into the two drill versions.
//!
//! The models, all from `<state>/data` with the same parameters:
//! - **base**: half of the interactions (a seeded choice), what serves when the run starts;
//! - **good**: all of them ("trained on more data");
//! - **bad**: all of them with the item column shuffled, so every history is random items;
//! - **errors** and **slow**: all of them again, under their own version names, which the
//!   nodes are restarted with `GEOREC_INJECT_FAULT` for (30% of computations fail; 60 ms
//!   added to each computation).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tracing::info;

use super::case::{Case, RolloutSetup};
use crate::cluster::{self, Signal};
use crate::scenario::action::{node_url, node_version, run_model_sync, wait_node_ready};
use crate::scenario::ScenarioError;

/// The environment variable nodes read injected faults from.
pub const FAULT_ENV: &str = "GEOREC_INJECT_FAULT";

/// A model built for the run.
#[derive(Debug, Clone)]
pub struct Built {
    pub version: String,
    pub dir: PathBuf,
}

/// What [`prepare`] made.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub base: Built,
    pub candidates: BTreeMap<Case, Built>,
    /// Interactions in the full dataset and in the base's half.
    pub rows: u64,
    pub base_rows: u64,
}

/// Build everything, publish the base, restart the nodes with the faults; `stamp` makes the
/// version names of this run unique.
pub async fn prepare(
    s: &RolloutSetup,
    stamp: u64,
    http: &reqwest::Client,
) -> Result<Prepared, ScenarioError> {
    let state = abs(s.cluster.state().to_path_buf());
    let data = state.join("data");
    if !data.join("interactions.tsv").is_file() {
        return Err(prep(format!("no dataset in {} (scripts/up --generated writes one)", data.display())));
    }
    let work = state.join("rollout");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| prep(format!("{}: {e}", work.display())))?;
    let half = work.join("data-half");
    let shuffled = work.join("data-shuffled");
    let (rows, base_rows) = transform(&data, &half, |rows, rng| keep_share(rows, 0.5, rng), s.seed)
        .map_err(|e| prep(format!("half of the dataset: {e}")))?;
    transform(&data, &shuffled, shuffle_items, s.seed).map_err(|e| prep(format!("shuffled dataset: {e}")))?;

    let version = |name: &str| format!("ro{stamp}-{name}");
    let base = build(s, &half, &work, &version("base"), stamp).await?;
    let mut candidates = BTreeMap::new();
    for &case in &s.cases {
        let from = if case == Case::Bad { &shuffled } else { &data };
        candidates.insert(case, build(s, from, &work, &version(case.as_str()), stamp).await?);
    }

    info!(version = %base.version, "publishing the base model to every region");
    let publish = vec![
        "--config".into(),
        abs(s.config_path.clone()).display().to_string(),
        "publish".into(),
        "--model".into(),
        base.dir.display().to_string(),
    ];
    let log = s.cluster.log_file("loadtest-rollout");
    run_model_sync(&s.model_sync, &publish, &s.cluster.root(), &log)
        .await
        .map_err(|e| prep(format!("model-sync publish of the base: {e} (see {})", log.display())))?;

    let faults: Vec<String> = candidates
        .iter()
        .filter_map(|(case, b)| case.fault().map(|f| format!("{}:{f}", b.version)))
        .collect();
    restart_nodes(s, http, &faults.join(";"), &base.version).await?;
    Ok(Prepared { base, candidates, rows, base_rows })
}

async fn build(
    s: &RolloutSetup,
    data: &Path,
    work: &Path,
    version: &str,
    seed: u64,
) -> Result<Built, ScenarioError> {
    let dir = work.join(version);
    let args = vec![
        "--config".into(),
        abs(s.config_path.clone()).display().to_string(),
        "build".into(),
        "--data".into(),
        data.display().to_string(),
        "--out".into(),
        dir.display().to_string(),
        "--seed".into(),
        seed.to_string(),
        "--model-version".into(),
        version.to_string(),
    ];
    let log = s.cluster.log_file("loadtest-rollout");
    info!(version, data = %data.display(), "building");
    run_model_sync(&s.model_sync, &args, &s.cluster.root(), &log)
        .await
        .map_err(|e| prep(format!("model-sync build {version}: {e} (see {})", log.display())))?;
    Ok(Built { version: version.to_string(), dir })
}

/// Restart every region's node (one at a time, so the router always has the others) with
/// `faults` in its environment, and wait until it is ready on `version`. A node that runs
/// with these faults already is left alone.
async fn restart_nodes(
    s: &RolloutSetup,
    http: &reqwest::Client,
    faults: &str,
    version: &str,
) -> Result<(), ScenarioError> {
    for (region, config) in &s.config.regions {
        let name = format!("node-{region}");
        let url = node_url(config);
        let launch = s.cluster.launch_of(&name)?;
        if faults.is_empty() || launch.env_var(FAULT_ENV).is_some_and(|v| v == faults) {
            wait_for_version(http, &url, version, &name).await?;
            continue;
        }
        let launch = launch.with_env(FAULT_ENV, faults);
        let pid = s.cluster.signal(&name, Signal::Term)?;
        info!(node = %name, pid, "restarting with injected faults");
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster::alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if cluster::alive(pid) {
            cluster::send(pid, Signal::Kill)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s.cluster.start(&name, &launch)?;
        if !wait_node_ready(http, &url, Instant::now() + Duration::from_secs(60)).await {
            return Err(prep(format!(
                "{name} not ready 60 s after its restart (log {})",
                s.cluster.log_file(&name).display()
            )));
        }
        wait_for_version(http, &url, version, &name).await?;
    }
    Ok(())
}

async fn wait_for_version(
    http: &reqwest::Client,
    url: &str,
    version: &str,
    name: &str,
) -> Result<(), ScenarioError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if node_version(http, url).await.as_deref() == Some(version) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(prep(format!("{name} does not serve {version} 60 s after it was published")))
}

/// Copy the dataset directory `src` to `dst` with its interaction rows (after the header)
/// passed through `f`; returns (rows read, rows written).
pub fn transform(
    src: &Path,
    dst: &Path,
    f: impl FnOnce(Vec<String>, &mut ChaCha8Rng) -> Vec<String>,
    seed: u64,
) -> std::io::Result<(u64, u64)> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_file() && name != "interactions.tsv" {
            std::fs::copy(entry.path(), dst.join(&name))?;
        }
    }
    let reader = BufReader::new(std::fs::File::open(src.join("interactions.tsv"))?);
    let mut lines = reader.lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    if !header.starts_with("user\titem") {
        return Err(std::io::Error::other(format!(
            "{}: expected the header user<TAB>item..., found {header:?}",
            src.join("interactions.tsv").display()
        )));
    }
    let rows: Vec<String> = lines.collect::<Result<_, _>>()?;
    let read = rows.len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows = f(rows, &mut rng);
    let mut out = BufWriter::new(std::fs::File::create(dst.join("interactions.tsv"))?);
    writeln!(out, "{header}")?;
    for row in &rows {
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok((read, rows.len() as u64))
}

/// Each row kept with probability `share`.
pub fn keep_share(rows: Vec<String>, share: f64, rng: &mut ChaCha8Rng) -> Vec<String> {
    rows.into_iter().filter(|_| rng.random_bool(share)).collect()
}

/// The item column (the second) permuted across rows: users, weights and times stay, every
/// history becomes random items with the same popularity.
pub fn shuffle_items(rows: Vec<String>, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut split: Vec<Vec<String>> =
        rows.iter().map(|r| r.split('\t').map(str::to_string).collect()).collect();
    let mut items: Vec<String> = split.iter().filter_map(|r| r.get(1).cloned()).collect();
    items.shuffle(rng);
    let mut items = items.into_iter();
    for r in &mut split {
        if r.len() > 1 {
            r[1] = items.next().unwrap_or_default();
        }
    }
    split.into_iter().map(|r| r.join("\t")).collect()
}

fn abs(p: PathBuf) -> PathBuf {
    std::fs::canonicalize(&p).unwrap_or(p)
}

fn prep(what: String) -> ScenarioError {
    ScenarioError::Prepare(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(dir: &Path) {
        let mut rows = String::from("user\titem\tweight\tts\n");
        for u in 0..50 {
            for i in 0..4 {
                rows += &format!("u{u}\tp{}\t1\t{}\n", (u + i) % 20, 1_700_000_000 + i);
            }
        }
        std::fs::write(dir.join("interactions.tsv"), rows).unwrap();
        std::fs::write(dir.join("items.tsv"), "item\tname\tcategories\np0\tP0\tbooks\n").unwrap();
    }

    fn read_rows(dir: &Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(dir.join("interactions.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn half_keeps_about_half_and_the_other_files() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        dataset(src.path());
        let (read, kept) = transform(src.path(), dst.path(), |r, g| keep_share(r, 0.5, g), 3).unwrap();
        assert_eq!(read, 200);
        assert!((70..130).contains(&kept), "{kept}");
        assert_eq!(read_rows(dst.path()).len() as u64, kept);
        assert!(dst.path().join("items.tsv").is_file());
        let again = tempfile::tempdir().unwrap();
        transform(src.path(), again.path(), |r, g| keep_share(r, 0.5, g), 3).unwrap();
        assert_eq!(read_rows(dst.path()), read_rows(again.path()), "seeded");
    }

    #[test]
    fn shuffling_moves_items_between_users_and_keeps_everything_else() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        dataset(src.path());
        transform(src.path(), dst.path(), shuffle_items, 3).unwrap();
        let (before, after) = (read_rows(src.path()), read_rows(dst.path()));
        assert_eq!(before.len(), after.len());
        let column = |rows: &[Vec<String>], i: usize| -> Vec<String> {
            let mut c: Vec<String> = rows.iter().map(|r| r[i].clone()).collect();
            c.sort();
            c
        };
        assert_eq!(column(&before, 1), column(&after, 1), "the same items, as often");
        for i in [0, 2, 3] {
            let keep = |rows: &[Vec<String>]| rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
            assert_eq!(keep(&before), keep(&after), "column {i} stays");
        }
        let moved = before.iter().zip(&after).filter(|(a, b)| a[1] != b[1]).count();
        assert!(moved > 150, "{moved} of 200 rows got another item");
    }

    #[test]
    fn a_dataset_without_the_header_is_refused() {
        let (src, dst) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(src.path().join("interactions.tsv"), "u1\tp1\t1\t5\n").unwrap();
        let e = transform(src.path(), dst.path(), shuffle_items, 1).unwrap_err();
        assert!(e.to_string().contains("expected the header"), "{e}");
    }
}
