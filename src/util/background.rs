//! CPU work nobody waits on by the millisecond (the unit roller's parse of a storm's
//! deltas), on a thread of its own at the lowest scheduling priority: on a busy node it
//! takes the cores the ticks and flushes leave idle instead of holding them up, as a
//! database's background cleaner yields to its queries.

/// The nice value of a background thread (the lowest priority: Linux gives a nice-19
/// thread about 1.5 % of a core another thread wants).
const NICE: i32 = 19;

/// Runs `work` on a new thread at [`NICE`] and waits for it without blocking the async
/// workers. `None` if the thread could not be started or `work` panicked.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("lt-background".to_owned())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        })
        .ok()?;
    rx.await.ok()
}

/// On Linux the nice value is a thread's own (setpriority(2), "Bugs"): this thread alone.
/// Where it cannot be lowered the work runs at the usual priority.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    let _ = rustix::process::setpriority_process(Some(tid), NICE);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_on_a_thread_of_lower_priority_and_returns() {
        let (answer, nice) = super::run(|| (6 * 7, rustix::process::getpriority_process(None).unwrap()))
            .await
            .unwrap();
        assert_eq!(answer, 42);
        assert_eq!(nice, super::NICE);
        // The caller's own thread keeps its priority.
        assert_ne!(rustix::process::getpriority_process(None).unwrap(), super::NICE);
        assert!(super::run(|| -> u8 { panic!("lost") }).await.is_none());
    }
}
