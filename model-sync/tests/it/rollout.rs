//! Rollouts against the in-process S3 and fake region nodes: each fake follows its region's
//! pointer like a node does (loads the candidate it names, or is told not to) and serves
//! scripted traffic figures on `GET /rollout/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::rollout::{Candidate, CandidateReport, Latency, Mode, NodeReport, VersionReport, LATENCY_BUCKETS};
use model_sync::publish::{self, PublishOptions, Replication};
use model_sync::rollout::guard::GuardSettings;
use model_sync::rollout::nodes::Target;
use model_sync::rollout::state::{self, Phase, Record, Stage, Timing};
use model_sync::rollout::{Controller, StartOptions};
use store::reader;
use store::Bucket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{simple_model, version, Cluster, LocalModel};

const REGIONS: [&str; 2] = ["eu-west", "us-west"];

/// How one arm behaves per request.
#[derive(Debug, Clone, Copy)]
struct Arm {
    error_rate: f64,
    click_rate: f64,
    latency_bucket: usize,
}

const GOOD: Arm = Arm { error_rate: 0.0, click_rate: 0.2, latency_bucket: 3 };

#[derive(Debug, Clone)]
enum Load {
    Loads,
    Fails(String),
    Never,
}

#[derive(Debug, Clone)]
struct Behaviour {
    stable: Arm,
    candidate: Arm,
    load: Load,
}

#[derive(Default)]
struct Counts {
    requests: f64,
    errors: f64,
    clicks: f64,
}

impl Counts {
    /// `n` attempts: as a node counts them, answered ones in `requests`, failed ones in
    /// `errors`.
    fn add(&mut self, n: f64, arm: Arm) {
        self.requests += n * (1.0 - arm.error_rate);
        self.errors += n * arm.error_rate;
        self.clicks += n * arm.click_rate;
    }

    fn version(&self, v: &str, arm: Arm) -> VersionReport {
        let requests = self.requests as u64;
        let mut counts = vec![0; LATENCY_BUCKETS.len() + 1];
        counts[arm.latency_bucket] = requests;
        VersionReport {
            version: v.to_string(),
            requests,
            users: requests / 3,
            errors: self.errors as u64,
            latency: Latency { counts, sum_seconds: 0.0 },
            conversions: [("click".to_string(), self.clicks as u64)].into(),
            ..Default::default()
        }
    }
}

struct NodeState {
    behaviour: Behaviour,
    pointer_version: Option<String>,
    candidate: Option<Candidate>,
    stable: Counts,
    cand: Counts,
    shadow: Counts,
    /// Every distinct candidate (mode, share) this node was asked to load, in order.
    seen: Vec<(Mode, f64)>,
}

impl NodeState {
    fn report(&self, region: &str) -> NodeReport {
        let (b, v) = (&self.behaviour, self.pointer_version.clone().unwrap_or_default());
        let loaded = self.candidate.as_ref().filter(|_| matches!(b.load, Load::Loads));
        NodeReport {
            region: region.to_string(),
            instance: "fake-1".into(),
            at: String::new(),
            stable: self.pointer_version.as_ref().map(|_| self.stable.version(&v, b.stable)),
            candidate: loaded.map(|c| {
                let shadow = self.shadow.version(&c.version, b.candidate);
                CandidateReport {
                    rollout_id: c.rollout_id.clone(),
                    mode: c.mode,
                    share: c.share,
                    figures: self.cand.version(&c.version, b.candidate),
                    shadow: model::rollout::ShadowReport {
                        computed: shadow.requests,
                        skipped: 0,
                        errors: shadow.errors,
                        latency: shadow.latency,
                        overlap_sum: shadow.requests as f64 * 0.8,
                    },
                }
            }),
            candidate_error: match (&self.candidate, &b.load) {
                (Some(_), Load::Fails(e)) => Some(e.clone()),
                _ => None,
            },
            attribution_window_s: 600,
            latency_buckets_s: model::rollout::LATENCY_BUCKETS.to_vec(),
        }
    }

