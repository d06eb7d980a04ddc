//! Pool and runner shutdown: what runs, what is dropped and counted, what is waited for.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::block;
use taskrunner::{ShutdownBehavior, TaskRunnerExt, TaskTraits, ThreadPool, WaitError};

const LONG: Duration = Duration::from_secs(30);

fn traits(behavior: ShutdownBehavior) -> TaskTraits {
    TaskTraits::default().with_shutdown_behavior(behavior)
}

fn counter_task(counter: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let counter = counter.clone();
    move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn block_shutdown_tasks_run_and_skip_tasks_are_dropped_and_counted() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let gate = pool.sequenced_runner(traits(ShutdownBehavior::SkipOnShutdown));
    let blocking = pool.sequenced_runner(traits(ShutdownBehavior::BlockShutdown));
    let skipping = pool.sequenced_runner(traits(ShutdownBehavior::SkipOnShutdown));
    let continuing = pool.sequenced_runner(traits(ShutdownBehavior::ContinueOnShutdown));
    let release = block(&gate);

    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        blocking.post(counter_task(&ran)).unwrap();
    }
    let skip_line = line!() + 2;
    for _ in 0..4 {
        skipping.post(counter_task(&ran)).unwrap();
    }
    for _ in 0..3 {
        continuing.post(counter_task(&ran)).unwrap();
    }
    // Start shutdown without waiting, while the only worker is still blocked.
    let early = pool.shutdown_timeout(Duration::ZERO);
    assert!(early.timed_out());
    assert!(pool.is_shut_down());
    assert!(blocking.post(|| {}).unwrap_err().is_closed(), "no post is accepted after shutdown");
    release.send(()).unwrap();

    let report = pool.shutdown();
    assert!(!report.timed_out());
    assert_eq!(ran.load(Ordering::SeqCst), 5, "only the BlockShutdown tasks ran");
    assert_eq!(report.ran(), 6, "the gate and the five BlockShutdown tasks");
    assert_eq!(report.skipped(), 7);
    let skipped_here = report
        .skipped_by_location()
        .iter()
        .find(|(location, _)| location.line() == skip_line)
        .map(|(_, n)| *n);
    assert_eq!(skipped_here, Some(4));
    assert!(report.to_string().contains("7 skipped"));
}

#[test]
fn shutdown_waits_for_running_skip_tasks_but_not_continue_tasks() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let skip = pool.sequenced_runner(traits(ShutdownBehavior::SkipOnShutdown));
    let cont = pool.sequenced_runner(traits(ShutdownBehavior::ContinueOnShutdown));
    let release_skip = block(&skip);
    let release_cont = block(&cont);

    // The SkipOnShutdown task is running: shutdown cannot finish within the timeout.
    let report = pool.shutdown_timeout(Duration::from_millis(20));
    assert!(report.timed_out());
    release_skip.send(()).unwrap();

    // Only the ContinueOnShutdown task is left, and shutdown does not wait for it.
    let report = pool.shutdown();
    assert!(!report.timed_out());
    assert_eq!(report.still_running(), 1);
    release_cont.send(()).unwrap();
}

#[test]
fn posts_after_shutdown_hand_the_task_back() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    pool.shutdown();
    assert!(seq.is_closed());
    let err = seq.post(|| {}).unwrap_err();
    assert!(err.is_closed());
    let line = line!() - 2;
    assert_eq!(err.location().line(), line);
    // The task handed back is the task that was posted: running it works.
    let (tx, rx) = mpsc::channel();
    let err = seq.post(move || tx.send(1).unwrap()).unwrap_err();
    err.into_task().run();
    assert_eq!(rx.try_recv().unwrap(), 1);
    assert!(pool.post(|| {}).unwrap_err().is_closed());
    assert!(seq.post_with_result(|| 1).unwrap_err().is_closed());
}

#[test]
fn runner_shutdown_is_idempotent_and_does_not_block() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release = block(&seq);
    let ran = Arc::new(AtomicUsize::new(0));
    seq.post(counter_task(&ran)).unwrap();
    // Returns at once although a task is running and one is queued.
    seq.shutdown();
    seq.shutdown();
    assert!(seq.is_closed());
    assert!(seq.post(|| {}).is_err());
    assert_eq!(seq.wait_shutdown(Duration::from_millis(10)), Err(WaitError::Timeout));
    release.send(()).unwrap();
    seq.wait_shutdown(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the queued SkipOnShutdown task was dropped");
    // Other runners of the pool are unaffected.
    let other = pool.sequenced_runner(TaskTraits::default());
    assert_eq!(other.post_with_result(|| 1).unwrap().join().unwrap(), 1);
    assert_eq!(pool.shutdown().skipped(), 1);
}

#[test]
fn runner_shutdown_from_its_own_task() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(traits(ShutdownBehavior::BlockShutdown));
    let ran = Arc::new(AtomicUsize::new(0));
    let me = seq.clone();
    // The first task shuts the runner down only once the second is queued (else the second
    // post could race the shutdown and be refused).
    let (queued_tx, queued_rx) = mpsc::channel::<()>();
    seq.post(move || {
        queued_rx.recv().unwrap();
        me.shutdown();
    })
    .unwrap();
    seq.post(counter_task(&ran)).unwrap();
    queued_tx.send(()).unwrap();
    seq.wait_shutdown(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "queued BlockShutdown tasks still run");
}

#[test]
fn wait_shutdown_returns_when_the_pool_shuts_down() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let waiter = {
        let seq = seq.clone();
        std::thread::spawn(move || seq.wait_shutdown(LONG))
    };
    pool.shutdown();
    assert_eq!(waiter.join().unwrap(), Ok(()));
}

#[test]
fn pool_shutdown_from_inside_a_task_does_not_wait_for_itself() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let p = pool.clone();
    let report = seq.post_with_result(move || p.shutdown()).unwrap().join().unwrap();
    assert_eq!(report.still_running(), 1);
    assert!(!report.timed_out());
    assert_eq!(pool.shutdown().still_running(), 0);
}

#[test]
fn skipped_task_with_a_handle_reports_skipped() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let release = block(&seq);
    let h = seq.post_with_result(|| 1).unwrap();
    seq.shutdown();
    release.send(()).unwrap();
    assert!(h.join().unwrap_err().is_skipped());
}

#[test]
fn dropping_the_last_pool_handle_starts_shutdown() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    assert_eq!(seq.post_with_result(|| 1).unwrap().join().unwrap(), 1);
    drop(pool);
    assert!(seq.is_closed());
    assert!(seq.post(|| {}).unwrap_err().is_closed());
    seq.wait_shutdown(LONG).unwrap();
}

#[test]
fn shutdown_is_idempotent() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    seq.post_with_result(|| ()).unwrap().join().unwrap();
    let first = pool.shutdown();
    let second = pool.shutdown();
    assert_eq!(first, second);
    assert_eq!(first.ran(), 1);
}
