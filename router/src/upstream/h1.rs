//! The router's own HTTP/1.1 client towards plain `http://` nodes: a keep-alive pool per
//! worker thread, and exchanges driven by the attempt itself (no connection task).
//!
//! What it speaks: requests with a `content-length` body (the router buffers bodies);
//! answers framed by `content-length`, `transfer-encoding: chunked` or the end of the
//! connection; informational (1xx) answers skipped; `connection: close` and HTTP/1.0
//! honoured. A connection goes back to the pool only after a complete answer that leaves it
//! reusable, so its state is never in doubt.
//!
//! A pooled connection may have been closed by the node meanwhile (a restart, a kill, its
//! keep-alive timer). That shows as a failure before any byte of an answer: the request is
//! then sent once more on a new connection, and the node's other idle connections (likely
//! dead the same way) are dropped. It costs no retry and no failure of the node; only a
//! failure on a new connection does.

mod head;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::head::{head_len, Chunk, Framing, Head};
use super::{Answer, AnswerBody, AttemptError, BodyStream, Outgoing, BUFFER_LIMIT, POOL_IDLE_TIMEOUT};

/// Idle connections kept per node (per worker); more are closed when handed back.
const MAX_IDLE_PER_NODE: usize = 256;
/// Read buffer grown by this much when nearly full; answers share it (`Bytes`), so a buffer
/// serves several small answers before a new one is allocated.
const READ_CHUNK: usize = 16 * 1024;
/// Below this much free room a read first grows the buffer.
const MIN_READ_ROOM: usize = 2 * 1024;
/// Response heads larger than this are refused as malformed.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A chunk-size or trailer line longer than this is malformed.
const MAX_LINE: usize = 4 * 1024;
/// Request bodies up to this size are copied behind the head and sent in one write.
const INLINE_BODY: usize = 16 * 1024;

/// A plain HTTP node: where to connect and what to send as `host` and path prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `host[:port]` as in the URL (the port only when not the default).
    host: String,
    addr: Addr,
    /// Path of the node URL without a trailing '/' (usually empty), put before every path.
    prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Addr {
    Ip(SocketAddr),
    /// Resolved at each new connection.
    Name(String, u16),
}

impl Endpoint {
    /// `None` unless `base` is `http://host[:port][/path]` without credentials, query or
    /// fragment (those go through reqwest).
    pub fn parse(base: &str) -> Option<Self> {
        let url = reqwest::Url::parse(base).ok()?;
        if url.scheme() != "http"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return None;
        }
        let host_text = url.host_str()?;
        let port = url.port_or_known_default()?;
        let ip = host_text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
        let addr = match ip {
            Ok(ip) => Addr::Ip(SocketAddr::new(ip, port)),
            Err(_) => Addr::Name(host_text.to_string(), port),
        };
        let host = match url.port() {
            Some(p) => format!("{host_text}:{p}"),
            None => host_text.to_string(),
        };
        Some(Self { host, addr, prefix: url.path().trim_end_matches('/').to_string() })
    }
}

/// One worker's idle connections, by node key ([`crate::regions::Node::key`]).
#[derive(Debug, Default)]
pub struct Pool {
    /// Per node: oldest first, so the most recently used (warm) connection is taken first
    /// and the expired ones gather at the front.
    idle: RefCell<Vec<VecDeque<Conn>>>,
}

impl Pool {
    fn checkout(&self, key: usize) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let queue = idle.get_mut(key)?;
        let conn = queue.pop_back()?;
        if conn.idle_since.elapsed() < POOL_IDLE_TIMEOUT {
            return Some(conn);
        }
        queue.clear(); // the newest has expired: so have all the others
        None
    }

    fn checkin(&self, key: usize, mut conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() <= key {
            idle.resize_with(key + 1, VecDeque::new);
        }
        conn.idle_since = Instant::now();
        let queue = &mut idle[key];
        if queue.len() >= MAX_IDLE_PER_NODE {
            queue.pop_front();
        }
        queue.push_back(conn);
    }

    /// Drop every idle connection to the node `key`.
    fn forget(&self, key: usize) {
        if let Some(queue) = self.idle.borrow_mut().get_mut(key) {
            queue.clear();
        }
    }

    /// Close the connections idle for longer than [`POOL_IDLE_TIMEOUT`].
    pub fn sweep(&self) {
        for queue in self.idle.borrow_mut().iter_mut() {
            while queue.front().is_some_and(|c| c.idle_since.elapsed() >= POOL_IDLE_TIMEOUT) {
                queue.pop_front();
            }
        }
    }

    /// Idle connections to the node `key` (for tests).
    pub fn idle(&self, key: usize) -> usize {
        self.idle.borrow().get(key).map_or(0, VecDeque::len)
    }
}

