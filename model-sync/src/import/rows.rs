//! Reading delimited files row by row, with per-file bad-row accounting, and parsing the
//! field types every importer shares (ids, weights, timestamps).

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::{Column, ImportError};
use crate::dataset::{DatasetBuilder, ImportReport};
use crate::manifest::days_from_civil;

/// How a delimited file is laid out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) delimiter: u8,
    /// Off for formats like MovieLens 100K whose titles contain bare quotes.
    pub(super) quoting: bool,
    pub(super) header: bool,
}

/// How many fields a data row must have.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fields {
    Exactly(usize),
    AtLeast(usize),
}

/// An open delimited file, its header read, ready to stream rows.
pub(super) struct Table {
    path: PathBuf,
    /// File name used in bad-row examples.
    name: String,
    reader: csv::Reader<BufReader<File>>,
    header: Option<Vec<String>>,
    /// What a good file looks like, for error messages.
    expected: String,
}

impl Table {
    pub(super) fn open(
        path: &Path,
        layout: Layout,
        expected: impl Into<String>,
    ) -> Result<Table, ImportError> {
        let expected = expected.into();
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => {
                ImportError::Missing { path: path.into(), expected: expected.clone() }
            }
            _ => ImportError::Io { path: path.into(), source },
        })?;
        // Headers are read by hand (has_headers(false)) so record positions stay raw lines.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(layout.delimiter)
            .quoting(layout.quoting)
            .has_headers(false)
            .flexible(true)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let mut header = None;
        if layout.header {
            let mut rec = ByteRecord::new();
            if !reader
                .read_byte_record(&mut rec)
                .map_err(|source| ImportError::Csv { path: path.into(), source })?
            {
                return Err(ImportError::Empty { path: path.into(), expected });
            }
            let names = rec.iter().map(|f| text(f).trim_start_matches('\u{feff}').trim().to_string());
            header = Some(names.collect());
        }
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        Ok(Table { path: path.into(), name, reader, header, expected })
    }

    /// Index of `col`: names need a header and match exactly, else ignoring ASCII case.
    pub(super) fn column(&self, col: &Column) -> Result<usize, ImportError> {
        let header = self.header.as_deref().unwrap_or_default();
        let found = match col {
            Column::Index(i) if self.header.is_none() || *i < header.len() => Some(*i),
            Column::Index(_) => None,
            Column::Name(n) => header
                .iter()
                .position(|h| h == n)
                .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(n))),
        };
        found.ok_or_else(|| ImportError::NoColumn {
            path: self.path.clone(),
            column: col.to_string(),
            header: if self.header.is_some() {
                header.to_vec()
            } else {
                vec!["no header: use 0-based indexes".into()]
            },
            expected: self.expected.clone(),
        })
    }

    /// Stream data rows through `row`; an `Err(reason)` from it marks the row bad. Returns the
    /// file's tally, or an error when the file has no good rows or more than half are bad.
    pub(super) fn rows(
        mut self,
        fields: Fields,
        mut row: impl FnMut(&ByteRecord) -> Result<(), String>,
    ) -> Result<ImportReport, ImportError> {
        let fields = match (&self.header, fields) {
            (Some(h), Fields::AtLeast(_)) => Fields::Exactly(h.len()),
            (_, f) => f,
        };
        let mut tally = ImportReport { source: self.name.clone(), ..ImportReport::default() };
        let mut rec = ByteRecord::new();
        while self
            .reader
            .read_byte_record(&mut rec)
            .map_err(|source| ImportError::Csv { path: self.path.clone(), source })?
        {
            let line = rec.position().map_or(0, |p| p.line());
            tally.rows_read += 1;
            let result = match fields {
                Fields::Exactly(n) if rec.len() != n => {
                    Err(format!("expected {n} fields, found {}", rec.len()))
                }
                Fields::AtLeast(n) if rec.len() < n => {
                    Err(format!("expected at least {n} fields, found {}", rec.len()))
                }
                _ => row(&rec),
            };
            match result {
                Ok(()) => tally.rows_ok += 1,
                Err(reason) => tally.bad_row(&self.name, line, reason),
            }
        }
        if tally.rows_read == 0 {
            return Err(ImportError::Empty { path: self.path, expected: self.expected });
        }
        if tally.rows_ok == 0 || tally.rows_bad * 2 > tally.rows_read {
            return Err(ImportError::TooManyBad {
                path: self.path,
                read: tally.rows_read,
                bad: tally.rows_bad,
                examples: tally.bad_examples,
                expected: self.expected,
            });
        }
        tracing::debug!(file = %self.path.display(), rows = tally.rows_read, bad = tally.rows_bad, "read file");
        Ok(tally)
    }
}

