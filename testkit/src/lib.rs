//! testkit (dev-only): real servers for tests and the local cluster: an in-process S3
//! (s3s-fs over a temp dir) and `redis-server` children, each on a free port with a bounded
//! readiness wait; [`Reap`] for binaries under test. Every crate's tests use it as a
//! dev-dependency; the `local-s3` binary (`src/main.rs`) serves the local cluster's buckets.
//! No release binary links it (`scripts/check-layout`).
//!
//! Each [`S3Server`] runs on its own thread and runtime, so `stop()` (and `Drop`) can close
//! the listener *and every open connection* synchronously: a stopped server is unreachable
//! at once, which is how tests take a region down mid-publish.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use store::{Bucket, Credentials, Location, StoreOptions};

/// Access key every test server accepts.
pub const ACCESS_KEY: &str = "georec-test-access";
/// Secret key every test server accepts.
pub const SECRET_KEY: &str = "georec-test-secret";
/// Signing region test buckets use (s3s does not care which).
pub const SIGNING_REGION: &str = "us-east-1";

/// s3s-fs serving a temp dir on `127.0.0.1:<free port>`, with SigV4 auth.
pub struct S3Server {
    root: tempfile::TempDir,
    port: u16,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl S3Server {
    /// Start a server holding empty `buckets` (s3s-fs stores a bucket as a directory).
    pub fn start(buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().expect("create temp dir for s3s-fs");
        for b in buckets {
            std::fs::create_dir_all(root.path().join(b)).expect("create bucket dir");
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let running = Some(serve(root.path(), listener));
        S3Server { root, port, running }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory holding the buckets: `root()/<bucket>/<key>` is an object's bytes.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Path of an object's bytes on disk, for tests that corrupt or remove it.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::Static { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into() }
    }

    pub fn location(&self, bucket: &str, prefix: &str) -> Location {
        Location {
            endpoint: Some(self.endpoint()),
            bucket: bucket.into(),
            prefix: prefix.into(),
            signing_region: SIGNING_REGION.into(),
        }
    }

    /// A [`Bucket`] on this server with default options.
    pub fn bucket(&self, name: &str, prefix: &str, label: &str) -> Bucket {
        self.bucket_with(name, prefix, label, StoreOptions::default())
    }

    pub fn bucket_with(&self, name: &str, prefix: &str, label: &str, options: StoreOptions) -> Bucket {
        Bucket::new(label, self.location(name, prefix), &self.credentials(), options)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Close the listener and every connection; the data stays for [`S3Server::restart`].
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }

    /// Serve the same data on the same port again.
    pub fn restart(&mut self) {
        self.stop();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(port = self.port, error = %e, "port not free yet");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        };
        self.running = Some(serve(self.root.path(), listener));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serve `root` (one directory per bucket; `buckets` are created) on `addr` with SigV4
/// credentials until the process is stopped: the local cluster's object store
/// (the `local-s3` binary). Returns once the listener is bound, with its address.
pub fn serve_dir(
    root: &Path,
    addr: SocketAddr,
    buckets: &[String],
    access_key: &str,
    secret_key: &str,
) -> std::io::Result<(SocketAddr, impl FnOnce())> {
    for b in buckets {
        std::fs::create_dir_all(root.join(b))?;
    }
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let running = serve_with(root, listener, SimpleAuth::from_single(access_key, secret_key));
    Ok((bound, move || {
        let _ = running.stop.send(());
        let _ = running.thread.join();
    }))
}

fn serve(root: &Path, listener: TcpListener) -> Running {
    serve_with(root, listener, SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY))
}

fn serve_with(root: &Path, listener: TcpListener, auth: SimpleAuth) -> Running {
    listener.set_nonblocking(true).expect("non-blocking listener");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the directory");
    let mut b = S3ServiceBuilder::new(fs);
    b.set_auth(auth);
    let service = b.build();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let http = ConnBuilder::new(TokioExecutor::new());
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                        conns.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                }
            }
            // Dropping the set aborts every connection, closing its socket.
            conns.abort_all();
        });
        rt.shutdown_timeout(Duration::ZERO);
    });
    Running { stop, thread }
}

/// A `redis-server` child on a free port, without persistence unless started with
/// [`RedisServer::start_persistent`].
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// AOF on, fsync on every write, as the cluster runs it for the event stream.
    persistent: bool,
}

impl RedisServer {
    /// Start it and wait until it answers PING (at most 10 s). Panics if `redis-server` is
    /// not installed, saying how to install it.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Like [`RedisServer::start`], with the append-only file on and `appendfsync always`:
    /// whatever Redis acknowledged survives [`RedisServer::restart`] (even though `stop`
    /// kills the process).
    pub fn start_persistent() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        match Command::new("redis-server").arg("--version").stdout(Stdio::null()).status() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server is not installed; install it with: apt-get install -y redis-server")
            }
            Err(e) => panic!("cannot run redis-server: {e}"),
        }
        let dir = tempfile::tempdir().expect("temp dir for redis");
        // A free port can be taken between probing and binding: try a few.
        let mut server = RedisServer { port: 0, child: None, dir, persistent };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (clients see connection refused from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP the server: connections stay open and commands queue unanswered, as when
    /// Redis stalls (an fsync, a long script), until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`]: queued commands run.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let Some(child) = &self.child else { panic!("redis-server is not running") };
        let ok =
            Command::new("kill").arg(sig).arg(child.id().to_string()).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server (pid {})", child.id());
    }

    /// Start again on the same port (empty unless persistent).
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server did not restart on port {}", self.port);
    }

    /// Spawn and wait for PONG; false if it exited or never answered.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(match self.persistent {
                true => ["--appendonly", "yes", "--appendfsync", "always"],
                false => ["--appendonly", "no", "--appendfsync", "everysec"],
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if !matches!(c.try_wait(), Ok(None)) {
                    self.child = None;
                    return false;
                }
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Raw-socket PING; true on `+PONG`.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A child process (a binary under test) killed on drop unless it has exited, so no process
/// outlives a failed test.
#[derive(Debug)]
pub struct Reap(pub Child);

impl Reap {
    /// Send SIGTERM and return the exit status; panics, naming `what`, if it has not exited
    /// within `within`.
    pub fn terminate(&mut self, what: &str, within: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} ({what}) failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} did not exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
