//! Ordering, exclusion, current-runner lookup and waits of the sequenced runner.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::block;
use taskrunner::{
    current_runner, SequencedTaskRunner, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool,
    WaitError,
};

const LONG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().workers(workers).build().unwrap()
}

#[test]
fn tasks_run_in_posting_order() {
    let pool = pool(4);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    for i in 0..1000 {
        let tx = tx.clone();
        seq.post(move || tx.send(i).unwrap()).unwrap();
    }
    seq.wait_idle(LONG).unwrap();
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn tasks_never_overlap_and_see_previous_effects() {
    let pool = pool(4);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let busy = Arc::new(AtomicBool::new(false));
    // Relaxed on purpose: only the sequence's happens-before makes the count exact.
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..10_000 {
        let busy = busy.clone();
        let count = count.clone();
        seq.post(move || {
            assert!(!busy.swap(true, Ordering::Relaxed), "two tasks of one sequence overlapped");
            let seen = count.load(Ordering::Relaxed);
            count.store(seen + 1, Ordering::Relaxed);
            busy.store(false, Ordering::Relaxed);
        })
        .unwrap();
    }
    let total = seq.post_with_result(move || count.load(Ordering::Relaxed)).unwrap();
    assert_eq!(total.join().unwrap(), 10_000);
}

#[test]
fn posting_never_runs_inline() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let caller = std::thread::current().id();
    let ran_on = seq.post_with_result(|| std::thread::current().id()).unwrap();
    assert_ne!(ran_on.join().unwrap(), caller);
}

#[test]
fn current_runner_inside_a_task() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let other = pool.sequenced_runner(TaskTraits::default());
    assert!(!seq.runs_tasks_in_current_sequence());
    assert!(current_runner().is_none());
    assert!(SequencedTaskRunner::current().is_none());

    let (seq2, other2) = (seq.clone(), other.clone());
    let inside = seq
        .post_with_result(move || {
            let current = SequencedTaskRunner::current().expect("inside a sequence");
            (
                seq2.runs_tasks_in_current_sequence(),
                other2.runs_tasks_in_current_sequence(),
                current.sequence_token() == seq2.sequence_token(),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(inside, (true, false, true));
}

#[test]
fn current_runner_can_post_follow_up_work() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    seq.post(move || {
        let me = current_runner().unwrap();
        me.post(move || tx.send("follow-up").unwrap()).unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "follow-up");
}

#[test]
fn flush_runs_after_earlier_tasks_and_before_later_ones() {
    let pool = pool(4);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        let tx = tx.clone();
        seq.post(move || tx.send(i).unwrap()).unwrap();
    }
    let flush_tx = tx.clone();
    seq.flush(move || flush_tx.send(-1).unwrap()).unwrap();
    for i in 100..200 {
        let tx = tx.clone();
        seq.post(move || tx.send(i).unwrap()).unwrap();
    }
    seq.wait_idle(LONG).unwrap();
    let order: Vec<i32> = rx.try_iter().collect();
    assert_eq!(order.iter().position(|&x| x == -1), Some(100));
}

#[test]
fn wait_idle_waits_for_earlier_tasks() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..500 {
        let done = done.clone();
        seq.post(move || {
            done.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    seq.wait_idle(LONG).unwrap();
    assert_eq!(done.load(Ordering::Relaxed), 500);
}

#[test]
fn wait_idle_from_inside_own_sequence_is_would_deadlock() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let inner = seq.clone();
    let result = seq.post_with_result(move || inner.wait_idle(LONG)).unwrap().join().unwrap();
    assert_eq!(result, Err(WaitError::WouldDeadlock));
    let inner = seq.clone();
    let result = seq.post_with_result(move || inner.wait_shutdown(LONG)).unwrap().join().unwrap();
    assert_eq!(result, Err(WaitError::WouldDeadlock));
}

#[test]
fn wait_idle_times_out_while_a_task_is_blocked() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release_tx = block(&seq);
    assert_eq!(seq.wait_idle(Duration::from_millis(20)), Err(WaitError::Timeout));
    release_tx.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
}

#[test]
fn wait_idle_reports_shutdown_during_the_wait() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release_tx = block(&seq);
    let waiter = {
        let seq = seq.clone();
        std::thread::spawn(move || seq.wait_idle(LONG))
    };
    // Whether the waiter's marker was queued before the shutdown or rejected by it, the wait
    // ends with ShutDown once the blocked task returns.
    seq.shutdown();
    release_tx.send(()).unwrap();
    assert_eq!(waiter.join().unwrap(), Err(WaitError::ShutDown));
}

#[test]
fn runners_are_independent_sequences() {
    let pool = pool(2);
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    assert_ne!(a.sequence_token(), b.sequence_token());
    assert_eq!(a.sequence_token(), a.clone().sequence_token());
    // A blocked sequence does not hold up another one.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    a.post(move || release_rx.recv().unwrap()).unwrap();
    assert_eq!(b.post_with_result(|| 5).unwrap().join().unwrap(), 5);
    release_tx.send(()).unwrap();
    a.wait_idle(LONG).unwrap();
}

#[test]
fn named_runner_and_global_pool() {
    let pool = pool(1);
    let named = pool.sequenced_runner_builder().name("db").build().unwrap();
    assert_eq!(named.name(), "db");
    assert_eq!(pool.sequenced_runner(TaskTraits::default()).name(), "sequence");

    let global = taskrunner::sequenced_runner(TaskTraits::default());
    assert_eq!(global.post_with_result(|| 7).unwrap().join().unwrap(), 7);
    assert!(taskrunner::global().workers() >= 1);
}

#[test]
fn pool_runs_one_off_tasks() {
    let pool = pool(2);
    let h = pool.post_with_result(|| 3).unwrap();
    assert_eq!(h.join().unwrap(), 3);
    assert!(!pool.runs_tasks_in_current_sequence());
}
