//! TaskHandle: blocking and async waits, cancel, errors.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::block;
use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};

const LONG: Duration = Duration::from_secs(30);

fn quiet_pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().workers(workers).panic_handler(|_| {}).build().unwrap()
}

#[test]
fn join_returns_the_value() {
    let pool = quiet_pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let h = seq.post_with_result(|| String::from("value")).unwrap();
    assert_eq!(h.join().unwrap(), "value");
}

#[test]
fn join_timeout_can_be_retried() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release = block(&seq);
    let mut h = seq.post_with_result(|| 9).unwrap();
    let err = h.join_timeout(Duration::from_millis(10)).unwrap_err();
    assert!(err.is_timeout());
    assert!(!h.is_finished());
    release.send(()).unwrap();
    assert_eq!(h.join_timeout(LONG).unwrap(), 9);
    assert!(h.is_finished());
}

#[test]
fn cancel_before_start_means_it_never_runs() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release = block(&seq);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let h = seq.post_with_result(move || r.store(true, Ordering::SeqCst)).unwrap();
    assert!(h.cancel());
    assert!(h.is_finished());
    assert!(!h.cancel(), "a second cancel has nothing to cancel");
    release.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    assert!(h.join().unwrap_err().is_cancelled());
}

#[test]
fn cancel_after_finish_does_nothing() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let mut h = seq.post_with_result(|| 1).unwrap();
    assert_eq!(h.join_timeout(LONG).unwrap(), 1);
    assert!(!h.cancel());
}

#[test]
fn panic_becomes_an_error_with_message_and_location() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let line = line!() + 1;
    let h = seq.post_with_result(|| -> u8 { panic!("broken {}", 42) }).unwrap();
    let err = h.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("broken 42"));
    let location = err.location().unwrap();
    assert_eq!((location.file(), location.line()), (file!(), line));
    assert!(err.to_string().contains("broken 42"));
    // The runner keeps going.
    assert_eq!(seq.post_with_result(|| 2).unwrap().join().unwrap(), 2);
}

#[test]
fn handle_is_a_future_without_a_runtime() {
    let pool = quiet_pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let h = seq.post_with_result(|| 5u64).unwrap();
    assert_eq!(futures::executor::block_on(h).unwrap(), 5);
}

#[test]
fn handle_can_be_awaited_in_tokio() {
    let pool = quiet_pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let sum = rt.block_on(async {
        let a = seq.post_with_result(|| 20).unwrap();
        let b = seq.post_with_result(|| 22).unwrap();
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(sum, 42);
}

#[test]
fn awaiting_a_panicked_task_gives_the_error() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let h = seq.post_with_result(|| -> () { panic!("async boom") }).unwrap();
    let err = futures::executor::block_on(h).unwrap_err();
    assert_eq!(err.panic_message(), Some("async boom"));
}

#[test]
fn joining_own_pending_task_is_would_deadlock() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let inner = seq.clone();
    let (blocking, polled) = seq
        .post_with_result(move || {
            let pending = inner.post_with_result(|| 1).unwrap();
            let polled = inner.post_with_result(|| 2).unwrap();
            let blocking = pending.join().unwrap_err().is_would_deadlock();
            let polled = futures::executor::block_on(polled).unwrap_err().is_would_deadlock();
            (blocking, polled)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(blocking && polled);
}

#[test]
fn joining_a_task_of_another_sequence_from_a_task_works() {
    let pool = quiet_pool(2);
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let value = a
        .post_with_result(move || b.post_with_result(|| 11).unwrap().join().unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(value, 11);
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    let pool = quiet_pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let (tx, rx) = mpsc::channel();
    drop(seq.post_with_result(move || tx.send("ran anyway").unwrap()).unwrap());
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "ran anyway");
}
