//! The timer entry: `cancel()` racing the timer firing the task and the runner starting it.
//! Exactly one wins; a cancelled task never runs; the task is dropped exactly once.

use std::time::Instant;

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::time::timer::{Entry, Expired};
use crate::Task;

/// Counts drops of the task's captured state.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn entry(ran: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> std::sync::Arc<Entry> {
    let (ran, counted) = (ran.clone(), Counted(dropped.clone()));
    let task = Task::new(move || {
        let _counted = counted;
        ran.fetch_add(1, Ordering::Relaxed);
    });
    std::sync::Arc::new(Entry::new(task, Instant::now()))
}

#[test]
fn cancel_races_fire_and_start() {
    super::model(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let entry = entry(&ran, &dropped);
        let timer_side = entry.clone();
        let timer = thread::spawn(move || {
            // The timer service fires it; the runner then runs the wrapper.
            if timer_side.fire() {
                Expired::into_task(timer_side).run();
            }
        });
        let cancelled = entry.cancel().map(drop).is_some();
        timer.join().unwrap();
        let ran = ran.load(Ordering::Relaxed);
        assert_eq!(usize::from(cancelled) + ran, 1, "exactly one of cancel and run wins");
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "the task is dropped exactly once");
        assert!(!entry.is_pending());
    });
}

#[test]
fn cancel_races_a_shutdown_dropping_the_fired_task() {
    super::model(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let entry = entry(&ran, &dropped);
        assert!(entry.fire());
        let queued = Expired::into_task(entry.clone());
        // The runner shuts down and drops the queued wrapper unrun.
        let runner = thread::spawn(move || drop(queued));
        let cancelled = entry.cancel().map(drop).is_some();
        runner.join().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "the task is dropped exactly once");
        assert_eq!(cancelled, entry.is_cancelled());
    });
}