#[derive(Debug)]
struct Conn {
    io: TcpStream,
    /// Bytes read and not consumed yet; empty whenever the connection is idle.
    buf: BytesMut,
    /// The request being written, kept for its capacity.
    out: Vec<u8>,
    idle_since: Instant,
}

impl Conn {
    async fn open(endpoint: &Endpoint) -> io::Result<Self> {
        let io = match &endpoint.addr {
            Addr::Ip(addr) => TcpStream::connect(addr).await?,
            Addr::Name(host, port) => TcpStream::connect((host.as_str(), *port)).await?,
        };
        io.set_nodelay(true)?;
        Ok(Self { io, buf: BytesMut::new(), out: Vec::new(), idle_since: Instant::now() })
    }

    /// Read more into `buf`; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < MIN_READ_ROOM {
            self.buf.reserve(READ_CHUNK);
        }
        self.io.read_buf(&mut self.buf).await
    }

    async fn write_request(&mut self, endpoint: &Endpoint, out: &Outgoing) -> io::Result<()> {
        let inline = out.body.len() <= INLINE_BODY;
        self.out.clear();
        for part in [
            out.method(),
            b" ",
            endpoint.prefix.as_bytes(),
            out.target(),
            b" HTTP/1.1\r\nhost: ",
            endpoint.host.as_bytes(),
            b"\r\n",
            &out.head,
            if inline { &out.body } else { b"" },
        ] {
            self.out.extend_from_slice(part);
        }
        self.io.write_all(&self.out).await?;
        if !inline {
            self.io.write_all(&out.body).await?;
        }
        Ok(())
    }

    /// The next final (non-1xx) response head.
    async fn read_head(&mut self, head_request: bool) -> Result<Head, Failed> {
        let mut answered = false;
        let mut scanned = 0;
        loop {
            answered |= !self.buf.is_empty();
            if let Some(len) = head_len(&self.buf, scanned) {
                let raw = self.buf.split_to(len).freeze();
                scanned = 0;
                let head = Head::parse(&raw, head_request).map_err(|error| Failed { error, answered })?;
                match head.status {
                    101 => return Err(Failed { error: invalid("unexpected protocol switch"), answered }),
                    100..=199 => continue,
                    _ => return Ok(head),
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Failed { error: invalid("response head too large"), answered });
            }
            scanned = self.buf.len();
            match self.fill().await {
                Ok(0) => {
                    let error = io::Error::new(io::ErrorKind::UnexpectedEof, "node closed the connection");
                    return Err(Failed { error, answered });
                }
                Ok(_) => {}
                Err(error) => return Err(Failed { error, answered }),
            }
        }
    }

    /// Exactly `len` bytes of body.
    async fn read_exact(&mut self, len: usize) -> io::Result<Bytes> {
        if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
        }
        while self.buf.len() < len {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "node closed the connection mid-body",
                ));
            }
        }
        Ok(self.buf.split_to(len).freeze())
    }

    /// One line (without its line ending) from `buf`, reading more as needed.
    async fn read_line(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(if line.ends_with(b"\r\n") { end - 1 } else { end });
                return Ok(line.freeze());
            }
            if self.buf.len() > MAX_LINE {
                return Err(invalid("chunked framing line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "node closed the connection mid-body",
                ));
            }
        }
    }
}

