//! Tests of the generic importer and the shared parsing helpers.

use std::path::Path;

use super::rows::{optional_timestamp, required_timestamp};
use super::*;
use crate::dataset::{FileRole, ItemMeta};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn col(s: &str) -> Column {
    s.parse().unwrap()
}

#[test]
fn columns_by_name_with_weights_times_and_item_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "events.csv",
        "ts,item,qty,customer\n2024-01-02 03:04:05,a,2,u1\n1700000000,b,1.5,u2\n,a,1,u2\n",
    );
    let items = write(dir.path(), "items.tsv", "sku\tcats\ttitle\na\tshoes|sport\tRunner\nb\t\t\n");
    let mut spec = DelimitedSpec::new(path, col("customer"), col("ITEM"));
    spec.strength = Strength::Weight(col("qty"));
    spec.time = Some(col("ts"));
    spec.items = Some(ItemFileSpec {
        delimiter: Some(parse_delimiter("\\t").unwrap()),
        name: Some(col("title")),
        category: Some(col("1")),
        ..ItemFileSpec::new(items, col("sku"))
    });
    let d = import(&Source::Delimited(spec)).unwrap();
    assert_eq!(d.users, ["u1", "u2"]);
    assert_eq!(d.items, ["a", "b"]);
    let got: Vec<(u32, u32, f32, i64)> = d.events.iter().map(|e| (e.user, e.item, e.weight, e.ts)).collect();
    assert_eq!(got, [(0, 0, 2.0, 1_704_164_645), (1, 1, 1.5, 1_700_000_000), (1, 0, 1.0, 0)]);
    assert_eq!(
        d.item_meta[&0],
        ItemMeta { name: Some("Runner".into()), categories: vec!["shoes".into(), "sport".into()] }
    );
    assert_eq!(d.item_meta[&1], ItemMeta::default());
    // The item file's rows are counted apart from the interactions.
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (3, 3, 0));
    let files: Vec<_> =
        d.report.files.iter().map(|f| (f.file.as_str(), f.role, f.rows_read, f.rows_ok)).collect();
    assert_eq!(files, [("events.csv", FileRole::Interactions, 3, 3), ("items.tsv", FileRole::Items, 2, 2)]);
}

#[test]
fn columns_by_index_without_header_and_event_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "clicks.tsv",
        "u1\tp1\tview\nu1\tp1\tPURCHASE\nu2\tp2\tadd_to_cart\nu2\tp3\twishlist\nu3\tp1\tview\n",
    );
    let mut spec = DelimitedSpec::new(path, Column::Index(0), Column::Index(1));
    spec.delimiter = Some(parse_delimiter("tab").unwrap());
    spec.has_header = false;
    spec.strength = Strength::Event { column: Column::Index(2), weights: EventWeights::default() };
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    let weights: Vec<f32> = d.events.iter().map(|e| e.weight).collect();
    assert_eq!(weights, [1.0, 5.0, 3.0, 1.0]);
    assert_eq!(d.report.bad_examples, ["clicks.tsv:4: unknown event type \"wishlist\""]);

    spec.strength =
        Strength::Event { column: Column::Index(2), weights: "view=2, wishlist=4".parse().unwrap() };
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!(d.events.iter().map(|e| e.weight).collect::<Vec<_>>(), [2.0, 4.0, 2.0]);
    assert_eq!(d.report.rows_bad, 2);

    // Names without a header cannot be resolved.
    spec.user = col("user");
    let err = import(&Source::Delimited(spec)).unwrap_err().to_string();
    assert!(err.contains("no column \"user\"") && err.contains("0-based"), "{err}");
}

