//! The parallel runner's slots and barrier (`pool/parallel.rs`): the bound is never exceeded,
//! a flush runs after every earlier task and before every later one, and no task is stranded.
//!
//! The pool has one worker and the model's main thread acts as a second one (it pops slots
//! from the pool queue and runs them), so two slots can run at once without a second parked
//! worker in the model (which keeps the state space small).

use std::num::NonZeroUsize;

use crate::pool::{Parallel, Shared, SlotEnd, Source};
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::{Priority, TaskRunnerExt, TaskTraits, ThreadPool};

/// A task that records how many tasks of the runner run at once.
fn tracked(
    in_flight: &Arc<AtomicUsize>,
    max_seen: &Arc<AtomicUsize>,
) -> impl FnOnce() + Send + 'static {
    let (in_flight, max_seen) = (in_flight.clone(), max_seen.clone());
    move || {
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_seen.fetch_max(now, Ordering::SeqCst);
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The main thread helps: it runs the parallel slots it finds in the pool queue.
fn help(shared: &Shared) {
    let mut ages = [0; Priority::COUNT];
    while let Some(source) = shared.pop_source(&mut ages) {
        match source {
            Source::Parallel(parallel) => {
                let (_, end) = Parallel::run_slot(&parallel, 2, |task| {
                    task.run();
                    true
                });
                if end == SlotEnd::Budget {
                    shared.schedule(Source::Parallel(parallel), Priority::UserVisible);
                }
            }
            _ => unreachable!("only parallel slots in this model"),
        }
    }
}

#[test]
fn bound_is_never_exceeded() {
    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let par = pool.parallel_runner(TaskTraits::default(), NonZeroUsize::MIN);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let poster = {
            let par = par.clone();
            let task = tracked(&in_flight, &max_seen);
            thread::spawn(move || par.post_with_result(task).unwrap())
        };
        let mine = par.post_with_result(tracked(&in_flight, &max_seen)).unwrap();
        help(pool.shared());
        // A stranded task shows as a deadlock here.
        mine.join().unwrap();
        poster.join().unwrap().join().unwrap();
        assert_eq!(max_seen.load(Ordering::SeqCst), 1, "two tasks ran at once");
        drop(pool.shutdown());
    });
}

#[test]
fn flush_is_never_overtaken() {
    // Max concurrency 2, two threads running slots: without the barrier, the task after the
    // flush could start while the one before it still runs, or before the callback.
    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let par = pool.parallel_runner(TaskTraits::default(), NonZeroUsize::new(2).unwrap());
        let before_done = Arc::new(AtomicUsize::new(0));
        let flushed = Arc::new(AtomicUsize::new(0));
        {
            let before_done = before_done.clone();
            par.post(move || before_done.store(1, Ordering::SeqCst)).unwrap();
        }
        {
            let (before_done, flushed) = (before_done.clone(), flushed.clone());
            par.flush(move || {
                assert_eq!(before_done.load(Ordering::SeqCst), 1, "flush overtook a task");
                flushed.store(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let after = {
            let flushed = flushed.clone();
            par.post_with_result(move || flushed.load(Ordering::SeqCst)).unwrap()
        };
        help(pool.shared());
        assert_eq!(after.join().unwrap(), 1, "a later task overtook the flush");
        drop(pool.shutdown());
    });
}
