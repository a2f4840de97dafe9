//! Importers: generic delimited files, MovieLens, Olist and Book-Crossing into a [`Dataset`].
//!
//! Importers are strict about rows they cannot use but never drop them silently: a bad row
//! (wrong field count, empty id, bad weight or timestamp, dangling reference) is counted in
//! the [`ImportReport`] with its file and 1-based line. A file whose rows are mostly bad fails
//! the whole import, because that nearly always means a wrong format or column mapping, and a
//! model built from the few surviving rows would be quietly wrong. Rows skipped on purpose
//! (weight 0 under [`ZeroWeight::Drop`]) are counted too. The report counts the rows of the
//! interaction files; item metadata and lookup files have their own tallies.

use std::path::PathBuf;

use crate::dataset::Dataset;

mod bookcrossing;
mod delimited;
mod error;
mod movielens;
mod olist;
mod rows;
mod spec;
#[cfg(test)]
mod tests;

pub use error::ImportError;
pub use rows::{parse_timestamp, zero_weight_hint};
pub use spec::{
    parse_delimiter, Column, DelimitedSpec, Encoding, Escape, EventWeights, ItemFileSpec, Strength,
    TimeFormat, ZeroWeight,
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
    /// A Book-Crossing directory: `BX-Book-Ratings.csv` (+ `BX-Books.csv` for titles), as
    /// `scripts/fetch-bookcrossing` writes it.
    BookCrossing(PathBuf),
}

/// Read `source` into a dataset; see the module docs for how bad rows are handled.
pub fn import(source: &Source) -> Result<Dataset, ImportError> {
    match source {
        Source::Delimited(spec) => {
            delimited::import_delimited(spec, format!("generic:{}", spec.path.display()))
        }
        Source::MovieLens(path) => movielens::import(path),
        Source::Olist(path) => olist::import(path),
        Source::BookCrossing(path) => bookcrossing::import(path),
    }
}
