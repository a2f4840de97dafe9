//! CPU-heavy work off the request path: checking, downloading and hashing a new model
//! version runs on the loader's own runtime thread, decoding and building it on threads of
//! their own, and the replaced version is freed on another, all at a lower CPU priority than
//! the request workers and paced (they give the CPU back every 200 us in their long loops,
//! see [`model_sync::pace`]), so a swap under load takes a little longer instead of
//! stretching the requests that share the cores with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};

/// Cross-platform priority (0 lowest .. 99 highest) of background work: nice 5 on Linux,
/// about a third of a request worker's share of a busy core, so a swap still completes in
/// seconds when the node is saturated.
const PRIORITY: u8 = 37;

#[derive(Debug, thiserror::Error)]
#[error("the background {0} thread stopped before finishing (it panicked or could not start)")]
pub struct Interrupted(pub &'static str);

/// Run `f` on a new thread named `georec-<name>` at the background priority; await its result.
pub async fn run<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Interrupted> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("georec-{name}"))
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|_| Interrupted(name))?;
    rx.await.map_err(|_| Interrupted(name))
}

/// A Tokio runtime with one worker thread, for async work that is CPU-heavy in places (a
/// model download is hashed as it streams in). Every thread it starts, its blocking pool's
/// too (`tokio::fs`), runs at the background priority. Its tasks stop when it is dropped.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    pub fn start(name: &'static str) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("georec-{name}"))
            .on_thread_start(lower_priority)
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
pub fn retire<T: Send + Sync + 'static>(old: Arc<T>, patience: Duration) {
    let spawned = std::thread::Builder::new().name("georec-retire".into()).spawn(move || {
        lower_priority();
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

/// Background priority, and yield points in long loops ([`model_sync::pace`]): a lower
/// priority alone still lets the scheduler run this thread for up to a timer tick (4 ms)
/// while a request thread waits.
fn lower_priority() {
    model_sync::pace::enable(model_sync::pace::DEFAULT_INTERVAL);
    let lowered = ThreadPriorityValue::try_from(PRIORITY).map_err(|e| e.to_string()).and_then(|v| {
        set_current_thread_priority(ThreadPriority::Crossplatform(v)).map_err(|e| format!("{e:?}"))
    });
    if let Err(e) = lowered {
        // Not fatal: the work runs at normal priority.
        tracing::debug!(error = %e, "cannot lower the background thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_result_and_reports_a_panic() {
        assert_eq!(run("test", || 6 * 7).await.expect("runs"), 42);
        let panicked = run("test", || -> u32 { panic!("boom") }).await;
        assert!(panicked.is_err());
    }

    #[tokio::test]
    async fn runtime_runs_tasks_on_its_own_thread_until_dropped() {
        let rt = Runtime::start("test-rt").expect("starts");
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
        retire(old, Duration::from_secs(10));
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
