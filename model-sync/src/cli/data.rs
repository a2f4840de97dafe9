//! `import` and `generate`: produce a dataset directory ([`crate::dataset::write_dir`]).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::dataset::{write_dir, Dataset, FileRole};
use crate::generate::GenerateParams;
use crate::import::{
    self, Column, DelimitedSpec, Encoding, Escape, EventWeights, ItemFileSpec, Source, Strength, TimeFormat,
    ZeroWeight,
};

// Long help goes after the options: the variant doc comments in `cli/mod.rs` set `about` and
// reset `long_about`, so a struct-level `long_about` would never be shown.
const IMPORT_HELP: &str = "Import interactions into a dataset directory (interactions.tsv, items.tsv, \
dataset.json) that `build` and `evaluate` read.

Bad rows (wrong field count, empty ids, non-positive weights, bad timestamps) are counted and the first \
ones shown with file and line; a file with more than half bad rows fails the import. Rows with weight 0 \
are bad rows unless --zero-weight says what 0 means; dropped ones are counted too.

Examples:
  model-sync import --format movielens --input data/ml-100k --out data/ml100k-ds
  model-sync import --format olist --input data/olist --out data/olist-ds
  model-sync import --format bookcrossing --input data/bookcrossing --out data/bx-ds
  model-sync import --format generic --input events.csv --out data/shop-ds \\
      --user-col visitorid --item-col itemid --event-col event --time-col timestamp \\
      --event-weights view=1,addtocart=3,transaction=5
  model-sync import --format generic --input BX-Book-Ratings.csv --out data/bx-explicit \\
      --user-col User-ID --item-col ISBN --weight-col Book-Rating --zero-weight drop \\
      --escape backslash --items BX-Books.csv --items-id-col ISBN --items-name-col Book-Title --decode-html";

const GENERATE_HELP: &str = "Generate a deterministic synthetic shop: items in categories with Zipf-like \
popularity, users who spend ~90% of their events in one or two preferred categories, views / add-to-cart \
/ purchases at ~80/15/5% (weights 1/3/5), denser activity in recent days. The same seed always gives the \
same data.

Example:
  model-sync generate --users 100000 --items 20000 --seed 7 --out data/synthetic";

/// Source layouts `import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Any delimited file; map columns with the generic options.
    Generic,
    /// MovieLens directory (u.data + u.item, or ratings.csv + movies.csv) or one of those files.
    Movielens,
    /// Olist Brazilian e-commerce Kaggle directory (olist_*.csv).
    Olist,
    /// Book-Crossing directory (BX-Book-Ratings.csv + BX-Books.csv), as scripts/fetch-bookcrossing
    /// writes it; a rating of 0 is an implicit interaction of weight 1.
    Bookcrossing,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = IMPORT_HELP)]
pub struct ImportArgs {
    /// Layout of the input.
    #[arg(long, value_enum)]
    pub format: ImportFormat,
    /// Input file (generic) or directory (movielens, olist, bookcrossing).
    #[arg(long)]
    pub input: PathBuf,
    /// Dataset directory to write (created if missing; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,

    /// Column mapping for --format generic (boxed to keep the command enum small).
    #[command(flatten)]
    pub generic: Box<GenericArgs>,
}

