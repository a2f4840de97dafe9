//! Reading delimited files row by row, with per-file bad-row accounting, and parsing the
//! field types every importer shares (ids, weights, timestamps).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::error::ImportError;
use super::spec::{Column, Encoding, TimeFormat, ZeroWeight};
use crate::dataset::{DatasetBuilder, FileReport, FileRole, ImportReport};

/// How a delimited file is laid out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) delimiter: u8,
    /// Off for formats like MovieLens 100K whose titles contain bare quotes.
    pub(super) quoting: bool,
    pub(super) header: bool,
    /// Inside quoted fields this byte escapes the next one (`\"` in MySQL exports); doubled
    /// quotes (`""`) still work too.
    pub(super) escape: Option<u8>,
    pub(super) encoding: Encoding,
}

impl Layout {
    /// No escape character, [`Encoding::Auto`].
    pub(super) const fn new(delimiter: u8, quoting: bool, header: bool) -> Layout {
        Layout { delimiter, quoting, header, escape: None, encoding: Encoding::Auto }
    }
}

/// How many fields a data row must have.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fields {
    Exactly(usize),
    AtLeast(usize),
}

/// Why a row was not turned into data.
#[derive(Debug)]
pub(super) enum Reject {
    /// A bad row, and why.
    Bad(String),
    /// Weight 0 under [`ZeroWeight::Error`] (the raw value): a bad row, counted apart so the
    /// error can suggest `--zero-weight`.
    ZeroWeight(String),
    /// Skipped on purpose (weight 0 under [`ZeroWeight::Drop`]): counted, neither ok nor bad.
    Drop,
}

impl From<String> for Reject {
    fn from(reason: String) -> Self {
        Reject::Bad(reason)
    }
}

impl From<&str> for Reject {
    fn from(reason: &str) -> Self {
        Reject::Bad(reason.into())
    }
}

/// One data row and how its bytes become text.
pub(super) struct Rec<'r> {
    raw: &'r ByteRecord,
    encoding: Encoding,
}

