//! `https://` nodes: the same hyper client as for plain nodes, over rustls, trusting the
//! certificate authority given with `--node-ca` (a private CA, as a deployment would use).
//! The node sits behind a TLS terminator made here, with a certificate the test's CA signs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use router::regions::state::RegionState;
use router::settings::Tuning;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::helpers::{cluster_toml, spawn_router_from, FakeNode, Opts, Region};

/// A TLS listener on 127.0.0.1:0 that passes each connection on to `node` in plain TCP, with
/// a certificate for `localhost` signed by a CA of its own (in `ca`, PEM).
struct TlsFront {
    addr: SocketAddr,
    ca: PathBuf,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn tls_front(node: SocketAddr) -> TlsFront {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("node key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("node params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("node certificate");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind TLS front");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut tls), Ok(mut plain)) =
                    (acceptor.accept(tcp).await, TcpStream::connect(node).await)
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront { addr, ca: ca_path, _dir: dir, _task: task }
}

/// The router's cluster with region `a` reached through `front` as `https://localhost:port`.
fn https_cluster(a: &FakeNode, front: &TlsFront, opts: &Opts) -> String {
    cluster_toml(&[Region::new(a, &[])], opts)
        .replace(&a.url(), &format!("https://localhost:{}", front.addr.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_nodes_are_served_over_kept_alive_tls_connections() {
    // Arrange
    let a = FakeNode::start("a").await;
    let front = tls_front(a.addr).await;
    let tuning = Tuning { node_ca: Some(front.ca.clone()), ..Opts::default().tuning };
    let opts = Opts { tuning, ..Opts::default() };
    let router = spawn_router_from(&https_cluster(&a, &front, &opts), opts).await;
    router.recommend(Some("a")).await;
    let before = a.connections();

    // Act
    let started = std::time::Instant::now();
    let mut replies = Vec::new();
    for _ in 0..20 {
        replies.push(router.recommend(Some("a")).await);
    }
    let probes_meanwhile = started.elapsed().as_millis() as u64 / router.opts.interval_ms + 1;

    // Assert: probes open a connection each; requests reuse the one kept alive.
    for r in &replies {
        assert_eq!((r.status, r.served_by.as_deref()), (200, Some("a")), "{:?}", r.body);
        assert_eq!(r.body["body"]["user_id"], 1);
    }
    assert_eq!(router.state_of("a"), RegionState::Healthy);
    let opened = a.connections() - before;
    assert!(
        opened <= probes_meanwhile + 1,
        "{opened} new connections for 20 requests ({probes_meanwhile} probes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_node_whose_certificate_is_not_trusted_is_never_used() {
    // Arrange: the same node and certificate, without --node-ca.
    let a = FakeNode::start("a").await;
    let front = tls_front(a.addr).await;
    let opts = Opts::default();

    // Act
    let router = spawn_router_from(&https_cluster(&a, &front, &opts), opts).await;
    router.wait_state("a", RegionState::Unhealthy, Duration::from_secs(5)).await;
    let reply = router.recommend(Some("a")).await;

    // Assert
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(a.served(), 0, "no request reached the node");
    let regions = router.get("/regions").await.body;
    let detail = regions["regions"][0]["last_probe"]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("certificate") || detail.contains("UnknownIssuer"), "{regions}");
}