/// Options of `--format generic`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Generic format")]
pub struct GenericArgs {
    /// Field delimiter: one character, or "tab" / "\t" [default: sniffed from the first line: the
    /// most frequent of , ; tab | outside quotes, else ,].
    #[arg(long, value_parser = delimiter)]
    pub delimiter: Option<char>,
    /// The file has no header line; give columns as 0-based indexes.
    #[arg(long)]
    pub no_header: bool,
    /// User id column: header name or 0-based index.
    #[arg(long)]
    pub user_col: Option<Column>,
    /// Item id column: header name or 0-based index.
    #[arg(long)]
    pub item_col: Option<Column>,
    /// Numeric weight column (rating, quantity; must be > 0, see --zero-weight for 0). Without it or
    /// --event-col every row weighs 1.
    #[arg(long, conflicts_with = "event_col")]
    pub weight_col: Option<Column>,
    /// What weight 0 in --weight-col means [default: error].
    #[arg(long, value_enum)]
    pub zero_weight: Option<ZeroWeight>,
    /// Weight of weight-0 rows under --zero-weight implicit (> 0) [default: 1].
    #[arg(long, value_parser = positive)]
    pub implicit_weight: Option<f32>,
    /// Event-type column, weighted by --event-weights; unknown types are bad rows.
    #[arg(long)]
    pub event_col: Option<Column>,
    /// Weight of each event type (case-insensitive), used with --event-col.
    #[arg(long, default_value = "view=1,add_to_cart=3,purchase=5")]
    pub event_weights: EventWeights,
    /// Timestamp column, read as --time-format says; empty means 0 (unknown).
    #[arg(long)]
    pub time_col: Option<Column>,
    /// What the values of --time-col are [default: auto].
    #[arg(long, value_enum)]
    pub time_format: Option<TimeFormat>,
    /// Text encoding of --input and --items [default: auto].
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// How quotes are escaped inside quoted fields of --input and --items [default: none].
    #[arg(long, value_enum)]
    pub escape: Option<Escape>,
    /// Item metadata file (id, optional name and '|'-separated categories).
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Item id column of --items.
    #[arg(long, default_value = "0")]
    pub items_id_col: Column,
    /// Item name column of --items.
    #[arg(long)]
    pub items_name_col: Option<Column>,
    /// Category column of --items; several categories may be '|'-separated, the first is primary.
    #[arg(long)]
    pub items_category_col: Option<Column>,
    /// Delimiter of --items [default: --delimiter].
    #[arg(long, value_parser = delimiter)]
    pub items_delimiter: Option<char>,
    /// --items has no header line.
    #[arg(long)]
    pub items_no_header: bool,
    /// Decode HTML entities (&amp; &#233; ...) in the item names and categories of --items.
    #[arg(long)]
    pub decode_html: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_long_help = GENERATE_HELP)]
pub struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = GenerateParams::default().users, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: u32,
    /// Number of items.
    #[arg(long, default_value_t = GenerateParams::default().items, value_parser = clap::value_parser!(u32).range(1..))]
    pub items: u32,
    /// Number of item categories (at most one per item).
    #[arg(long, default_value_t = GenerateParams::default().categories, value_parser = clap::value_parser!(u32).range(1..))]
    pub categories: u32,
    /// Mean events per user (>= 1); the count per user varies, every user has at least one.
    #[arg(long, default_value_t = GenerateParams::default().events_per_user, value_parser = mean)]
    pub events_per_user: f64,
    /// Length of the time span in days, denser towards its end.
    #[arg(long, default_value_t = GenerateParams::default().days, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// Random seed; the same seed and sizes give identical data.
    #[arg(long, default_value_t = GenerateParams::default().seed)]
    pub seed: u64,
    /// Start of the time span: YYYY-MM-DD or unix seconds.
    #[arg(long, default_value = "2024-01-01", value_parser = start)]
    pub start: i64,
    /// Dataset directory to write (created if missing; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

fn delimiter(s: &str) -> Result<char, String> {
    import::parse_delimiter(s).map_err(|e| e.to_string())
}

fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        _ => Err(format!("{s:?} is not a number > 0")),
    }
}

fn mean(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(m) if m.is_finite() && m >= 1.0 => Ok(m),
        _ => Err(format!("{s:?} is not a number >= 1")),
    }
}

fn start(s: &str) -> Result<i64, String> {
    import::parse_timestamp(s)
}

