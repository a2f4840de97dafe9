//! Importers: generic delimited files, MovieLens, Olist and Book-Crossing into a [`Dataset`].
//!
//! Importers are strict about rows they cannot use but never drop them silently: a bad row
//! (wrong field count, empty id, bad weight or timestamp, dangling reference) is counted in
//! the [`ImportReport`] with its file and 1-based line. A file whose rows are mostly bad fails
//! the whole import, because that nearly always means a wrong format or column mapping, and a
//! model built from the few surviving rows would be quietly wrong. Rows skipped on purpose
//! (weight 0 under [`ZeroWeight::Drop`]) are counted too. The report counts the rows of the
//! interaction files; item metadata and lookup files have their own tallies.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::dataset::{Dataset, DatasetBuilder, FileRole, ItemMeta};

mod bookcrossing;
mod movielens;
mod olist;
mod rows;
#[cfg(test)]
mod tests;

use rows::{
    absorb, delimiter_name, field, first_line, id, optional_timestamp, parse_weight, required_timestamp,
    sniff_delimiter, split_categories, weight, Fields, Layout, Reject, Table,
};
pub use rows::{parse_timestamp, zero_weight_hint};

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
    /// A Book-Crossing directory: `BX-Book-Ratings.csv` (+ `BX-Books.csv` for titles), as
    /// `scripts/fetch-bookcrossing` writes it.
    BookCrossing(PathBuf),
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
    /// A numeric column (rating, quantity, ...), which must be > 0; 0 is handled as
    /// [`DelimitedSpec::zero_weight`] says.
    Weight(Column),
    /// An event-type column mapped through a weight table.
    Event { column: Column, weights: EventWeights },
}

/// What a weight of 0 means. Many rating exports (Book-Crossing, some shop exports) use 0
/// for "interacted, did not rate", which is not a weight: it has to be read as something.
/// (Variant docs are also the CLI's help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroWeight {
    /// A bad row, like any weight that is not > 0: nothing is guessed
    #[default]
    Error,
    /// An implicit interaction (seen, not rated), kept with the implicit weight
    Implicit,
    /// Skipped, and counted in the import report as dropped
    Drop,
}

/// How the bytes of a file become text. (Variant docs are also the CLI's help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// Each field as UTF-8 when it is valid UTF-8, else as Latin-1: right for UTF-8, for
    /// Latin-1 (whose accents almost never form valid UTF-8 by chance) and for files mixing both
    #[default]
    Auto,
    /// UTF-8 only: a row that is not valid UTF-8 is a bad row
    Utf8,
    /// ISO-8859-1: every byte is one character
    Latin1,
}

/// How quotes inside quoted fields are escaped. Doubled quotes (`""`) always work. (Variant
/// docs are also the CLI's help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Escape {
    /// Only doubled quotes ("" inside a quoted field), as in RFC 4180
    #[default]
    None,
    /// Also \" for a quote and \\ for a backslash, as in MySQL exports and Book-Crossing: a
    /// backslash makes the next character literal
    Backslash,
}

impl Escape {
    fn byte(self) -> Option<u8> {
        match self {
            Escape::None => None,
            Escape::Backslash => Some(b'\\'),
        }
    }
}

/// What the values of a time column are. (Variant docs are also the CLI's help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeFormat {
    /// Unix seconds (integer or decimal), YYYY-MM-DD[ HH:MM:SS] taken as UTC, or RFC 3339
    #[default]
    Auto,
    /// Unix seconds, integer or decimal (rounded down)
    Unix,
    /// Unix milliseconds, integer or decimal (rounded down to seconds)
    UnixMs,
    /// RFC 3339 with a UTC offset: 2024-01-02T03:04:05Z, 2024-01-02 03:04:05.5+02:00
    Rfc3339,
    /// A whole number >= 0 that orders events but is no time (order_number, a sequence): n is
    /// stored as unix second n. The order is kept, and the evaluation's split on each user's
    /// latest items uses it; the popularity decay (half-life 14 days = 1,209,600 s by
    /// default) moves weights by under 1% while values stay below 10,000, so it is
    /// practically off. Live events carry real times: do not mix them with such data
    Ordinal,
}

