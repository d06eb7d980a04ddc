//! Bounded sequenced runners: capacity, try_post, post_timeout, bad input.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::block;
use taskrunner::{PostError, TaskRunnerExt, ThreadPool};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn zero_capacity_is_an_error() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let err = pool.sequenced_runner_builder().capacity(0).build().unwrap_err();
    assert!(err.to_string().contains("capacity of at least 1"), "{err}");
}

#[test]
fn try_post_returns_full_with_the_task() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().name("bounded").capacity(2).build().unwrap();
    assert_eq!(seq.capacity(), Some(2));
    let release = block(&seq);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let ran = ran.clone();
        seq.try_post(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    // Full: the third is handed back, and so is one through `post` (same behaviour).
    let (tx, rx) = mpsc::channel();
    let err = seq.try_post(move || tx.send("handed back").unwrap()).unwrap_err();
    assert!(err.is_full());
    let line = line!() - 2;
    assert_eq!(err.location().line(), line);
    assert!(err.to_string().contains("full"));
    err.into_task().run();
    assert_eq!(rx.try_recv().unwrap(), "handed back");
    assert!(matches!(seq.post(|| {}), Err(PostError::Full(_))));
    assert!(seq.post_with_result(|| 1).unwrap_err().is_full());
    assert_eq!(seq.stats().rejected, 3);
    assert_eq!(seq.pending(), 2);

    release.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    // Room again.
    seq.try_post(|| {}).unwrap();
}

#[test]
fn post_timeout_waits_for_room() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().capacity(1).build().unwrap();
    let release = block(&seq);
    seq.try_post(|| {}).unwrap();
    // Full, and nothing drains it: times out, the task comes back.
    let err = seq.post_timeout(|| {}, Duration::from_millis(20)).unwrap_err();
    assert!(err.is_full());

    // A waiting post gets in once the blocked task finishes.
    let (done_tx, done_rx) = mpsc::channel();
    let poster = {
        let seq = seq.clone();
        std::thread::spawn(move || seq.post_timeout(move || done_tx.send(()).unwrap(), LONG))
    };
    release.send(()).unwrap();
    poster.join().unwrap().unwrap();
    done_rx.recv_timeout(LONG).unwrap();
}

#[test]
fn post_timeout_from_the_runners_own_task_refuses_instead_of_deadlocking() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().capacity(1).build().unwrap();
    let inner = seq.clone();
    let result = seq
        .post_with_result(move || {
            inner.try_post(|| {}).unwrap(); // fills the only place
            match inner.post_timeout(|| {}, LONG) {
                Err(e) => (e.is_would_deadlock(), e.to_string()),
                Ok(()) => (false, String::new()),
            }
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(result.0, "expected WouldDeadlock");
    assert!(result.1.contains("deadlock"));
}

#[test]
fn post_timeout_ends_when_the_runner_shuts_down() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().capacity(1).build().unwrap();
    let release = block(&seq);
    seq.try_post(|| {}).unwrap();
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let poster = {
        let seq = seq.clone();
        std::thread::spawn(move || {
            waiting_tx.send(()).unwrap();
            seq.post_timeout(|| {}, LONG)
        })
    };
    waiting_rx.recv().unwrap();
    seq.shutdown();
    assert!(poster.join().unwrap().unwrap_err().is_closed());
    release.send(()).unwrap();
}

#[test]
fn unbounded_runners_are_unchanged() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().build().unwrap();
    assert_eq!(seq.capacity(), None);
    let release = block(&seq);
    for _ in 0..1000 {
        seq.try_post(|| {}).unwrap();
    }
    seq.post_timeout(|| {}, Duration::ZERO).unwrap();
    release.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    assert_eq!(seq.stats().rejected, 0);
}
