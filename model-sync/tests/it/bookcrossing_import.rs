//! The real Book-Crossing files, fetched by `scripts/fetch-bookcrossing` (never committed) and
//! pointed to by `GEOREC_BOOKCROSSING`: exact counts, and titles that need every decoding step
//! (HTML entities, backslash-escaped quotes, UTF-8 next to Latin-1). Without the variable the
//! test skips, except in CI (`CI` set), where the data must be there.

use model_sync::dataset::FileRole;
use model_sync::import::{import, Source};

#[test]
fn real_bookcrossing_imports_with_exact_counts_and_decoded_titles() {
    let Some(dir) = crate::quality::real_data("GEOREC_BOOKCROSSING", "scripts/fetch-bookcrossing") else {
        return;
    };
    let d = import(&Source::BookCrossing(dir)).expect("Book-Crossing imports");
    let r = &d.report;

    // Every rating is an event: 716,109 ratings of 0 are implicit (weight 1), none is bad.
    assert_eq!((d.users.len(), d.events.len()), (105_283, 1_149_780));
    assert_eq!((r.rows_read, r.rows_ok, r.rows_bad, r.rows_dropped), (1_149_780, 1_149_780, 0, 0));
    assert_eq!((r.rows_zero_weight, r.rows_implicit), (716_109, 716_109));
    assert_eq!(d.events.iter().filter(|e| e.weight == 1.0).count(), 716_109 + 1_770);
    assert!(d.events.iter().all(|e| e.ts == 0 && (1.0..=10.0).contains(&e.weight)));

    // 340,553 rated ISBNs, 270,170 of them with a title; 1,208 books nobody rated.
    let mut rated = vec![false; d.items.len()];
    for e in &d.events {
        rated[e.item as usize] = true;
    }
    assert_eq!(rated.iter().filter(|&&r| r).count(), 340_553);
    assert_eq!(d.items.len(), 341_761);
    assert_eq!(d.item_meta.len(), 271_378);
    assert!(d.item_meta.values().all(|m| m.name.is_some() && m.categories.is_empty()));

    let books = r.files.iter().find(|f| f.role == FileRole::Items).expect("BX-Books.csv tallied");
    assert_eq!(
        (books.file.as_str(), books.rows_read, books.rows_ok, books.rows_bad),
        ("BX-Books.csv", 271_379, 271_379, 0)
    );

    let title = |isbn: &str| {
        let i = d.items.iter().position(|x| x == isbn).unwrap_or_else(|| panic!("{isbn} is an item"));
        d.item_meta.get(&(i as u32)).and_then(|m| m.name.as_deref())
    };
    // "&amp;" in the file.
    assert_eq!(
        title("0061076031"),
        Some("Mary-Kate & Ashley Switching Goals (Mary-Kate and Ashley Starring in)")
    );
    // `\"` in the file.
    assert_eq!(title("0140292918"), Some("Of Mice and Men (Steinbeck \"Essentials\")"));
    // UTF-8 bytes in a file that is not valid UTF-8 as a whole.
    assert_eq!(title("3462021095"), Some("Schwarzer Tee mit drei Stück Zucker"));
    // A mistyped ISBN in the ratings: Latin-1 byte 0xC9.
    assert!(d.items.iter().any(|i| i == "225315398É"));
}
