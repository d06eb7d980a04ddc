//! Delayed tasks on the real clock: one runs after its delay, one is cancelled and never runs,
//! one returns a result. Exits non-zero if any of that does not hold.
//!
//! Run: `cargo run -p taskrunner --example delayed_task`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("example").workers(2).build()?;
    let seq = pool.sequenced_runner(TaskTraits::default());
    let posted = Instant::now();

    // Runs 50 ms from now, on the sequence.
    let (tx, rx) = std::sync::mpsc::channel();
    seq.post_delayed(Duration::from_millis(50), move || {
        tx.send(Instant::now()).unwrap();
    })?;

    // Cancelled before its deadline: never runs.
    let cancelled_ran = Arc::new(AtomicBool::new(false));
    let flag = cancelled_ran.clone();
    let cancelled =
        seq.post_delayed(Duration::from_millis(20), move || flag.store(true, Ordering::SeqCst))?;
    assert!(cancelled.cancel(), "cancelled before its deadline");

    // A delayed task with a result: the handle resolves after it ran.
    let answer = seq.post_delayed_with_result(Duration::from_millis(30), || 6 * 7)?;
    assert_eq!(answer.join()?, 42);

    let ran_at = rx.recv_timeout(Duration::from_secs(10))?;
    let waited = ran_at - posted;
    assert!(waited >= Duration::from_millis(50), "ran after {waited:?}, before its delay");
    assert!(!cancelled_ran.load(Ordering::SeqCst), "a cancelled task ran");

    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0);
    println!("delayed task ran after {waited:?}; the cancelled one never ran; answer 42");
    Ok(())
}
