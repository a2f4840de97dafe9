//! report.json, report.md and latency.svg are written and well-formed.

use std::time::Duration;

use loadtest::client::{ErrorKind, Outcome};
use loadtest::report::{Event, Report};
use loadtest::stats::{Sample, Stats};

use crate::helpers::{assert_balanced_xml, open_plan};

/// Six seconds at 50 req/s: 2 ms normally, 400 ms in second 3, errors in second 4.
fn stats() -> Stats {
    let mut stats = Stats::new();
    for i in 0..300u64 {
        let at = Duration::from_millis(i * 20);
        let (latency, outcome) = match at.as_secs() {
            3 => (Duration::from_millis(400), ok("eu-west", "v1")),
            4 if i % 5 == 0 => (Duration::from_millis(1), Outcome::failed(ErrorKind::Connect)),
            5 => (Duration::from_millis(2), ok("eu-west", "v2")),
            _ => (Duration::from_millis(2), ok("us-east", "v1")),
        };
        stats.record(&Sample { at, latency, outcome });
    }
    stats
}

fn ok(region: &str, version: &str) -> Outcome {
    Outcome {
        status: Some(200),
        served_by: Some(region.into()),
        model_version: Some(version.into()),
        failover_from: (region == "us-east").then(|| "us-west".to_string()),
        ..Outcome::default()
    }
}

#[test]
fn reports_are_written_and_well_formed() {
    let plan = open_plan("http://127.0.0.1:8080", 50.0, Duration::from_secs(6));
    let events = vec![Event::new(Duration::from_secs(3), "SIGKILL node-us-west <pid 42> & co")];
    let report = Report::new(&plan, &stats(), events);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");

    let written = loadtest::out::write(&report, &out).unwrap();

    assert_eq!(written.len(), 3);
    // JSON round-trips to the same report, with the documented keys.
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["requests"], 300);
    assert_eq!(value["errors"]["connect"], 10);
    assert_eq!(value["errors"]["overload"], 0, "every kind is present");
    assert_eq!(value["served_by"]["eu-west"], 100);
    assert_eq!(value["failovers"]["us-west"], 190);
    assert_eq!(value["model_versions"]["v2"]["count"], 50);
    assert!(value["latency_us"]["p99"].as_u64().unwrap() >= 390_000);
    assert_eq!(value["timeline"].as_array().unwrap().len(), 6);
    assert_eq!(value["events"][0]["t_s"], 3.0);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "# Load test",
        "| p50 | p90 | p99 | p99.9 | max | mean |",
        "| connect | 10 |",
        "| eu-west | 100 |",
        "`v2`",
        "SIGKILL node-us-west",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }

    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_balanced_xml(&svg);
    for class in ["p50", "p99", "max", "errors", "event"] {
        assert!(svg.contains(&format!("class=\"{class}\"")), "svg lacks {class}");
    }
    assert!(svg.contains("SIGKILL node-us-west &lt;pid 42&gt; &amp; co"), "event label escaped");
}

#[test]
fn a_run_without_answers_still_renders() {
    let plan = open_plan("http://127.0.0.1:1", 10.0, Duration::from_secs(1));
    let report = Report::new(&plan, &Stats::new(), Vec::new());
    assert_balanced_xml(&loadtest::chart::svg(&report));
    assert!(report.to_markdown().contains("none"));
}
