//! [`ImportError`]: why an import failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{} not found; expected {expected}", path.display())]
    Missing { path: PathBuf, expected: String },
    /// `hint` is empty or says what to do (e.g. about rows with weight 0).
    #[error("{}: {bad} of {read} data rows are bad (first: {}); expected {expected}{}",
        path.display(), examples.join("; "), if hint.is_empty() { String::new() } else { format!(". {hint}") })]
    TooManyBad { path: PathBuf, read: u64, bad: u64, examples: Vec<String>, expected: String, hint: String },
    #[error("{}: no data rows; expected {expected}", path.display())]
    Empty { path: PathBuf, expected: String },
    #[error("{}: all {dropped} data rows have weight 0 and --zero-weight drop dropped them; nothing is left",
        path.display())]
    AllDropped { path: PathBuf, dropped: u64 },
    /// `delimiter` says how the file was split and how its header line looks split.
    #[error("{}: no column {column} in header [{}] ({delimiter}); expected {expected}",
        path.display(), header.join(", "))]
    NoColumn { path: PathBuf, column: String, header: Vec<String>, delimiter: String, expected: String },
    #[error("invalid import options: {0}")]
    Spec(String),
}
