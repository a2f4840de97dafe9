//! The retrain loop and `build --events`, through the real binary: regions.toml pointing at
//! an s3s-fs server and redis-server children, exit codes and output checked.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use model::events::EventType;
use model::manifest::PAYLOAD_FILE;
use model_sync::dataset::{self, Dataset};
use model_sync::generate::{generate, GenerateParams};
use model_sync::ingest;
use model_sync::run::ndcg_at_10;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use store::reader;
use store::Bucket;
use testkit::{RedisServer, S3Server, ACCESS_KEY, SECRET_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::PREFIX;
use crate::ingest::{connect, event, push, PRIMARY, TS};

const REGIONS: [&str; 2] = ["eu-west", "us-east"];
/// Small enough for a debug build to build and evaluate in about a second.
const BUILD_FLAGS: [&str; 2] = ["--neighbours", "20"];

/// An s3s-fs server with the primary and two region buckets, a redis-server per region, and a
/// regions.toml naming them.
struct Site {
    s3: S3Server,
    redis: Vec<RedisServer>,
    dir: tempfile::TempDir,
}

impl Site {
    fn start() -> Site {
        Site::start_with("")
    }

    /// `eu_west` is added to eu-west's section (e.g. `residency = "eu"`).
    fn start_with(eu_west: &str) -> Site {
        let s3 = S3Server::start(&[PRIMARY, "georec-eu-west", "georec-us-east"]);
        let redis: Vec<RedisServer> = REGIONS.iter().map(|_| RedisServer::start()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut toml = format!(
            "[primary]\nendpoint = \"{e}\"\nbucket = \"{PRIMARY}\"\nprefix = \"{PREFIX}\"\ncloud_region = \"us-east-1\"\n",
            e = s3.endpoint()
        );
        for (i, (r, redis)) in REGIONS.iter().zip(&redis).enumerate() {
            toml += &format!(
                "\n[regions.{r}]\nlisten = \"127.0.0.1:{p}\"\nurls = [\"http://127.0.0.1:{p}\"]\n\
                 redis_url = \"{u}\"\ncloud_region = \"us-east-1\"\n\
                 s3 = {{ endpoint = \"{e}\", bucket = \"georec-{r}\", prefix = \"{PREFIX}\" }}\n{extra}\n",
                p = 1 + i,
                u = redis.url(),
                e = s3.endpoint(),
                extra = if *r == "eu-west" { eu_west } else { "" }
            );
        }
        std::fs::write(dir.path().join("regions.toml"), toml).expect("write regions.toml");
        Site { s3, redis, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_model-sync"));
        c.arg("--config").arg(self.path("regions.toml")).args(args);
        c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        c.env_remove("AWS_SESSION_TOKEN").env("RUST_LOG", "info").kill_on_drop(true);
        c
    }

    async fn model_sync(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("run model-sync")
    }

    /// `run --once` over `data`.
    async fn run_once(&self, data: &Path) -> (i32, String) {
        self.run_once_with(data, &[]).await
    }

    /// `run --once` over `data` with `extra` arguments.
    async fn run_once_with(&self, data: &Path, extra: &[&str]) -> (i32, String) {
        let work = self.path("work");
        let mut args = vec!["run", "--once", "--data", data.to_str().expect("utf8"), "--work-dir"];
        args.push(work.to_str().expect("utf8"));
        // The gate is under test here, not the rollout (tests/it/rollout.rs): flip directly.
        args.push("--flip");
        args.extend(BUILD_FLAGS);
        args.extend(extra);
        let out = self.model_sync(&args).await;
        let text = format!("{}\n--- stderr:\n{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn primary(&self) -> Bucket {
        self.s3.bucket(PRIMARY, PREFIX, "primary")
    }

    async fn serving(&self, bucket: &Bucket) -> String {
        reader::read_pointer(bucket).await.expect("read pointer").expect("a pointer").version
    }

    /// Push live events into every region: a few per user of `data`, on items they know.
    async fn push_events(&self, data: &Dataset, per_region: usize, offset: usize) {
        for (i, redis) in self.redis.iter().enumerate() {
            let evs: Vec<_> = data
                .events
                .iter()
                .skip(offset + i * per_region)
                .take(per_region)
                .enumerate()
                .map(|(n, e)| {
                    let (u, it) = (&data.users[e.user as usize], &data.items[e.item as usize]);
                    event(u, it, EventType::ALL[n % 3], TS + n as i64)
                })
                .collect();
            push(&mut connect(&redis.url()).await, REGIONS[i], &evs).await;
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn shop() -> Dataset {
    generate(&GenerateParams {
        users: 300,
        items: 120,
        categories: 6,
        events_per_user: 15.0,
        ..Default::default()
    })
}

/// The same events with items shuffled across them: popularity survives, user taste does not.
fn shuffled(data: &Dataset) -> Dataset {
    let mut items: Vec<u32> = data.events.iter().map(|e| e.item).collect();
    items.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(11));
    let mut d = data.clone();
    for (e, i) in d.events.iter_mut().zip(items) {
        e.item = i;
    }
    d
}

#[tokio::test]
async fn run_publishes_better_models_refuses_worse_ones_and_skips_when_nothing_changed() {
    let site = Site::start();
    let good = shop();
    let (good_dir, bad_dir) = (site.path("good"), site.path("shuffled"));
    dataset::write_dir(&good, &good_dir).expect("write");
    dataset::write_dir(&shuffled(&good), &bad_dir).expect("write");
    let primary = site.primary();

    // Nothing serves yet: even a poor candidate is published.
    let (code, out) = site.run_once(&bad_dir).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no model is served yet"), "{out}");
    let poor = site.serving(&primary).await;

    // Real data plus live events from both regions: better, published everywhere, with its
    // evaluation recorded in the manifest.
    site.push_events(&good, 40, 0).await;
    let (code, out) = site.run_once(&good_dir).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ingest: eu-west 40 events, us-east 40 events"), "{out}");
    assert!(out.contains("published"), "{out}");
    let better = site.serving(&primary).await;
    assert_ne!(better, poor);
    let m = reader::read_manifest(&primary, &better).await.expect("manifest");
    let (poor_ndcg, better_ndcg) = (
        ndcg_at_10(
            reader::read_manifest(&primary, &poor).await.expect("m").evaluation.as_ref().expect("eval"),
        ),
        ndcg_at_10(m.evaluation.as_ref().expect("evaluation recorded")).expect("NDCG@10"),
    );
    assert!(better_ndcg > poor_ndcg.expect("NDCG@10") + 0.05, "{better_ndcg} vs {poor_ndcg:?}");
    for r in REGIONS {
        let b = site.s3.bucket(&format!("georec-{r}"), PREFIX, r);
        assert_eq!(site.serving(&b).await, better, "{r}");
    }

    // Nothing new: skipped without building.
    let (code, out) = site.run_once(&good_dir).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("skipped: no new events and the data did not change"), "{out}");
    assert!(!out.contains("candidate"), "{out}");

    // Shuffled pairs (and a few more events): NDCG collapses, refused with exit code 3 and
    // both numbers; the better model keeps serving.
    site.push_events(&good, 5, 200).await;
    let (code, out) = site.run_once(&bad_dir).await;
    assert_eq!(code, 3, "{out}");
    let refusal = out.lines().find(|l| l.starts_with("refused: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(refusal.contains(&format!("{better_ndcg:.4}")) && refusal.contains(&better), "{refusal}");
    assert!(refusal.contains("allowed drop of 0.0100"), "{refusal}");
    assert_eq!(site.serving(&primary).await, better);

    // A user erased an hour ago: the worse candidate built without them is still refused.
    let erase = |n: u64, user: &str, ago: i64| {
        let at = model::manifest::now_unix() - ago;
        let key = format!("{PREFIX}erasures/eu-west/{n}-0_{n}-0.tsv");
        (key, format!("{}\n{n}-0\t{user}\t{at}\n", ingest::ERASURES_HEADER))
    };
    let (key, body) = erase(1, &good.users[0], 3600);
    primary.put_bytes(&key, body.into_bytes().into()).await.expect("put");
    let (code, out) = site.run_once(&bad_dir).await;
    assert_eq!(code, 3, "{out}");
    assert_eq!(site.serving(&primary).await, better);

    // Another erased two days ago (past the 24 h deadline) while the serving model still holds
    // them: the candidate is published anyway, and it honours both erasures.
    let (key, body) = erase(2, &good.users[1], 2 * 86_400);
    primary.put_bytes(&key, body.into_bytes().into()).await.expect("put");
    let (code, out) = site.run_once(&bad_dir).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("user(s) erased more than 86400 s ago"), "{out}");
    let now_serving = site.serving(&primary).await;
    assert_ne!(now_serving, better);
    let m = reader::read_manifest(&primary, &now_serving).await.expect("manifest");
    assert_eq!(m.erasures.map(|e| e.count), Some(2));
}

#[tokio::test]
async fn build_with_events_adds_ingested_users_with_or_without_data() {
    let site = Site::start();
    let good = shop();
    let data = site.path("data");
    dataset::write_dir(&good, &data).expect("write");
    let item = good.items[7].clone();
    let mut conn = connect(&site.redis[1].url()).await;
    push(&mut conn, "us-east", &[event("walk-in", &item, EventType::Purchase, TS)]).await;
    let out = site.model_sync(&["ingest", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(summary["regions"][1]["region"], "us-east");
    assert_eq!(summary["regions"][1]["events"], 1);

    for with_data in [true, false] {
        let model_dir = site.path(&format!("model-{with_data}"));
        let mut args = vec!["build", "--events", "--out", model_dir.to_str().expect("utf8")];
        if with_data {
            args.extend(["--data", data.to_str().expect("utf8")]);
        }
        args.extend(BUILD_FLAGS);
        let out = site.model_sync(&args).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let file = std::fs::File::open(model_dir.join(PAYLOAD_FILE)).expect("model.bin");
        let model = model::blob::decode(file).expect("decode");
        assert!(model.user_index("walk-in").is_some(), "with_data {with_data}");
        let users = if with_data { good.users.len() + 1 } else { 1 };
        assert_eq!(model.users.len(), users);
    }
}

#[tokio::test]
async fn the_loop_stops_on_sigterm_while_waiting() {
    let site = Site::start();
    let data = site.path("data");
    dataset::write_dir(&shop(), &data).expect("write");
    let work = site.path("work");
    let mut args = vec!["run", "--every", "1h", "--data", data.to_str().expect("utf8")];
    args.extend(["--work-dir", work.to_str().expect("utf8")]);
    args.extend(BUILD_FLAGS);
    let mut child = site.command(&args).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let waiting = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains("next cycle") {
                return true;
            }
        }
        false
    });
    assert!(waiting.await.expect("first cycle within 30 s"), "the loop never reached its wait");

    let pid = child.id().expect("running").to_string();
    let kill = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await.expect("exits promptly");
    assert!(status.expect("status").success());
    let mut rest = String::new();
    while let Ok(Some(l)) = lines.next_line().await {
        rest += &l;
    }
    assert!(rest.contains("stopped"), "{rest}");
}

/// eu-west in residency zone "eu": the shared loop never touches its stream, the zone's loop
/// keeps its events in the zone's store, builds from shared + zone data and publishes there
/// only; the shared model never holds a zone user.
#[tokio::test]
async fn a_residency_zone_keeps_its_events_and_gets_its_own_model() {
    let site = Site::start_with("residency = \"eu\"");
    let data = site.path("data");
    let good = shop();
    dataset::write_dir(&good, &data).expect("write");
    let item = good.items[0].clone();
    let (mut us, mut eu) = (connect(&site.redis[1].url()).await, connect(&site.redis[0].url()).await);
    push(&mut us, "us-east", &[event("us-shopper", &item, EventType::Purchase, TS)]).await;
    push(&mut eu, "eu-west", &[event("eu-shopper", &item, EventType::Purchase, TS)]).await;
    let eu_bucket = site.s3.bucket("georec-eu-west", PREFIX, "eu-west");
    let us_bucket = site.s3.bucket("georec-us-east", PREFIX, "us-east");
    let model_users = |version: String, bucket: Bucket| async move {
        let m = reader::read_manifest(&bucket, &version).await.expect("manifest");
        m.counts.users
    };

    // Naming a zone's region without its zone is refused.
    let out = site.model_sync(&["ingest", "--region", "eu-west"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use --zone eu"), "{out:?}");

    // The shared loop: us-east's event only, published to us-east only.
    let (code, out) = site.run_once_with(&data, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ingest: us-east 1 events"), "{out}");
    let shared = site.serving(&site.primary()).await;
    assert_eq!(site.serving(&us_bucket).await, shared);
    assert!(reader::read_pointer(&eu_bucket).await.expect("read").is_none(), "nothing published in the zone");
    let xlen: u64 = redis::cmd("XLEN")
        .arg(model::events::stream_key("eu-west"))
        .query_async(&mut eu)
        .await
        .expect("XLEN");
    assert_eq!(xlen, 1, "the zone's stream is left alone");
    assert_eq!(model_users(shared.clone(), site.primary()).await, good.users.len() as u64 + 1);
    let primary_keys: Vec<String> = site
        .primary()
        .list(&format!("{PREFIX}events/"))
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(primary_keys.iter().all(|k| !k.contains("eu-west")), "{primary_keys:?}");

    // The zone's loop: its event lands in the zone's store, never the primary; the regional
    // model has the shared users, us-east's and the zone's, and serves in the zone only.
    let (code, out) = site.run_once_with(&data, &["--zone", "eu"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ingest: eu-west 1 events"), "{out}");
    let home = site.s3.bucket("georec-eu-west", &format!("{PREFIX}zone-eu/"), "zone-eu");
    let zone_keys = home.list(&format!("{PREFIX}zone-eu/events/eu-west/")).await.expect("list");
    assert_eq!(zone_keys.len(), 1, "{zone_keys:?}");
    let regional = site.serving(&eu_bucket).await;
    assert_ne!(regional, shared);
    assert_eq!(site.serving(&home).await, regional);
    assert_eq!(model_users(regional, home).await, good.users.len() as u64 + 2);
    assert_eq!(site.serving(&us_bucket).await, shared, "the shared regions keep the shared model");
    let primary_keys = site.primary().list(&format!("{PREFIX}events/")).await.expect("list");
    assert!(primary_keys.iter().all(|o| !o.key.contains("eu-west")));
}
