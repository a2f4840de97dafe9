//! The router's HTTP/1.1 server: what clients connect to.
//!
//! Built for a proxy's hot path. One acceptor hands each connection to one of N worker
//! threads, round robin. Each worker runs a single-threaded runtime that owns its
//! connections, its handler and (through the handler) its keep-alive connections to the
//! nodes, so nothing on the request path takes a lock or wakes another thread. A request is
//! parsed in place (`httparse`; headers stay slices of the received bytes, never copied into
//! a map) and its answer is written with one `write` when it fits.
//!
//! What it speaks: HTTP/1.0 and 1.1, keep-alive and pipelined requests (answered in order),
//! bodies framed by `content-length` or `transfer-encoding: chunked`, `Expect: 100-continue`,
//! `HEAD`. What it refuses, each with a JSON body saying why and the connection closed after:
//! malformed heads (400), both a length and a transfer coding (400, a request-smuggling
//! pattern), other transfer codings (501), heads over 64 KiB or 100 headers (431), bodies over
//! the limit (413, before reading them when the length is announced), requests not complete
//! within the request timeout (408).
//!
//! Shutdown: the listener closes at once; idle connections close; a connection in the middle
//! of a request finishes it, answers with `connection: close`, and closes; after the grace
//! period whatever is left is dropped.

pub mod request;
pub mod response;

use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, warn};

use self::request::{head_len, BodyFraming, ChunkedDecoder, Head, Refusal, Request, MAX_HEAD_BYTES};
use self::response::{http_date, reason, Body, Response};

/// Answers requests on one worker thread; made once per worker, never shared across threads.
pub trait Handler: 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}

/// Per-connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    /// From the first byte of a request to its last.
    pub request_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Writing one answer, for clients that stop reading.
    pub write_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Connections open at once; beyond it the acceptor waits (new clients queue in the
    /// listen backlog) until one closes.
    pub max_connections: usize,
}

