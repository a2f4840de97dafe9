//! MovieLens: the 100K layout (`u.data`, `u.item`) and the CSV layout of the later releases
//! (`ratings.csv`, `movies.csv`). Ratings become weights, titles names, genres categories.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::ImportError;
use super::rows::{
    absorb, field, id, parse_weight, required_timestamp, split_categories, Fields, Layout, Table,
};
use super::spec::Column;
use crate::dataset::{Dataset, DatasetBuilder, FileRole, ItemMeta};

/// The 19 genre flags of `u.item`, in file order.
pub const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

const U_DATA: &str = "u.data: tab-separated user, item, rating, timestamp (no header), as in MovieLens 100K";
const U_ITEM: &str =
    "u.item: '|'-separated id|title|release date|video release date|url|19 genre flags (0/1), Latin-1";
const RATINGS: &str = "ratings.csv: header userId,movieId,rating,timestamp, then comma-separated rows";
const MOVIES: &str = "movies.csv: header movieId,title,genres with genres '|'-separated";
const DIR: &str = "a MovieLens directory holding u.data (+ optional u.item) or ratings.csv (+ optional \
                   movies.csv), or a path to one of those files";

enum Layouts {
    /// `u.data` and maybe `u.item`.
    Classic(PathBuf, Option<PathBuf>),
    /// `ratings.csv` and maybe `movies.csv`.
    Csv(PathBuf, Option<PathBuf>),
}

pub(super) fn import(path: &Path) -> Result<Dataset, ImportError> {
    let sibling = |dir: &Path, name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    let layout = if path.is_dir() {
        if let Some(data) = sibling(path, "u.data") {
            Layouts::Classic(data, sibling(path, "u.item"))
        } else if let Some(ratings) = sibling(path, "ratings.csv") {
            Layouts::Csv(ratings, sibling(path, "movies.csv"))
        } else {
            return Err(ImportError::Missing { path: path.join("u.data"), expected: DIR.into() });
        }
    } else if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        if looks_like_csv(path)? {
            Layouts::Csv(path.into(), sibling(dir, "movies.csv"))
        } else {
            Layouts::Classic(path.into(), sibling(dir, "u.item"))
        }
    } else {
        return Err(ImportError::Missing { path: path.into(), expected: DIR.into() });
    };

    let mut b = Dataset::builder();
    b.report_mut().source = format!("movielens:{}", path.display());
    match layout {
        Layouts::Classic(data, items) => {
            ratings(&mut b, &data, Layout::new(b'\t', false, false), U_DATA)?;
            if let Some(items) = items {
                u_item(&mut b, &items)?;
            }
        }
        Layouts::Csv(data, items) => {
            ratings(&mut b, &data, Layout::new(b',', true, true), RATINGS)?;
            if let Some(items) = items {
                movies_csv(&mut b, &items)?;
            }
        }
    }
    Ok(b.finish())
}

/// A `.csv` name or a first line starting `userId` means the CSV layout.
fn looks_like_csv(path: &Path) -> Result<bool, ImportError> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        return Ok(true);
    }
    let io = |source| ImportError::Io { path: path.into(), source };
    // At most one line of at most 4 KiB, so sniffing a huge or binary file stays cheap.
    let mut first = Vec::new();
    BufReader::new(std::fs::File::open(path).map_err(io)?)
        .take(4096)
        .read_until(b'\n', &mut first)
        .map_err(io)?;
    Ok(first.trim_ascii_start().starts_with(b"userId"))
}

/// `u.data` or `ratings.csv`: user, item, rating (> 0), timestamp.
fn ratings(b: &mut DatasetBuilder, path: &Path, layout: Layout, expected: &str) -> Result<(), ImportError> {
    let table = Table::open(path, layout, expected)?;
    let cols = if layout.header {
        ["userId", "movieId", "rating", "timestamp"].map(|c| table.column(&Column::Name(c.into())))
    } else {
        [0, 1, 2, 3].map(Ok)
    };
    let [u, i, r, t] = cols;
    let (u, i, r, t) = (u?, i?, r?, t?);
    let tally = table.rows(Fields::Exactly(4), |rec| {
        let user = id(rec, u, "user")?;
        let item = id(rec, i, "movie")?;
        let w = parse_weight(&field(rec, r))?;
        let ts = required_timestamp(&field(rec, t))?;
        b.push(&user, &item, w, ts);
        Ok(())
    })?;
    absorb(b, &tally, FileRole::Interactions);
    Ok(())
}