/// An exchange that failed, and whether any byte of an answer had come (if not, a reused
/// connection was stale: see the module doc).
struct Failed {
    error: io::Error,
    answered: bool,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// A response body being read off its connection.
struct Body {
    conn: Conn,
    framing: Framing,
    keep_alive: bool,
}

impl Body {
    /// The next piece of the body; `None` once it is complete.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "node closed the connection mid-body");
        loop {
            let conn = &mut self.conn;
            match &mut self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(0) => self.framing = Framing::Done,
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if conn.buf.is_empty() && conn.fill().await? == 0 {
                        return Err(eof());
                    }
                    let n = (*left).min(conn.buf.len() as u64);
                    *left -= n;
                    if let Framing::Chunked(Chunk::Data(0)) = self.framing {
                        self.framing = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Ok(Some(conn.buf.split_to(n as usize).freeze()));
                }
                Framing::Close => {
                    if conn.buf.is_empty() && conn.fill().await? == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(conn.buf.split().freeze()));
                }
                Framing::Chunked(Chunk::Size) => {
                    let line = conn.read_line().await?;
                    let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|d| !d.is_empty())
                        .and_then(|d| u64::from_str_radix(d, 16).ok())
                        .ok_or_else(|| invalid("invalid chunk size"))?;
                    self.framing =
                        Framing::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) });
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if !conn.read_line().await?.is_empty() {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    if conn.read_line().await?.is_empty() {
                        self.framing = Framing::Done;
                    }
                }
            }
        }
    }

    /// The body was read whole and the connection can serve another request.
    fn reusable(&self) -> bool {
        matches!(self.framing, Framing::Done) && self.keep_alive && self.conn.buf.is_empty()
    }
}

/// Send `out` to `endpoint` (node `key` of `pool`) with a deadline of `timeout`.
pub async fn send(
    pool: &Rc<Pool>,
    key: usize,
    endpoint: &Endpoint,
    out: &Outgoing,
    timeout: Duration,
) -> Result<Answer, (AttemptError, Duration)> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + timeout);
    match tokio::time::timeout_at(deadline, exchange(pool, key, endpoint, out, deadline)).await {
        Ok(Ok((status, headers, body))) => Ok(Answer { status, headers, body, took: started.elapsed() }),
        Ok(Err(kind)) => Err((kind, started.elapsed())),
        Err(_) => Err((AttemptError::Timeout(timeout), started.elapsed())),
    }
}

type Exchanged = (u16, Vec<(Bytes, Bytes)>, AnswerBody);

async fn exchange(
    pool: &Rc<Pool>,
    key: usize,
    endpoint: &Endpoint,
    out: &Outgoing,
    deadline: tokio::time::Instant,
) -> Result<Exchanged, AttemptError> {
    let head_request = out.method() == b"HEAD";
    let mut pooled = pool.checkout(key);
    let (mut conn, head) = loop {
        let reused = pooled.is_some();
        let mut conn = match pooled.take() {
            Some(conn) => conn,
            None => Conn::open(endpoint).await.map_err(AttemptError::Connect)?,
        };
        let exchanged = match conn.write_request(endpoint, out).await {
            Ok(()) => conn.read_head(head_request).await,
            Err(error) => Err(Failed { error, answered: false }),
        };
        match exchanged {
            Ok(head) => break (conn, head),
            Err(Failed { answered: false, .. }) if reused => pool.forget(key), // stale: once more, anew
            Err(Failed { error, .. }) => return Err(AttemptError::Transport(error)),
        }
    };
    let Head { status, headers, framing, keep_alive } = head;
    if status >= 500 {
        // Keep the connection if the (small) error body is already here; never wait for it.
        if let Framing::Length(n) = framing {
            if keep_alive && conn.buf.len() as u64 == n {
                conn.buf.clear();
                pool.checkin(key, conn);
            }
        }
        return Err(AttemptError::ServerError(status));
    }
    let body = match framing {
        Framing::Length(n) if n <= BUFFER_LIMIT => {
            let bytes = conn.read_exact(n as usize).await.map_err(AttemptError::Transport)?;
            if keep_alive && conn.buf.is_empty() {
                pool.checkin(key, conn);
            }
            AnswerBody::Full(bytes)
        }
        framing => {
            let len = match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            AnswerBody::Stream(stream(Body { conn, framing, keep_alive }, pool.clone(), key, deadline), len)
        }
    };
    Ok((status, headers, body))
}

/// The rest of `body` as a stream, under the attempt's deadline; the connection goes back
/// to the pool when the body ends cleanly.
fn stream(body: Body, pool: Rc<Pool>, key: usize, deadline: tokio::time::Instant) -> BodyStream {
    Box::pin(futures::stream::unfold(Some((body, pool)), move |state| async move {
        let (mut body, pool) = state?;
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some((body, pool)))),
            Ok(Ok(None)) => {
                if body.reusable() {
                    pool.checkin(key, body.conn);
                }
                None
            }
            Ok(Err(e)) => Some((Err(e), None)),
            Err(_) => Some((Err(io::Error::new(io::ErrorKind::TimedOut, "body not complete in time")), None)),
        }
    }))
}

#[cfg(test)]
mod tests;
