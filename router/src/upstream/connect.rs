//! Where a node is and how to open a connection to it: TCP, with TLS (rustls) for
//! `https://` nodes. Both kinds then speak the same hyper HTTP/1.1 client, so the path the
//! benchmarks measure is the one deployments run.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A node: where to connect, what to send as `Host`, and the path prefix of its URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as configured, without a trailing '/'.
    pub url: String,
    /// `host[:port]` as in the URL, for `Host`.
    pub authority: HeaderValue,
    addr: Addr,
    /// `Some(name)` for `https://`: the name the certificate must carry.
    tls: Option<ServerName<'static>>,
    /// Path of the URL without a trailing '/' (usually empty), put before every path.
    pub prefix: String,
}

#[derive(Debug, Clone)]
enum Addr {
    Ip(SocketAddr),
    /// Resolved at each new connection.
    Name(String, u16),
}

impl Endpoint {
    /// `http://host[:port][/path]` or `https://...`; credentials, a query or a fragment are
    /// refused (nothing would send them).
    pub fn parse(base: &str) -> Result<Self, String> {
        let url = url::Url::parse(base).map_err(|e| format!("{base:?} is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("{base:?}: scheme {other:?} is not http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{base:?}: credentials in a node URL are not supported"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{base:?}: a node URL has no query or fragment"));
        }
        let host = url.host_str().ok_or_else(|| format!("{base:?} has no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| format!("{base:?} has no port"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = match bare.parse::<IpAddr>() {
            Ok(ip) => Addr::Ip(SocketAddr::new(ip, port)),
            Err(_) => Addr::Name(host.to_string(), port),
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let authority = HeaderValue::from_str(&authority).map_err(|e| format!("{base:?}: {e}"))?;
        let tls = match tls {
            false => None,
            true => Some(
                ServerName::try_from(bare.to_string())
                    .map_err(|e| format!("{base:?}: not a TLS server name: {e}"))?,
            ),
        };
        let prefix = url.path().trim_end_matches('/').to_string();
        Ok(Self { url: base.trim_end_matches('/').to_string(), authority, addr, tls, prefix })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Opens connections to nodes; cheap to clone (the TLS settings are shared).
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// TLS that trusts the usual public roots, and the certificates in `extra_ca` (PEM) when
    /// given: a private CA for the nodes, or a test's self-signed certificate.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = extra_ca {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{shown}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{shown}: no PEM certificate in it"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{shown}: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { tls: TlsConnector::from(Arc::new(config)) })
    }

    pub async fn connect(&self, endpoint: &Endpoint) -> io::Result<NodeIo> {
        let tcp = match &endpoint.addr {
            Addr::Ip(addr) => TcpStream::connect(addr).await?,
            Addr::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await?,
        };
        tcp.set_nodelay(true)?;
        match &endpoint.tls {
            None => Ok(NodeIo::Plain(tcp)),
            Some(name) => Ok(NodeIo::Tls(Box::new(self.tls.connect(name.clone(), tcp).await?))),
        }
    }
}

/// A connection to a node, plain or TLS.
pub enum NodeIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for NodeIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NodeIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NodeIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            NodeIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NodeIo::Plain(s) => s.is_write_vectored(),
            NodeIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeIo::Plain(s) => Pin::new(s).poll_flush(cx),
            NodeIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NodeIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_are_http_or_https_without_credentials() {
        let e = Endpoint::parse("http://127.0.0.1:8000/").expect("plain");
        assert_eq!(
            (e.url.as_str(), e.authority.to_str().ok(), e.prefix.as_str()),
            ("http://127.0.0.1:8000", Some("127.0.0.1:8000"), "")
        );
        assert!(!e.is_tls());
        let e = Endpoint::parse("https://node.example/georec").expect("tls");
        assert_eq!((e.authority.to_str().ok(), e.prefix.as_str()), (Some("node.example"), "/georec"));
        assert!(e.is_tls());
        assert!(Endpoint::parse("https://[::1]:8443").expect("ipv6").is_tls());
        for bad in ["ftp://x", "http://u:p@x", "http://x/?q", "not a url", "http://x#f"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_extra_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        assert!(Connector::new(Some(&empty)).expect_err("empty").contains("no PEM certificate"));
        assert!(Connector::new(Some(&dir.path().join("missing.pem"))).is_err());
        assert!(Connector::new(None).is_ok());
    }
}