/// Add one file's tally to the dataset's report.
pub(super) fn absorb(b: &mut DatasetBuilder, tally: &ImportReport) {
    let r = b.report_mut();
    r.rows_read += tally.rows_read;
    r.rows_ok += tally.rows_ok;
    r.rows_bad += tally.rows_bad;
    let room = ImportReport::MAX_EXAMPLES.saturating_sub(r.bad_examples.len());
    r.bad_examples.extend(tally.bad_examples.iter().take(room).cloned());
}

/// A field as text: UTF-8 when it is valid UTF-8, else Latin-1 (old datasets such as
/// MovieLens 100K are Latin-1; Latin-1 accents almost never form valid UTF-8 by chance).
pub(super) fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Field `i` as trimmed text; callers have checked the field count, so a missing one is "".
pub(super) fn field(rec: &ByteRecord, i: usize) -> Cow<'_, str> {
    match text(rec.get(i).unwrap_or_default()) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

pub(super) fn id<'r>(rec: &'r ByteRecord, i: usize, what: &str) -> Result<Cow<'r, str>, String> {
    let v = field(rec, i);
    if v.is_empty() {
        return Err(format!("empty {what} id"));
    }
    Ok(v)
}

pub(super) fn parse_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        Ok(_) => Err(format!("weight {s:?} is not > 0")),
        Err(_) => Err(format!("weight {s:?} is not a number")),
    }
}

pub(super) fn split_categories(s: &str, sep: char) -> Vec<String> {
    s.split(sep).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// A timestamp from an optional column: empty means unknown (0).
pub(super) fn optional_timestamp(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    parse_timestamp(s)
}

/// Unix seconds from an integer or float (fraction dropped), `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS[.fff][Z]`; date-times are taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("timestamp {s:?} is not unix seconds or YYYY-MM-DD[ HH:MM:SS]");
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if !s.contains(['-', ':']) || s.starts_with('-') {
        return match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() < 1e15 => Ok(x.trunc() as i64),
            _ => Err(bad()),
        };
    }
    let num = |a: usize, b: usize| -> Result<u32, String> {
        let part = s.get(a..b).filter(|p| p.bytes().all(|c| c.is_ascii_digit())).ok_or_else(bad)?;
        part.parse().map_err(|_| bad())
    };
    if s.len() < 10 || s.as_bytes()[4] != b'-' || s.as_bytes()[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (i64::from(num(0, 4)?), num(5, 7)?, num(8, 10)?);
    let next = if m == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, m + 1, 1) };
    if !(1..=12).contains(&m) || d == 0 || i64::from(d) > next - days_from_civil(y, m, 1) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let rest = &s[10..];
    if !rest.is_empty() {
        if !rest.starts_with([' ', 'T']) {
            return Err(bad());
        }
        let time = rest[1..].strip_suffix('Z').unwrap_or(&rest[1..]);
        let time = match time.split_once('.') {
            Some((t, frac)) if !frac.is_empty() && frac.bytes().all(|c| c.is_ascii_digit()) => t,
            Some(_) => return Err(bad()),
            None => time,
        };
        let b = time.as_bytes();
        if b.len() != 8 || b[2] != b':' || b[5] != b':' {
            return Err(bad());
        }
        let off = 11;
        let (h, mi, sec) = (num(off, off + 2)?, num(off + 3, off + 5)?, num(off + 6, off + 8)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        secs += i64::from(h * 3600 + mi * 60 + sec);
    }
    Ok(secs)
}

/// A timestamp a format requires: empty is a bad row, not 0.
pub(super) fn required_timestamp(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty timestamp".into());
    }
    parse_timestamp(s)
}
