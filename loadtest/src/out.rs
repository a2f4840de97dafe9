//! `--out DIR`: a report as the files `report.json`, `report.md` and `latency.svg`.

use std::path::{Path, PathBuf};

use crate::chart;
use crate::report::Report;

/// Write `report.json`, `report.md` and `latency.svg` into `dir` (created).
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError { path: dir.to_path_buf(), source })?;
    let files = [
        ("report.json", report.to_json()),
        ("report.md", report.to_markdown()),
        ("latency.svg", chart::svg(report)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}