impl ImportArgs {
    /// The import source, rejecting generic options given with another format (they would be
    /// silently ignored otherwise).
    fn source(&self) -> anyhow::Result<Source> {
        let g = &*self.generic;
        match self.format {
            ImportFormat::Movielens | ImportFormat::Olist | ImportFormat::Bookcrossing => {
                let generic = g.delimiter.is_some()
                    || g.no_header
                    || g.user_col.is_some()
                    || g.item_col.is_some()
                    || g.weight_col.is_some()
                    || g.event_col.is_some()
                    || g.time_col.is_some()
                    || g.items.is_some()
                    || g.zero_weight.is_some()
                    || g.implicit_weight.is_some()
                    || g.time_format.is_some()
                    || g.encoding.is_some()
                    || g.escape.is_some()
                    || g.decode_html;
                anyhow::ensure!(
                    !generic,
                    "column, file and parsing options only apply to --format generic; --format {} \
                     knows its files' layout",
                    format!("{:?}", self.format).to_lowercase()
                );
                Ok(match self.format {
                    ImportFormat::Olist => Source::Olist(self.input.clone()),
                    ImportFormat::Bookcrossing => Source::BookCrossing(self.input.clone()),
                    _ => Source::MovieLens(self.input.clone()),
                })
            }
            ImportFormat::Generic => {
                let (Some(user), Some(item)) = (&g.user_col, &g.item_col) else {
                    anyhow::bail!(
                        "--format generic needs --user-col and --item-col (header names or 0-based indexes)"
                    );
                };
                // Options that would otherwise be ignored without a word.
                anyhow::ensure!(
                    g.weight_col.is_some() || (g.zero_weight.is_none() && g.implicit_weight.is_none()),
                    "--zero-weight and --implicit-weight apply to the weights of --weight-col"
                );
                anyhow::ensure!(
                    g.implicit_weight.is_none() || g.zero_weight == Some(ZeroWeight::Implicit),
                    "--implicit-weight is the weight of weight-0 rows under --zero-weight implicit"
                );
                anyhow::ensure!(
                    g.time_col.is_some() || g.time_format.is_none(),
                    "--time-format applies to the values of --time-col"
                );
                anyhow::ensure!(
                    g.items.is_some() || !g.decode_html,
                    "--decode-html applies to the names and categories of --items"
                );
                let strength = match (&g.weight_col, &g.event_col) {
                    (Some(w), _) => Strength::Weight(w.clone()),
                    (None, Some(e)) => {
                        Strength::Event { column: e.clone(), weights: g.event_weights.clone() }
                    }
                    (None, None) => Strength::Constant,
                };
                let encoding = g.encoding.unwrap_or_default();
                let escape = g.escape.unwrap_or_default();
                Ok(Source::Delimited(DelimitedSpec {
                    path: self.input.clone(),
                    delimiter: g.delimiter,
                    has_header: !g.no_header,
                    user: user.clone(),
                    item: item.clone(),
                    strength,
                    time: g.time_col.clone(),
                    time_format: g.time_format.unwrap_or_default(),
                    zero_weight: g.zero_weight.unwrap_or_default(),
                    implicit_weight: g.implicit_weight.unwrap_or(1.0),
                    encoding,
                    escape,
                    items: g.items.as_ref().map(|path| ItemFileSpec {
                        path: path.clone(),
                        delimiter: g.items_delimiter.or(g.delimiter),
                        has_header: !g.items_no_header,
                        id: g.items_id_col.clone(),
                        name: g.items_name_col.clone(),
                        category: g.items_category_col.clone(),
                        encoding,
                        escape,
                        decode_html: g.decode_html,
                    }),
                }))
            }
        }
    }
}

pub fn import(a: &ImportArgs) -> anyhow::Result<()> {
    let source = a.source()?;
    let started = Instant::now();
    tracing::info!(format = ?a.format, input = %a.input.display(), out = %a.out.display(), "importing");
    let pb = spinner(format!("reading {}", a.input.display()));
    let data = import::import(&source);
    pb.finish_and_clear();
    let data = data.with_context(|| format!("importing {}", a.input.display()))?;
    write(&data, &a.out)?;
    finish("imported", &data, &a.out, started.elapsed());
    Ok(())
}

pub fn generate(a: &GenerateArgs) -> anyhow::Result<()> {
    let p = GenerateParams {
        users: a.users,
        items: a.items,
        categories: a.categories,
        events_per_user: a.events_per_user,
        days: a.days,
        seed: a.seed,
        start_ts: a.start,
    };
    let started = Instant::now();
    tracing::info!(users = p.users, items = p.items, categories = p.categories,
        events_per_user = p.events_per_user, days = p.days, seed = p.seed, out = %a.out.display(), "generating");
    let pb = spinner(format!("generating ~{:.0} events", f64::from(p.users) * p.events_per_user));
    let data = crate::generate::generate(&p);
    pb.finish_and_clear();
    tracing::info!(
        events = data.events.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "generated"
    );
    write(&data, &a.out)?;
    finish("generated", &data, &a.out, started.elapsed());
    Ok(())
}

