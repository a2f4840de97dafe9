//! Test fixtures: a real node on 127.0.0.1:0 over an in-process S3 server and a real
//! redis-server child, small deterministic models, and typed request helpers.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::manifest::{self, Counts, FileEntry, Manifest, FORMAT_VERSION, MANIFEST_FILE, PAYLOAD_FILE};
use model::model::{BuildParams, Model, Query, Scored};
use model_sync::build::build;
use model_sync::dataset::{Dataset, ItemMeta};
use model_sync::publish::{self, PublishOptions};
use region_node::settings::{AdminToken, PollSettings, Settings};
use region_node::{Background, Node};
use serde_json::Value;
use store::Bucket;
use testkit::{RedisServer, S3Server};

pub const REGION: &str = "us-west";
pub const PREFIX: &str = "georec/";
pub const PRIMARY_BUCKET: &str = "georec-primary";
pub const REGION_BUCKET: &str = "georec-us-west";
pub const TOKEN: &str = "test-admin-token";
pub const CATEGORIES: [&str; 3] = ["books", "games", "music"];
/// Every wait in these tests gives up after this long.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Version names sort by creation time, as real ones do.
pub fn version(n: u32) -> String {
    format!("2024010{n}T000000Z-0000000{n}")
}

/// 40 users with a favourite category each, 30 items; `variant` reshuffles some choices so
/// versions differ. Deterministic.
pub fn dataset(variant: u32) -> Dataset {
    let mut b = Dataset::builder();
    let mut x = 0x9E37_79B9_u64 ^ u64::from(variant);
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for u in 0..40u64 {
        let taste = u % 3;
        for k in 0..7u64 {
            // Mostly items of the favourite category (item % 3 == taste), sometimes any.
            let item = if k < 5 { next(10) * 3 + taste } else { next(30) };
            let ts = 1_700_000_000 + (next(1000) as i64) * 3600;
            b.push(&format!("u{u:02}"), &format!("i{item:02}"), 1.0 + next(5) as f32, ts);
        }
    }
    for i in 0..30usize {
        let meta = ItemMeta { name: Some(format!("Item {i}")), categories: vec![CATEGORIES[i % 3].into()] };
        b.meta(&format!("i{i:02}"), meta);
    }
    b.finish()
}

pub fn params() -> BuildParams {
    BuildParams { neighbours: 8, ..BuildParams::default() }
}

/// A model directory exactly as `model-sync build` writes it.
pub struct ModelDir {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub version: String,
    pub model: Model,
}

pub fn model_dir(n: u32) -> ModelDir {
    let params = params();
    let built = build(&dataset(n), &params).expect("test model builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let payload = dir.path().join(PAYLOAD_FILE);
    model::blob::encode(&built.model, std::fs::File::create(&payload).expect("create payload"))
        .expect("encode model");
    let (size, sha256) = manifest::hash_file(&payload).expect("hash payload");
    let m = &built.model;
    let version = version(n);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_version: version.clone(),
        created_at: manifest::rfc3339(manifest::now_unix()),
        input_fingerprint: built.fingerprint.clone(),
        parameters: serde_json::to_value(&params).expect("params serialise"),
        counts: Counts {
            users: m.users.len() as u64,
            items: m.items.len() as u64,
            interactions: m.interactions,
        },
        evaluation: None,
        erasures: None,
        files: vec![FileEntry { name: PAYLOAD_FILE.into(), size, sha256 }],
    };
    std::fs::write(dir.path().join(MANIFEST_FILE), manifest.to_json()).expect("write manifest");
    ModelDir { path: dir.path().to_path_buf(), _dir: dir, version, model: built.model }
}

/// What a node should answer for a known user (popular items when KNN finds nothing).
pub fn expected_recommend(m: &Model, user: &str, q: &Query<'_>) -> (Vec<Scored>, &'static str) {
    match m.user_index(user) {
        None => (m.popular(&[], q), "popular"),
        Some(u) => {
            let knn = m.recommend(u, q);
            if knn.is_empty() {
                (m.popular(m.user_items(u).0, q), "popular")
            } else {
                (knn, "user-knn")
            }
        }
    }
}

