//! Scenario PASS/FAIL judgement.

use std::collections::BTreeMap;
use std::time::Duration;

use loadtest::client::ErrorKind;
use loadtest::scenario::judge::{judge, Criteria, Evidence, SwapEvidence};
use loadtest::stats::Seen;

fn healthy() -> Evidence {
    Evidence { requests: 6000, steady_p99_us: Some(2_000), event_p99_us: Some(5_000), ..Evidence::default() }
}

#[test]
fn a_clean_run_passes() {
    let v = judge(&healthy(), &Criteria::default());
    assert!(v.pass, "{v:?}");
    assert_eq!(v.label(), "PASS");
    assert_eq!(v.checks.len(), 2);
}

#[test]
fn one_failed_request_fails_the_scenario() {
    let mut e = healthy();
    e.errors = BTreeMap::from([(ErrorKind::Timeout, 1)]);
    let v = judge(&e, &Criteria::default());
    assert!(!v.pass);
    assert_eq!(v.label(), "FAIL");
    let check = v.checks.iter().find(|c| c.criterion == "zero failed requests").unwrap();
    assert!(!check.pass);
    assert_eq!(check.observed, "1 of 6000 failed (timeout 1)");
}

#[test]
fn event_p99_above_three_times_steady_fails() {
    let mut e = healthy();
    e.event_p99_us = Some(6_001);
    assert!(!judge(&e, &Criteria::default()).pass);
    e.event_p99_us = None;
    assert!(!judge(&e, &Criteria::default()).pass, "no answers during the event is not a pass");
    assert!(!judge(&Evidence::default(), &Criteria::default()).pass, "an empty run is not a pass");
}

#[test]
fn failed_steps_fail_the_scenario() {
    let mut e = healthy();
    e.step_failures.push("restart node-us-west: no such file".into());
    assert!(!judge(&e, &Criteria::default()).pass);
}

fn seen(first: u64, last: u64) -> Seen {
    Seen { count: 10, first: Duration::from_secs(first), last: Duration::from_secs(last) }
}

#[test]
fn hot_swap_needs_every_region_on_the_new_version_by_the_deadline() {
    let swap = SwapEvidence {
        version: "v2".into(),
        deadline: Duration::from_secs(15),
        node_ready: BTreeMap::from([
            ("eu-west".into(), Some(Duration::from_secs(12))),
            ("us-west".into(), Some(Duration::from_secs(13))),
        ]),
        answers: BTreeMap::from([
            ("eu-west".into(), BTreeMap::from([("v1".into(), seen(0, 12)), ("v2".into(), seen(12, 30))])),
            ("us-west".into(), BTreeMap::from([("v1".into(), seen(0, 13)), ("v2".into(), seen(13, 30))])),
        ]),
    };
    let mut e = healthy();
    e.swap = Some(swap.clone());
    assert!(judge(&e, &Criteria::default()).pass);

    // A node that never reported the version.
    let mut late = swap.clone();
    late.node_ready.insert("us-west".into(), None);
    e.swap = Some(late);
    assert!(!judge(&e, &Criteria::default()).pass);

    // Answers with the old version after the deadline.
    let mut stale = swap;
    stale.answers.get_mut("eu-west").unwrap().insert("v1".into(), seen(0, 16));
    e.swap = Some(stale);
    let v = judge(&e, &Criteria::default());
    assert!(!v.pass);
    assert!(v.checks.iter().any(|c| !c.pass && c.observed.contains("eu-west: still answered v1")), "{v:?}");
}