/// An open delimited file, its header read, ready to stream rows.
pub(super) struct Table {
    path: PathBuf,
    /// File name used in bad-row examples.
    name: String,
    reader: csv::Reader<LineTracker<BufReader<File>>>,
    header: Option<Vec<String>>,
    delimiter: u8,
    /// The delimiter the first line looks like it uses, for a missing column's error.
    looks_like: Option<u8>,
    encoding: Encoding,
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
        let file = open_file(path, &expected)?;
        // Headers are read by hand (has_headers(false)) so record positions stay raw lines.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(layout.delimiter)
            .quoting(layout.quoting)
            .escape(layout.escape)
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(LineTracker::new(BufReader::with_capacity(1 << 20, file)));
        let mut header = None;
        let mut looks_like = None;
        if layout.header {
            let mut rec = ByteRecord::new();
            if !reader
                .read_byte_record(&mut rec)
                .map_err(|source| ImportError::Csv { path: path.into(), source })?
            {
                return Err(ImportError::Empty { path: path.into(), expected });
            }
            let names = rec.iter().map(|f| {
                let name = match layout.encoding {
                    Encoding::Utf8 => String::from_utf8_lossy(f),
                    enc => decode(f, enc),
                };
                name.trim_start_matches('\u{feff}').trim().to_string()
            });
            header = Some(names.collect());
            looks_like = sniff_delimiter(&first_line(path, &expected)?);
        }
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
        Ok(Table {
            path: path.into(),
            name,
            reader,
            header,
            delimiter: layout.delimiter,
            looks_like,
            encoding: layout.encoding,
            expected,
        })
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
        let mut delimiter = format!("read as {}-separated", delimiter_name(self.delimiter));
        if let Some(other) = self.looks_like.filter(|&d| d != self.delimiter) {
            delimiter += &format!(
                "; the header line looks {}-separated (--delimiter {})",
                delimiter_name(other),
                delimiter_flag(other)
            );
        }
        found.ok_or_else(|| ImportError::NoColumn {
            path: self.path.clone(),
            column: col.to_string(),
            header: if self.header.is_some() {
                header.to_vec()
            } else {
                vec!["no header: use 0-based indexes".into()]
            },
            delimiter,
            expected: self.expected.clone(),
        })
    }

    /// Stream data rows through `row`; a [`Reject`] from it marks the row bad or dropped.
    /// Returns the file's tally, or an error when the file has no good rows or more than half
    /// of the rows not dropped are bad.
    pub(super) fn rows(
        mut self,
        fields: Fields,
        mut row: impl FnMut(&Rec) -> Result<(), Reject>,
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
            let line = rec.position().map_or(0, |p| self.reader.get_mut().line_of(p));
            tally.rows_read += 1;
            let result = match fields {
                Fields::Exactly(n) if rec.len() != n => {
                    Err(Reject::Bad(format!("expected {n} fields, found {}", rec.len())))
                }
                Fields::AtLeast(n) if rec.len() < n => {
                    Err(Reject::Bad(format!("expected at least {n} fields, found {}", rec.len())))
                }
                _ => match utf8_error(&rec, self.encoding) {
                    Some(reason) => Err(Reject::Bad(reason)),
                    None => row(&Rec { raw: &rec, encoding: self.encoding }),
                },
            };
            match result {
                Ok(()) => tally.rows_ok += 1,
                Err(Reject::Bad(reason)) => tally.bad_row(&self.name, line, reason),
                Err(Reject::ZeroWeight(w)) => {
                    tally.rows_zero_weight += 1;
                    tally.bad_row(&self.name, line, format!("weight {w:?} is 0 (see --zero-weight)"));
                }
                Err(Reject::Drop) => {
                    tally.rows_zero_weight += 1;
                    tally.rows_dropped += 1;
                }
            }
        }
        if tally.rows_read == 0 {
            return Err(ImportError::Empty { path: self.path, expected: self.expected });
        }
        if tally.rows_ok == 0 && tally.rows_bad == 0 {
            return Err(ImportError::AllDropped { path: self.path, dropped: tally.rows_dropped });
        }
        if tally.rows_ok == 0 || tally.rows_bad * 2 > tally.rows_read - tally.rows_dropped {
            return Err(ImportError::TooManyBad {
                path: self.path,
                read: tally.rows_read,
                bad: tally.rows_bad,
                examples: tally.bad_examples,
                expected: self.expected,
                hint: zero_weight_hint(tally.rows_zero_weight),
            });
        }
        tracing::debug!(file = %self.path.display(), rows = tally.rows_read, bad = tally.rows_bad, "read file");
        Ok(tally)
    }
}

fn open_file(path: &Path, expected: &str) -> Result<File, ImportError> {
    File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ImportError::Missing { path: path.into(), expected: expected.into() },
        _ => ImportError::Io { path: path.into(), source },
    })
}

/// What to do about `rows` rows with weight 0, for errors and the import summary; empty for
/// none.
pub fn zero_weight_hint(rows: u64) -> String {
    if rows == 0 {
        return String::new();
    }
    let have = if rows == 1 { "row has" } else { "rows have" };
    format!(
        "{rows} {have} weight 0; if 0 means an implicit interaction (as in Book-Crossing) pass \
         --zero-weight implicit; --zero-weight drop skips them"
    )
}

/// Add one file's tally to the dataset's report: interaction files make up the report's
/// `rows_*`, every file gets its line in `files`.
pub(super) fn absorb(b: &mut DatasetBuilder, tally: &ImportReport, role: FileRole) {
    let r = b.report_mut();
    if role == FileRole::Interactions {
        r.rows_read += tally.rows_read;
        r.rows_ok += tally.rows_ok;
        r.rows_bad += tally.rows_bad;
        r.rows_dropped += tally.rows_dropped;
        r.rows_zero_weight += tally.rows_zero_weight;
    }
    r.files.push(FileReport {
        file: tally.source.clone(),
        role,
        rows_read: tally.rows_read,
        rows_ok: tally.rows_ok,
        rows_bad: tally.rows_bad,
        rows_dropped: tally.rows_dropped,
    });
    let room = ImportReport::MAX_EXAMPLES.saturating_sub(r.bad_examples.len());
    r.bad_examples.extend(tally.bad_examples.iter().take(room).cloned());
}

