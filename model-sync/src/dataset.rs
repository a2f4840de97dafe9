//! Interaction data in memory and in its normalised on-disk form.
//!
//! Every importer (`import`) and the generator (`generate`) produce a [`Dataset`]; `build` and
//! `evaluate` read one. On disk a dataset is a directory:
//!
//! - `interactions.tsv`: header `user\titem\tweight\tts`, one event per line (weight > 0,
//!   ts in unix seconds, 0 when the source had none);
//! - `items.tsv`: header `item\tname\tcategories`, categories joined by `|` (optional file);
//! - `dataset.json`: where the data came from and the import report.
//!
//! User and item IDs are the source's own strings, kept end to end. Tabs and newlines never
//! occur in IDs, names or categories (importers replace them with spaces).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const INTERACTIONS_FILE: &str = "interactions.tsv";
pub const ITEMS_FILE: &str = "items.tsv";
pub const DATASET_FILE: &str = "dataset.json";

/// One user-item interaction; ids index [`Dataset::users`] / [`Dataset::items`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    /// Strength of the interaction (rating, or event-type weight); always > 0.
    pub weight: f32,
    /// Unix seconds; 0 when unknown.
    pub ts: i64,
}

/// Name and categories of an item, when the source had them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemMeta {
    pub name: Option<String>,
    /// First entry is the primary category.
    pub categories: Vec<String>,
}

/// What an import read and what it could not use. `rows_*` count the rows of the
/// interaction files only (`rows_read = rows_ok + rows_bad + rows_dropped`); item metadata and
/// lookup files are counted apart, in [`ImportReport::files`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub source: String,
    pub rows_read: u64,
    pub rows_ok: u64,
    pub rows_bad: u64,
    /// The first few bad rows of any file: `file:line: reason`.
    pub bad_examples: Vec<String>,
    /// Interaction rows skipped on purpose (weight 0 with `--zero-weight drop`): neither ok
    /// nor bad, but counted, never silently gone.
    #[serde(default)]
    pub rows_dropped: u64,
    /// Interaction rows whose weight was 0, however they were handled: bad rows by default,
    /// kept as implicit interactions (`rows_implicit`) or dropped (`rows_dropped`) when asked.
    #[serde(default)]
    pub rows_zero_weight: u64,
    /// Interaction rows with weight 0 kept as implicit interactions (`--zero-weight implicit`),
    /// part of `rows_ok`.
    #[serde(default)]
    pub rows_implicit: u64,
    /// One tally per file read, in reading order.
    #[serde(default)]
    pub files: Vec<FileReport>,
}

/// What one file of an import held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// File name.
    pub file: String,
    pub role: FileRole,
    pub rows_read: u64,
    pub rows_ok: u64,
    pub rows_bad: u64,
    #[serde(default)]
    pub rows_dropped: u64,
}

/// What a file contributes to a dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// User-item interactions: its rows are the report's `rows_*`.
    #[default]
    Interactions,
    /// Item names and categories.
    Items,
    /// A table joined to the interactions (e.g. Olist's orders and customers).
    Lookup,
}

impl ImportReport {
    pub const MAX_EXAMPLES: usize = 5;

    pub fn bad_row(&mut self, file: &str, line: u64, reason: impl std::fmt::Display) {
        self.rows_bad += 1;
        if self.bad_examples.len() < Self::MAX_EXAMPLES {
            self.bad_examples.push(format!("{file}:{line}: {reason}"));
        }
    }
}

/// Interactions with interned ids plus item metadata.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub users: Vec<String>,
    pub items: Vec<String>,
    pub events: Vec<Event>,
    /// Metadata by item index; items without metadata are absent.
    pub item_meta: HashMap<u32, ItemMeta>,
    pub report: ImportReport,
}

impl Dataset {
    /// Start building a dataset with interning of string ids.
    pub fn builder() -> DatasetBuilder {
        DatasetBuilder::default()
    }

    /// Continue adding to this dataset (e.g. live events): known ids keep their index, new
    /// ones are appended.
    pub fn into_builder(self) -> DatasetBuilder {
        let index = |names: &[String]| names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
        DatasetBuilder { user_ids: index(&self.users), item_ids: index(&self.items), data: self }
    }
}

/// Interns string ids while events are added.
#[derive(Debug, Default)]
pub struct DatasetBuilder {
    user_ids: HashMap<String, u32>,
    item_ids: HashMap<String, u32>,
    data: Dataset,
}

impl DatasetBuilder {
    pub fn user(&mut self, id: &str) -> u32 {
        intern(&mut self.user_ids, &mut self.data.users, id)
    }

    pub fn item(&mut self, id: &str) -> u32 {
        intern(&mut self.item_ids, &mut self.data.items, id)
    }

    pub fn push(&mut self, user: &str, item: &str, weight: f32, ts: i64) {
        let user = self.user(user);
        let item = self.item(item);
        self.data.events.push(Event { user, item, weight, ts });
    }