    /// One tick of traffic: `n` requests split as the loaded candidate says.
    fn traffic(&mut self, n: f64) {
        let b = self.behaviour.clone();
        match self.candidate.as_ref().filter(|_| matches!(b.load, Load::Loads)) {
            Some(c) if c.mode == Mode::Split => {
                self.cand.add(n * c.share, b.candidate);
                self.stable.add(n * (1.0 - c.share), b.stable);
            }
            Some(c) => {
                self.stable.add(n, b.stable);
                self.shadow.add(n * c.share, b.candidate);
            }
            None => self.stable.add(n, b.stable),
        }
    }
}

/// A fake region node: follows `bucket`'s pointer every 25 ms and serves its report.
struct FakeNode {
    url: url::Url,
    state: Arc<Mutex<NodeState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl FakeNode {
    async fn start(region: &str, bucket: Bucket, behaviour: Behaviour) -> FakeNode {
        let state = Arc::new(Mutex::new(NodeState {
            behaviour,
            pointer_version: None,
            candidate: None,
            stable: Counts::default(),
            cand: Counts::default(),
            shadow: Counts::default(),
            seen: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr")).parse().expect("url");
        let (serve_state, region_name) = (state.clone(), region.to_string());
        let serve = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { continue };
                let (state, region) = (serve_state.clone(), region_name.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = {
                        let s = state.lock().expect("lock");
                        serde_json::to_vec(&s.report(&region)).expect("json")
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        let follow_state = state.clone();
        let follow = tokio::spawn(async move {
            loop {
                if let Ok(Some(p)) = reader::read_pointer(&bucket).await {
                    let mut s = follow_state.lock().expect("lock");
                    if s.pointer_version.as_deref() != Some(p.version.as_str()) {
                        s.pointer_version = Some(p.version.clone());
                        s.stable = Counts::default();
                    }
                    if s.candidate.as_ref().map(|c| &c.version) != p.candidate.as_ref().map(|c| &c.version) {
                        (s.cand, s.shadow) = (Counts::default(), Counts::default());
                    }
                    if let Some(c) = &p.candidate {
                        if s.seen.last() != Some(&(c.mode, c.share)) {
                            s.seen.push((c.mode, c.share));
                        }
                    }
                    s.candidate = p.candidate;
                    s.traffic(40.0);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        FakeNode { url, state, tasks: vec![serve, follow] }
    }

    fn seen(&self) -> Vec<(Mode, f64)> {
        self.state.lock().expect("lock").seen.clone()
    }
}

struct Site {
    cluster: Cluster,
    nodes: Vec<FakeNode>,
    v2: LocalModel,
}

impl Site {
    /// Both regions serve v1; v2 is built; one fake node per region with `behaviour(region)`.
    async fn start(behaviour: impl Fn(&str) -> Behaviour) -> Site {
        let cluster = Cluster::new(&REGIONS, &[]);
        cluster.publish(&simple_model(1, 20_000)).await.expect("v1 everywhere");
        let mut nodes = Vec::new();
        for r in REGIONS {
            nodes.push(FakeNode::start(r, cluster.bucket(r), behaviour(r)).await);
        }
        Site { cluster, nodes, v2: simple_model(2, 20_000) }
    }

    fn controller(&self) -> Controller {
        let targets = REGIONS
            .iter()
            .zip(&self.nodes)
            .map(|(r, n)| Target {
                region: r.to_string(),
                bucket: self.cluster.bucket(r),
                urls: vec![n.url.clone()],
            })
            .collect();
        Controller::new(self.cluster.primary(), targets, Duration::from_secs(2))
    }

    /// v2 in every bucket, no pointer moved.
    async fn publish_v2(&self) {
        let opts = PublishOptions { flip: false, ..PublishOptions::default() };
        publish::publish(&self.cluster.primary(), &self.cluster.region_buckets(), &self.v2.path, opts)
            .await
            .expect("publish v2 without flipping");
    }

    async fn pointers(&self) -> Vec<model::manifest::Pointer> {
        let mut out = Vec::new();
        for b in self.cluster.region_buckets() {
            out.push(reader::read_pointer(&b).await.expect("read").expect("pointer"));
        }
        out
    }

    /// Every region serves v1 with no candidate, and the primary still names v1.
    async fn assert_rolled_back(&self) {
        for p in self.pointers().await {
            assert_eq!((p.version.as_str(), p.candidate.as_ref()), (version(1).as_str(), None), "{p:?}");
        }
        let primary = reader::read_pointer(&self.cluster.primary()).await.expect("read").expect("pointer");
        assert_eq!(primary.version, version(1));
        assert_eq!(state::active(&self.cluster.primary()).await.expect("read"), None, "active cleared");
    }
}

fn options(plan: &str) -> StartOptions {
    StartOptions {
        plan: plan.parse().expect("plan"),
        hold: false,
        id: None,
        guards: GuardSettings {
            min_requests: 30,
            conversion_margin: 0.02,
            conversion_min_requests: 150,
            conversion_min_conversions: 10,
            ..GuardSettings::default()
        },
        timing: Timing { poll_ms: 100, load_timeout_ms: 5_000, load_error_grace_ms: 400 },
    }
}

fn good(_: &str) -> Behaviour {
    Behaviour { stable: GOOD, candidate: GOOD, load: Load::Loads }
}

fn history(r: &Record) -> String {
    r.history.iter().map(|e| e.what.clone()).collect::<Vec<_>>().join("\n")
}

/// Wait (bounded) until the stored record satisfies `ready`.
async fn wait_for_record(primary: &Bucket, id: &str, what: &str, ready: impl Fn(&Record) -> bool) -> Record {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = state::load(primary, id).await {
            if ready(&r) {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_good_candidate_is_promoted_through_the_plan() {
    let site = Site::start(good).await;
    let plan = "shadow@eu-west:600ms,50%@eu-west:600ms,100%@all:600ms";
    let r = site.controller().start(&site.v2.path, Replication::Copy, options(plan)).await.expect("rollout");

    assert_eq!(r.phase, Phase::Promoted, "{}", history(&r));
    let h = history(&r);
    for step in ["step 1 (shadow@eu-west:600ms) passed", "step 2 (50%@eu-west:600ms) passed", "plan complete"]
    {
        assert!(h.contains(step), "{h}");
    }
    for p in site.pointers().await {
        assert_eq!(p.version, version(2));
        assert_eq!(p.previous, Some(version(1)));
        assert_eq!(p.candidate, None);
    }
    let primary = reader::read_pointer(&site.cluster.primary()).await.expect("read").expect("pointer");
    assert_eq!(primary.version, version(2));
    // eu-west went shadow -> 50% -> 100%; us-west saw the candidate only in the last step.
    assert_eq!(site.nodes[0].seen(), [(Mode::Shadow, 1.0), (Mode::Split, 0.5), (Mode::Split, 1.0)]);
    assert_eq!(site.nodes[1].seen(), [(Mode::Split, 1.0)]);
    // The record in the primary bucket is what was returned, and nothing is active.
    let stored = state::load(&site.cluster.primary(), &r.id).await.expect("record");
    assert_eq!(stored.phase, Phase::Promoted);
    // The decision to leave the 50% step was recorded with the figures behind it.
    let passed = stored.history.iter().find(|e| e.what.starts_with("step 2 (") && e.what.ends_with("passed"));
    let w = &passed.and_then(|e| e.figures.as_ref()).expect("figures recorded").window;
    assert!(w.candidate.requests > 0 && w.stable.requests > 0, "{w:?}");
    assert_eq!(stored.last_check.expect("figures").step, 2, "the last step's figures");
    assert_eq!(state::active(&site.cluster.primary()).await.expect("read"), None);
}

#[tokio::test]
async fn a_candidate_with_worse_conversions_is_rolled_back_in_its_first_split_step() {
    let site = Site::start(|_| Behaviour {
        stable: Arm { click_rate: 0.3, ..GOOD },
        candidate: Arm { click_rate: 0.05, ..GOOD },
        load: Load::Loads,
    })
    .await;
    let plan = "shadow@eu-west:300ms,50%@eu-west:20s,100%@all:20s";
    let r = site.controller().start(&site.v2.path, Replication::Copy, options(plan)).await.expect("rollout");

    assert_eq!(r.phase, Phase::RolledBack, "{}", history(&r));
    assert_eq!(r.step, 1, "failed in the first split step");
    let reason = r.reason.clone().expect("reason");
    assert!(reason.contains("step 2 failed: conversions guard"), "{reason}");
    assert!(reason.contains("one-sided two-proportion z-test (pooled)"), "{reason}");
    let check = r.last_check.as_ref().expect("figures");
    assert!(check.window.candidate.requests >= 150, "{check:?}");
    site.assert_rolled_back().await;
}

#[tokio::test]
async fn a_candidate_with_errors_is_rolled_back() {
    let site = Site::start(|_| Behaviour {
        stable: GOOD,
        candidate: Arm { error_rate: 0.2, ..GOOD },
        load: Load::Loads,
    })
    .await;
    // Shadow computations fail too: caught before any user is answered by the candidate.
    let plan = "shadow@eu-west:20s,50%@eu-west:20s,100%@all:20s";
    let r = site.controller().start(&site.v2.path, Replication::Copy, options(plan)).await.expect("rollout");

    assert_eq!((r.phase, r.step), (Phase::RolledBack, 0), "{}", history(&r));
    let reason = r.reason.clone().expect("reason");
    assert!(reason.contains("errors guard: shadow error rate 0.2"), "{reason}");
    site.assert_rolled_back().await;
}

#[tokio::test]
async fn a_stopped_controller_resumes_from_the_record() {
    let site = Site::start(good).await;
    site.publish_v2().await;
    let ctl = site.controller();
    let record = ctl
        .begin(&version(2), options("shadow@eu-west:300ms,50%@eu-west:2s,100%@all:300ms"))
        .await
        .expect("begin");
    let id = record.id.clone();
    let driving = tokio::spawn({
        let ctl = ctl.clone();
        async move { ctl.drive(record).await }
    });
    // Stop it in the middle of step 2's bake, once it recorded figures there.
    wait_for_record(&site.cluster.primary(), &id, "step 2 baking", |r| {
        r.step == 1 && r.stage == Stage::Baking && r.last_check.as_ref().is_some_and(|c| c.step == 1)
    })
    .await;
    driving.abort();
    let _ = driving.await;
    let stopped = state::load(&site.cluster.primary(), &id).await.expect("record");
    assert_eq!(state::active(&site.cluster.primary()).await.expect("read"), Some(id.clone()));
    let eu = &site.pointers().await[0];
    assert_eq!(eu.candidate.as_ref().map(|c| (c.mode, c.share)), Some((Mode::Split, 0.5)), "left as it was");

    // A pointer write was lost (say): resuming re-applies the step's pointers.
    let eu_bucket = site.cluster.bucket("eu-west");
    let lost = model::manifest::Pointer { candidate: None, ..eu.clone() };
    eu_bucket
        .put_bytes(&model::manifest::pointer_key(eu_bucket.prefix()), lost.to_json().into())
        .await
        .expect("put");

    // Another controller (another machine) picks it up.
    let r = site.controller().resume(None).await.expect("resume");
    assert_eq!(r.phase, Phase::Promoted, "{}", history(&r));
    let h = history(&r);
    assert!(h.contains("resumed at step 2 (baking)"), "{h}");
    assert!(h.contains("step 2: pointers re-applied in eu-west"), "{h}");
    // Step 2 was not applied again, and its bake kept the recorded start and baseline.
    assert_eq!(h.matches("step 2 (50%@eu-west:2s): candidate written").count(), 1, "{h}");
    assert_eq!(h.matches("step 2: every node loaded").count(), 1, "{h}");
    assert!(stopped.bake_started_ms.is_some());
    for p in site.pointers().await {
        assert_eq!((p.version, p.candidate), (version(2), None));
    }
}

#[tokio::test]
async fn abort_from_elsewhere_restores_every_region_and_stops_the_controller() {
    let site = Site::start(good).await;
    site.publish_v2().await;
    let ctl = site.controller();
    let hold = StartOptions { hold: true, ..options("50%@all:0s") };
    let record = ctl.begin(&version(2), hold).await.expect("begin");
    let id = record.id.clone();
    let driving = tokio::spawn(async move { ctl.drive(record).await });
    wait_for_record(&site.cluster.primary(), &id, "the hold baking", |r| {
        r.stage == Stage::Baking && r.last_check.is_some()
    })
    .await;
    for p in site.pointers().await {
        assert_eq!(p.candidate.as_ref().map(|c| c.share), Some(0.5), "both regions split");
    }

    let aborted = site.controller().abort(None, "enough").await.expect("abort");
    assert_eq!(aborted.phase, Phase::Aborted);
    site.assert_rolled_back().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), driving)
        .await
        .expect("the controller noticed")
        .expect("joined")
        .expect("no error");
    assert_eq!(ended.phase, Phase::Aborted);
    site.assert_rolled_back().await;
    assert!(history(&ended).contains("aborted: enough"), "{}", history(&ended));
}

#[tokio::test]
async fn a_candidate_that_never_loads_fails_the_step() {
    let site = Site::start(|r| Behaviour {
        load: if r == "us-west" { Load::Never } else { Load::Loads },
        ..good(r)
    })
    .await;
    let plan = "50%@all:300ms";
    let opts =
        StartOptions { timing: Timing { load_timeout_ms: 1_000, ..options(plan).timing }, ..options(plan) };
    let r = site.controller().start(&site.v2.path, Replication::Copy, opts).await.expect("rollout");
    assert_eq!(r.phase, Phase::RolledBack, "{}", history(&r));
    let reason = r.reason.clone().expect("reason");
    assert!(reason.contains("not every node loaded the candidate within 1s"), "{reason}");
    assert!(reason.contains(&format!("{}: candidate not loaded yet", site.nodes[1].url)), "{reason}");
    site.assert_rolled_back().await;

    // A node that reports a load error fails the step once the grace period is over.
    site.nodes[1].state.lock().expect("lock").behaviour.load = Load::Fails("sha256 mismatch".into());
    let r = site.controller().start(&site.v2.path, Replication::Copy, options(plan)).await.expect("rollout");
    assert_eq!(r.phase, Phase::RolledBack, "{}", history(&r));
    let reason = r.reason.clone().expect("reason");
    assert!(reason.contains("(us-west) cannot load the candidate: sha256 mismatch"), "{reason}");
    site.assert_rolled_back().await;
}

#[tokio::test]
async fn the_retrain_loop_rolls_an_accepted_build_out() {
    use model_sync::generate::{generate, GenerateParams};
    use model_sync::run::{Delivery, Outcome, RunSettings, Runner, Targets};

    let site = Site::start(good).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let shop =
        GenerateParams { users: 300, items: 120, categories: 6, events_per_user: 15.0, ..Default::default() };
    model_sync::dataset::write_dir(&generate(&shop), &data).expect("write dataset");
    let targets = Targets {
        primary: site.cluster.primary(),
        regions: site.cluster.region_buckets(),
        streams: Vec::new(),
        shared: None,
        erasure_nodes: None,
    };
    let settings = RunSettings {
        data: Some(data),
        params: model::model::BuildParams { neighbours: 20, ..Default::default() },
        protocol: model_sync::eval::Protocol::default(),
        max_ndcg_drop: 0.01,
        erasure_deadline: None,
        work_dir: dir.path().join("work"),
        ingest: model_sync::ingest::IngestOptions::default(),
        replication: Replication::Copy,
        delivery: Delivery::Rollout(Box::new((
            site.controller(),
            options("shadow@eu-west:300ms,100%@all:300ms"),
        ))),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);

    // v1 has no recorded NDCG: the build is accepted, then rolled out rather than flipped.
    let report = Runner::new(targets, settings).cycle(&stop).await.expect("cycle");
    let Outcome::Published { candidate, rollout: Some(id), .. } = &report.outcome else {
        panic!("expected a rollout, got {:?}", report.outcome)
    };
    let record = state::load(&site.cluster.primary(), id).await.expect("record");
    assert_eq!((record.phase, record.version.as_str()), (Phase::Promoted, candidate.version.as_str()));
    assert_eq!(site.nodes[0].seen(), [(Mode::Shadow, 1.0), (Mode::Split, 1.0)]);
    for p in site.pointers().await {
        assert_eq!((&p.version, &p.previous, &p.candidate), (&candidate.version, &Some(version(1)), &None));
    }
}