fn write(data: &Dataset, out: &Path) -> anyhow::Result<()> {
    let pb = spinner(format!("writing {} events to {}", data.events.len(), out.display()));
    let result = write_dir(data, out);
    pb.finish_and_clear();
    result.with_context(|| format!("writing dataset to {}", out.display()))
}

fn finish(verb: &str, data: &Dataset, out: &Path, elapsed: Duration) {
    let r = &data.report;
    tracing::info!(users = data.users.len(), items = data.items.len(), events = data.events.len(),
        rows_bad = r.rows_bad, rows_dropped = r.rows_dropped, out = %out.display(),
        elapsed_ms = elapsed.as_millis() as u64, "{verb} dataset");
    let hint = zero_weight_bad(r);
    if hint > 0 {
        tracing::warn!(rows = hint, "rows with weight 0 were counted as bad; see --zero-weight");
    }
    print!("{}", summary(verb, data, out, elapsed));
}

/// Rows with weight 0 that became bad rows (neither kept as implicit nor dropped).
fn zero_weight_bad(r: &crate::dataset::ImportReport) -> u64 {
    r.rows_zero_weight.saturating_sub(r.rows_implicit + r.rows_dropped)
}

/// The human summary printed to stdout.
fn summary(verb: &str, data: &Dataset, out: &Path, elapsed: Duration) -> String {
    let mut with_events = vec![false; data.items.len()];
    for e in &data.events {
        if let Some(seen) = with_events.get_mut(e.item as usize) {
            *seen = true;
        }
    }
    let active = with_events.iter().filter(|&&b| b).count();
    let r = &data.report;
    let mut s = String::new();
    let _ = writeln!(s, "{verb} {}", r.source);
    let _ = writeln!(s, "  users   {}", data.users.len());
    let _ = writeln!(
        s,
        "  items   {} ({active} with events, {} with metadata)",
        data.items.len(),
        data.item_meta.len()
    );
    let _ = writeln!(s, "  events  {}", data.events.len());
    let mut rows = format!("  rows    {} read, {} bad", r.rows_read, r.rows_bad);
    if r.rows_implicit > 0 {
        let _ = write!(rows, ", {} with weight 0 kept as implicit", r.rows_implicit);
    }
    if r.rows_dropped > 0 {
        let _ = write!(rows, ", {} with weight 0 dropped", r.rows_dropped);
    }
    let _ = writeln!(s, "{rows}");
    // Per file when there is more than one, so item files are not mistaken for interactions.
    if r.files.len() > 1 {
        for f in &r.files {
            let role = match f.role {
                FileRole::Interactions => "interactions",
                FileRole::Items => "items",
                FileRole::Lookup => "lookup",
            };
            let dropped =
                if f.rows_dropped > 0 { format!(", {} dropped", f.rows_dropped) } else { String::new() };
            let _ = writeln!(s, "    {} ({role}): {} read, {} bad{dropped}", f.file, f.rows_read, f.rows_bad);
        }
    }
    let total_bad: u64 =
        if r.files.is_empty() { r.rows_bad } else { r.files.iter().map(|f| f.rows_bad).sum() };
    if total_bad > 0 {
        let _ = writeln!(s, "  bad rows (first {}):", r.bad_examples.len());
    }
    for ex in &r.bad_examples {
        let _ = writeln!(s, "    {ex}");
    }
    if total_bad > r.bad_examples.len() as u64 {
        let _ = writeln!(s, "    ... and {} more", total_bad - r.bad_examples.len() as u64);
    }
    let zero = zero_weight_bad(r);
    if zero > 0 {
        let _ = writeln!(s, "  note    {}", import::zero_weight_hint(zero));
    }
    let _ = writeln!(s, "  out     {}", out.display());
    let _ = writeln!(s, "  elapsed {:.2}s", elapsed.as_secs_f64());
    s
}

