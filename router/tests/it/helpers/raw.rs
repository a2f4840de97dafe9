//! Raw TCP on both sides of the router, so tests hold for any HTTP stack behind it:
//! [`RawClient`] writes arbitrary bytes and parses the answers itself (content-length, chunked
//! and close-delimited bodies), and [`ScriptedNode`] is a region node that writes its answers
//! byte for byte as the test scripts them (answers no real server should send included) and
//! records every request it receives.

mod node;

use std::io;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use self::node::{Received, Script, ScriptedNode, SLOW_BODY};
use super::{cluster_toml, spawn_router_from, Opts, TestRouter};

/// Heads larger than this are not parsed (by the client: the router may relay a huge one).
const MAX_HEAD: usize = 1 << 20;
/// Bound on a single write by either side.
const WRITE_LIMIT: Duration = Duration::from_secs(5);

/// A router in front of scripted nodes, one per region: `(node, failover list)`.
pub async fn spawn_router_over(regions: &[(&ScriptedNode, &[&str])], opts: Opts) -> TestRouter {
    let mut text = cluster_toml(&[], &opts);
    for (i, (node, failover)) in regions.iter().enumerate() {
        let failover: Vec<String> = failover.iter().map(|f| format!("{f:?}")).collect();
        text += &format!(
            "\n[regions.{}]\nlisten = \"127.0.0.1:{}\"\nurls = [{:?}]\nredis_url = \"redis://127.0.0.1:6379\"\n\
             cloud_region = \"test-1\"\nfailover = [{}]\ns3 = {{ bucket = \"georec-test\" }}\n",
            node.region,
            20_000 + i,
            node.url(),
            failover.join(", ")
        );
    }
    spawn_router_from(&text, opts).await
}

/// `POST target` over HTTP/1.1 with a JSON `body` framed by content-length.
pub fn post(target: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: router.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One answer as it came over the wire.
#[derive(Clone)]
pub struct RawResponse {
    pub status_line: String,
    pub status: u16,
    /// Names in lower case, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Size of the head, through its blank line.
    pub head_len: usize,
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status_line", &self.status_line)
            .field("headers", &self.headers)
            .field("body", &lossy(&self.body))
            .finish_non_exhaustive()
    }
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Why no whole answer could be read; `received` is what came (lossy text, cut at 2000).
/// Read through `Debug`, in failure messages.
#[allow(dead_code)]
#[derive(Debug)]
pub enum RawError {
    /// The peer closed (or reset) the connection first.
    Closed {
        received: String,
    },
    TimedOut {
        received: String,
    },
    Malformed {
        why: String,
        received: String,
    },
}

/// A raw connection to the router.
pub struct RawClient {
    io: TcpStream,
    /// Read and not yet parsed (pipelined answers).
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn connect(router: &TestRouter) -> Self {
        let addr = router.base.trim_start_matches("http://");
        let io = tokio::time::timeout(WRITE_LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect to the router");
        io.set_nodelay(true).expect("nodelay");
        Self { io, buf: Vec::new() }
    }

    /// Write `bytes` (an error means the router closed the connection).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_bounded(&mut self.io, bytes).await
    }

    /// Write `bytes` cut at `cuts` (offsets, any order, out-of-range ones ignored), pausing
    /// `pause` between pieces; stops at the first failed write.
    pub async fn send_split(&mut self, bytes: &[u8], cuts: &[usize], pause: Duration) -> io::Result<()> {
        send_pieces(&mut self.io, &pieces_at(bytes, cuts), pause).await
    }

    /// The next answer within `within`; 1xx answers are returned like any other.
    pub async fn response(&mut self, within: Duration) -> Result<RawResponse, RawError> {
        read_response(&mut self.io, &mut self.buf, Instant::now() + within, false).await
    }

    /// The next answer to a `HEAD` request: its head only.
    pub async fn head_response(&mut self, within: Duration) -> Result<RawResponse, RawError> {
        read_response(&mut self.io, &mut self.buf, Instant::now() + within, true).await
    }

    /// Trickle `pieces` with `pause` between them while reading the answer, which must come
    /// within `within` of the first piece (write errors end the trickle: the router closed).
    pub async fn response_while_sending(
        &mut self,
        pieces: &[&[u8]],
        pause: Duration,
        within: Duration,
    ) -> Result<RawResponse, RawError> {
        let deadline = Instant::now() + within;
        let (mut rd, mut wr) = self.io.split();
        let writing = async {
            let _ = send_pieces(&mut wr, pieces, pause).await;
        };
        let (_, answer) = tokio::join!(writing, read_response(&mut rd, &mut self.buf, deadline, false));
        answer
    }

    /// `Some(bytes received meanwhile)` once the router closed the connection within `within`,
    /// `None` if it is still open then.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut received = std::mem::take(&mut self.buf);
        loop {
            match fill(&mut self.io, &mut received, deadline).await {
                Ok(_) => {}
                Err(Fill::Eof) => return Some(received),
                Err(Fill::Timeout) => return None,
            }
        }
    }

    /// Bytes the router sent within `during` (waiting the whole time unless it closes).
    pub async fn received_during(&mut self, during: Duration) -> Vec<u8> {
        let deadline = Instant::now() + during;
        let mut received = std::mem::take(&mut self.buf);
        while fill(&mut self.io, &mut received, deadline).await.is_ok() {}
        received
    }
}

