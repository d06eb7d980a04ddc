//! Runner and pool statistics.

mod common;

use std::num::NonZeroUsize;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::block;
use taskrunner::{
    current_runner, RunnerKind, SingleThreadTaskRunner, TaskRunnerExt, TaskTraits, ThreadPool,
};

const LONG: Duration = Duration::from_secs(30);

/// Waits (yielding) until `condition` holds, for a state that no handle signals.
fn until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !condition() {
        assert!(Instant::now() < deadline, "condition never held");
        std::thread::yield_now();
    }
}

#[test]
fn sequenced_stats() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner_builder().name("db").capacity(8).build().unwrap();
    let release_tx = block(&seq);
    for _ in 0..3 {
        seq.post(|| {}).unwrap();
    }
    let stats = seq.stats();
    assert_eq!(stats.name, "db");
    assert_eq!(stats.kind, RunnerKind::Sequenced);
    assert_eq!(stats.pending, 3);
    assert_eq!(stats.running, 1);
    assert_eq!(stats.rejected, 0);
    assert!(!stats.closed);
    assert!(!stats.barrier_pending);
    release_tx.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    until(|| seq.stats().running == 0);
    let stats = seq.stats();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.tasks_run, 5, "four tasks and the wait_idle marker");
    seq.shutdown();
    assert!(seq.stats().closed);
}

#[test]
fn parallel_stats_and_barrier_pending() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let par = pool.parallel_runner_builder().name("crunch").max_concurrency(2).build().unwrap();
    let release_tx = block(&par);
    par.flush(|| {}).unwrap();
    par.post(|| {}).unwrap();
    // The second slot reaches the flush, holds the last task back and lets its thread go;
    // the first task still runs.
    until(|| {
        let stats = par.stats();
        stats.barrier_pending && stats.running == 1
    });
    let stats = par.stats();
    assert_eq!(stats.kind, RunnerKind::Parallel);
    assert_eq!(stats.name, "crunch");
    assert_eq!(stats.pending, 1, "the task after the flush");
    release_tx.send(()).unwrap();
    par.wait_idle(LONG).unwrap();
    until(|| par.stats().running == 0 && !par.stats().barrier_pending);
    assert_eq!(par.stats().tasks_run, 4, "two tasks, the flush and the wait_idle marker");
}

#[test]
fn single_thread_stats() {
    let runner = SingleThreadTaskRunner::builder().name("io").capacity(1).build().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    runner
        .post(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
    started_rx.recv().unwrap();
    runner.post(|| {}).unwrap();
    assert!(runner.post(|| {}).is_err());
    let stats = runner.stats();
    assert_eq!(stats.kind, RunnerKind::SingleThread);
    assert_eq!(stats.name, "io");
    assert_eq!((stats.pending, stats.running, stats.rejected), (1, 1, 1));
    release_tx.send(()).unwrap();
    runner.wait_idle(LONG).unwrap();
    until(|| runner.stats().running == 0);
    assert_eq!(runner.stats().tasks_run, 3);
    runner.stop();
    assert!(runner.stats().closed);
}

#[test]
fn stats_through_the_current_runner_handle() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), NonZeroUsize::MIN);
    let kind =
        par.post_with_result(|| current_runner().unwrap().stats().kind).unwrap().join().unwrap();
    assert_eq!(kind, RunnerKind::Parallel);
}

#[test]
fn pool_stats() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.workers, 2);
    assert_eq!(stats.delayed_tasks, 0);
    assert!(stats.running);

    // Block both workers, then queue a source behind them.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..2 {
        let seq = pool.sequenced_runner(TaskTraits::default());
        let (release_rx, started_tx) = (release_rx.clone(), started_tx.clone());
        seq.post(move || {
            started_tx.send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
        })
        .unwrap();
    }
    started_rx.recv().unwrap();
    started_rx.recv().unwrap();
    let waiting = pool.sequenced_runner(TaskTraits::default());
    waiting.post(|| {}).unwrap();
    let stats = pool.stats();
    assert_eq!(stats.active_tasks, 2);
    assert_eq!(stats.queued_sources, 1);
    release_tx.send(()).unwrap();
    release_tx.send(()).unwrap();
    waiting.wait_idle(LONG).unwrap();

    pool.shutdown();
    let stats = pool.stats();
    assert!(!stats.running);
    assert_eq!(stats.workers, 0, "every worker exited");
}

#[test]
fn pool_stats_count_pending_delayed_tasks() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    assert_eq!(pool.stats().delayed_tasks, 0);
    let first = seq.post_delayed(std::time::Duration::from_secs(3600), || {}).unwrap();
    let second = seq.post_delayed(std::time::Duration::from_secs(3600), || {}).unwrap();
    assert_eq!(pool.stats().delayed_tasks, 2);
    assert!(first.cancel());
    assert_eq!(pool.stats().delayed_tasks, 1);
    drop(second);
    let report = pool.shutdown();
    assert_eq!(pool.stats().delayed_tasks, 0);
    assert_eq!(report.skipped(), 1, "the pending delayed task is dropped and counted");
}