/// A spinner on stderr while a long step runs; hidden when stderr is not a terminal so logs
/// and CI output stay clean.
fn spinner(msg: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::new_spinner().with_style(style).with_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    enum Cmd {
        Import(ImportArgs),
        Generate(GenerateArgs),
    }

    #[test]
    fn generic_args_become_a_spec() {
        let args =
            ["x", "import", "--format", "generic", "--input", "e.tsv", "--out", "o", "--delimiter", "tab"];
        let rest = [
            "--user-col",
            "0",
            "--item-col",
            "sku",
            "--event-col",
            "2",
            "--items",
            "i.csv",
            "--items-delimiter",
            ",",
        ];
        let Cmd::Import(a) = Cmd::parse_from(args.iter().chain(&rest)) else { panic!() };
        let Source::Delimited(spec) = a.source().unwrap() else { panic!() };
        assert_eq!(
            (spec.delimiter, spec.user, spec.item),
            (Some('\t'), Column::Index(0), Column::Name("sku".into()))
        );
        assert!(matches!(spec.strength, Strength::Event { column: Column::Index(2), .. }));
        assert_eq!(spec.items.unwrap().delimiter, Some(','));

        let Cmd::Import(a) = Cmd::parse_from([
            "x",
            "import",
            "--format",
            "olist",
            "--input",
            "d",
            "--out",
            "o",
            "--user-col",
            "a",
        ]) else {
            panic!()
        };
        assert!(a.source().is_err());
        assert!(Cmd::try_parse_from([
            "x",
            "import",
            "--format",
            "generic",
            "--input",
            "e",
            "--out",
            "o",
            "--weight-col",
            "1",
            "--event-col",
            "2"
        ])
        .is_err());
    }

    fn import_args(extra: &[&str]) -> Result<ImportArgs, clap::Error> {
        let base = ["x", "import", "--input", "r.csv", "--out", "o"];
        match Cmd::try_parse_from(base.iter().chain(extra))? {
            Cmd::Import(a) => Ok(a),
            Cmd::Generate(_) => unreachable!(),
        }
    }

    #[test]
    fn parsing_options_become_a_spec_and_are_refused_where_they_would_be_ignored() {
        let a = import_args(&[
            "--format",
            "generic",
            "--user-col",
            "u",
            "--item-col",
            "i",
            "--weight-col",
            "w",
            "--zero-weight",
            "implicit",
            "--implicit-weight",
            "2.5",
            "--time-col",
            "order_number",
            "--time-format",
            "ordinal",
            "--encoding",
            "latin1",
            "--escape",
            "backslash",
            "--items",
            "b.csv",
            "--decode-html",
        ])
        .unwrap();
        let Source::Delimited(spec) = a.source().unwrap() else { panic!() };
        assert_eq!(spec.delimiter, None);
        assert_eq!((spec.zero_weight, spec.implicit_weight), (ZeroWeight::Implicit, 2.5));
        assert_eq!(spec.time_format, TimeFormat::Ordinal);
        assert_eq!((spec.encoding, spec.escape), (Encoding::Latin1, Escape::Backslash));
        let items = spec.items.unwrap();
        assert_eq!(
            (items.delimiter, items.encoding, items.escape, items.decode_html),
            (None, Encoding::Latin1, Escape::Backslash, true)
        );

        // Defaults keep the old behaviour.
        let a = import_args(&["--format", "generic", "--user-col", "u", "--item-col", "i"]).unwrap();
        let Source::Delimited(spec) = a.source().unwrap() else { panic!() };
        assert_eq!(
            (spec.zero_weight, spec.time_format, spec.encoding),
            (ZeroWeight::Error, TimeFormat::Auto, Encoding::Auto)
        );

        let a = import_args(&["--format", "bookcrossing"]).unwrap();
        assert!(matches!(a.source().unwrap(), Source::BookCrossing(p) if p == Path::new("r.csv")));

        let generic = ["--format", "generic", "--user-col", "u", "--item-col", "i"];
        for (extra, why) in [
            (&["--zero-weight", "drop"][..], "--weight-col"),
            (&["--weight-col", "w", "--implicit-weight", "2"], "--zero-weight implicit"),
            (&["--time-format", "unix-ms"], "--time-col"),
            (&["--decode-html"], "--items"),
        ] {
            let a = import_args(&[&generic[..], extra].concat()).unwrap();
            let err = a.source().unwrap_err().to_string();
            assert!(err.contains(why), "{extra:?}: {err}");
        }
        let err =
            import_args(&["--format", "bookcrossing", "--encoding", "utf8"]).unwrap().source().unwrap_err();
        assert!(err.to_string().contains("--format bookcrossing knows its files' layout"), "{err}");
        assert!(import_args(&["--format", "generic", "--implicit-weight", "0"]).is_err());
        assert!(import_args(&["--format", "generic", "--zero-weight", "maybe"]).is_err());
    }

    #[test]
    fn summary_counts_item_files_apart_and_explains_zero_weights() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.csv"), "u;i;w\r\nu1;a;0\r\nu1;b;5\r\nu2;a;4\r\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "id;name\na;\"A &amp; B\"\nb;\nc;C\n").unwrap();
        let (input, items) = (dir.path().join("r.csv"), dir.path().join("b.csv"));
        let (input, items) = (input.to_str().unwrap(), items.to_str().unwrap());
        let args = |extra: &[&str]| {
            let mut a = import_args(
                &[
                    &[
                        "--format",
                        "generic",
                        "--user-col",
                        "u",
                        "--item-col",
                        "i",
                        "--weight-col",
                        "w",
                        "--items",
                        items,
                        "--items-id-col",
                        "id",
                        "--items-name-col",
                        "name",
                    ][..],
                    extra,
                ]
                .concat(),
            )
            .unwrap();
            a.input = input.into();
            a.source().unwrap()
        };
        let d = import::import(&args(&[])).unwrap();
        let s = summary("imported", &d, Path::new("out"), Duration::from_millis(5));
        assert!(s.contains("  rows    3 read, 1 bad\n"), "{s}");
        assert!(
            s.contains("    r.csv (interactions): 3 read, 1 bad\n    b.csv (items): 3 read, 0 bad\n"),
            "{s}"
        );
        assert!(s.contains("r.csv:2: weight \"0\" is 0 (see --zero-weight)"), "{s}");
        assert!(s.contains("  note    1 row has weight 0; if 0 means an implicit interaction"), "{s}");

        let d = import::import(&args(&["--zero-weight", "implicit", "--decode-html"])).unwrap();
        let s = summary("imported", &d, Path::new("out"), Duration::from_millis(5));
        assert!(s.contains("  rows    3 read, 0 bad, 1 with weight 0 kept as implicit\n"), "{s}");
        assert!(!s.contains("note"), "{s}");
        assert_eq!(d.item_meta[&0].name.as_deref(), Some("A & B"));

        let d = import::import(&args(&["--zero-weight", "drop"])).unwrap();
        let s = summary("imported", &d, Path::new("out"), Duration::from_millis(5));
        assert!(s.contains("  rows    3 read, 0 bad, 1 with weight 0 dropped\n"), "{s}");
        assert!(s.contains("    r.csv (interactions): 3 read, 0 bad, 1 dropped\n"), "{s}");
    }

    #[test]
    fn generate_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let out_s = out.to_str().unwrap();
        let Cmd::Generate(a) =
            Cmd::parse_from(["x", "generate", "--users", "50", "--items", "30", "--out", out_s])
        else {
            panic!()
        };
        assert_eq!(a.start, 1_704_067_200);
        generate(&a).unwrap();
        let d = crate::dataset::read_dir(&out).unwrap();
        assert_eq!((d.users.len(), d.items.len()), (50, 30));
        let s = summary("generated", &d, &out, Duration::from_millis(5));
        assert!(s.contains("users   50") && s.contains("30 with metadata"), "{s}");
        assert!(Cmd::try_parse_from(["x", "generate", "--events-per-user", "0.5", "--out", "o"]).is_err());
    }
}
