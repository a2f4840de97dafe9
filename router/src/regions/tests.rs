//! Unit tests of routing choices and region state.

use super::*;
use crate::settings::{BudgetSettings, EwmaSettings, RegionSettings};
use crate::upstream::connect::Connector;

const HEALTH: HealthSettings = HealthSettings {
    interval: Duration::from_millis(100),
    timeout: Duration::from_millis(50),
    fall: 1,
    rise: 1,
    eject_after: 1,
    max_ejection_percent: 100,
};

/// Regions `a`..: `a` fails over to `c` then `b`; the others list nothing.
fn regions(n: usize) -> (Regions, Metrics) {
    regions_capped(n, 100)
}

/// Like [`regions`], with failing traffic ejecting at most `max_ejection_percent` of the nodes.
fn regions_capped(n: usize, max_ejection_percent: u8) -> (Regions, Metrics) {
    let names: Vec<String> = (0..n).map(|i| char::from(b'a' + i as u8).to_string()).collect();
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 1,
        request_timeout: Duration::from_millis(100),
        attempt_timeout_factor: 20,
        attempt_timeout_floor: Duration::from_millis(100),
        max_body_bytes: 1024,
        max_connections: 10_000,
        health: HealthSettings { max_ejection_percent, ..HEALTH },
        client_timeout: Duration::from_secs(10),
        stream_idle_timeout: Duration::from_secs(10),
        connector: Connector::new(None).expect("connector"),
        rate_limit: Default::default(),
        budget: BudgetSettings { ratio: 0.2, min_per_sec: 10, window: Duration::from_secs(10) },
        ewma: EwmaSettings {
            decay: Duration::from_secs(10),
            error_penalty: Duration::from_secs(1),
            default_rtt: Duration::from_millis(30),
        },
        regions: names
            .iter()
            .map(|name| RegionSettings {
                name: name.clone(),
                nodes: [format!("http://{name}.invalid"), format!("http://{name}2.invalid")]
                    .iter()
                    .map(|u| Endpoint::parse(u).expect("url"))
                    .collect(),
                failover: if name == "a" { vec!["c".into(), "b".into()] } else { vec![] },
                zone: None,
            })
            .collect(),
    };
    (Regions::new(&settings), Metrics::new(&names).expect("metrics"))
}

fn latency(r: &Regions, name: &str, ms: u64) {
    let region = r.get(r.find(name).expect("region"));
    for n in &region.nodes {
        n.ewma.observe(Duration::from_millis(ms));
    }
}

fn kill(r: &Regions, name: &str, m: &Metrics) {
    let region = r.get(r.find(name).expect("region"));
    for n in 0..region.nodes.len() {
        region.record_failure(n, Duration::ZERO, &HEALTH, m, || true);
    }
}

fn names(r: &Regions, plan: Plan) -> Vec<&str> {
    plan.into_iter().map(|i| r.get(i).name.as_str()).collect()
}

#[test]
fn unhinted_goes_by_latency() {
    let (r, _) = regions(4);
    for (name, ms) in [("a", 40), ("b", 5), ("c", 20), ("d", 10)] {
        latency(&r, name, ms);
    }
    assert_eq!(names(&r, r.plan(None)), ["b", "d", "c", "a"]);
}

#[test]
fn hinted_region_first_then_its_failover_list_by_latency_then_the_rest() {
    let (r, m) = regions(4);
    for (name, ms) in [("a", 40), ("b", 5), ("c", 20), ("d", 1)] {
        latency(&r, name, ms);
    }
    assert_eq!(names(&r, r.plan(r.find("a"))), ["a", "b", "c", "d"]);
    kill(&r, "b", &m);
    assert_eq!(names(&r, r.plan(r.find("a"))), ["a", "c", "d"]);
    assert_eq!(names(&r, r.plan(r.find("b"))), ["d", "c", "a"]);
}

#[test]
fn equal_latency_keeps_the_preference_order() {
    let (r, _) = regions(3);
    assert_eq!(names(&r, r.plan(r.find("a"))), ["a", "c", "b"]);
}

