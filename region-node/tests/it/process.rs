//! The real binary: configuration from regions.toml + environment, SIGTERM exits 0.

use std::net::TcpListener;
use std::process::{Command, Stdio};

use testkit::{Reap, RedisServer, S3Server, ACCESS_KEY, SECRET_KEY};

use crate::helpers::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_exits_0_on_sigterm() {
    let s3 = S3Server::start(&[PRIMARY_BUCKET, REGION_BUCKET]);
    let redis = RedisServer::start();
    let dir = model_dir(1);
    model_sync::publish::publish(
        &s3.bucket(PRIMARY_BUCKET, PREFIX, "primary"),
        &[s3.bucket(REGION_BUCKET, PREFIX, REGION)],
        &dir.path,
        model_sync::publish::PublishOptions::default(),
    )
    .await
    .expect("publish");

    let port = free_port();
    let config = tempfile::NamedTempFile::new().expect("temp config");
    let endpoint = s3.endpoint();
    let toml = format!(
        r#"
[primary]
endpoint = "{endpoint}"
bucket = "{PRIMARY_BUCKET}"
prefix = "{PREFIX}"
cloud_region = "us-east-1"

[model]
poll_interval_ms = 200

[regions.{REGION}]
listen = "127.0.0.1:1"
urls = ["http://127.0.0.1:{port}"]
redis_url = "{redis}"
cloud_region = "us-east-1"
s3 = {{ endpoint = "{endpoint}", bucket = "{REGION_BUCKET}", prefix = "{PREFIX}" }}
"#,
        redis = redis.url()
    );
    std::fs::write(config.path(), toml).expect("write config");

    let mut child = Reap(
        Command::new(env!("CARGO_BIN_EXE_region-node"))
            .args(["--region", REGION, "--listen", &format!("127.0.0.1:{port}")])
            .env("GEOREC_CONFIG", config.path())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .env("GEOREC_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn region-node"),
    );

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = eventually("the binary to be ready", || async {
        let res = client.get(format!("{base}/health/ready")).send().await.ok()?;
        (res.status() == 200).then_some(res.headers()["x-served-by"].clone())
    })
    .await;
    assert_eq!(ready, REGION);
    let res = client.post(format!("{base}/admin/cache/clear")).bearer_auth(TOKEN).send().await.expect("sent");
    assert_eq!(res.status(), 200, "the admin token comes from GEOREC_ADMIN_TOKEN");

    let status = tokio::task::block_in_place(|| child.terminate("region-node", PATIENCE));
    assert_eq!(status.code(), Some(0), "exit status {status}");
}
