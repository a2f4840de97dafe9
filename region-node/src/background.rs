//! CPU-heavy work off the request path: decoding and building a new model version runs on
//! its own thread at a lower CPU priority than the request workers, so a swap under load
//! takes a little longer instead of stretching the requests that share the cores with it.

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

fn lower_priority() {
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
}