#[test]
fn drained_and_dead_regions_are_skipped_and_announced_once() {
    let (r, m) = regions(3);
    let a = r.get(0);
    assert_eq!(a.set_drained(true, &m), RegionState::Drained);
    assert_eq!(names(&r, r.plan(Some(0))), ["c", "b"]);
    kill(&r, "c", &m);
    kill(&r, "b", &m);
    assert!(r.plan(Some(0)).is_empty());
    assert_eq!(a.set_drained(false, &m), RegionState::Healthy);
    assert_eq!(names(&r, r.plan(None)), ["a"]);
    let text = m.render().expect("render");
    assert!(text.contains(r#"router_region_state_changes_total{region="a",state="drained"} 1"#), "{text}");
    assert!(text.contains(r#"router_region_state_changes_total{region="b",state="unhealthy"} 1"#), "{text}");
    assert!(text.contains(r#"router_ejections_total{region="b"} 2"#), "{text}");
}

#[test]
fn a_region_stays_healthy_while_one_node_is() {
    let (r, m) = regions(1);
    let a = r.get(0);
    a.record_failure(0, Duration::ZERO, &HEALTH, &m, || true);
    assert_eq!(a.state(), RegionState::Healthy);
    for _ in 0..20 {
        assert_eq!(a.pick(None, false), Some(1), "only the healthy node is picked");
    }
    assert_eq!(a.pick(Some(1), false), None, "the excluded node is not picked");
}

#[test]
fn similar_nodes_share_traffic_and_a_clearly_slower_one_is_avoided() {
    let (r, _) = regions(1);
    let a = r.get(0);
    a.nodes[0].ewma.observe(Duration::from_millis(10));
    a.nodes[1].ewma.observe(Duration::from_millis(11));
    let picks: Vec<_> = (0..200).filter_map(|_| a.pick(None, false)).collect();
    let second = picks.iter().filter(|&&n| n == 1).count();
    assert!((40..=160).contains(&second), "similar nodes split {second}/200");
    a.nodes[1].ewma.observe(Duration::from_millis(50));
    assert!((0..50).all(|_| a.pick(None, false) == Some(0)), "the slow node is avoided");
}

#[test]
fn failing_traffic_ejects_at_most_the_capped_share_of_nodes() {
    // Four regions of two nodes: at most half of the eight may be ejected.
    let (r, m) = regions_capped(4, 50);
    let eject_all = |name: &str| {
        let region = r.get(r.find(name).expect("region"));
        for n in 0..region.nodes.len() {
            region.record_failure(n, Duration::ZERO, &HEALTH, &m, || r.may_eject());
        }
    };
    for name in ["a", "b", "c", "d"] {
        eject_all(name);
    }
    let up = r.iter().flat_map(|g| &g.nodes).filter(|n| n.health.is_up()).count();
    assert_eq!(up, 4, "half the nodes stay in rotation");
    assert_eq!(r.plan(None).len(), 2, "two regions still serve");
    let (none, _) = regions_capped(1, 0);
    none.get(0).record_failure(0, Duration::ZERO, &HEALTH, &m, || none.may_eject());
    assert!(none.get(0).nodes[0].health.is_up(), "0%: traffic never ejects");
}

#[test]
fn with_no_region_healthy_the_panic_plan_keeps_every_region_not_drained_cheapest_node_first() {
    let (r, m) = regions(3);
    assert!(!r.panicking());
    for name in ["a", "b", "c"] {
        kill(&r, name, &m);
    }
    // After the failures' penalty, `a` is the slowest.
    latency(&r, "a", 5_000);
    r.get(r.find("b").expect("b")).set_drained(true, &m);
    assert!(r.plan(None).is_empty() && r.plan(Some(0)).is_empty());
    assert!(r.panicking());
    assert_eq!(names(&r, r.panic_plan(None)), ["c", "a"], "by latency, drained left out");
    assert_eq!(names(&r, r.panic_plan(Some(0))), ["a", "c"], "the hint first, then its failover list");
    let a = r.get(0);
    a.nodes[1].ewma.observe(Duration::from_secs(60));
    assert_eq!(a.pick(None, false), None, "outside panic mode only healthy nodes are picked");
    assert!((0..50).all(|_| a.pick(None, true) == Some(0)), "in panic mode the cheaper of any node");
    assert_eq!(a.pick(Some(0), true), Some(1));
    for name in ["a", "c"] {
        r.get(r.find(name).expect("region")).set_drained(true, &m);
    }
    assert!(r.panic_plan(None).is_empty(), "every region drained: nothing to try");
    assert!(!r.panicking());
}

#[test]
fn tries_take_an_available_hint_first_and_rank_the_rest_only_when_needed() {
    let (r, m) = regions(4);
    for (name, ms) in [("a", 40), ("b", 5), ("c", 20), ("d", 1)] {
        latency(&r, name, ms);
    }
    let rest =
        |t: &mut Tries| std::iter::from_fn(|| t.next(&r)).map(|i| r.get(i).name.as_str()).collect::<Vec<_>>();
    assert_eq!(rest(&mut r.tries(r.find("a"))), names(&r, r.plan(r.find("a"))));
    assert_eq!(rest(&mut r.tries(None)), names(&r, r.plan(None)));

    // The rest is ranked when the hint has been tried: by the regions' state then.
    let mut t = r.tries(r.find("a"));
    assert_eq!((t.first(), t.panic()), (r.find("a"), false));
    assert_eq!(t.next(&r), r.find("a"));
    kill(&r, "b", &m);
    assert!(t.any(&r, |i| r.get(i).name == "d") && !t.any(&r, |i| r.get(i).name == "b"));
    assert_eq!(rest(&mut t), ["c", "d"]);

    // A hint that cannot take the request: the plan without it.
    kill(&r, "a", &m);
    assert_eq!(rest(&mut r.tries(r.find("a"))), ["c", "d"]);
    // Nothing healthy: panic mode, every region not drained.
    kill(&r, "c", &m);
    kill(&r, "d", &m);
    let mut t = r.tries(r.find("a"));
    assert!(t.panic());
    assert_eq!(rest(&mut t).len(), 4);
}

#[test]
fn region_names_are_found_in_any_case() {
    let (r, _) = regions(3);
    assert_eq!((r.find("b"), r.find("B"), r.find("z")), (Some(1), Some(1), None));
}