    /// Attach metadata to an item. An item with metadata but no events is interned too;
    /// `build` leaves items without events out of the model.
    pub fn meta(&mut self, item: &str, meta: ItemMeta) {
        let idx = self.item(item);
        self.data.item_meta.insert(idx, meta);
    }

    pub fn report_mut(&mut self) -> &mut ImportReport {
        &mut self.data.report
    }

    pub fn finish(self) -> Dataset {
        self.data
    }
}

fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, id: &str) -> u32 {
    if let Some(&i) = map.get(id) {
        return i;
    }
    let i = names.len() as u32;
    names.push(id.to_string());
    map.insert(id.to_string(), i);
    i
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Format { path: PathBuf, line: u64, message: String },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io { path: path.to_path_buf(), source }
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// Write `data` as a dataset directory at `dir` (created if missing).
pub fn write_dir(data: &Dataset, dir: &Path) -> Result<(), DatasetError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(INTERACTIONS_FILE);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io_err(&path))?);
    (|| -> std::io::Result<()> {
        writeln!(w, "user\titem\tweight\tts")?;
        for e in &data.events {
            writeln!(
                w,
                "{}\t{}\t{}\t{}",
                clean(&data.users[e.user as usize]),
                clean(&data.items[e.item as usize]),
                e.weight,
                e.ts
            )?;
        }
        w.flush()
    })()
    .map_err(io_err(&path))?;

    let path = dir.join(ITEMS_FILE);
    let mut metas: Vec<(&String, &ItemMeta)> =
        data.item_meta.iter().map(|(i, m)| (&data.items[*i as usize], m)).collect();
    metas.sort_by(|a, b| a.0.cmp(b.0));
    let mut w = BufWriter::new(File::create(&path).map_err(io_err(&path))?);
    (|| -> std::io::Result<()> {
        writeln!(w, "item\tname\tcategories")?;
        for (id, m) in metas {
            let cats: Vec<String> = m.categories.iter().map(|c| clean(c).replace('|', "/")).collect();
            writeln!(w, "{}\t{}\t{}", clean(id), clean(m.name.as_deref().unwrap_or("")), cats.join("|"))?;
        }
        w.flush()
    })()
    .map_err(io_err(&path))?;

    let path = dir.join(DATASET_FILE);
    let json = serde_json::to_vec_pretty(&data.report)
        .map_err(|e| DatasetError::Json { path: path.clone(), message: e.to_string() })?;
    std::fs::write(&path, json).map_err(io_err(&path))?;
    Ok(())
}

/// Read a dataset directory written by [`write_dir`].
pub fn read_dir(dir: &Path) -> Result<Dataset, DatasetError> {
    let mut b = Dataset::builder();
    let path = dir.join(INTERACTIONS_FILE);
    let file = File::open(&path).map_err(io_err(&path))?;
    let fmt = |line: u64, message: String| DatasetError::Format { path: path.clone(), line, message };
    let mut lines = BufReader::with_capacity(1 << 20, file).lines();
    match lines.next() {
        Some(Ok(h)) if h == "user\titem\tweight\tts" => {}
        Some(Ok(h)) => {
            return Err(fmt(1, format!("expected header \"user\\titem\\tweight\\tts\", found {h:?}")))
        }
        Some(Err(e)) => return Err(io_err(&path)(e)),
        None => return Err(fmt(1, "empty file: expected a header line".into())),
    }
    for (n, line) in lines.enumerate() {
        let line_no = n as u64 + 2;
        let line = line.map_err(io_err(&path))?;
        let mut f = line.split('\t');
        let (Some(u), Some(i), Some(w), Some(t), None) = (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(fmt(line_no, "expected 4 tab-separated fields".into()));
        };
        let weight: f32 = w.parse().map_err(|_| fmt(line_no, format!("weight {w:?} is not a number")))?;
        if !(weight.is_finite() && weight > 0.0) {
            return Err(fmt(line_no, format!("weight {w:?} must be > 0")));
        }
        let ts: i64 = t.parse().map_err(|_| fmt(line_no, format!("ts {t:?} is not an integer")))?;
        b.push(u, i, weight, ts);
    }

    let path = dir.join(ITEMS_FILE);
    if path.exists() {
        let file = File::open(&path).map_err(io_err(&path))?;
        for (n, line) in BufReader::new(file).lines().enumerate().skip(1) {
            let line = line.map_err(io_err(&path))?;
            let mut f = line.split('\t');
            let (Some(id), Some(name), Some(cats)) = (f.next(), f.next(), f.next()) else {
                return Err(DatasetError::Format {
                    path: path.clone(),
                    line: n as u64 + 1,
                    message: "expected 3 tab-separated fields".into(),
                });
            };
            let meta = ItemMeta {
                name: (!name.is_empty()).then(|| name.to_string()),
                categories: cats.split('|').filter(|c| !c.is_empty()).map(str::to_string).collect(),
            };
            b.meta(id, meta);
        }
    }

    let path = dir.join(DATASET_FILE);
    if path.exists() {
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        *b.report_mut() = serde_json::from_slice(&bytes)
            .map_err(|e| DatasetError::Json { path: path.clone(), message: e.to_string() })?;
    }
    Ok(b.finish())
}