/// A generic delimited interactions file and how to read it.
#[derive(Debug, Clone)]
pub struct DelimitedSpec {
    pub path: PathBuf,
    /// `None`: sniffed from the first line: the most frequent of `,` `;` tab `|` outside quotes,
    /// `,` when none occurs.
    pub delimiter: Option<char>,
    pub has_header: bool,
    pub user: Column,
    pub item: Column,
    pub strength: Strength,
    /// Without one every event gets ts 0; with one, an empty value also gives 0.
    pub time: Option<Column>,
    pub time_format: TimeFormat,
    /// What a weight of 0 in a [`Strength::Weight`] column means.
    pub zero_weight: ZeroWeight,
    /// The weight of a weight-0 row under [`ZeroWeight::Implicit`]; must be > 0.
    pub implicit_weight: f32,
    pub encoding: Encoding,
    pub escape: Escape,
    pub items: Option<ItemFileSpec>,
}

impl DelimitedSpec {
    /// A file with a header and a sniffed delimiter, weight 1 and no timestamps.
    pub fn new(path: impl Into<PathBuf>, user: Column, item: Column) -> Self {
        DelimitedSpec {
            path: path.into(),
            delimiter: None,
            has_header: true,
            user,
            item,
            strength: Strength::Constant,
            time: None,
            time_format: TimeFormat::Auto,
            zero_weight: ZeroWeight::Error,
            implicit_weight: 1.0,
            encoding: Encoding::Auto,
            escape: Escape::None,
            items: None,
        }
    }
}

/// An optional item metadata file for [`DelimitedSpec`].
#[derive(Debug, Clone)]
pub struct ItemFileSpec {
    pub path: PathBuf,
    /// `None`: sniffed from the first line, as [`DelimitedSpec::delimiter`].
    pub delimiter: Option<char>,
    pub has_header: bool,
    pub id: Column,
    pub name: Option<Column>,
    /// Categories in this column may be `|`-separated; the first is the primary one.
    pub category: Option<Column>,
    pub encoding: Encoding,
    pub escape: Escape,
    /// Decode HTML entities (`&amp;`, `&#233;`) in names and categories.
    pub decode_html: bool,
}

impl ItemFileSpec {
    /// A file with a header and a sniffed delimiter, ids in `id`, no names or categories yet.
    pub fn new(path: impl Into<PathBuf>, id: Column) -> Self {
        ItemFileSpec {
            path: path.into(),
            delimiter: None,
            has_header: true,
            id,
            name: None,
            category: None,
            encoding: Encoding::Auto,
            escape: Escape::None,
            decode_html: false,
        }
    }
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
    /// `hint` is empty or says what to do (e.g. about rows with weight 0).
    #[error("{}: {bad} of {read} data rows are bad (first: {}); expected {expected}{}",
        path.display(), examples.join("; "), if hint.is_empty() { String::new() } else { format!(". {hint}") })]
    TooManyBad { path: PathBuf, read: u64, bad: u64, examples: Vec<String>, expected: String, hint: String },
    #[error("{}: no data rows; expected {expected}", path.display())]
    Empty { path: PathBuf, expected: String },
    #[error("{}: all {dropped} data rows have weight 0 and --zero-weight drop dropped them; nothing is left",
        path.display())]
    AllDropped { path: PathBuf, dropped: u64 },
    /// `delimiter` says how the file was split and how its header line looks split.
    #[error("{}: no column {column} in header [{}] ({delimiter}); expected {expected}",
        path.display(), header.join(", "))]
    NoColumn { path: PathBuf, column: String, header: Vec<String>, delimiter: String, expected: String },
    #[error("invalid import options: {0}")]
    Spec(String),
}