#[test]
fn bad_rows_are_reported_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "r.csv",
        "user,item,rating,time\n\
         u1,i1,5,1\n\
         u1,i2,-1,1\n\
         ,i2,3,1\n\
         u2,i1,4\n\
         u2,i2,4,yesterday\n\
         u3,i1,2,2024-02-30\n\
         u3,i2,2,2024-02-29T12:00:00Z\n\
         u4,i1,1,1.7e9\n\
         u5,\"i,3\",1,2020-01-01\n\
         u6,i1,3,2\n\
         u7,i1,3,2\n\
         u8,i1,3,2\n",
    );
    let mut spec = DelimitedSpec::new(path, col("user"), col("item"));
    spec.strength = Strength::Weight(col("rating"));
    spec.time = Some(col("time"));
    let d = import(&Source::Delimited(spec)).unwrap();
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (12, 7, 5));
    assert_eq!(
        d.report.bad_examples,
        [
            "r.csv:3: weight \"-1\" is not > 0",
            "r.csv:4: empty user id",
            "r.csv:5: expected 4 fields, found 3",
            "r.csv:6: timestamp \"yesterday\" is not unix seconds, YYYY-MM-DD[ HH:MM:SS] or RFC 3339",
            "r.csv:7: timestamp \"2024-02-30\" is not unix seconds, YYYY-MM-DD[ HH:MM:SS] or RFC 3339",
        ]
    );
    assert_eq!(d.events[1].ts, 1_709_208_000);
    assert_eq!(d.events[2].ts, 1_700_000_000);
    assert_eq!(d.items[d.events[3].item as usize], "i,3");
}

#[test]
fn mostly_garbage_fails_with_a_useful_message() {
    let dir = tempfile::tempdir().unwrap();
    // A comma-separated file read as u.data (tab-separated): every row has one field.
    write(dir.path(), "u.data", "1,2,3,4\n5,6,7,8\n9,10,11,12\n1\t2\t3\t4\n");
    let err = import(&Source::MovieLens(dir.path().into())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::TooManyBad { read: 4, bad: 3, .. }), "{msg}");
    assert!(msg.contains("u.data: 3 of 4 data rows are bad"), "{msg}");
    assert!(msg.contains("u.data:1: expected 4 fields, found 1"), "{msg}");
    assert!(msg.contains("expected u.data: tab-separated user, item, rating, timestamp"), "{msg}");

    let empty = write(dir.path(), "empty.csv", "user,item\n");
    let err = import(&Source::Delimited(DelimitedSpec::new(empty, col("user"), col("item")))).unwrap_err();
    assert!(err.to_string().contains("no data rows"), "{err}");

    let gone = dir.path().join("nope.csv");
    let err = import(&Source::Delimited(DelimitedSpec::new(gone, col("0"), col("1")))).unwrap_err();
    assert!(matches!(err, ImportError::Missing { .. }), "{err}");
}

#[test]
fn timestamps() {
    assert_eq!(parse_timestamp("881250949"), Ok(881_250_949));
    assert_eq!(parse_timestamp("881250949.0"), Ok(881_250_949));
    assert_eq!(parse_timestamp("1970-01-02"), Ok(86_400));
    assert_eq!(parse_timestamp("2017-09-13 08:59:02"), Ok(1_505_293_142));
    assert_eq!(parse_timestamp("2017-09-13T08:59:02Z"), Ok(1_505_293_142));
    assert_eq!(parse_timestamp("2017-09-13T08:59:02.250Z"), Ok(1_505_293_142));
    for bad in ["", "nan", "2017-13-01", "2017-09-13 25:00:00", "2017-09-13X08:59:02", "2017-9-1", "1é"] {
        assert!(parse_timestamp(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_timestamp("2017-09-13T10:59:02+02:00"), Ok(1_505_293_142));
    assert_eq!(parse_timestamp(" 2017-09-13T08:59:02 "), Ok(1_505_293_142));
    assert_eq!(parse_timestamp("-86400"), Ok(-86_400));
    assert_eq!(optional_timestamp("", TimeFormat::Auto), Ok(0));
    assert!(required_timestamp("").is_err());
}

#[test]
fn delimiters_and_event_weights() {
    assert_eq!(parse_delimiter("\t").unwrap(), '\t');
    assert_eq!(parse_delimiter(";").unwrap(), ';');
    assert!(parse_delimiter("ab").is_err());
    assert!(parse_delimiter("é").is_err());
    assert_eq!(EventWeights::default().get("Add_To_Cart"), Some(3.0));
    assert!("view=0".parse::<EventWeights>().is_err());
    assert!("view".parse::<EventWeights>().is_err());
}

fn ratings(dir: &Path, body: &str) -> DelimitedSpec {
    let mut spec = DelimitedSpec::new(write(dir, "r.csv", body), col("user"), col("item"));
    spec.strength = Strength::Weight(col("rating"));
    spec
}

#[test]
fn zero_weights_are_bad_rows_unless_told_what_they_mean() {
    let dir = tempfile::tempdir().unwrap();
    let body = "user,item,rating\nu1,a,0\nu1,b,5\nu2,a,0.0\nu2,b,-1\nu3,a,NaN\nu3,b,2\nu4,a,3\nu4,b,4\n";
    let mut spec = ratings(dir.path(), body);

    // Default: bad rows, as before, with the way out in the reason and the summary's hint.
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (8, 4, 4));
    assert_eq!((d.report.rows_zero_weight, d.report.rows_implicit, d.report.rows_dropped), (2, 0, 0));
    assert_eq!(
        d.report.bad_examples,
        [
            "r.csv:2: weight \"0\" is 0 (see --zero-weight)",
            "r.csv:4: weight \"0.0\" is 0 (see --zero-weight)",
            "r.csv:5: weight \"-1\" is not > 0",
            "r.csv:6: weight \"NaN\" is not > 0",
        ]
    );

    spec.zero_weight = ZeroWeight::Implicit;
    spec.implicit_weight = 0.5;
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    let weights: Vec<f32> = d.events.iter().map(|e| e.weight).collect();
    assert_eq!(weights, [0.5, 5.0, 0.5, 2.0, 3.0, 4.0]);
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (8, 6, 2));
    assert_eq!((d.report.rows_zero_weight, d.report.rows_implicit, d.report.rows_dropped), (2, 2, 0));

    spec.zero_weight = ZeroWeight::Drop;
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!(d.events.len(), 4);
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (8, 4, 2));
    assert_eq!((d.report.rows_zero_weight, d.report.rows_implicit, d.report.rows_dropped), (2, 0, 2));
    assert_eq!(d.report.files[0].rows_dropped, 2);

    spec.implicit_weight = 0.0;
    assert!(matches!(import(&Source::Delimited(spec)), Err(ImportError::Spec(_))));
}

