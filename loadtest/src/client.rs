//! One recommendation request and what came back: who served it, whether the router failed
//! over, which model answered, or which kind of error it was.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Header naming the region the request should be served in.
pub const REGION_HINT: &str = "x-region-hint";
/// Header naming the region that served the answer.
pub const SERVED_BY: &str = "x-served-by";
/// Header the router adds when it failed over: the region it failed over from.
pub const FAILOVER_FROM: &str = "x-failover-from";

/// Why a request failed. Names are stable: they are keys of the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection (refused, reset, DNS): the target is down.
    Connect,
    /// No complete answer within `--timeout`.
    Timeout,
    Http5xx,
    Http4xx,
    /// Not sent: the open loop's in-flight cap was reached (the target fell behind).
    Overload,
    /// Anything else: unreadable body, protocol error, unexpected status.
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Http5xx,
        ErrorKind::Http4xx,
        ErrorKind::Overload,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Overload => "overload",
            ErrorKind::Other => "other",
        }
    }

    /// Classify a transport error from reqwest.
    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return ErrorKind::Timeout;
        }
        if e.is_connect() {
            return ErrorKind::Connect;
        }
        // A node killed mid-request resets the connection: that is a lost target too.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind as Io;
                match io.kind() {
                    Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                        return ErrorKind::Connect
                    }
                    Io::TimedOut => return ErrorKind::Timeout,
                    _ => {}
                }
            }
            source = err.source();
        }
        ErrorKind::Other
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one request produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// `None` for a 2xx answer with a readable body.
    pub error: Option<ErrorKind>,
    pub status: Option<u16>,
    /// `x-served-by`, on any answer that carried it.
    pub served_by: Option<String>,
    /// `x-failover-from`, when the router failed over.
    pub failover_from: Option<String>,
    /// `model_version` of a successful answer's body.
    pub model_version: Option<String>,
}

impl Outcome {
    pub fn failed(kind: ErrorKind) -> Self {
        Outcome { error: Some(kind), ..Outcome::default() }
    }

    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    user_id: &'a str,
    count: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    force_refresh: bool,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    model_version: Option<String>,
}

/// A pooled HTTP client bound to one URL.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    count: u32,
    force_refresh: bool,
}

impl Client {
    pub fn new(url: String, timeout: Duration, count: u32) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            // Load must reach the target, not a proxy from the environment.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client { http, url, count, force_refresh: false })
    }

    /// Ask the node to compute every answer from the model instead of its cache.
    pub fn force_refresh(mut self, yes: bool) -> Self {
        self.force_refresh = yes;
        self
    }

    pub async fn recommend(&self, user_id: &str, hint: Option<&str>) -> Outcome {
        let mut req = self.http.post(&self.url).json(&Body {
            user_id,
            count: self.count,
            force_refresh: self.force_refresh,
        });
        if let Some(region) = hint {
            req = req.header(REGION_HINT, region);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::failed(ErrorKind::of(&e)),
        };
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut outcome = Outcome {
            error: None,
            status: Some(resp.status().as_u16()),
            served_by: header(SERVED_BY),
            failover_from: header(FAILOVER_FROM),
            model_version: None,
        };
        let status = resp.status();
        // Read the body in every case, so the connection goes back to the pool.
        let body = resp.bytes().await;
        outcome.error = match (status.as_u16(), body) {
            (_, Err(e)) => Some(ErrorKind::of(&e)),
            (500..=599, _) => Some(ErrorKind::Http5xx),
            (400..=499, _) => Some(ErrorKind::Http4xx),
            (200..=299, Ok(bytes)) => match serde_json::from_slice::<Answer>(&bytes) {
                Ok(answer) => {
                    outcome.model_version = answer.model_version;
                    None
                }
                Err(_) => Some(ErrorKind::Other),
            },
            _ => Some(ErrorKind::Other),
        };
        outcome
    }
}
