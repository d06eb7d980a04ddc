//! A single-thread runner owning thread-affine state (an `Rc`, which cannot leave its
//! thread), with a bounded queue that rejects when full. Asserts its outcome.
//!
//! Run: `cargo run -p taskrunner --example single_thread`

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use taskrunner::{QueuePolicy, SingleThreadTaskRunner, TaskRunnerExt};

thread_local! {
    // Lives on the runner's thread only: every task sees the same one.
    static LOG: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(Vec::new()));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rejections = Arc::new(AtomicU64::new(0));
    let counted = rejections.clone();
    let ui = SingleThreadTaskRunner::builder()
        .name("ui")
        .capacity(64)
        .queue_policy(QueuePolicy::Reject)
        .on_rejected(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .build()?;

    let thread = ui.post_with_result(|| std::thread::current().id())?.join()?;
    let mut accepted = 0;
    for i in 0..200 {
        match ui.post(move || {
            assert_eq!(std::thread::current().name(), Some("ui"));
            LOG.with(|log| log.borrow_mut().push(format!("event {i}")));
        }) {
            Ok(()) => accepted += 1,
            Err(e) if e.is_full() => {} // handed back; a real program might retry later
            Err(e) => return Err(e.into()),
        }
    }
    ui.wait_idle(Duration::from_secs(30))?;
    let (logged, same_thread) = ui
        .post_with_result(move || {
            (LOG.with(|log| log.borrow().len()), std::thread::current().id() == thread)
        })?
        .join()?;

    let stats = ui.stats();
    println!(
        "{accepted} events accepted, {} rejected, {logged} logged on the ui thread",
        stats.rejected
    );
    assert!(same_thread, "every task runs on the runner's own thread");
    assert_eq!(logged, accepted);
    assert_eq!(stats.rejected, 200 - accepted as u64);
    assert_eq!(rejections.load(Ordering::Relaxed), stats.rejected);

    let report = ui.stop(); // joins the thread
    assert_eq!(report.skipped(), 0);
    assert!(ui.post(|| {}).unwrap_err().is_closed());
    Ok(())
}