#[test]
fn mostly_zero_weights_fail_with_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ratings(dir.path(), "user,item,rating\nu1,a,0\nu1,b,0\nu2,a,0\nu2,b,4\n");
    let err = import(&Source::Delimited(spec.clone())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::TooManyBad { read: 4, bad: 3, .. }), "{msg}");
    assert!(
        msg.contains(
            "3 rows have weight 0; if 0 means an implicit interaction (as in Book-Crossing) pass \
             --zero-weight implicit; --zero-weight drop skips them"
        ),
        "{msg}"
    );

    // Dropping is fine while something is left, and says so when nothing is.
    let mut drop = spec;
    drop.zero_weight = ZeroWeight::Drop;
    assert_eq!(import(&Source::Delimited(drop.clone())).unwrap().events.len(), 1);
    drop.path = write(dir.path(), "zeros.csv", "user,item,rating\nu1,a,0\nu2,a,0\n");
    let err = import(&Source::Delimited(drop)).unwrap_err();
    assert!(matches!(err, ImportError::AllDropped { dropped: 2, .. }), "{err}");
}

#[test]
fn line_numbers_count_crlf_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("crlf.csv", "user,item,rating\r\nu1,a,1\r\nu2,b,x\r\nu3,\"multi\r\nline\",2\r\nu4,c,y\r\n"),
        ("lf.csv", "user,item,rating\nu1,a,1\n\nu2,b,x\nu3,\"multi\nline\",2\n\nu4,c,y\n"),
        ("mixed.csv", "user,item,rating\r\n\r\nu1,a,1\nu2,b,x\r\n\nu3,\"multi\r\nline\",2\r\nu4,c,y"),
    ] {
        let mut spec = DelimitedSpec::new(write(dir.path(), name, body), col("user"), col("item"));
        spec.strength = Strength::Weight(col("rating"));
        let d = import(&Source::Delimited(spec)).unwrap();
        let lines = match name {
            "crlf.csv" => [3, 6],
            "lf.csv" => [4, 8],
            _ => [4, 8],
        };
        assert_eq!(
            d.report.bad_examples,
            [
                format!("{name}:{}: weight \"x\" is not a number", lines[0]),
                format!("{name}:{}: weight \"y\" is not a number", lines[1]),
            ],
            "{name}"
        );
        assert_eq!(
            d.items[d.events[1].item as usize],
            if name == "lf.csv" { "multi\nline" } else { "multi\r\nline" }
        );
    }
}

