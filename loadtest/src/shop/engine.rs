//! The shop run: sessions started open loop at a fixed rate, each one shopper's visit
//! (recommendations, then events), tallied by one collector task.
//!
//! Open loop, like `loadtest run`: session `i` starts at `i / rate` whatever the target does,
//! so a slow candidate cannot quietly receive fewer sessions than the stable arm. Beyond
//! `max_in_flight` sessions still running, a due session is not started and counts as an
//! `overload` failure. The run stops starting sessions at `duration` or after `sessions`,
//! whichever comes first, or when `stop` completes, and returns when every started session
//! has finished (each call is bounded by `timeout`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::events::EventType;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep_until, Instant};

use crate::client::ErrorKind;
use crate::shop::client::{Event, ShopClient};
use crate::shop::plan::{PlanError, ShopPlan};
use crate::shop::report::{Answered, Outcome, SessionRecord, Tally};
use crate::shop::taste::World;

/// Event types of a taste-matching item a shopper acts on, with their probabilities (the
/// node's event types: there is no separate `click`, a view stands for it).
pub const EVENT_MIX: [(EventType, f64); 3] =
    [(EventType::View, 0.60), (EventType::AddToCart, 0.25), (EventType::Purchase, 0.15)];

/// Run `plan` with the shoppers of `world` until its bound; returns the tally once every
/// session finished.
pub async fn run(plan: &ShopPlan, world: &World) -> Result<Tally, RunError> {
    run_until(plan, world, Instant::now(), std::future::pending()).await
}

/// [`run`] from `start` (session `i` is due at `start + i / rate`; answer times in the tally
/// count from it), also ending when `stop` completes: a scenario decides when it has seen
/// enough.
pub async fn run_until(
    plan: &ShopPlan,
    world: &World,
    start: Instant,
    stop: impl Future<Output = ()>,
) -> Result<Tally, RunError> {
    plan.validate()?;
    let client = ShopClient::new(&plan.target, plan.timeout, plan.count).map_err(RunError::Client)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<SessionRecord>();
    let collector = tokio::spawn(async move {
        let mut tally = Tally::default();
        while let Some(record) = rx.recv().await {
            tally.record(record);
        }
        tally
    });

    let in_flight = Arc::new(Semaphore::new(plan.max_in_flight));
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    tokio::pin!(stop);
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        if plan.bound.reached(due - start, i) {
            break;
        }
        tokio::select! {
            () = sleep_until(due) => {}
            () = &mut stop => break,
        }
        let shopper = rng.random_range(0..world.shoppers.len());
        // Each session draws from its own generator, seeded in order from the run's, so a
        // session's choices depend only on the seed and what it was answered.
        let session_rng = ChaCha8Rng::seed_from_u64(rng.random());
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let _ = tx.send(SessionRecord { shopper, outcome: Outcome::Failed(ErrorKind::Overload) });
            continue;
        };
        let (client, world, tx) = (client.clone(), world.clone(), tx.clone());
        let (p_match, p_noise) = (plan.p_match, plan.p_noise);
        let region = plan.region_of(&world.shoppers[shopper].user_id).map(str::to_string);
        tokio::spawn(async move {
            let visit = Visit { start, region: region.as_deref(), p_match, p_noise };
            let outcome = session(&client, &world, shopper, &visit, session_rng).await;
            let _ = tx.send(SessionRecord { shopper, outcome });
            drop(permit);
        });
    }
    let all = u32::try_from(plan.max_in_flight).unwrap_or(u32::MAX);
    let _ = in_flight.acquire_many(all).await;
    drop(tx);
    collector.await.map_err(|e| RunError::Collector(e.to_string()))
}

/// How one session behaves: where it shops, how likely it acts, when the run started.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub start: Instant,
    pub region: Option<&'a str>,
    pub p_match: f64,
    pub p_noise: f64,
}

/// One visit: ask for recommendations, act on the items of the shopper's taste, maybe on a
/// random item too. A failed recommendation request ends the session without events.
pub async fn session(
    client: &ShopClient,
    world: &World,
    shopper: usize,
    how: &Visit<'_>,
    mut rng: ChaCha8Rng,
) -> Outcome {
    let (p_match, p_noise) = (how.p_match, how.p_noise);
    let who = &world.shoppers[shopper];
    let asked = Instant::now();
    let answer = match client.recommend(&who.user_id, how.region).await {
        Ok(a) => a,
        Err(kind) => return Outcome::Failed(kind),
    };
    let answered = Instant::now();
    let mut visit = Answered {
        at: answered.saturating_duration_since(how.start),
        latency: answered - asked,
        region: how.region.map(str::to_string),
        model_version: answer.model_version,
        arm: answer.arm,
        items: answer.items.len() as u32,
        matched: 0,
        conversions: 0,
        noise: 0,
        event_failures: Vec::new(),
    };
    for item in &answer.items {
        let liked = world.category_of(&item.item_id, item.category.as_deref()).is_some_and(|c| who.likes(c));
        if !liked {
            continue;
        }
        visit.matched += 1;
        if !rng.random_bool(p_match) {
            continue;
        }
        let kind = event_type(&mut rng);
        match post(client, &who.user_id, &item.item_id, kind, how.region).await {
            Ok(()) => visit.conversions += 1,
            Err(k) => visit.event_failures.push(k),
        }
    }
    if !world.items.is_empty() && rng.random_bool(p_noise) {
        let item = &world.items[rng.random_range(0..world.items.len())];
        let kind = event_type(&mut rng);
        match post(client, &who.user_id, item, kind, how.region).await {
            Ok(()) => visit.noise += 1,
            Err(k) => visit.event_failures.push(k),
        }
    }
    Outcome::Answered(visit)
}

fn event_type(rng: &mut ChaCha8Rng) -> EventType {
    let mut u: f64 = rng.random();
    for (kind, p) in EVENT_MIX {
        if u < p {
            return kind;
        }
        u -= p;
    }
    EVENT_MIX[EVENT_MIX.len() - 1].0
}

async fn post(
    client: &ShopClient,
    user_id: &str,
    item_id: &str,
    kind: EventType,
    region: Option<&str>,
) -> Result<(), ErrorKind> {
    // Now, in unix seconds: the node accepts nothing later than a few minutes ahead.
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs() as i64);
    let event = Event { user_id, item_id, kind, ts, region };
    client.post_event(&event).await
}

/// Why a shop run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("the tally collector failed: {0}")]
    Collector(String),
}