fn pieces_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c < bytes.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(&bytes[from..c]);
        from = c;
    }
    pieces
}

async fn write_bounded(io: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_LIMIT, io.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write not done in time")),
    }
}

async fn send_pieces(
    io: &mut (impl AsyncWrite + Unpin),
    pieces: &[&[u8]],
    pause: Duration,
) -> io::Result<()> {
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        write_bounded(io, piece).await?;
    }
    Ok(())
}

enum Fill {
    /// Closed or reset by the peer.
    Eof,
    Timeout,
}

/// Read more into `buf` before `deadline`.
async fn fill(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, Fill> {
    let mut chunk = [0u8; 16 * 1024];
    match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
        Err(_) => Err(Fill::Timeout),
        Ok(Ok(0) | Err(_)) => Err(Fill::Eof),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned();
    if bytes.len() > 2000 {
        text += &format!("... ({} bytes)", bytes.len());
    }
    text
}

/// The test's own response parser: status line, headers, then the body as framed.
async fn read_response(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    deadline: Instant,
    head_request: bool,
) -> Result<RawResponse, RawError> {
    let mut seen = Vec::new();
    let fail = |end: Fill, seen: &[u8], buf: &[u8]| {
        let received = lossy(&[seen, buf].concat());
        match end {
            Fill::Eof => RawError::Closed { received },
            Fill::Timeout => RawError::TimedOut { received },
        }
    };
    let malformed = |why: String, seen: &[u8], buf: &[u8]| RawError::Malformed {
        why,
        received: lossy(&[seen, buf].concat()),
    };
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(malformed("head over 1 MiB".into(), &seen, buf));
        }
        if let Err(end) = fill(io, buf, deadline).await {
            return Err(fail(end, &seen, buf));
        }
    };
    seen.extend(buf.drain(..head_len));
    let head = String::from_utf8_lossy(&seen).into_owned();
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let status = parse_status(&status_line)
        .ok_or_else(|| malformed(format!("invalid status line {status_line:?}"), &seen, buf))?;
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!("invalid header line {line:?}"), &seen, buf));
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |n: &str| headers.iter().find(|(h, _)| h == n).map(|(_, v)| v.as_str());
    let bodiless = head_request || status < 200 || status == 204 || status == 304;
    let chunked = header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().ends_with("chunked"));
    let length = match header("content-length") {
        Some(v) => Some(
            v.parse::<usize>().map_err(|_| malformed(format!("invalid content-length {v:?}"), &seen, buf))?,
        ),
        None => None,
    };
    let body = if bodiless {
        Ok(Vec::new())
    } else if chunked {
        read_chunked(io, buf, deadline).await
    } else if let Some(n) = length {
        read_exact(io, buf, n, deadline).await.map_err(Cut::End)
    } else {
        read_to_end(io, buf, deadline).await.map_err(Cut::End)
    };
    let body = body.map_err(|cut| match cut {
        Cut::End(end) => fail(end, &seen, buf),
        Cut::Bad(why) => malformed(why, &seen, buf),
    })?;
    Ok(RawResponse { status_line, status, headers, body, head_len })
}

/// Why a body could not be read whole.
enum Cut {
    End(Fill),
    Bad(String),
}

impl From<Fill> for Cut {
    fn from(end: Fill) -> Self {
        Cut::End(end)
    }
}

/// A chunked body, decoded, through its trailers.
async fn read_chunked(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Vec<u8>, Cut> {
    let mut body = Vec::new();
    loop {
        let line = read_line(io, buf, deadline).await?;
        let digits = line.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(digits, 16)
            .map_err(|_| Cut::Bad(format!("invalid chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(io, buf, deadline).await?.is_empty() {}
            return Ok(body);
        }
        body.extend(read_exact(io, buf, size + 2, deadline).await?);
        if body.drain(body.len() - 2..).as_slice() != b"\r\n" {
            return Err(Cut::Bad("chunk data longer than its size".into()));
        }
    }
}

/// One line, without its CRLF.
async fn read_line(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<String, Fill> {
    loop {
        if let Some(i) = find(buf, b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).collect();
            return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        fill(io, buf, deadline).await?;
    }
}

/// Exactly `n` bytes.
async fn read_exact(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, Fill> {
    while buf.len() < n {
        fill(io, buf, deadline).await?;
    }
    Ok(buf.drain(..n).collect())
}

/// Everything until the peer closes.
async fn read_to_end(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Vec<u8>, Fill> {
    loop {
        match fill(io, buf, deadline).await {
            Ok(_) => {}
            Err(Fill::Eof) => return Ok(std::mem::take(buf)),
            Err(timeout) => return Err(timeout),
        }
    }
}

/// `HTTP/1.x NNN reason`, with NNN a status code (100-599); `None` for anything else.
fn parse_status(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 "))?;
    let code = rest.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || !(rest.len() == 3 || rest[3..].starts_with(' ')) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}