#[test]
fn the_delimiter_is_sniffed_unless_given() {
    assert_eq!(rows::sniff_delimiter(b"\"User-ID\";\"ISBN\";\"Book-Rating\""), Some(b';'));
    assert_eq!(rows::sniff_delimiter(b"user\titem\tweight"), Some(b'\t'));
    assert_eq!(rows::sniff_delimiter(b"a|b,c|d"), Some(b'|'));
    assert_eq!(rows::sniff_delimiter(b"\"a;b;c\",d"), Some(b','));
    assert_eq!(rows::sniff_delimiter(b"a;b,c"), Some(b','));
    assert_eq!(rows::sniff_delimiter(b"user"), None);

    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bx.csv",
        "\"User-ID\";\"ISBN\";\"Book-Rating\"\n\"1\";\"a\";\"5\"\n\"2\";\"b\";\"6\"\n",
    );
    let mut spec = DelimitedSpec::new(path, col("User-ID"), col("ISBN"));
    spec.strength = Strength::Weight(col("Book-Rating"));
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!((d.users.len(), d.events[1].weight), (2, 6.0));

    // A wrong explicit delimiter: the error says what was used and what the header looks like.
    spec.delimiter = Some(',');
    let msg = import(&Source::Delimited(spec.clone())).unwrap_err().to_string();
    assert!(
        msg.contains(
            "no column \"User-ID\" in header [User-ID;\"ISBN\";\"Book-Rating\"] (read as ','-separated; \
                      the header line looks ';'-separated (--delimiter ';'))"
        ),
        "{msg}"
    );
    // A missing column with the right delimiter says only what was used.
    spec.delimiter = None;
    spec.user = col("user");
    let msg = import(&Source::Delimited(spec)).unwrap_err().to_string();
    assert!(msg.contains("[User-ID, ISBN, Book-Rating] (read as ';'-separated)"), "{msg}");
    assert!(msg.contains("';'-separated (sniffed from the first line) rows under a header"), "{msg}");
}

#[test]
fn backslash_escapes_and_html_entities() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(dir.path(), "e.csv", "user;item\n\"1\";\"\\\"b1\\\"\"\n\"2\";\"b2\"\n\"3\";\"b3\"\n");
    let books = write(
        dir.path(),
        "b.csv",
        "\"id\";\"title\";\"cat\"\n\
         \"\\\"b1\\\"\";\"Of Mice and Men (Steinbeck \\\"Essentials\\\")\";\"Fiction &amp; Drama|Caf&#233;\"\n\
         \"b2\";\"A \\\\ B \"\"quoted\"\" &lt;i&gt;\";\"\"\n\
         \"b3\";\"&amp;\";\"\"\n",
    );
    let mut spec = DelimitedSpec::new(events, col("user"), col("item"));
    spec.escape = Escape::Backslash;
    spec.items = Some(ItemFileSpec {
        name: Some(col("title")),
        category: Some(col("cat")),
        escape: Escape::Backslash,
        decode_html: true,
        ..ItemFileSpec::new(books, col("id"))
    });
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!(d.items, ["\"b1\"", "b2", "b3"]);
    assert_eq!(
        d.item_meta[&0],
        ItemMeta {
            name: Some("Of Mice and Men (Steinbeck \"Essentials\")".into()),
            categories: vec!["Fiction & Drama".into(), "Café".into()],
        }
    );
    assert_eq!(d.item_meta[&1].name.as_deref(), Some("A \\ B \"quoted\" <i>"));
    assert_eq!(d.item_meta[&2].name.as_deref(), Some("&"));
    assert_eq!(d.report.files[1].rows_bad, 0);

    // Without the options the names keep their entities and the escaped rows break.
    let items = spec.items.as_mut().unwrap();
    items.decode_html = false;
    items.escape = Escape::None;
    let d = import(&Source::Delimited(spec)).unwrap();
    let b3 = d.items.iter().position(|i| i == "b3").unwrap() as u32;
    assert_eq!(d.item_meta[&b3].name.as_deref(), Some("&amp;"));
    // The escaped id is mangled into another item, whose title is not the book's either.
    assert_eq!(d.items[3], "\\b1\\\"\"");
    assert_ne!(d.item_meta[&3].name.as_deref(), Some("Of Mice and Men (Steinbeck \"Essentials\")"));
}

