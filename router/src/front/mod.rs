//! The router's HTTP/1.1 server: what clients connect to. The protocol is hyper's
//! (`hyper::server::conn::http1`): parsing, body framing (`content-length`, chunked),
//! keep-alive, pipelining, `Expect: 100-continue`, `HEAD`, and the automatic 400/414/431 for
//! heads it cannot parse. What is ours is around it:
//!
//! - Threads: one acceptor hands each connection to one of N worker threads, round robin.
//!   Each worker runs a single-threaded runtime that owns its connections, its handler and
//!   (through the handler) its connections to the nodes, so nothing on the request path takes
//!   a lock or wakes another thread.
//! - Limits: `--max-connections` (the acceptor waits for a slot), heads of at most
//!   [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] headers (431), targets of at most 65,534 bytes
//!   (414), bodies of at most `--max-body-bytes` (413 with a JSON body, before reading when
//!   the length is announced), the `Host` rules ([`request`]).
//! - Time: a request's head must arrive within `--client-timeout-ms` of the connection (or
//!   of the previous answer), and its body within as long again. A client that opened a
//!   connection or started a request and did not finish it in time gets `408` with a JSON
//!   body; hyper only closes the connection, so the 408 is written here, after hyper gave the
//!   connection back. A keep-alive connection with no new request for that long is closed
//!   without a word (RFC 9112 section 9.5). A client that stops reading an answer is cut off
//!   after [`Limits::write_timeout`].
//! - Shutdown: the listener closes at once; idle connections close; a connection in the
//!   middle of a request finishes it, answers with `connection: close`, and closes; after the
//!   grace period whatever is left is dropped.

pub mod request;
pub mod response;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use slab::Slab;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Sleep;
use tracing::{debug, warn};

use self::request::{Refusal, Request};
use self::response::{Body, Response};

/// Request heads larger than this are refused (431).
pub const MAX_HEAD_BYTES: usize = 96 * 1024;
/// Request heads with more headers than this are refused (431): hyper's default, which keeps
/// its header arrays on the stack (setting any number moves them to the heap).
pub const MAX_HEADERS: usize = 100;
/// hyper's read buffer: room for the largest head, so that a long target is refused as such
/// (414) rather than as a large head.
const READ_BUFFER: usize = 128 * 1024;

/// Answers requests on one worker thread; made once per worker, never shared across threads.
pub trait Handler: 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}

/// Per-connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: usize,
    /// For a request's head (from the connection or the previous answer), and again for its
    /// body; also how long a connection may sit idle.
    pub request_timeout: Duration,
    /// Writing stalls for longer than this (a client that stopped reading) end the connection.
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
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// After a failed `accept` (out of file descriptors, say), wait this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At the connection limit the acceptor looks again after this long at the latest.
const FULL_RECHECK: Duration = Duration::from_millis(50);
/// Writing the 408 of a timed-out request may take this long.
const TIMEOUT_ANSWER_WRITE: Duration = Duration::from_secs(1);

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

/// Connections open on one worker, so shutdown can wait for them, and the worker's stop
/// signal to them. The signal is the worker's own, read on every poll of a connection
/// without a lock or an atomic. (A `watch` receiver per connection took the channel's lock,
/// shared by every worker, on each poll: about 650 instructions per request by callgrind.)
#[derive(Default)]
struct Live {
    count: Cell<usize>,
    none: Notify,
    stopping: Cell<bool>,
    /// The waker of each open connection's task (`None` until its first poll), by its key.
    wakers: RefCell<Slab<Option<Waker>>>,
}

/// One open connection: counted, and the key of its waker.
struct LiveGuard(Rc<Live>, Arc<Open>, usize);

impl Live {
    fn enter(self: &Rc<Self>, open: &Arc<Open>) -> LiveGuard {
        self.count.set(self.count.get() + 1);
        let key = self.wakers.borrow_mut().insert(None);
        LiveGuard(self.clone(), open.clone(), key)
    }

    async fn all_closed(&self) {
        while self.count.get() > 0 {
            self.none.notified().await;
        }
    }

    /// Tell every connection of this worker to stop (see [`LiveGuard::stopping`]).
    fn stop(&self) {
        self.stopping.set(true);
        for waker in self.wakers.borrow_mut().iter_mut().filter_map(|(_, w)| w.take()) {
            waker.wake();
        }
    }
}

