//! Concurrent posts against the running worker: no lost wake-up, never two tasks at once,
//! every task exactly once.

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
