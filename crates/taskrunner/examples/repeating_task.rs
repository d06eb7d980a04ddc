//! Repeating tasks on the real clock: a fixed-delay task that stops itself after five runs, a
//! fixed-rate task stopped through its handle, and one that stops when it panics. Exits non-zero
//! if any outcome is wrong.
//!
//! Run: `cargo run -p taskrunner --example repeating_task`

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use taskrunner::{
    MissedTickPolicy, Repeat, RepeatingHandle, StopReason, TaskRunnerExt, TaskTraits, ThreadPool,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("example").workers(2).panic_handler(|_| {}).build()?;
    let seq = pool.sequenced_runner(TaskTraits::default());

    // Fixed delay, first run at once: counts to five, then stops itself.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let me: Arc<OnceLock<RepeatingHandle>> = Arc::new(OnceLock::new());
    let handle_slot = me.clone();
    let mut count = 0;
    let repeat = Repeat::every(Duration::from_millis(10)).with_initial_delay(Duration::ZERO);
    let counter = seq.post_repeating(repeat, move || {
        count += 1; // state owned by the task, no lock
        if count == 5 {
            if let Some(handle) = handle_slot.get() {
                handle.stop();
            }
            done_tx.send(count).unwrap();
        }
    })?;
    me.set(counter).map_err(|_| "set once")?;
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10))?, 5);
    let counter = me.get().unwrap();
    assert_eq!(counter.stop_reason(), Some(StopReason::Stopped));
    assert_eq!(counter.runs(), 5);

    // Fixed rate, stopped from outside after three ticks.
    let (tick_tx, tick_rx) = std::sync::mpsc::channel();
    let rate = Repeat::at_fixed_rate(Duration::from_millis(5), MissedTickPolicy::Skip);
    let ticker = seq.post_repeating(rate, move || {
        let _ = tick_tx.send(());
    })?;
    for _ in 0..3 {
        tick_rx.recv_timeout(Duration::from_secs(10))?;
    }
    assert!(ticker.stop());
    assert_eq!(ticker.stop_reason(), Some(StopReason::Stopped));

    // A panic stops it, and the handle says so. (Keep the expected panic off stderr.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"sensor unplugged") {
            default_hook(info);
        }
    }));
    let (panic_tx, panic_rx) = std::sync::mpsc::channel();
    let failing = seq.post_repeating(Repeat::every(Duration::from_millis(5)), move || {
        let _ = panic_tx.send(());
        panic!("sensor unplugged");
    })?;
    panic_rx.recv_timeout(Duration::from_secs(10))?;
    // The handle learns of the panic once the run has unwound; wait on the sequence for that.
    seq.wait_idle(Duration::from_secs(10))?;
    assert_eq!(failing.stop_reason(), Some(StopReason::Panicked));
    assert_eq!(failing.runs(), 1);

    pool.shutdown();
    println!("counted to 5, ticked 3 times at a fixed rate, and stopped on a panic");
    Ok(())
}