/// Items of an answer as (id, score), checked against the model's own ranking.
pub fn assert_items_match(m: &Model, answer: &Value, expected: &[Scored]) {
    let items = answer["items"].as_array().expect("items array");
    let got: Vec<(&str, f64)> = items
        .iter()
        .map(|i| (i["item_id"].as_str().expect("item_id"), i["score"].as_f64().expect("score")))
        .collect();
    let want: Vec<(&str, f64)> =
        expected.iter().map(|s| (m.items[s.item as usize].as_str(), f64::from(s.score))).collect();
    assert_eq!(got.len(), want.len(), "answer {answer}");
    for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
        assert_eq!(gi, wi, "answer {answer}");
        assert!((gs - ws).abs() <= 1e-5 * ws.abs().max(1.0), "score of {gi}: {gs} vs {ws}");
    }
}

pub struct Options {
    pub poll: Duration,
    pub admin_token: Option<&'static str>,
    /// Publish this version before the node starts (and wait until it serves it).
    pub publish: Option<u32>,
    /// Redis with the append-only file fsynced on every write, as the cluster runs it.
    pub persistent_redis: bool,
    /// Faults injected into versions (`--inject-fault`).
    pub faults: Vec<region_node::rollout::Fault>,
    /// Run on this Redis (another node's, taken with [`TestNode::take_redis`]).
    pub redis: Option<RedisServer>,
    /// The other regions the node knows (`/api/v1/regions/*`, cross-region requests).
    pub topology: Option<region_node::topology::Topology>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(200),
            admin_token: Some(TOKEN),
            publish: Some(1),
            persistent_redis: false,
            faults: Vec::new(),
            redis: None,
            topology: None,
        }
    }
}

pub struct TestNode {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub s3: S3Server,
    pub redis: RedisServer,
    server: actix_web::dev::ServerHandle,
    _background: Background,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Sends the stop command now; the future only waits for it to complete.
        drop(self.server.stop(false));
    }
}

pub async fn spawn_node() -> TestNode {
    spawn_node_with(Options::default()).await
}

pub async fn spawn_node_with(opts: Options) -> TestNode {
    let s3 = S3Server::start(&[PRIMARY_BUCKET, REGION_BUCKET]);
    let redis = match opts.redis {
        Some(r) => r,
        None if opts.persistent_redis => RedisServer::start_persistent(),
        None => RedisServer::start(),
    };
    let mut settings = Settings::new(REGION, redis.url());
    settings.poll = PollSettings { interval: opts.poll, jitter: 0.2, max_backoff: opts.poll * 4 };
    settings.cache.breaker_cooldown = Duration::from_millis(300);
    settings.cache.probe_interval = Duration::from_millis(100);
    settings.admin_token = opts.admin_token.and_then(AdminToken::new);
    settings.workers = Some(2);
    settings.faults = opts.faults;
    if let Some(t) = opts.topology {
        settings.topology = t;
    }
    if let Some(n) = opts.publish {
        publish_to(&s3, &model_dir(n).path).await;
    }
    let node = Node::new(settings, s3.bucket(REGION_BUCKET, PREFIX, REGION)).expect("node builds");
    let background = node.start();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let server = region_node::http::run(listener, node.clone()).expect("server starts");
    let handle = server.handle();
    tokio::spawn(server);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let t = TestNode {
        addr,
        base: format!("http://{addr}"),
        client,
        s3,
        redis,
        server: handle,
        _background: background,
    };
    if let Some(n) = opts.publish {
        t.wait_for_version(&version(n)).await;
    }
    t
}

async fn publish_to(s3: &S3Server, dir: &Path) {
    let primary = s3.bucket(PRIMARY_BUCKET, PREFIX, "primary");
    let region = s3.bucket(REGION_BUCKET, PREFIX, REGION);
    publish::publish(&primary, &[region], dir, PublishOptions::default()).await.expect("publish succeeds");
}