/// `u.item`: titles are Latin-1 (decoded by [`super::rows::decode`]); genres are 0/1 flags.
fn u_item(b: &mut DatasetBuilder, path: &Path) -> Result<(), ImportError> {
    let table = Table::open(path, Layout::new(b'|', false, false), U_ITEM)?;
    let tally = table.rows(Fields::Exactly(5 + GENRES.len()), |rec| {
        let item = id(rec, 0, "movie")?;
        let mut categories = Vec::new();
        for (k, genre) in GENRES.iter().enumerate() {
            match &*field(rec, 5 + k) {
                "1" => categories.push(genre.to_string()),
                "0" => {}
                v => return Err(format!("genre flag {} ({genre}) is {v:?}, expected 0 or 1", k + 1).into()),
            }
        }
        let title = field(rec, 1);
        let name = (!title.is_empty()).then(|| title.into_owned());
        b.meta(&item, ItemMeta { name, categories });
        Ok(())
    })?;
    absorb(b, &tally, FileRole::Items);
    Ok(())
}

/// `movies.csv`: `movieId,title,genres`; "(no genres listed)" means none.
fn movies_csv(b: &mut DatasetBuilder, path: &Path) -> Result<(), ImportError> {
    let table = Table::open(path, Layout::new(b',', true, true), MOVIES)?;
    let [m, t, g] = ["movieId", "title", "genres"].map(|c| table.column(&Column::Name(c.into())));
    let (m, t, g) = (m?, t?, g?);
    let tally = table.rows(Fields::AtLeast(3), |rec| {
        let item = id(rec, m, "movie")?;
        let title = field(rec, t);
        let mut categories = split_categories(&field(rec, g), '|');
        categories.retain(|c| c != "(no genres listed)");
        b.meta(&item, ItemMeta { name: (!title.is_empty()).then(|| title.into_owned()), categories });
        Ok(())
    })?;
    absorb(b, &tally, FileRole::Items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import, Source};

    fn meta<'d>(d: &'d Dataset, item: &str) -> &'d ItemMeta {
        let i = d.items.iter().position(|x| x == item).unwrap() as u32;
        &d.item_meta[&i]
    }

    fn flags(on: &[usize]) -> String {
        (0..19).map(|k| if on.contains(&k) { "1" } else { "0" }).collect::<Vec<_>>().join("|")
    }

    #[test]
    fn classic_with_latin1_titles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("u.data"),
            "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t1\n",
        )
        .unwrap();
        let mut items = format!("242|Kolya (1996)|24-Jan-1997||http://x|{}\n", flags(&[5])).into_bytes();
        items.extend_from_slice(b"302|Mis\xe9rables, Les (1995)|01-Jan-1995||http://y|");
        items.extend_from_slice(format!("{}\n", flags(&[8, 12])).as_bytes());
        std::fs::write(dir.path().join("u.item"), items).unwrap();

        for src in [dir.path().to_path_buf(), dir.path().join("u.data")] {
            let d = import(&Source::MovieLens(src)).unwrap();
            assert_eq!((d.users.len(), d.items.len(), d.events.len()), (2, 2, 3));
            assert_eq!(d.events[0].weight, 3.0);
            assert_eq!(d.events[0].ts, 881_250_949);
            let m = meta(&d, "302");
            assert_eq!(m.name.as_deref(), Some("Misérables, Les (1995)"));
            assert_eq!(m.categories, ["Drama", "Musical"]);
            assert_eq!(meta(&d, "242").categories, ["Comedy"]);
            assert_eq!(d.report.rows_bad, 0);
        }
    }

    #[test]
    fn csv_layout_with_quoted_titles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ratings.csv"),
            "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n2,1,x,1\n2,3,4.5,964982224\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("movies.csv"),
            "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n\
             3,\"American President, The (1995)\",(no genres listed)\n",
        )
        .unwrap();
        let d = import(&Source::MovieLens(dir.path().into())).unwrap();
        assert_eq!(d.events.len(), 3);
        assert_eq!(d.events[1].weight, 0.5);
        assert_eq!(d.report.rows_bad, 1);
        assert_eq!(d.report.bad_examples, ["ratings.csv:4: weight \"x\" is not a number"]);
        assert_eq!(meta(&d, "3").name.as_deref(), Some("American President, The (1995)"));
        assert!(meta(&d, "3").categories.is_empty());
        assert_eq!(meta(&d, "1").categories, ["Adventure", "Animation"]);
        // The file directly, detected by name.
        let d = import(&Source::MovieLens(dir.path().join("ratings.csv"))).unwrap();
        assert_eq!(d.events.len(), 3);
    }

    #[test]
    fn missing_directory_contents_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = import(&Source::MovieLens(dir.path().into())).unwrap_err().to_string();
        assert!(err.contains("u.data") && err.contains("ratings.csv"), "{err}");
    }
}
