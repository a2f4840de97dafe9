//! Importers: generic delimited files, MovieLens and Olist into a [`Dataset`].
//!
//! Importers are strict about rows they cannot use but never drop them silently: a bad row
//! (wrong field count, empty id, bad weight or timestamp, dangling reference) is counted in
//! the [`ImportReport`] with its file and 1-based line. A file whose rows are mostly bad fails
//! the whole import, because that nearly always means a wrong format or column mapping, and a
//! model built from the few surviving rows would be quietly wrong.

use std::path::PathBuf;
use std::str::FromStr;

use crate::dataset::{Dataset, DatasetBuilder, ItemMeta};

mod movielens;
mod olist;
mod rows;
#[cfg(test)]
mod tests;

pub use rows::parse_timestamp;
use rows::{
    absorb, field, id, optional_timestamp, parse_weight, required_timestamp, split_categories, Fields,
    Layout, Table,
};

/// Where interactions come from.
// One is built per import, so the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Source {
    /// Any delimited file, mapped column by column.
    Delimited(DelimitedSpec),
    /// A MovieLens directory (`u.data` [+ `u.item`] or `ratings.csv` [+ `movies.csv`]) or one
    /// of those files directly.
    MovieLens(PathBuf),
    /// The Olist Brazilian e-commerce Kaggle directory.
    Olist(PathBuf),
}

/// A column by header name or 0-based index. Text made only of digits is an index, so a
/// header literally named "3" has to be addressed by its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Name(String),
    Index(usize),
}

impl FromStr for Column {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_string()),
        })
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Name(n) => write!(f, "{n:?}"),
            Column::Index(i) => write!(f, "#{i}"),
        }
    }
}

/// Weight of each event type, matched case-insensitively. Unknown types are bad rows rather
/// than weight 1, so a typo in the table cannot silently flatten purchases into views.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWeights(Vec<(String, f32)>);

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights(vec![("view".into(), 1.0), ("add_to_cart".into(), 3.0), ("purchase".into(), 5.0)])
    }
}

impl EventWeights {
    pub fn get(&self, event: &str) -> Option<f32> {
        self.0.iter().find(|(name, _)| name.eq_ignore_ascii_case(event)).map(|(_, w)| *w)
    }
}

impl FromStr for EventWeights {
    type Err = ImportError;
    /// Parses `view=1,add_to_cart=3,purchase=5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| ImportError::Spec(format!("event weights {s:?}: {why}"));
        let mut out = Vec::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) =
                pair.split_once('=').ok_or_else(|| bad(format!("{pair:?} is not name=weight")))?;
            let w: f32 = w.trim().parse().map_err(|_| bad(format!("weight in {pair:?} is not a number")))?;
            if !(w.is_finite() && w > 0.0) || name.trim().is_empty() {
                return Err(bad(format!("{pair:?} needs a name and a weight > 0")));
            }
            out.push((name.trim().to_ascii_lowercase(), w));
        }
        if out.is_empty() {
            return Err(bad("no event types given".into()));
        }
        Ok(EventWeights(out))
    }
}

/// How strong each interaction is.
#[derive(Debug, Clone, PartialEq)]
pub enum Strength {
    /// Every row weighs 1 (implicit feedback without a weight column).
    Constant,
    /// A numeric column (rating, quantity, ...), which must be > 0.
    Weight(Column),
    /// An event-type column mapped through a weight table.
    Event { column: Column, weights: EventWeights },
}

/// A generic delimited interactions file and how to read it.
#[derive(Debug, Clone)]
pub struct DelimitedSpec {
    pub path: PathBuf,
    pub delimiter: char,
    pub has_header: bool,
    pub user: Column,
    pub item: Column,
    pub strength: Strength,
    /// Without one every event gets ts 0; with one, an empty value also gives 0.
    pub time: Option<Column>,
    pub items: Option<ItemFileSpec>,
}

impl DelimitedSpec {
    /// A comma-separated file with a header, weight 1 and no timestamps.
    pub fn new(path: impl Into<PathBuf>, user: Column, item: Column) -> Self {
        DelimitedSpec {
            path: path.into(),
            delimiter: ',',
            has_header: true,
            user,
            item,
            strength: Strength::Constant,
            time: None,
            items: None,
        }
    }
}

/// An optional item metadata file for [`DelimitedSpec`].
#[derive(Debug, Clone)]
pub struct ItemFileSpec {
    pub path: PathBuf,
    pub delimiter: char,
    pub has_header: bool,
    pub id: Column,
    pub name: Option<Column>,
    /// Categories in this column may be `|`-separated; the first is the primary one.
    pub category: Option<Column>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{} not found; expected {expected}", path.display())]
    Missing { path: PathBuf, expected: String },
    #[error("{}: {bad} of {read} data rows are bad (first: {}); expected {expected}",
        path.display(), examples.join("; "))]
    TooManyBad { path: PathBuf, read: u64, bad: u64, examples: Vec<String>, expected: String },
    #[error("{}: no data rows; expected {expected}", path.display())]
    Empty { path: PathBuf, expected: String },
    #[error("{}: no column {column} in header [{}]; expected {expected}", path.display(), header.join(", "))]
    NoColumn { path: PathBuf, column: String, header: Vec<String>, expected: String },
    #[error("invalid import options: {0}")]
    Spec(String),
}

