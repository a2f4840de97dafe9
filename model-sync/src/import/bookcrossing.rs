//! Book-Crossing (Ziegler et al. 2005, a 2004 crawl of bookcrossing.com), as
//! `scripts/fetch-bookcrossing` writes it: `BX-Book-Ratings.csv` and, for titles,
//! `BX-Books.csv`. Both are read by the generic importer with the options these files need:
//!
//! - `;`-separated, every field quoted, CRLF line ends, quotes inside fields escaped with a
//!   backslash (`"Of Mice and Men (Steinbeck \"Essentials\")"`);
//! - user = `User-ID`, item = `ISBN`, weight = `Book-Rating`: explicit ratings 1-10 keep their
//!   value, 0 ("read it, did not rate it", 62% of the rows) is an implicit interaction of
//!   weight 1;
//! - no time column, so every event has ts 0 (unknown: no recency decay, and the evaluation
//!   holds out items drawn at random, and says so);
//! - names are `Book-Title` with HTML entities decoded (`&amp;` is in 21,000 rows); no
//!   categories, since the files have no genre (`Publisher` is not one);
//! - ISBNs that are rated but not in `BX-Books.csv` are items without a name, not bad rows.
//!
//! Encodings: the ratings are Latin-1 (their only non-ASCII bytes are in mistyped ISBNs).
//! `BX-Books.csv` is not in one encoding: some 3,800 fields are UTF-8 ("Stück"), 6,700 hold
//! UTF-8 that was encoded twice with bytes lost to `?` on the way ("LÃ?Â¼bbe" for "Lübbe"),
//! which no decoding restores, and none is Latin-1. It is read with [`Encoding::Auto`]: valid
//! UTF-8 as UTF-8, the damaged fields byte for byte, so they stay recognisable.

use std::path::Path;

use super::delimited::import_delimited;
use super::error::ImportError;
use super::spec::{Column, DelimitedSpec, Encoding, Escape, ItemFileSpec, Strength, TimeFormat, ZeroWeight};
use crate::dataset::Dataset;

pub(super) const RATINGS: &str = "BX-Book-Ratings.csv";
pub(super) const BOOKS: &str = "BX-Books.csv";
/// The weight of a rating of 0 (an implicit interaction); explicit ratings are 1-10.
pub(super) const IMPLICIT_WEIGHT: f32 = 1.0;
const DIR: &str =
    "a Book-Crossing directory holding BX-Book-Ratings.csv (\"User-ID\";\"ISBN\";\"Book-Rating\") \
                   and optionally BX-Books.csv (titles), as scripts/fetch-bookcrossing writes it";

pub(super) fn import(path: &Path) -> Result<Dataset, ImportError> {
    let dir = if path.is_file() { path.parent().unwrap_or(Path::new(".")) } else { path };
    let ratings = dir.join(RATINGS);
    if !ratings.is_file() {
        return Err(ImportError::Missing { path: ratings, expected: DIR.into() });
    }
    let books = dir.join(BOOKS);
    let col = |name: &str| Column::Name(name.into());
    let spec = DelimitedSpec {
        path: ratings,
        delimiter: Some(';'),
        has_header: true,
        user: col("User-ID"),
        item: col("ISBN"),
        strength: Strength::Weight(col("Book-Rating")),
        time: None,
        time_format: TimeFormat::Auto,
        zero_weight: ZeroWeight::Implicit,
        implicit_weight: IMPLICIT_WEIGHT,
        encoding: Encoding::Latin1,
        escape: Escape::Backslash,
        items: books.is_file().then(|| ItemFileSpec {
            delimiter: Some(';'),
            name: Some(col("Book-Title")),
            escape: Escape::Backslash,
            decode_html: true,
            ..ItemFileSpec::new(books, col("ISBN"))
        }),
    };
    import_delimited(&spec, format!("bookcrossing:{}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import, Source};

    /// The real files' shape: quoted, `;`, CRLF, backslash escapes, Latin-1 and UTF-8 bytes,
    /// HTML entities, ratings of 0.
    #[test]
    fn reads_the_bx_layout() {
        let dir = tempfile::tempdir().unwrap();
        let mut ratings = b"\"User-ID\";\"ISBN\";\"Book-Rating\"\r\n\
            \"276725\";\"034545104X\";\"0\"\r\n\
            \"276726\";\"0155061224\";\"5\"\r\n\
            \"11676\";\"\\\"0432534220\\\"\";\"6\"\r\n\
            \"276727\";\"0446520802\";\"x\"\r\n"
            .to_vec();
        ratings.extend_from_slice(b"\"57850\";\"225315398\xc9\";\"3\"\r\n");
        std::fs::write(dir.path().join(RATINGS), ratings).unwrap();
        let mut books = b"\"ISBN\";\"Book-Title\";\"Book-Author\";\"Publisher\"\r\n\
            \"034545104X\";\"Of Mice and Men (Steinbeck \\\"Essentials\\\")\";\"John Steinbeck\";\"Penguin\"\r\n\
            \"0155061224\";\"Mary-Kate &amp; Ashley\";\"M\";\"Simon &amp; Schuster\"\r\n"
            .to_vec();
        books.extend_from_slice(
            "\"3462021095\";\"Schwarzer Tee mit drei Stück Zucker\";\"R\";\"K\"\r\n".as_bytes(),
        );
        books.extend_from_slice(b"\"3404921038\";\"Wie Barney es sieht.\";\"M\";\"L\xc3?\xc2\xbcbbe\"\r\n");
        std::fs::write(dir.path().join(BOOKS), books).unwrap();

        let d = import(&Source::BookCrossing(dir.path().into())).unwrap();
        assert_eq!(d.report.source, format!("bookcrossing:{}", dir.path().display()));
        let got: Vec<(&str, &str, f32, i64)> = d
            .events
            .iter()
            .map(|e| (&*d.users[e.user as usize], &*d.items[e.item as usize], e.weight, e.ts))
            .collect();
        assert_eq!(
            got,
            [
                ("276725", "034545104X", 1.0, 0),
                ("276726", "0155061224", 5.0, 0),
                ("11676", "\"0432534220\"", 6.0, 0),
                ("57850", "225315398É", 3.0, 0),
            ]
        );
        assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (5, 4, 1));
        assert_eq!(d.report.rows_zero_weight, 1);
        assert_eq!(d.report.bad_examples, ["BX-Book-Ratings.csv:5: weight \"x\" is not a number"]);
        let name = |isbn: &str| {
            let i = d.items.iter().position(|x| x == isbn).unwrap() as u32;
            d.item_meta.get(&i).and_then(|m| m.name.clone())
        };
        assert_eq!(name("034545104X").as_deref(), Some("Of Mice and Men (Steinbeck \"Essentials\")"));
        assert_eq!(name("0155061224").as_deref(), Some("Mary-Kate & Ashley"));
        assert_eq!(name("3462021095").as_deref(), Some("Schwarzer Tee mit drei Stück Zucker"));
        assert_eq!(name("\"0432534220\""), None);
        assert!(d.item_meta.values().all(|m| m.categories.is_empty()));
        let books = &d.report.files[1];
        assert_eq!((books.file.as_str(), books.rows_read, books.rows_bad), (BOOKS, 4, 0));
    }

    #[test]
    fn missing_ratings_name_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = import(&Source::BookCrossing(dir.path().into())).unwrap_err().to_string();
        assert!(err.contains(RATINGS) && err.contains("fetch-bookcrossing"), "{err}");
    }
}
