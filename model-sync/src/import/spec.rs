//! What an import reads and how: column mappings, weights, time formats, encodings and the
//! specs of generic delimited files.

use std::path::PathBuf;
use std::str::FromStr;

use super::error::ImportError;

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
    pub(super) fn byte(self) -> Option<u8> {
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

pub(super) fn ascii_delimiter(c: char) -> Result<u8, ImportError> {
    u8::try_from(c).ok().filter(|b| b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r').ok_or_else(
        || {
            ImportError::Spec(format!(
                "delimiter {c:?} must be one ASCII character other than a quote or newline"
            ))
        },
    )
}