/// Poll `check` every 20 ms until it yields `Some`, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestNode {
    pub fn region_bucket(&self) -> Bucket {
        self.s3.bucket(REGION_BUCKET, PREFIX, REGION)
    }

    /// Stop this node and hand over its Redis (for a node started after it, as after a
    /// restart).
    pub fn take_redis(mut self) -> RedisServer {
        std::mem::replace(&mut self.redis, RedisServer::start())
    }

    /// `DELETE path` with the admin token.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let res = self.client.delete(self.url(path)).bearer_auth(TOKEN).send().await.expect("DELETE sent");
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }

    /// Build version `n`, publish it to the primary and the region; returns the model.
    pub async fn publish(&self, n: u32) -> Model {
        let dir = model_dir(n);
        publish_to(&self.s3, &dir.path).await;
        dir.model
    }

    /// Publish version `n` whose region copy of model.bin does not match its manifest: the
    /// primary gets it intact, the region gets one flipped byte, then the region's pointer
    /// moves to it. The node never sees an intact copy.
    pub async fn publish_corrupt(&self, n: u32) {
        self.upload_corrupt(n).await;
        publish::set_pointer(&self.region_bucket(), &version(n)).await.expect("flip region pointer");
    }

    /// [`Self::publish_corrupt`] without moving the pointer.
    pub async fn upload_corrupt(&self, n: u32) {
        let dir = model_dir(n);
        let primary = self.s3.bucket(PRIMARY_BUCKET, PREFIX, "primary");
        publish::publish(&primary, &[], &dir.path, PublishOptions::default()).await.expect("publish primary");
        let write = |key: String, bytes: Vec<u8>| {
            let path = self.s3.object_path(REGION_BUCKET, &key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write object");
        };
        let mut payload = std::fs::read(dir.path.join(PAYLOAD_FILE)).expect("payload");
        let mid = payload.len() / 2;
        payload[mid] ^= 0xff;
        write(manifest::file_key(PREFIX, &dir.version, PAYLOAD_FILE), payload);
        write(
            manifest::manifest_key(PREFIX, &dir.version),
            std::fs::read(dir.path.join(MANIFEST_FILE)).expect("manifest"),
        );
    }

    /// Build version `n` and put it in the primary and the region's bucket, verified as
    /// publish does, without moving the region's pointer (as a rollout does); returns the
    /// model.
    pub async fn upload(&self, n: u32) -> Model {
        let dir = model_dir(n);
        let primary = self.s3.bucket(PRIMARY_BUCKET, PREFIX, "primary");
        publish::publish(&primary, &[], &dir.path, PublishOptions::default()).await.expect("publish primary");
        for file in [PAYLOAD_FILE, MANIFEST_FILE] {
            let path = self.s3.object_path(REGION_BUCKET, &manifest::file_key(PREFIX, &dir.version, file));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::copy(dir.path.join(file), path).expect("copy object");
        }
        dir.model
    }

    /// Write the region's pointer: `version` serving, `candidate` beside it.
    pub async fn point(&self, version: &str, candidate: Option<model::rollout::Candidate>) {
        let pointer = manifest::Pointer {
            version: version.to_string(),
            previous: None,
            updated_at: manifest::rfc3339(manifest::now_unix()),
            candidate,
        };
        let bucket = self.region_bucket();
        bucket
            .put_bytes(&manifest::pointer_key(PREFIX), pointer.to_json().into())
            .await
            .expect("write pointer");
    }

    /// Wait until the node serves `stable` with `candidate` (a version) beside it, or none.
    pub async fn wait_for_pair(&self, stable: &str, candidate: Option<&str>) {
        eventually(&format!("{stable} serving with candidate {candidate:?}"), || async {
            let h = self.health().await;
            let c = h["candidate"]["version"].as_str();
            (h["model_version"] == stable && c == candidate).then_some(())
        })
        .await;
    }

    /// `GET /rollout/metrics`.
    pub async fn rollout_report(&self) -> model::rollout::NodeReport {
        let (status, json) = self.json("/rollout/metrics").await;
        assert_eq!(status, 200, "{json}");
        serde_json::from_value(json).expect("a NodeReport")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST sent")
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let req = self.client.post(self.url(path)).header("content-type", "application/json");
        req.body(body).send().await.expect("POST sent")
    }

    pub async fn admin(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("admin POST sent")
    }

    /// `POST /recommendations`, expecting 200; returns the JSON.
    pub async fn recommend(&self, body: &Value) -> Value {
        let res = self.post("/recommendations", body).await;
        let status = res.status();
        let json: Value = res.json().await.expect("JSON body");
        assert_eq!(status, 200, "{json}");
        json
    }

    pub async fn json(&self, path: &str) -> (u16, Value) {
        let res = self.get(path).await;
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON body"))
    }

    pub async fn health(&self) -> Value {
        self.json("/health/ready").await.1
    }

    pub async fn wait_for_version(&self, v: &str) {
        eventually(&format!("model {v} to serve"), || async {
            (self.health().await["model_version"] == v).then_some(())
        })
        .await;
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.redis.url()).expect("redis client");
        client.get_multiplexed_async_connection().await.expect("redis connection")
    }

    /// Every key in the test Redis (SCAN, as the node does).
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis_conn().await;
        let (mut cursor, mut all) = (0u64, Vec::new());
        loop {
            let (next, keys): (u64, Vec<String>) =
                redis::cmd("SCAN").arg(cursor).query_async(&mut conn).await.expect("SCAN");
            all.extend(keys);
            if next == 0 {
                return all;
            }
            cursor = next;
        }
    }
}
