//! The generic importer: any delimited interactions file, mapped column by column, with an
//! optional item metadata file ([`DelimitedSpec`]).

use std::path::Path;

use super::error::ImportError;
use super::rows::{
    absorb, delimiter_name, field, first_line, id, optional_timestamp, sniff_delimiter, split_categories,
    weight, Fields, Layout, Reject, Table,
};
use super::spec::{ascii_delimiter, DelimitedSpec, Encoding, Escape, ItemFileSpec, Strength};
use crate::dataset::{Dataset, DatasetBuilder, FileRole, ItemMeta};

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

pub(super) fn import_delimited(spec: &DelimitedSpec, source: String) -> Result<Dataset, ImportError> {
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