#[test]
fn encodings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.csv");
    // Latin-1 "Müller", then UTF-8 "Müller", then Latin-1 bytes that happen to be valid UTF-8
    // ("Ã©" is C3 A9, UTF-8 for "é").
    let mut body = b"user,item\nM\xfcller,a\n".to_vec();
    body.extend_from_slice("Müller,b\n".as_bytes());
    body.extend_from_slice(b"\xc3\xa9,c\n");
    std::fs::write(&path, body).unwrap();
    let mut spec = DelimitedSpec::new(path, col("user"), col("item"));

    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!(d.users, ["Müller", "é"]);

    spec.encoding = Encoding::Latin1;
    let d = import(&Source::Delimited(spec.clone())).unwrap();
    assert_eq!(d.users, ["Müller", "MÃ¼ller", "Ã©"]);

    spec.encoding = Encoding::Utf8;
    let d = import(&Source::Delimited(spec)).unwrap();
    assert_eq!(d.users, ["Müller", "é"]);
    assert_eq!(d.report.rows_bad, 1);
    assert_eq!(
        d.report.bad_examples,
        ["e.csv:2: field #0 is not valid UTF-8 (see --encoding: latin1, or auto for mixed files)"]
    );
}

#[test]
fn time_formats() {
    use rows::timestamp;
    assert_eq!(timestamp("1700000000", TimeFormat::Unix), Ok(1_700_000_000));
    assert_eq!(timestamp("1700000000.9", TimeFormat::Unix), Ok(1_700_000_000));
    assert!(timestamp("2024-01-01", TimeFormat::Unix).is_err());
    assert_eq!(timestamp("1700000000999", TimeFormat::UnixMs), Ok(1_700_000_000));
    assert_eq!(timestamp("-1", TimeFormat::UnixMs), Ok(-1));
    assert_eq!(timestamp("1500.5", TimeFormat::UnixMs), Ok(1));
    assert_eq!(timestamp("2017-09-13T08:59:02Z", TimeFormat::Rfc3339), Ok(1_505_293_142));
    assert_eq!(timestamp("2017-09-13t10:59:02.123+02:00", TimeFormat::Rfc3339), Ok(1_505_293_142));
    for bad in ["2017-09-13T08:59:02", "2017-09-13", "1505293142"] {
        let err = timestamp(bad, TimeFormat::Rfc3339).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
    }
    assert_eq!(timestamp("17", TimeFormat::Ordinal), Ok(17));
    assert_eq!(timestamp("0", TimeFormat::Ordinal), Ok(0));
    for bad in ["-1", "2.5", "first"] {
        assert!(timestamp(bad, TimeFormat::Ordinal).is_err(), "{bad}");
    }

    // An order-number column: kept as small numbers in order, not read as 1970 dates by accident
    // only; auto would read them the same, ordinal says so and refuses anything else.
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "orders.csv",
        "user_id,product_id,order_number\nu1,a,1\nu1,b,2\nu1,c,11\nu2,a,3.5\n",
    );
    let mut spec = DelimitedSpec::new(path, col("user_id"), col("product_id"));
    spec.time = Some(col("order_number"));
    spec.time_format = TimeFormat::Ordinal;
    let d = import(&Source::Delimited(spec)).unwrap();
    assert_eq!(d.events.iter().map(|e| e.ts).collect::<Vec<_>>(), [1, 2, 11]);
    assert_eq!(
        d.report.bad_examples,
        ["orders.csv:5: order value \"3.5\" is not a whole number >= 0 (--time-format ordinal)"]
    );
}

#[test]
fn reports_written_before_the_per_file_counts_still_read() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "interactions.tsv", "user\titem\tweight\tts\nu1\ta\t1\t0\n");
    write(
        dir.path(),
        "dataset.json",
        r#"{"source":"generic:x","rows_read":1,"rows_ok":1,"rows_bad":0,"bad_examples":[]}"#,
    );
    let d = crate::dataset::read_dir(dir.path()).unwrap();
    assert_eq!((d.report.rows_read, d.report.rows_dropped, d.report.files.len()), (1, 0, 0));
}
