//! Concurrent posts against the running worker: no lost wake-up, never two tasks at once,
//! every task exactly once. Under loom the owner sets `DRAINING` after its first task
//! (`worker.rs`), so these models also cover posts that skip their count and the release that
//! takes the bit (`pool/sequence.rs`).

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::{TaskRunnerExt, TaskTraits, ThreadPool};

#[test]
fn concurrent_posts_vs_running_worker() {
    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default());
        let in_task = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicUsize::new(0));

        let task = {
            let in_task = in_task.clone();
            let ran = ran.clone();
            move || {
                assert!(!in_task.swap(true, Ordering::AcqRel), "two tasks overlapped");
                ran.fetch_add(1, Ordering::Relaxed);
                in_task.store(false, Ordering::Release);
            }
        };

        let poster = {
            let seq = seq.clone();
            let task = task.clone();
            thread::spawn(move || seq.post_with_result(task).unwrap())
        };
        let mine = seq.post_with_result(task).unwrap();
        // A lost wake-up leaves a task queued with the worker parked: the joins below never
        // return and loom reports the deadlock.
        mine.join().unwrap();
        poster.join().unwrap().join().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        drop(pool.shutdown());
    });
}

#[test]
fn post_after_idle_is_picked_up() {
    // The worker releases the sequence while a second post races with the release.
    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        seq.post(move || {
            r.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        let r = ran.clone();
        let last = seq
            .post_with_result(move || {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        last.join().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        drop(pool.shutdown());
    });
}

#[test]
fn two_workers_spinner_and_sleeper_never_strand_a_source() {
    // One worker may spin while the other parks; posters skip the wake-up while someone
    // spins. Two sources posted back to back must both run.
    super::model(|| {
        let pool = ThreadPool::builder().workers(2).build().unwrap();
        let a = pool.sequenced_runner(TaskTraits::default());
        let b = pool.sequenced_runner(TaskTraits::default());
        let first = a.post_with_result(|| 1).unwrap();
        let second = b.post_with_result(|| 2).unwrap();
        assert_eq!(first.join().unwrap() + second.join().unwrap(), 3);
        drop(pool.shutdown());
    });
}

/// `SequenceBound` posts to a sequenced runner carry the value slot's address, not a
/// reference count (`sequence_bound.rs`): the slot must outlive every such task. Here the
/// last handle goes while another thread's post and the runner's shutdown race with it; the
/// value must be dropped exactly once, and never before a closure that runs.
#[test]
fn a_bound_value_outlives_its_posts_when_the_last_handle_races_a_shutdown() {
    use crate::{SequenceBound, ShutdownBehavior};

    struct Value(Arc<AtomicUsize>);
    impl Drop for Value {
        fn drop(&mut self) {
            assert_eq!(self.0.fetch_add(1, Ordering::AcqRel), 0, "dropped twice");
        }
    }

    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let traits = TaskTraits::default().with_shutdown_behavior(ShutdownBehavior::BlockShutdown);
        let seq = pool.sequenced_runner(traits);
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let bound = SequenceBound::new(&seq, move || Value(d));
        let other = bound.clone();
        // A closure's panic would be caught and reported by the pool: record instead.
        let ran_after_drop = Arc::new(AtomicBool::new(false));
        let late = ran_after_drop.clone();
        let poster = thread::spawn(move || {
            let _ = other.post(move |value| {
                if value.0.load(Ordering::Acquire) != 0 {
                    late.store(true, Ordering::Release);
                }
            });
        });
        seq.shutdown();
        drop(bound);
        poster.join().unwrap();
        drop(seq);
        drop(pool.shutdown());
        assert_eq!(drops.load(Ordering::Acquire), 1);
        assert!(!ran_after_drop.load(Ordering::Acquire), "a closure ran after the value's drop");
    });
}
