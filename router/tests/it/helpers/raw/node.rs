//! [`ScriptedNode`]: a region node on raw TCP that answers as each test scripts it, byte for
//! byte, and records every request it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{fill, find, read_chunked, read_exact, write_bounded, MAX_HEAD};

/// How a [`ScriptedNode`] answers a request other than `GET /health/ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// 200, a JSON body echoing what came (`user_id` at top level), with content-length.
    Echo,
    /// The echo, then at once (same write) a whole second answer for user "smuggled".
    ExtraResponse,
    /// The echo, then `gap_ms` later (the connection idle meanwhile) the answer for "smuggled".
    ExtraResponseLater { gap_ms: u64 },
    /// 204 followed (same write) by body bytes: themselves an answer for user "smuggled".
    NoContentWithBody,
    /// Status line `HTTP/1.1 <code> X` (e.g. "000", "600", "99") with a small JSON body.
    Status(&'static str),
    /// A response head of about 70 KiB (one huge header), written in one write.
    HugeHead,
    /// Read the whole request, then close without a byte of answer.
    CloseWithoutAnswer,
    /// 200 with `total` bytes announced by content-length, sent `piece` bytes at a time with
    /// `gap_ms` between pieces.
    SlowBody { total: usize, piece: usize, gap_ms: u64 },
    /// The echo with `Connection: x-secret` and `X-Secret: 1` (hop-by-hop by naming).
    ConnectionNamed,
}

/// The large slow body of `{"script": "slow_body"}`: 1 MB in 20 pieces 50 ms apart.
pub const SLOW_BODY: Script = Script::SlowBody { total: 1_000_000, piece: 50_000, gap_ms: 50 };

impl Script {
    /// The script a request asks for with `{"script": name}` in its JSON body.
    fn named(name: &str) -> Option<Script> {
        Some(match name {
            "echo" => Script::Echo,
            "extra_response" => Script::ExtraResponse,
            "extra_response_later" => Script::ExtraResponseLater { gap_ms: 20 },
            "no_content_with_body" => Script::NoContentWithBody,
            "status_000" => Script::Status("000"),
            "status_600" => Script::Status("600"),
            "status_99" => Script::Status("99"),
            "huge_head" => Script::HugeHead,
            "close" => Script::CloseWithoutAnswer,
            "slow_body" => SLOW_BODY,
            "connection_named" => Script::ConnectionNamed,
            _ => return None,
        })
    }
}

/// A request as a node received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    /// HTTP/1.x minor version.
    pub version: u8,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug)]
struct NodeCtl {
    region: String,
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
}

/// A raw-TCP region node on 127.0.0.1:0. `GET /health/ready` is answered properly and
/// `GET /rollout/metrics` with a 404 (as an older node would); every other request is recorded, then answered by the script its body names
/// (`{"script": ...}`, see [`Script::named`]) or else by the node's current one.
/// Dropping it stops the node and its connections.
pub struct ScriptedNode {
    pub region: String,
    pub addr: SocketAddr,
    ctl: Arc<NodeCtl>,
    accept: tokio::task::JoinHandle<()>,
}