/// Read `source` into a dataset; see the module docs for how bad rows are handled.
pub fn import(source: &Source) -> Result<Dataset, ImportError> {
    match source {
        Source::Delimited(spec) => import_delimited(spec, format!("generic:{}", spec.path.display())),
        Source::MovieLens(path) => movielens::import(path),
        Source::Olist(path) => olist::import(path),
        Source::BookCrossing(path) => bookcrossing::import(path),
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

/// `spec`'s delimiter, or the one its first line looks like it uses, `,` when none shows.
fn resolve_delimiter(
    path: &Path,
    given: Option<char>,
    expected: &str,
) -> Result<(u8, &'static str), ImportError> {
    if let Some(c) = given {
        return Ok((ascii_delimiter(c)?, ""));
    }
    Ok(match sniff_delimiter(&first_line(path, expected)?) {
        Some(d) => (d, " (sniffed from the first line)"),
        None => (b',', " (the first line shows no , ; tab or |)"),
    })
}

fn import_delimited(spec: &DelimitedSpec, source: String) -> Result<Dataset, ImportError> {
    let mut b = Dataset::builder();
    b.report_mut().source = source;
    if !(spec.implicit_weight.is_finite() && spec.implicit_weight > 0.0) {
        return Err(ImportError::Spec(format!("implicit weight {} must be > 0", spec.implicit_weight)));
    }
    let strength = match &spec.strength {
        Strength::Constant => String::new(),
        Strength::Weight(c) => format!(", weight column {c}"),
        Strength::Event { column, .. } => format!(", event-type column {column}"),
    };
    let columns = format!(
        "rows{} with user column {}, item column {}{strength}{}",
        if spec.has_header { " under a header" } else { "" },
        spec.user,
        spec.item,
        spec.time.as_ref().map(|t| format!(", time column {t}")).unwrap_or_default()
    );
    let table =
        open_table(&spec.path, spec.delimiter, spec.escape, spec.encoding, spec.has_header, &columns)?;
    let user = table.column(&spec.user)?;
    let item = table.column(&spec.item)?;
    let time = spec.time.as_ref().map(|c| table.column(c)).transpose()?;
    let weight_col = match &spec.strength {
        Strength::Constant => None,
        Strength::Weight(c) => Some((table.column(c)?, None)),
        Strength::Event { column, weights } => Some((table.column(column)?, Some(weights))),
    };
    let min =
        [Some(user), Some(item), time, weight_col.map(|w| w.0)].into_iter().flatten().max().unwrap_or(0) + 1;
    let mut implicit = 0u64;
    let tally = table.rows(Fields::AtLeast(min), |rec| {
        let u = id(rec, user, "user")?;
        let i = id(rec, item, "item")?;
        let mut zero = false;
        let w = match weight_col {
            None => 1.0,
            Some((col, None)) => {
                let raw = field(rec, col);
                zero = raw.parse::<f32>() == Ok(0.0);
                weight(&raw, spec.zero_weight, spec.implicit_weight)?
            }
            Some((col, Some(table))) => {
                let ev = field(rec, col);
                table.get(&ev).ok_or_else(|| format!("unknown event type {ev:?}"))?
            }
        };
        let ts = match time {
            None => 0,
            Some(col) => optional_timestamp(&field(rec, col), spec.time_format)?,
        };
        b.push(&u, &i, w, ts);
        // Dropped and bad zero-weight rows are counted by the table; kept ones here.
        implicit += u64::from(zero);
        Ok(())
    })?;
    absorb(&mut b, &tally, FileRole::Interactions);
    b.report_mut().rows_zero_weight += implicit;
    b.report_mut().rows_implicit += implicit;
    if let Some(items) = &spec.items {
        import_item_file(&mut b, items)?;
    }
    Ok(b.finish())
}

/// Open a delimited file: the delimiter given or sniffed, the layout asked for, and what its
/// rows should hold (`columns`) for the error when they do not.
fn open_table(
    path: &std::path::Path,
    delimiter: Option<char>,
    escape: Escape,
    encoding: Encoding,
    has_header: bool,
    columns: &str,
) -> Result<Table, ImportError> {
    let (delimiter, how) = resolve_delimiter(path, delimiter, columns)?;
    let expected = format!("{}-separated{how} {columns}", delimiter_name(delimiter));
    let layout = Layout { escape: escape.byte(), encoding, ..Layout::new(delimiter, true, has_header) };
    Table::open(path, layout, expected)
}

fn import_item_file(b: &mut DatasetBuilder, spec: &ItemFileSpec) -> Result<(), ImportError> {
    let columns = format!("item rows with id column {}", spec.id);
    let table =
        open_table(&spec.path, spec.delimiter, spec.escape, spec.encoding, spec.has_header, &columns)?;
    let id_col = table.column(&spec.id)?;
    let name_col = spec.name.as_ref().map(|c| table.column(c)).transpose()?;
    let cat_col = spec.category.as_ref().map(|c| table.column(c)).transpose()?;
    let min = [Some(id_col), name_col, cat_col].into_iter().flatten().max().unwrap_or(0) + 1;
    let html = |s: &str| -> String {
        if spec.decode_html {
            html_escape::decode_html_entities(s).trim().to_string()
        } else {
            s.to_string()
        }
    };
    let tally = table.rows(Fields::AtLeast(min), |rec| {
        let item = id(rec, id_col, "item")?;
        let name = name_col.map(|c| html(&field(rec, c))).filter(|n| !n.is_empty());
        let mut categories = cat_col.map(|c| split_categories(&field(rec, c), '|')).unwrap_or_default();
        if spec.decode_html {
            categories = categories.iter().map(|c| html(c)).filter(|c| !c.is_empty()).collect();
        }
        b.meta(&item, ItemMeta { name, categories });
        Ok::<(), Reject>(())
    })?;
    absorb(b, &tally, FileRole::Items);
    Ok(())
}