/// The CSV reader numbers a record by where its read started, which is before the `\n` of
/// the previous record's CRLF terminator and before any blank lines the read skips, so its
/// line numbers come out too low in CRLF files and after blank lines. This sits under the
/// reader and notes every `\r` and `\n` it hands over, so [`LineTracker::line_of`] can count
/// the line breaks a record starts by skipping. Only breaks the reader has buffered but not
/// yet parsed past are kept.
struct LineTracker<R> {
    inner: R,
    /// Bytes handed to the CSV reader so far.
    offset: u64,
    /// Offsets of `\r` (false) and `\n` (true) bytes not yet behind the current record.
    breaks: VecDeque<(u64, bool)>,
}

impl<R> LineTracker<R> {
    fn new(inner: R) -> Self {
        LineTracker { inner, offset: 0, breaks: VecDeque::new() }
    }

    /// The 1-based line of the first byte of the record the reader says starts at `pos`.
    /// Records must be asked for in order: breaks before `pos` are forgotten.
    fn line_of(&mut self, pos: &csv::Position) -> u64 {
        let start = pos.byte();
        while self.breaks.front().is_some_and(|&(at, _)| at < start) {
            self.breaks.pop_front();
        }
        let (mut line, mut at) = (pos.line(), start);
        for &(offset, newline) in &self.breaks {
            if offset != at {
                break;
            }
            line += u64::from(newline);
            at += 1;
        }
        line
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &c) in buf[..n].iter().enumerate() {
            if c == b'\n' || c == b'\r' {
                self.breaks.push_back((self.offset + i as u64, c == b'\n'));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The first line of a file (at most 64 KiB), without its line break.
pub(super) fn first_line(path: &Path, expected: &str) -> Result<Vec<u8>, ImportError> {
    let io = |source| ImportError::Io { path: path.into(), source };
    let mut line = Vec::new();
    BufReader::new(open_file(path, expected)?).take(1 << 16).read_until(b'\n', &mut line).map_err(io)?;
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    Ok(line)
}

/// The delimiter a header (or first) line looks like it uses: whichever of `,` `;` tab `|`
/// occurs most often outside double quotes, the earlier one on a tie; `None` when none does.
pub(super) fn sniff_delimiter(line: &[u8]) -> Option<u8> {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for &c in line {
        if c == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(k) = CANDIDATES.iter().position(|&d| d == c) {
                counts[k] += 1;
            }
        }
    }
    let best = (0..CANDIDATES.len()).rev().max_by_key(|&k| counts[k])?;
    (counts[best] > 0).then_some(CANDIDATES[best])
}

/// `tab`, or the delimiter quoted: `';'`.
pub(super) fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        _ => format!("{:?}", char::from(d)),
    }
}

/// How to pass `d` on a command line.
fn delimiter_flag(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        b';' => "';'".into(),
        b'|' => "'|'".into(),
        _ => char::from(d).to_string(),
    }
}

/// Under [`Encoding::Utf8`], why a record is not valid UTF-8.
fn utf8_error(rec: &ByteRecord, encoding: Encoding) -> Option<String> {
    if encoding != Encoding::Utf8 || std::str::from_utf8(rec.as_slice()).is_ok() {
        return None;
    }
    let k = rec.iter().position(|f| std::str::from_utf8(f).is_err()).unwrap_or(0);
    Some(format!("field #{k} is not valid UTF-8 (see --encoding: latin1, or auto for mixed files)"))
}

/// Bytes as text in `encoding`. [`Encoding::Utf8`] rows were checked before they got here.
pub(super) fn decode(bytes: &[u8], encoding: Encoding) -> Cow<'_, str> {
    match encoding {
        Encoding::Latin1 => latin1(bytes),
        Encoding::Auto | Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => latin1(bytes),
        },
    }
}

