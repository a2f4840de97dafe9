//! Steady, bounded load against the router on loopback: a few client tasks sending
//! requests back to back until stopped (or a hard cap on count and time is reached).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

/// Hard caps so a broken test cannot generate load forever.
const MAX_REQUESTS_PER_TASK: usize = 5_000;
const MAX_DURATION: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Sample {
    pub started: Instant,
    /// 0 when the request itself failed (connection error to the router).
    pub status: u16,
    pub served_by: Option<String>,
    pub failover_from: Option<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    pub fn start(base: &str, hint: Option<&str>, concurrency: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let url = format!("{base}/recommendations");
        let tasks = (0..concurrency)
            .map(|i| {
                let (stop, done, client, url) = (stop.clone(), done.clone(), client.clone(), url.clone());
                let hint = hint.map(str::to_string);
                tokio::spawn(async move {
                    let begun = Instant::now();
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::SeqCst)
                        && samples.len() < MAX_REQUESTS_PER_TASK
                        && begun.elapsed() < MAX_DURATION
                    {
                        let mut req = client.post(&url).json(&json!({"user_id": i, "count": 3}));
                        if let Some(h) = &hint {
                            req = req.header("x-region-hint", h);
                        }
                        let started = Instant::now();
                        let sample = match req.send().await {
                            Ok(resp) => {
                                let h = |n: &str| {
                                    resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string)
                                };
                                let s = Sample {
                                    started,
                                    status: resp.status().as_u16(),
                                    served_by: h("x-served-by"),
                                    failover_from: h("x-failover-from"),
                                };
                                // Read the body: a truncated body is a failed request too.
                                match resp.bytes().await {
                                    Ok(_) => s,
                                    Err(_) => Sample { status: 0, ..s },
                                }
                            }
                            Err(_) => Sample { started, status: 0, served_by: None, failover_from: None },
                        };
                        samples.push(sample);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    samples
                })
            })
            .collect();
        Load { stop, done, tasks }
    }

    /// Requests completed so far.
    pub fn completed(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("load task"));
        }
        all.sort_by_key(|s| s.started);
        all
    }
}