/// Read `source` into a dataset; see the module docs for how bad rows are handled.
pub fn import(source: &Source) -> Result<Dataset, ImportError> {
    match source {
        Source::Delimited(spec) => import_delimited(spec),
        Source::MovieLens(path) => movielens::import(path),
        Source::Olist(path) => olist::import(path),
    }
}

/// `","`, `"\t"` (either a real tab or backslash-t, since shells make both easy to pass),
/// `"tab"`, `"comma"`, `"semicolon"`, `"pipe"`, or any single ASCII character.
pub fn parse_delimiter(s: &str) -> Result<char, ImportError> {
    let c = match s {
        "\t" | "\\t" | "tab" | "TAB" => '\t',
        "comma" => ',',
        "semicolon" => ';',
        "pipe" => '|',
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => return Err(ImportError::Spec(format!("delimiter {s:?} is not a single character"))),
            }
        }
    };
    ascii_delimiter(c).map(char::from)
}

fn ascii_delimiter(c: char) -> Result<u8, ImportError> {
    u8::try_from(c).ok().filter(|b| b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r').ok_or_else(
        || {
            ImportError::Spec(format!(
                "delimiter {c:?} must be one ASCII character other than a quote or newline"
            ))
        },
    )
}

fn import_delimited(spec: &DelimitedSpec) -> Result<Dataset, ImportError> {
    let mut b = Dataset::builder();
    b.report_mut().source = format!("generic:{}", spec.path.display());
    let layout =
        Layout { delimiter: ascii_delimiter(spec.delimiter)?, quoting: true, header: spec.has_header };
    let strength = match &spec.strength {
        Strength::Constant => String::new(),
        Strength::Weight(c) => format!(", weight column {c}"),
        Strength::Event { column, .. } => format!(", event-type column {column}"),
    };
    let expected = format!(
        "{:?}-separated rows{} with user column {}, item column {}{strength}{}",
        spec.delimiter,
        if spec.has_header { " under a header" } else { "" },
        spec.user,
        spec.item,
        spec.time.as_ref().map(|t| format!(", time column {t}")).unwrap_or_default()
    );
    let table = Table::open(&spec.path, layout, expected)?;
    let user = table.column(&spec.user)?;
    let item = table.column(&spec.item)?;
    let time = spec.time.as_ref().map(|c| table.column(c)).transpose()?;
    let weight = match &spec.strength {
        Strength::Constant => None,
        Strength::Weight(c) => Some((table.column(c)?, None)),
        Strength::Event { column, weights } => Some((table.column(column)?, Some(weights))),
    };
    let min =
        [Some(user), Some(item), time, weight.map(|w| w.0)].into_iter().flatten().max().unwrap_or(0) + 1;
    let tally = table.rows(Fields::AtLeast(min), |rec| {
        let u = id(rec, user, "user")?;
        let i = id(rec, item, "item")?;
        let w = match weight {
            None => 1.0,
            Some((col, None)) => parse_weight(&field(rec, col))?,
            Some((col, Some(table))) => {
                let ev = field(rec, col);
                table.get(&ev).ok_or_else(|| format!("unknown event type {ev:?}"))?
            }
        };
        let ts = match time {
            None => 0,
            Some(col) => optional_timestamp(&field(rec, col))?,
        };
        b.push(&u, &i, w, ts);
        Ok(())
    })?;
    absorb(&mut b, &tally);
    if let Some(items) = &spec.items {
        import_item_file(&mut b, items)?;
    }
    Ok(b.finish())
}

fn import_item_file(b: &mut DatasetBuilder, spec: &ItemFileSpec) -> Result<(), ImportError> {
    let layout =
        Layout { delimiter: ascii_delimiter(spec.delimiter)?, quoting: true, header: spec.has_header };
    let expected = format!("{:?}-separated item rows with id column {}", spec.delimiter, spec.id);
    let table = Table::open(&spec.path, layout, expected)?;
    let id_col = table.column(&spec.id)?;
    let name_col = spec.name.as_ref().map(|c| table.column(c)).transpose()?;
    let cat_col = spec.category.as_ref().map(|c| table.column(c)).transpose()?;
    let min = [Some(id_col), name_col, cat_col].into_iter().flatten().max().unwrap_or(0) + 1;
    let tally = table.rows(Fields::AtLeast(min), |rec| {
        let item = id(rec, id_col, "item")?;
        let name = name_col.map(|c| field(rec, c)).filter(|n| !n.is_empty()).map(|n| n.into_owned());
        let categories = cat_col.map(|c| split_categories(&field(rec, c), '|')).unwrap_or_default();
        b.meta(&item, ItemMeta { name, categories });
        Ok(())
    })?;
    absorb(b, &tally);
    Ok(())
}