/// ISO-8859-1: every byte is the code point of the same value, so this is the whole decoder.
/// (`encoding_rs` would give windows-1252 for the label "latin1", as browsers do, which maps
/// 0x80-0x9F to other characters.)
fn latin1(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => Cow::Borrowed(s),
        _ => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Field `i` as trimmed text; callers have checked the field count, so a missing one is "".
pub(super) fn field<'r>(rec: &Rec<'r>, i: usize) -> Cow<'r, str> {
    match decode(rec.raw.get(i).unwrap_or_default(), rec.encoding) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

pub(super) fn id<'r>(rec: &Rec<'r>, i: usize, what: &str) -> Result<Cow<'r, str>, String> {
    let v = field(rec, i);
    if v.is_empty() {
        return Err(format!("empty {what} id"));
    }
    Ok(v)
}

/// A weight that must be > 0.
pub(super) fn parse_weight(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        Ok(_) => Err(format!("weight {s:?} is not > 0")),
        Err(_) => Err(format!("weight {s:?} is not a number")),
    }
}

/// A weight > 0, or 0 handled as `zero` says (replaced by `implicit`, dropped, or bad).
/// Negative, infinite and NaN weights are always bad.
pub(super) fn weight(s: &str, zero: ZeroWeight, implicit: f32) -> Result<f32, Reject> {
    match s.parse::<f32>() {
        Ok(0.0) => match zero {
            ZeroWeight::Implicit => Ok(implicit),
            ZeroWeight::Drop => Err(Reject::Drop),
            ZeroWeight::Error => Err(Reject::ZeroWeight(s.to_string())),
        },
        _ => Ok(parse_weight(s)?),
    }
}

pub(super) fn split_categories(s: &str, sep: char) -> Vec<String> {
    s.split(sep).map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// A timestamp from an optional column: empty means unknown (0).
pub(super) fn optional_timestamp(s: &str, format: TimeFormat) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    timestamp(s, format)
}

/// A timestamp a format requires: empty is a bad row, not 0.
pub(super) fn required_timestamp(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty timestamp".into());
    }
    parse_timestamp(s)
}

/// Unix seconds from a time value in `format`; see [`TimeFormat`].
pub(super) fn timestamp(s: &str, format: TimeFormat) -> Result<i64, String> {
    let s = s.trim();
    match format {
        TimeFormat::Auto => parse_timestamp(s),
        TimeFormat::Unix => {
            unix(s, 1.0).ok_or_else(|| format!("timestamp {s:?} is not unix seconds (--time-format unix)"))
        }
        TimeFormat::UnixMs => unix(s, 1000.0)
            .ok_or_else(|| format!("timestamp {s:?} is not unix milliseconds (--time-format unix-ms)")),
        TimeFormat::Rfc3339 => s.parse::<jiff::Timestamp>().map(|t| t.as_second()).map_err(|_| {
            format!("timestamp {s:?} is not RFC 3339 with a UTC offset, e.g. 2024-01-02T03:04:05Z")
        }),
        TimeFormat::Ordinal => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(format!("order value {s:?} is not a whole number >= 0 (--time-format ordinal)")),
        },
    }
}

/// An integer or decimal count of `per_second` units as whole unix seconds, rounded down.
fn unix(s: &str, per_second: f64) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n.div_euclid(per_second as i64));
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (x / per_second).abs() < 1e15 => Some((x / per_second).floor() as i64),
        _ => None,
    }
}

/// Unix seconds from an integer or float (fraction dropped), `YYYY-MM-DD`,
/// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS[.fff]`, all taken as UTC, or an RFC 3339
/// time with its offset (`...Z`, `...+02:00`).
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || format!("timestamp {s:?} is not unix seconds, YYYY-MM-DD[ HH:MM:SS] or RFC 3339");
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if !s.contains(['-', ':']) || s.starts_with('-') {
        return match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() < 1e15 => Ok(x.trunc() as i64),
            _ => Err(bad()),
        };
    }
    // Fixed YYYY-MM-DD first, so jiff's other ISO 8601 forms (week dates, 20240102) stay out.
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    let civil = s.parse::<jiff::civil::DateTime>().map_err(|_| bad())?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp().as_second()).map_err(|_| bad())
}