impl LiveGuard {
    /// Whether the worker is stopping; if not, the connection's task is woken when it does.
    fn stopping(&self, cx: &Context<'_>) -> bool {
        if self.0.stopping.get() {
            return true;
        }
        let mut wakers = self.0.wakers.borrow_mut();
        let slot = &mut wakers[self.2];
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        false
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.wakers.borrow_mut().remove(self.2);
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
    let http = Rc::new(builder(&limits));
    let spawn = |stream| {
        let guard = live.enter(&open);
        tokio::task::spawn_local(connection(stream, http.clone(), handler.clone(), limits.clone(), guard));
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
    live.stop();
    // Accepted before the stop: they see it at once and close unless a request is there.
    while let Ok(stream) = incoming.try_recv() {
        spawn(stream);
    }
    if tokio::time::timeout(limits.shutdown_grace, live.all_closed()).await.is_err() {
        warn!(open = live.count.get(), "shutdown: connections still busy after the grace period are dropped");
    }
}

fn builder(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(READ_BUFFER)
        // A client may shut its sending side once its request is out and still get the answer.
        .half_close(true)
        // Small answers: head and body copied into one buffer and sent with one plain write.
        .writev(false);
    b
}

/// What a connection's requests tell the code around hyper.
#[derive(Debug, Default)]
struct Progress {
    /// Bytes received on the connection.
    received: Cell<u64>,
    /// `received` when the last request's body was complete: later bytes start another one.
    received_at_last_body: Cell<u64>,
    requests: Cell<u64>,
    /// A request was refused: the client may still be sending its body.
    refused: Cell<bool>,
}

impl Progress {
    /// Whether a request was begun and not finished, or none was ever sent: what earns a 408
    /// rather than a silent close when time runs out.
    fn owes_timeout_answer(&self) -> bool {
        self.requests.get() == 0 || self.received.get() > self.received_at_last_body.get()
    }
}

async fn connection<H: Handler>(
    stream: std::net::TcpStream,
    http: Rc<http1::Builder>,
    handler: Rc<H>,
    limits: Rc<Limits>,
    live: LiveGuard,
) {
    let Ok(tcp) = TcpStream::from_std(stream) else { return };
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok();
    let progress = Rc::new(Progress::default());
    let io =
        Watched { io: tcp, progress: progress.clone(), write_timeout: limits.write_timeout, stalled: None };
    let service = {
        let (progress, limits) = (progress.clone(), limits.clone());
        hyper::service::service_fn(move |req| {
            let (handler, limits, progress) = (handler.clone(), limits.clone(), progress.clone());
            // Not boxed: hyper keeps the request's future in a box of its own, one per
            // connection.
            async move {
                Ok::<_, std::convert::Infallible>(answer(req, peer, &*handler, &limits, &progress).await)
            }
        })
    };
    let mut conn = http.serve_connection(TokioIo::new(io), service);
    let mut stopping = false;
    let served = std::future::poll_fn(|cx| {
        if !stopping && live.stopping(cx) {
            stopping = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        Pin::new(&mut conn).poll(cx)
    })
    .await;
    let mut io = conn.into_parts().io.into_inner().io;
    match served {
        Err(e) if e.is_timeout() && progress.owes_timeout_answer() => {
            let answer = timeout_answer(limits.request_timeout);
            let _ = tokio::time::timeout(TIMEOUT_ANSWER_WRITE, io.write_all(&answer)).await;
            progress.refused.set(true);
        }
        Err(e) => debug!(error = %e, "client connection ended"),
        Ok(()) => {}
    }
    let _ = tokio::time::timeout(TIMEOUT_ANSWER_WRITE, io.shutdown()).await;
    if progress.refused.get() {
        linger(&mut io).await;
    }
}

/// After refusing a request, read and drop what the client still sends, for a while, before
/// closing: closing a socket with unread data makes the kernel reset the connection, and the
/// client may then lose the answer that says why (nginx's lingering close).
async fn linger(io: &mut TcpStream) {
    const LINGER: Duration = Duration::from_secs(1);
    const MAX_DRAINED: usize = 1 << 20;
    let mut sink = vec![0u8; 16 * 1024];
    let mut drained = 0;
    let _ = tokio::time::timeout(LINGER, async {
        while drained < MAX_DRAINED {
            match tokio::io::AsyncReadExt::read(io, &mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The 408 for a request whose head did not arrive in time, written once hyper has given the
/// connection up (it closes without answering). A fixed message: no parsing involved.
fn timeout_answer(timeout: Duration) -> Vec<u8> {
    let refusal = Refusal::Timeout(timeout.as_millis());
    let body = refusal.body();
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ndate: {}\r\n\r\n{body}",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    )
    .into_bytes()
}

/// One request: read and checked ([`Request::read`]), then handled; refusals answer with a
/// JSON reason and close the connection.
async fn answer<H: Handler>(
    req: http::Request<hyper::body::Incoming>,
    peer: Option<std::net::SocketAddr>,
    handler: &H,
    limits: &Limits,
    progress: &Progress,
) -> http::Response<Body> {
    let read = Request::read(req, limits.max_body, limits.request_timeout).await;
    progress.requests.set(progress.requests.get() + 1);
    progress.received_at_last_body.set(progress.received.get());
    match read {
        Ok(mut request) => {
            request.peer = peer;
            handler.handle(request).await.into()
        }
        Err(refusal) => {
            debug!(error = %refusal, "request refused");
            progress.refused.set(true);
            let mut resp: http::Response<Body> =
                Response::new(refusal.status(), "application/json", refusal.body()).into();
            resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// The client's socket as hyper uses it: counts what arrives (for [`Progress`]) and ends the
/// connection when a write makes no progress for the write timeout.
struct Watched {
    io: TcpStream,
    progress: Rc<Progress>,
    write_timeout: Duration,
    /// Running while a write waits for the client to read.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let got = (buf.filled().len() - before) as u64;
        self.progress.received.set(self.progress.received.get() + got);
        polled
    }
}

impl Watched {
    fn watch_write<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
