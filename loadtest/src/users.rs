//! Which user each request asks for: ids from a model, a file or a generator, drawn
//! uniformly or with a zipf skew (a few hot users, a long tail, as real traffic has).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where the ids come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A model directory (or its `model.bin`): the users it was built from.
    Model(PathBuf),
    /// A text file, one id per line; blank lines and `#` comments skipped.
    File(PathBuf),
    /// `prefix` + zero-padded index: `u0000123` for prefix `u`, width 7.
    Generated { prefix: String, count: u64, width: usize },
}

/// How ids are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Uniform,
    /// Rank `k` (1-based) drawn with probability proportional to `1 / k^s`.
    Zipf {
        s: f64,
    },
}

impl Source {
    pub fn load(&self) -> Result<Vec<String>, UsersError> {
        let ids = match self {
            Source::Model(path) => {
                let file = if path.is_dir() { path.join("model.bin") } else { path.clone() };
                let reader = std::fs::File::open(&file)
                    .map_err(|source| UsersError::Read { path: file.clone(), source })?;
                model::blob::decode(reader)
                    .map_err(|source| UsersError::Model { path: file.clone(), source })?
                    .users
            }
            Source::File(path) => std::fs::read_to_string(path)
                .map_err(|source| UsersError::Read { path: path.clone(), source })?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
            Source::Generated { prefix, count, width } => {
                (0..*count).map(|i| format!("{prefix}{i:0width$}")).collect()
            }
        };
        if ids.is_empty() {
            return Err(UsersError::Empty(self.describe()));
        }
        Ok(ids)
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Model(p) => format!("model {}", p.display()),
            Source::File(p) => format!("file {}", p.display()),
            Source::Generated { prefix, count, width } => {
                format!("{count} generated ids {prefix}{:0width$}..", 0, width = *width)
            }
        }
    }
}

/// Draws user ids; cheap to clone (the ids and the zipf table are shared).
#[derive(Debug, Clone)]
pub struct Sampler {
    ids: Arc<[String]>,
    /// Zipf: cumulative probability by rank; `ids` are shuffled (seeded) first so the hot
    /// users are not simply the smallest ids. Empty for uniform.
    cdf: Arc<[f64]>,
}

impl Sampler {
    pub fn new(mut ids: Vec<String>, dist: Dist, seed: u64) -> Result<Self, UsersError> {
        if ids.is_empty() {
            return Err(UsersError::Empty("the given list".into()));
        }
        let cdf = match dist {
            Dist::Uniform => Vec::new(),
            Dist::Zipf { s } => {
                if !(s.is_finite() && s > 0.0) {
                    return Err(UsersError::ZipfExponent(s));
                }
                ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f21));
                let mut total = 0.0;
                let mut cdf: Vec<f64> = (1..=ids.len())
                    .map(|k| {
                        total += (k as f64).powf(-s);
                        total
                    })
                    .collect();
                cdf.iter_mut().for_each(|c| *c /= total);
                cdf
            }
        };
        Ok(Sampler { ids: ids.into(), cdf: cdf.into() })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id at zipf rank `rank` (0 = hottest); for uniform, just the `rank`th id.
    pub fn ranked(&self, rank: usize) -> &str {
        &self.ids[rank]
    }

    pub fn sample(&self, rng: &mut impl rand::Rng) -> &str {
        if self.cdf.is_empty() {
            return &self.ids[rng.random_range(0..self.ids.len())];
        }
        let u: f64 = rng.random();
        let rank = self.cdf.partition_point(|&c| c < u).min(self.ids.len() - 1);
        &self.ids[rank]
    }
}

/// Convenience: load `source` and build a sampler.
pub fn sampler(source: &Source, dist: Dist, seed: u64) -> Result<Sampler, UsersError> {
    Sampler::new(source.load()?, dist, seed)
}

/// `model.bin` inside `dir`, if there is one.
pub fn model_in(dir: &Path) -> Option<PathBuf> {
    let bin = dir.join("model.bin");
    bin.is_file().then(|| dir.to_path_buf())
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode model {path}")]
    Model {
        path: PathBuf,
        #[source]
        source: model::blob::DecodeError,
    },
    #[error("no user ids in {0}")]
    Empty(String),
    #[error("--zipf-s {0} must be a positive number (1.1 is typical)")]
    ZipfExponent(f64),
}
