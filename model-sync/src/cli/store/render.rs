//! Tables and JSON for the store commands; pure functions of the reports.

use serde_json::json;

use crate::admin::{GcReport, StatusReport, VersionCheck};
use crate::cli::units::human_bytes;
use crate::publish::{BucketPublished, PointerChange, PublishReport};
use cluster_config::errors::error_chain;
use store::reader::Defect;

pub(super) fn publish_table(r: &PublishReport) -> String {
    let mut s = format!("version {}\n", r.version);
    s += &format!(
        "{:<12} {:<8} {:>8} {:>8} {:>8}  POINTER\n",
        "BUCKET", "RESULT", "SENT", "SKIPPED", "REPAIRED"
    );
    let row = |label: &str, p: &BucketPublished| {
        let t = &p.transfer;
        let pointer = match &p.pointer {
            PointerChange::Flipped { previous: Some(v) } => format!("flipped (was {v})"),
            PointerChange::Flipped { previous: None } => "flipped (first version)".to_string(),
            PointerChange::Unchanged => "already current".to_string(),
            PointerChange::NotFlipped => "not flipped (rollout)".to_string(),
        };
        let (sent, skipped, repaired) = (t.uploaded.len(), t.skipped.len(), t.repaired.len());
        format!("{label:<12} {:<8} {sent:>8} {skipped:>8} {repaired:>8}  {pointer}\n", "ok")
    };
    s += &row("primary", &r.primary);
    for reg in &r.regions {
        s += &match &reg.outcome {
            Ok(p) => row(&reg.region, p),
            Err(e) => {
                let (name, dash) = (&reg.region, "-");
                format!(
                    "{name:<12} {:<8} {dash:>8} {dash:>8} {dash:>8}  not flipped: {}\n",
                    "FAILED",
                    error_chain(e)
                )
            }
        };
    }
    s
}

pub(super) fn defect_text(d: &Defect) -> String {
    match d {
        Defect::Missing => "missing".into(),
        Defect::Truncated { expected, actual } => format!("truncated: {actual} of {expected} bytes"),
        Defect::SizeMismatch { expected, actual } => format!("{actual} bytes, expected {expected}"),
        Defect::ChecksumMismatch { expected, actual } => {
            format!("corrupt: sha256 {actual}, expected {expected}")
        }
    }
}

pub(super) fn check_text(c: &Option<VersionCheck>) -> String {
    match c {
        None => "not checked".into(),
        Some(VersionCheck::Intact) => "intact".into(),
        Some(VersionCheck::Defective(p)) => {
            p.iter().map(|p| format!("{}: {}", p.file, defect_text(&p.defect))).collect::<Vec<_>>().join("; ")
        }
        Some(VersionCheck::Unreadable(e)) => format!("unreadable: {}", error_chain(e)),
    }
}

pub(super) fn status_table(r: &StatusReport) -> String {
    let mut out = String::new();
    for b in &r.buckets {
        let loc = &b.location;
        let at = loc.endpoint.as_deref().unwrap_or("AWS");
        out += &format!("{} — s3://{}/{} at {at}\n", b.label, loc.bucket, loc.prefix);
        let s = match &b.state {
            Ok(s) => s,
            Err(e) => {
                let what = if e.is_unreachable() { "UNREACHABLE" } else { "ERROR" };
                out += &format!("  {what}: {}\n\n", error_chain(e));
                continue;
            }
        };
        out += &match (&s.pointer, &s.pointer_error) {
            (Some(p), _) => format!(
                "  current: {}  previous: {}  (since {})\n",
                p.version,
                p.previous.as_deref().unwrap_or("-"),
                p.updated_at
            ),
            (None, Some(e)) => format!("  current: UNREADABLE POINTER: {}\n", error_chain(e)),
            (None, None) => "  current: none (nothing published)\n".to_string(),
        };
        if let Some(e) = &s.dangling_pointer {
            out += &format!("  POINTER NAMES A MISSING VERSION: {e}\n");
        }
        out += &format!("  {:<32} {:>7} {:>10}  {:<9} CHECK\n", "VERSION", "OBJECTS", "SIZE", "ROLE");
        for v in &s.versions {
            let role = if v.current {
                "current"
            } else if v.previous {
                "previous"
            } else {
                ""
            };
            let size = human_bytes(v.bytes);
            out += &format!(
                "  {:<32} {:>7} {size:>10}  {role:<9} {}\n",
                v.version,
                v.objects,
                check_text(&v.check)
            );
        }
        for i in &s.incomplete {
            let size = human_bytes(i.bytes);
            let v = &i.version;
            out += &format!(
                "  {v:<32} {:>7} {size:>10}  {:<9} incomplete upload (no manifest)\n",
                i.objects, "-"
            );
        }
        out += "\n";
    }
    out
}

pub(super) fn status_json(r: &StatusReport) -> serde_json::Value {
    let buckets: Vec<_> = r
        .buckets
        .iter()
        .map(|b| {
            let loc = json!({"endpoint": b.location.endpoint, "bucket": b.location.bucket, "prefix": b.location.prefix});
            match &b.state {
                Err(e) => json!({"label": b.label, "location": loc, "reachable": false, "error": error_chain(e)}),
                Ok(s) => json!({
                    "label": b.label,
                    "location": loc,
                    "reachable": true,
                    "pointer": s.pointer,
                    "pointer_error": s.pointer_error.as_ref().map(|e| error_chain(e)),
                    "dangling_pointer": s.dangling_pointer.as_ref().map(|e| error_chain(e)),
                    "versions": s.versions.iter().map(|v| json!({
                        "version": v.version, "objects": v.objects, "bytes": v.bytes,
                        "current": v.current, "previous": v.previous,
                        "check": v.check.as_ref().map(check_json),
                    })).collect::<Vec<_>>(),
                    "incomplete_uploads": s.incomplete.iter().map(|i| json!({
                        "version": i.version, "objects": i.objects, "bytes": i.bytes,
                    })).collect::<Vec<_>>(),
                }),
            }
        })
        .collect();
    json!({ "buckets": buckets })
}

pub(super) fn check_json(c: &VersionCheck) -> serde_json::Value {
    match c {
        VersionCheck::Intact => json!({"state": "intact"}),
        VersionCheck::Defective(p) => json!({"state": "defective", "problems": p.iter().map(|p| json!({
            "file": p.file, "problem": defect_text(&p.defect),
        })).collect::<Vec<_>>()}),
        VersionCheck::Unreadable(e) => json!({"state": "unreadable", "error": error_chain(e)}),
    }
}

pub(super) fn gc_table(r: &GcReport) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for b in &r.buckets {
        out += &match &b.outcome {
            Err(e) => format!("{:<12} FAILED (nothing deleted): {}\n", b.label, error_chain(e)),
            Ok(o) => {
                let mut gone = o.deleted.clone();
                gone.extend(o.incomplete_deleted.iter().map(|v| format!("{v} (incomplete)")));
                let gone = if gone.is_empty() { "nothing".to_string() } else { gone.join(", ") };
                let (kept, n, size) = (o.kept.join(", "), o.objects_deleted, human_bytes(o.bytes_freed));
                format!("{:<12} kept {kept}; {verb} {gone} ({n} objects, {size})\n", b.label)
            }
        };
    }
    out
}