impl Limits {
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Answers up to this size go out in the same `write` as their head.
const INLINE_BODY: usize = 16 * 1024;
/// Room kept in a connection's read buffer.
const READ_CHUNK: usize = 8 * 1024;
/// After a failed `accept` (out of file descriptors, say), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At the connection limit the acceptor looks again after this long at the latest.
const FULL_RECHECK: Duration = Duration::from_millis(50);

/// Serve `listener` with `workers` threads, each with the handler `make` builds on it, until
/// `shutdown` completes; then stop as the module doc says.
pub async fn serve<F, H>(
    listener: std::net::TcpListener,
    workers: usize,
    limits: Limits,
    make: F,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    F: Fn() -> H + Send + Sync + 'static,
    H: Handler,
{
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(Open::default());
    let make = Arc::new(make);
    let mut queues = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<std::net::TcpStream>();
        let (make, limits, stop, open) = (make.clone(), limits.clone(), stop_rx.clone(), open.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("router-http-{i}")).spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                worker(rx, Rc::new(make()), Rc::new(limits), stop, open).await
            });
        })?;
        queues.push(tx);
        threads.push(thread);
    }
    tokio::pin!(shutdown);
    let mut next = 0;
    let mut full_warned = false;
    'accept: loop {
        while open.count.load(Ordering::Acquire) >= limits.max_connections {
            if !full_warned {
                warn!(
                    limit = limits.max_connections,
                    "connection limit reached: new clients wait until one closes"
                );
                full_warned = true;
            }
            tokio::select! {
                () = &mut shutdown => break 'accept,
                _ = tokio::time::timeout(FULL_RECHECK, open.room.notified()) => {}
            }
        }
        full_warned = false;
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted.and_then(|(s, _)| s.into_std()) {
                Ok(stream) => {
                    open.count.fetch_add(1, Ordering::AcqRel);
                    // A worker only goes away at shutdown.
                    let _ = queues[next].send(stream);
                    next = (next + 1) % queues.len();
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(queues);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await
    .map_err(io::Error::other)
}

/// Connections open on all workers, against the limit; counted up by the acceptor.
#[derive(Default)]
struct Open {
    count: AtomicUsize,
    /// Told when a connection closes.
    room: Notify,
}

/// Connections open on one worker, so shutdown can wait for them.
#[derive(Default)]
struct Live {
    count: std::cell::Cell<usize>,
    none: Notify,
}

struct LiveGuard(Rc<Live>, Arc<Open>);

impl Live {
    fn enter(self: &Rc<Self>, open: &Arc<Open>) -> LiveGuard {
        self.count.set(self.count.get() + 1);
        LiveGuard(self.clone(), open.clone())
    }

    async fn all_closed(&self) {
        while self.count.get() > 0 {
            self.none.notified().await;
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let left = self.0.count.get() - 1;
        self.0.count.set(left);
        if left == 0 {
            self.0.none.notify_waiters();
        }
        self.1.count.fetch_sub(1, Ordering::AcqRel);
        self.1.room.notify_one();
    }
}

async fn worker<H: Handler>(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    handler: Rc<H>,
    limits: Rc<Limits>,
    mut stop: watch::Receiver<bool>,
    open: Arc<Open>,
) {
    let live = Rc::new(Live::default());
    let for_connections = stop.clone();
    let spawn = |stream| {
        let conn =
            connection(stream, handler.clone(), limits.clone(), for_connections.clone(), live.enter(&open));
        tokio::task::spawn_local(conn);
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            stream = incoming.recv() => match stream {
                Some(stream) => spawn(stream),
                None => break,
            },
        }
    }
    // Accepted before the stop: they see it at once and close unless a request is there.
    while let Ok(stream) = incoming.try_recv() {
        spawn(stream);
    }
    if tokio::time::timeout(limits.shutdown_grace, live.all_closed()).await.is_err() {
        warn!(open = live.count.get(), "shutdown: connections still busy after the grace period are dropped");
    }
}

async fn connection<H: Handler>(
    stream: std::net::TcpStream,
    handler: Rc<H>,
    limits: Rc<Limits>,
    mut stop: watch::Receiver<bool>,
    _live: LiveGuard,
) {
    let Ok(io) = TcpStream::from_std(stream) else { return };
    let _ = io.set_nodelay(true);
    let mut conn = Conn { io, buf: BytesMut::with_capacity(READ_CHUNK), out: Vec::with_capacity(1024) };
    loop {
        let request = match conn.read_request(&limits, &mut stop).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(refusal) => {
                debug!(error = %refusal, "request refused");
                conn.refuse(&refusal, &limits).await;
                return;
            }
        };
        let wants_more = request.keep_alive;
        let version = request.minor_version;
        let head_only = request.method() == "HEAD";
        let response = handler.handle(request).await;
        // Shutdown may have begun while the request ran: then this is its last answer.
        let keep_alive = wants_more && !*stop.borrow();
        let written = tokio::time::timeout(
            limits.write_timeout,
            conn.write_response(response, keep_alive, version, head_only),
        )
        .await;
        match written {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) | Err(_) => {
                let _ = conn.io.shutdown().await;
                return;
            }
        }
    }
}

