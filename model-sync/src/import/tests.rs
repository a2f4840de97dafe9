//! Tests of the generic importer and the shared parsing helpers.

use std::path::Path;

use super::*;

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
        path: items,
        delimiter: parse_delimiter("\\t").unwrap(),
        has_header: true,
        id: col("sku"),
        name: Some(col("title")),
        category: Some(col("1")),
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
    assert_eq!((d.report.rows_read, d.report.rows_ok, d.report.rows_bad), (5, 5, 0));
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
    spec.delimiter = parse_delimiter("tab").unwrap();
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
            "r.csv:6: timestamp \"yesterday\" is not unix seconds or YYYY-MM-DD[ HH:MM:SS]",
            "r.csv:7: timestamp \"2024-02-30\" is not unix seconds or YYYY-MM-DD[ HH:MM:SS]",
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
    assert_eq!(optional_timestamp(""), Ok(0));
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