impl ScriptedNode {
    pub async fn start(region: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind scripted node");
        let addr = listener.local_addr().expect("addr");
        let ctl = Arc::new(NodeCtl {
            region: region.to_string(),
            script: Mutex::new(Script::Echo),
            received: Mutex::new(Vec::new()),
        });
        let for_accept = ctl.clone();
        let accept = tokio::spawn(async move {
            // Owned here: aborting the accept task drops (and aborts) every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((io, _)) = accepted else { continue };
                        connections.spawn(serve(for_accept.clone(), io));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self { region: region.to_string(), addr, ctl, accept }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer requests that name no script this way from now on.
    pub fn set(&self, script: Script) {
        *self.ctl.script.lock().expect("lock") = script;
    }

    /// Every request received so far, probes excluded, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.ctl.received.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.ctl.received.lock().expect("lock").len()
    }
}

impl Drop for ScriptedNode {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(ctl: Arc<NodeCtl>, mut io: TcpStream) {
    let _ = io.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let req = match read_request(&mut io, &mut buf).await {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(bad) => {
                // Recorded, so a test sees that the router sent something malformed.
                ctl.received.lock().expect("lock").push(bad);
                return;
            }
        };
        if req.method == "GET" && req.target == "/health/ready" {
            let ok = json!({"status": "ok", "model_version": "v", "region": ctl.region}).to_string();
            if write_bounded(&mut io, &answer("200 OK", "", &ok)).await.is_err() {
                return;
            }
            continue;
        }
        if req.method == "GET" && req.target == "/rollout/metrics" {
            // The router's sampler: answered like a node of a build without the route.
            if write_bounded(&mut io, &answer("404 Not Found", "", "{}")).await.is_err() {
                return;
            }
            continue;
        }
        let named = req.json()["script"].as_str().and_then(Script::named);
        let script = named.unwrap_or_else(|| *ctl.script.lock().expect("lock"));
        let close = req.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        ctl.received.lock().expect("lock").push(req.clone());
        if !perform(&ctl.region, &mut io, &req, script).await || close {
            return;
        }
    }
}

/// A whole answer with a content-length.
fn answer(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn echo(region: &str, req: &Received) -> String {
    let body = req.json();
    let body =
        if body.is_null() { Value::String(String::from_utf8_lossy(&req.body).into_owned()) } else { body };
    json!({
        "region": region,
        "node": format!("{region}-node"),
        "method": req.method,
        "target": req.target,
        "user_id": body["user_id"],
        "body": body,
        "items": [1, 2, 3],
    })
    .to_string()
}

/// Answer `req` as `script` says; `false` when the connection is to be closed.
async fn perform(region: &str, io: &mut TcpStream, req: &Received, script: Script) -> bool {
    let smuggled = || {
        let body = json!({"region": region, "user_id": "smuggled", "body": {"user_id": "smuggled"}});
        answer("200 OK", "x-served-by: smuggled\r\n", &body.to_string())
    };
    let bytes = match script {
        Script::Echo => answer("200 OK", "", &echo(region, req)),
        Script::ExtraResponse => [answer("200 OK", "", &echo(region, req)), smuggled()].concat(),
        Script::ExtraResponseLater { gap_ms } => {
            if write_bounded(io, &answer("200 OK", "", &echo(region, req))).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            smuggled()
        }
        Script::NoContentWithBody => [b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), smuggled()].concat(),
        Script::Status(code) => {
            format!("HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}")
                .into_bytes()
        }
        Script::HugeHead => answer("200 OK", &format!("x-huge: {}\r\n", "h".repeat(70 * 1024)), "{}"),
        Script::CloseWithoutAnswer => return false,
        Script::ConnectionNamed => {
            answer("200 OK", "Connection: x-secret\r\nX-Secret: 1\r\n", &echo(region, req))
        }
        Script::SlowBody { total, piece, gap_ms } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {total}\r\n\r\n");
            if write_bounded(io, head.as_bytes()).await.is_err() {
                return false;
            }
            let mut left = total;
            while left > 0 {
                tokio::time::sleep(Duration::from_millis(gap_ms)).await;
                let n = piece.min(left);
                if write_bounded(io, &vec![b'x'; n]).await.is_err() {
                    return false;
                }
                left -= n;
            }
            return true;
        }
    };
    write_bounded(io, &bytes).await.is_ok()
}

/// The next request on the connection: `Ok(None)` when the peer closed (or went quiet for
/// a minute) between requests; `Err` with what came when it is not a request.
async fn read_request(io: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Received>, Received> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let bad = |why: &str, buf: &[u8]| Received {
        method: "<malformed>".into(),
        target: why.into(),
        version: 1,
        headers: Vec::new(),
        body: buf.to_vec(),
    };
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("head too large", buf));
        }
        match fill(io, buf, deadline).await {
            Ok(_) => {}
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => return Err(bad("closed mid-head", buf)),
        }
    };
    let mut parsed = [httparse::EMPTY_HEADER; 256];
    let mut r = httparse::Request::new(&mut parsed);
    let (Ok(httparse::Status::Complete(_)), Some(method), Some(target), Some(version)) =
        (r.parse(&buf[..head_len]), r.method, r.path, r.version)
    else {
        return Err(bad("unparsable head", buf));
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).trim().to_string()))
        .collect();
    let mut req =
        Received { method: method.into(), target: target.into(), version, headers, body: Vec::new() };
    buf.drain(..head_len);
    let chunked = req.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let length = req.header("content-length").map(str::parse::<usize>);
    let body = match (chunked, length) {
        (true, _) => read_chunked(io, buf, deadline).await.map_err(|_| "chunked body cut or malformed"),
        (false, Some(Ok(n))) => read_exact(io, buf, n, deadline).await.map_err(|_| "body cut"),
        (false, Some(Err(_))) => Err("invalid content-length"),
        (false, None) => Ok(Vec::new()),
    };
    req.body = body.map_err(|why| bad(why, buf))?;
    Ok(Some(req))
}