struct Conn {
    io: TcpStream,
    /// Bytes read and not consumed yet (the start of the next request, when pipelined).
    buf: BytesMut,
    /// The answer being written, kept for its capacity.
    out: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// The next request, whole; `None` when the client closed, went idle or shutdown began
    /// while no request was under way.
    async fn read_request(
        &mut self,
        limits: &Limits,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Option<Request>, Refusal> {
        if self.buf.is_empty() {
            if *stop.borrow() {
                return Ok(None);
            }
            let first = tokio::select! {
                biased;
                read = tokio::time::timeout(limits.idle_timeout, self.fill()) => read,
                _ = stop.changed() => return Ok(None),
            };
            if !matches!(first, Ok(Ok(n)) if n > 0) {
                return Ok(None);
            }
        }
        let deadline = Instant::now() + limits.request_timeout;
        let timed_out = || Refusal::Timeout(limits.request_timeout.as_secs());
        let mut scanned = 0;
        let head = loop {
            if let Some(len) = head_len(&self.buf, scanned) {
                if len > MAX_HEAD_BYTES {
                    return Err(Refusal::HeadTooLarge);
                }
                break Head::parse(self.buf.split_to(len).freeze(), limits.max_body)?;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(Refusal::HeadTooLarge);
            }
            scanned = self.buf.len();
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(0) | Err(_)) => return Ok(None), // gone mid-head: nobody to answer
                Ok(Ok(_)) => {}
            }
        };
        let Head { mut request, framing, expects_continue } = head;
        match framing {
            BodyFraming::Length(0) => {}
            BodyFraming::Length(n) => {
                if expects_continue && self.buf.len() < n {
                    self.go_ahead().await?;
                }
                if self.buf.capacity() < n {
                    self.buf.reserve(n - self.buf.len());
                }
                while self.buf.len() < n {
                    self.fill_before(deadline, &timed_out).await?;
                }
                request.body = self.buf.split_to(n).freeze();
            }
            BodyFraming::Chunked => {
                if expects_continue && self.buf.is_empty() {
                    self.go_ahead().await?;
                }
                let (mut decoder, mut body) = (ChunkedDecoder::default(), BytesMut::new());
                while !decoder.decode(&mut self.buf, &mut body, limits.max_body)? {
                    self.fill_before(deadline, &timed_out).await?;
                }
                request.body = body.freeze();
            }
        }
        Ok(Some(request))
    }

    /// Read more of a body before `deadline`.
    async fn fill_before(
        &mut self,
        deadline: Instant,
        timed_out: &impl Fn() -> Refusal,
    ) -> Result<(), Refusal> {
        match tokio::time::timeout_at(deadline, self.fill()).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(0)) => Err(Refusal::Malformed("connection closed before the body was complete".into())),
            Ok(Err(e)) => Err(Refusal::Malformed(format!("reading the body failed: {e}"))),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// `100 Continue` for a client that waits for it before sending the body.
    async fn go_ahead(&mut self) -> Result<(), Refusal> {
        self.io
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| Refusal::Malformed(format!("cannot answer 100-continue: {e}")))
    }

    /// Answer a refused request and leave the connection to be closed.
    async fn refuse(&mut self, refusal: &Refusal, limits: &Limits) {
        let body = serde_json::json!({ "error": refusal.code(), "message": refusal.to_string() });
        let response = Response::json(refusal.status(), &body);
        let _ =
            tokio::time::timeout(limits.write_timeout, self.write_response(response, false, 1, false)).await;
        let _ = self.io.shutdown().await;
    }

    /// Write `response`; `Ok(true)` when the connection can carry the next request.
    async fn write_response(
        &mut self,
        response: Response,
        keep_alive: bool,
        minor_version: u8,
        head_only: bool,
    ) -> io::Result<bool> {
        let Response { status, headers, body } = response;
        let bodiless = head_only || status < 200 || status == 204 || status == 304;
        // HTTP/1.0 clients cannot take chunks: an unknown length ends with the connection.
        let chunked = !bodiless && minor_version >= 1 && matches!(body, Body::Stream(_, None));
        let keep_alive = keep_alive && (bodiless || !matches!(body, Body::Stream(_, None)) || chunked);
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        push_number(out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(reason(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut dated = false;
        for (name, value) in &headers {
            dated |= name.eq_ignore_ascii_case(b"date");
            for part in [&name[..], b": ", value, b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        if !dated {
            for part in [&b"date: "[..], &http_date(), b"\r\n"] {
                out.extend_from_slice(part);
            }
        }
        let length = match &body {
            Body::Full(b) => Some(b.len() as u64),
            Body::Stream(_, len) => *len,
        };
        if let (Some(len), false) = (length, status < 200 || status == 204 || status == 304) {
            out.extend_from_slice(b"content-length: ");
            push_number(out, len);
            out.extend_from_slice(b"\r\n");
        } else if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if minor_version == 0 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        match body {
            _ if bodiless => self.io.write_all(&self.out).await?,
            Body::Full(bytes) if bytes.len() <= INLINE_BODY => {
                self.out.extend_from_slice(&bytes);
                self.io.write_all(&self.out).await?;
            }
            Body::Full(bytes) => {
                self.io.write_all(&self.out).await?;
                self.io.write_all(&bytes).await?;
            }
            Body::Stream(mut stream, _) => {
                use futures::StreamExt as _;
                self.io.write_all(&self.out).await?;
                while let Some(chunk) = stream.next().await {
                    // A node failing mid-body: the client sees a truncated answer and a
                    // closed connection; nothing else can tell it at this point.
                    let chunk: Bytes = chunk?;
                    if chunk.is_empty() {
                        continue;
                    }
                    if chunked {
                        self.out.clear();
                        self.out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        self.io.write_all(&self.out).await?;
                        self.io.write_all(&chunk).await?;
                        self.io.write_all(b"\r\n").await?;
                    } else {
                        self.io.write_all(&chunk).await?;
                    }
                }
                if chunked {
                    self.io.write_all(b"0\r\n\r\n").await?;
                }
            }
        }
        Ok(keep_alive)
    }
}

/// `n` in decimal, without the formatting machinery (this runs for every answer).
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests;
