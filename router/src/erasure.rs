//! `DELETE /users/{user_id}` (bearer token): erase a user in every region.
//!
//! The request goes to every region at once, whatever its routing state (a drained region
//! still holds the user's data), each region's nodes tried in turn until one answers 2xx. The
//! answer (202) says which regions are done, with what each removed, and which are pending
//! and why. A pending region is retried in the background (1 s, doubling to 30 s) until it
//! is done or the router stops; `georec_router_erasures_pending` counts regions waiting. A
//! node that refuses the request (4xx: a bad user id, a wrong token) is not retried: the
//! answer says so.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::admin;
use crate::app::AppState;
use crate::front::request::Request;
use crate::front::response::{Body, Response};
use crate::proxy::Ids;
use crate::upstream::{Outgoing, Upstream};

/// `DELETE /users/{user_id}`: the path prefix.
pub const USERS: &str = "/users/";
/// Longest wait between retries of a pending region.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How one region answered.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Outcome {
    /// What the region's node said it removed.
    Done(Value),
    /// Why not yet (retried), or why never (`refused`).
    Failed { error: String, refused: bool },
}

/// The answer: regions done and pending.
#[derive(Debug, Serialize)]
struct Erasure<'a> {
    user_id: &'a str,
    /// Regions that erased the user, with what each removed.
    done: BTreeMap<String, Value>,
    /// Regions not reached yet (retried in the background while the router runs).
    pending: BTreeMap<String, String>,
    /// Regions whose node refused the request (not retried).
    refused: BTreeMap<String, String>,
}

/// `DELETE /users/{user_id}`.
pub async fn erase(state: &AppState, upstream: &Upstream, req: Request) -> Response {
    if let Err(e) = admin::authorize(state, &req) {
        return e.response();
    }
    let user_id = req.path()[USERS.len()..].to_string();
    let ids = Ids::of(&req);
    let out = Outgoing::new(req, ids.request_id.clone(), ids.traceparent.clone());
    let all: Vec<usize> = (0..state.regions.iter().count()).collect();
    let outcomes = futures::future::join_all(all.iter().map(|&r| erase_in(state, upstream, &out, r))).await;
    let mut answer = Erasure {
        user_id: &user_id,
        done: BTreeMap::new(),
        pending: BTreeMap::new(),
        refused: BTreeMap::new(),
    };
    let mut retry = Vec::new();
    for (&r, outcome) in all.iter().zip(outcomes) {
        let name = state.regions.get(r).name.clone();
        match outcome {
            Outcome::Done(removed) => {
                answer.done.insert(name, removed);
            }
            Outcome::Failed { error, refused: true } => {
                answer.refused.insert(name, error);
            }
            Outcome::Failed { error, refused: false } => {
                answer.pending.insert(name, error);
                retry.push(r);
            }
        }
    }
    info!(
        user_id = %user_id,
        done = answer.done.len(),
        pending = answer.pending.len(),
        refused = answer.refused.len(),
        "erasure fanned out"
    );
    if !retry.is_empty() {
        spawn_retries(state.clone(), out, retry, user_id.clone());
    }
    Response::json(202, &answer)
}

/// One region: its nodes in turn until one answers.
async fn erase_in(state: &AppState, upstream: &Upstream, out: &Outgoing, r: usize) -> Outcome {
    let region = state.regions.get(r);
    let mut last = Outcome::Failed { error: "the region has no nodes".into(), refused: false };
    for node in &region.nodes {
        match upstream.send(node, out, state.settings.request_timeout, true).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                let removed = match answer.body {
                    Body::Full(Some(bytes)) => parse(&bytes),
                    _ => Value::Null,
                };
                return Outcome::Done(removed.get("removed").cloned().unwrap_or(removed));
            }
            Ok(answer) => {
                let body = match &answer.body {
                    Body::Full(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                    _ => String::new(),
                };
                let error = format!("{} answered {}: {}", node.url, answer.status, body.trim());
                // 4xx: the node will say the same again. 5xx (Redis down): retry.
                let refused = (400..500).contains(&answer.status);
                last = Outcome::Failed { error, refused };
                if refused {
                    return last;
                }
            }
            Err((e, _)) => last = Outcome::Failed { error: format!("{}: {e}", node.url), refused: false },
        }
    }
    last
}

fn parse(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Retry `regions` until each is done, on this worker (its own connections).
fn spawn_retries(state: AppState, out: Outgoing, mut regions: Vec<usize>, user_id: String) {
    let pending = state.metrics.erasures_pending.clone();
    pending.add(regions.len() as i64);
    tokio::task::spawn_local(async move {
        let upstream = Upstream::new(state.settings.connector.clone(), state.settings.stream_idle_timeout);
        let mut wait = Duration::from_secs(1);
        while !regions.is_empty() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
            let mut still = Vec::new();
            for r in regions {
                let name = &state.regions.get(r).name;
                match erase_in(&state, &upstream, &out, r).await {
                    Outcome::Done(_) => {
                        pending.dec();
                        info!(user_id = %user_id, region = %name, "pending erasure done");
                    }
                    Outcome::Failed { error, refused: true } => {
                        pending.dec();
                        warn!(user_id = %user_id, region = %name, error = %error, "pending erasure refused; not retried");
                    }
                    Outcome::Failed { error, .. } => {
                        warn!(user_id = %user_id, region = %name, error = %error, "erasure still pending");
                        still.push(r);
                    }
                }
            }
            regions = still;
        }
    });
}

/// A `DELETE /users/{user_id}` path: one non-empty segment after the prefix.
pub fn is_users_path(path: &str) -> bool {
    path.strip_prefix(USERS).is_some_and(|id| !id.is_empty() && !id.contains('/'))
}
