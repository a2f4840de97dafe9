//! CPU-heavy work off the request path: checking, downloading and hashing a new model
//! version runs on the loader's own runtime thread, decoding and building it on threads of
//! their own, and the replaced version is freed on another, all at the background priority
//! ([`SwapPriority`], `[model] swap_priority`) and paced (they give the CPU back every 200 us
//! in their long loops, see [`model::pace`]).
//!
//! The default, `low`, is nice 5. `idle` is Linux `SCHED_IDLE`. What that buys over a nice
//! value is where the scheduler puts a request thread that wakes up: a CPU running only
//! `SCHED_IDLE` work counts as idle, so the request thread goes there and preempts the swap at
//! once. A CPU running a nice-5 thread is busy: the woken request thread queues on its
//! previous CPU, behind whatever runs there (a kernel thread, another request), while the swap
//! keeps the other CPU. What it costs: on saturated CPUs a `SCHED_IDLE` thread barely runs, so
//! a swap waits for load to drop (seconds instead of a fraction of one in the tests with two
//! busy loops on a 2-core machine), and a thread cannot leave `SCHED_IDLE` again without
//! `CAP_SYS_NICE`, so the swap cannot be sped up once it has started.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_config::SwapPriority;
use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};

/// Cross-platform priority (0 lowest .. 99 highest) of [`SwapPriority::Low`]: nice 5 on
/// Linux, about a third of a request worker's share of a busy core. `Idle` falls back to it
/// where `SCHED_IDLE` does not exist.
const LOW: u8 = 35;

#[derive(Debug, thiserror::Error)]
#[error("the background {0} thread stopped before finishing (it panicked or could not start)")]
pub struct Interrupted(pub &'static str);

/// Run `f` on a new thread named `georec-<name>` at `priority`; await its result.
pub async fn run<T: Send + 'static>(
    name: &'static str,
    priority: SwapPriority,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Interrupted> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("georec-{name}"))
        .spawn(move || {
            lower_priority(priority);
            let _ = tx.send(f());
        })
        .map_err(|_| Interrupted(name))?;
    rx.await.map_err(|_| Interrupted(name))
}

/// A Tokio runtime with one worker thread, for async work that is CPU-heavy in places (a
/// model download is hashed as it streams in). Every thread it starts, its blocking pool's
/// too (`tokio::fs`), runs at `priority`. Its tasks stop when it is dropped.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub fn start(name: &'static str, priority: SwapPriority) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("georec-{name}"))
            .on_thread_start(move || lower_priority(priority))
            .enable_all()
            .build()?;
        Ok(Self(Some(rt)))
    }

    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.as_ref().expect("present until dropped").spawn(task)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Without waiting: a node may be dropped inside another runtime, where blocking is
        // not allowed.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Free `old` on a background thread once nothing else holds it (requests still answering
/// with it finish first), so the request that happens to finish last does not pay for freeing
/// a whole model. Gives up waiting after `patience` and lets the last holder free it.
pub fn retire<T: Send + Sync + 'static>(old: Arc<T>, patience: Duration, priority: SwapPriority) {
    let spawned = std::thread::Builder::new().name("georec-retire".into()).spawn(move || {
        lower_priority(priority);
        let deadline = Instant::now() + patience;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(old);
    });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot start a thread to free the old model; freeing it here");
    }
}

/// `priority` for this thread, and yield points in its long loops ([`model::pace`]): a
/// lower priority alone still lets the scheduler run this thread for up to a timer tick
/// (4 ms) while a request thread waits.
fn lower_priority(priority: SwapPriority) {
    model::pace::enable(model::pace::DEFAULT_INTERVAL);
    let lowered = match priority {
        SwapPriority::Idle => {
            set_idle().or_else(|idle| set_low().map_err(|low| format!("SCHED_IDLE: {idle}; nice: {low}")))
        }
        SwapPriority::Low => set_low(),
    };
    if let Err(e) = lowered {
        // Not fatal: the work runs at normal priority.
        tracing::debug!(error = %e, "cannot lower the background thread's priority");
    }
}

fn set_low() -> Result<(), String> {
    let value = ThreadPriorityValue::try_from(LOW).map_err(|e| e.to_string())?;
    set_current_thread_priority(ThreadPriority::Crossplatform(value)).map_err(|e| format!("{e:?}"))
}

#[cfg(target_os = "linux")]
fn set_idle() -> Result<(), String> {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        .map_err(|e| format!("{e:?}"))
}

#[cfg(not(target_os = "linux"))]
fn set_idle() -> Result<(), String> {
    Err("SCHED_IDLE exists only on Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_result_and_reports_a_panic() {
        assert_eq!(run("test", SwapPriority::Low, || 6 * 7).await.expect("runs"), 42);
        let panicked = run("test", SwapPriority::Low, || -> u32 { panic!("boom") }).await;
        assert!(panicked.is_err());
    }

    /// `(nice, scheduling policy)` of the calling thread, from `/proc/thread-self/stat`.
    #[cfg(target_os = "linux")]
    fn nice_and_policy() -> (i32, u32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        // Fields after the command name (which may hold spaces): state is field 3.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split(' ').collect();
        (fields[19 - 3].parse().expect("nice"), fields[41 - 3].parse().expect("policy"))
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn threads_run_at_the_configured_priority() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        let (_, idle) = run("test", SwapPriority::Idle, nice_and_policy).await.expect("runs");
        assert_eq!(idle, SCHED_IDLE);
        let (nice, low) = run("test", SwapPriority::Low, nice_and_policy).await.expect("runs");
        assert_eq!((nice, low), (5, SCHED_OTHER));
        let rt = Runtime::start("test-rt", SwapPriority::Idle).expect("starts");
        let (_, loader) = rt.spawn(async { nice_and_policy() }).await.expect("runs");
        assert_eq!(loader, SCHED_IDLE, "the loader runtime's thread too");
    }

    #[tokio::test]
    async fn runtime_runs_tasks_on_its_own_thread_until_dropped() {
        let rt = Runtime::start("test-rt", SwapPriority::Idle).expect("starts");
        let name = rt.spawn(async { std::thread::current().name().map(str::to_string) }).await.expect("runs");
        assert_eq!(name.as_deref(), Some("georec-test-rt"));
        let forever = rt.spawn(std::future::pending::<()>());
        drop(rt);
        assert!(forever.await.expect_err("cancelled with the runtime").is_cancelled());
    }

    #[test]
    fn retire_frees_once_the_last_other_holder_is_gone() {
        let old = Arc::new(vec![0u8; 1024]);
        let weak = Arc::downgrade(&old);
        let held = old.clone();
        retire(old, Duration::from_secs(10), SwapPriority::Idle);
        std::thread::sleep(Duration::from_millis(30));
        assert!(weak.upgrade().is_some(), "still held by a request, not freed");
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < deadline, "never freed");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
