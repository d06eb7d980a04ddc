//! Parallel runner: the concurrency bound, the flush barrier, wait_idle, current runner,
//! shutdown and bad input.

mod common;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use common::block;
use taskrunner::{
    current_runner, ParallelTaskRunner, PostError, TaskRunner, TaskRunnerExt, TaskTraits,
    ThreadPool, WaitError,
};

const LONG: Duration = Duration::from_secs(30);

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

#[test]
fn runs_up_to_n_tasks_at_once() {
    // Three tasks must be running at the same time for the barrier to open: with N = 3 on
    // four workers they are.
    let pool = ThreadPool::builder().workers(4).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(3));
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let barrier = barrier.clone();
            par.post_with_result(move || {
                barrier.wait();
            })
            .unwrap()
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn never_more_than_n_at_once_under_stress() {
    const N: usize = 3;
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 2_000;
    let pool = ThreadPool::builder().workers(6).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(N));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let (par, in_flight, max_seen, ran) =
                (par.clone(), in_flight.clone(), max_seen.clone(), ran.clone());
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let (in_flight, max_seen, ran) =
                        (in_flight.clone(), max_seen.clone(), ran.clone());
                    par.post(move || {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        if i % 64 == 0 {
                            std::thread::yield_now(); // widen the window
                        }
                        ran.fetch_add(1, Ordering::SeqCst);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    par.wait_idle(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), PRODUCERS * PER_PRODUCER, "every task ran once");
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= N, "{max} tasks ran at once with a bound of {N}");
}

#[test]
fn flush_is_a_barrier_under_stress() {
    // Rounds of tasks separated by flushes: every task of round r must see the flush of
    // round r - 1 done, and every flush must see all tasks of its round done.
    const ROUNDS: usize = 200;
    const PER_ROUND: usize = 8;
    let pool = ThreadPool::builder().workers(4).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(4));
    let done_in_round: Arc<Vec<AtomicUsize>> =
        Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
    let flushed: Arc<Vec<AtomicBool>> =
        Arc::new((0..ROUNDS).map(|_| AtomicBool::new(false)).collect());
    let violations = Arc::new(AtomicUsize::new(0));
    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let (done_in_round, flushed, violations) =
                (done_in_round.clone(), flushed.clone(), violations.clone());
            par.post(move || {
                if round > 0 && !flushed[round - 1].load(Ordering::SeqCst) {
                    violations.fetch_add(1, Ordering::SeqCst); // overtook the previous flush
                }
                done_in_round[round].fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        let (done_in_round, flushed, violations) =
            (done_in_round.clone(), flushed.clone(), violations.clone());
        par.flush(move || {
            if done_in_round[round].load(Ordering::SeqCst) != PER_ROUND {
                violations.fetch_add(1, Ordering::SeqCst); // ran before its round finished
            }
            flushed[round].store(true, Ordering::SeqCst);
        })
        .unwrap();
    }
    par.wait_idle(LONG).unwrap();
    assert!(flushed.iter().all(|f| f.load(Ordering::SeqCst)));
    assert_eq!(violations.load(Ordering::SeqCst), 0);
}

#[test]
fn flush_waits_for_a_running_task_and_holds_later_ones() {
    let pool = ThreadPool::builder().workers(3).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(3));
    let release_tx = block(&par);
    let (events_tx, events_rx) = mpsc::channel();
    let tx = events_tx.clone();
    par.flush(move || tx.send("flush").unwrap()).unwrap();
    let tx = events_tx.clone();
    par.post(move || tx.send("after").unwrap()).unwrap();
    // The first task still runs: neither the flush nor the later task may have run.
    assert!(events_rx.recv_timeout(Duration::from_millis(50)).is_err());
    release_tx.send(()).unwrap();
    assert_eq!(events_rx.recv_timeout(LONG).unwrap(), "flush");
    assert_eq!(events_rx.recv_timeout(LONG).unwrap(), "after");
    par.wait_idle(LONG).unwrap();
}

#[test]
fn wait_idle_waits_for_earlier_tasks_and_refuses_from_inside() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(2));
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let ran = ran.clone();
        par.post(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    par.wait_idle(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 100);

    let inner = par.clone();
    let result = par.post_with_result(move || inner.wait_idle(LONG)).unwrap();
    assert_eq!(result.join().unwrap(), Err(WaitError::WouldDeadlock));
}

#[test]
fn wait_idle_times_out_while_a_task_runs() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(1));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    par.post(move || release_rx.recv().unwrap()).unwrap();
    assert_eq!(par.wait_idle(Duration::from_millis(20)), Err(WaitError::Timeout));
    release_tx.send(()).unwrap();
    par.wait_idle(LONG).unwrap();
}

#[test]
fn current_runner_is_the_parallel_runner_without_a_sequence() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let par = pool.parallel_runner_builder().name("crunch").max_concurrency(2).build().unwrap();
    let (name, is_parallel, in_sequence, token) = par
        .post_with_result(|| {
            let runner = current_runner().unwrap();
            (
                runner.name().to_owned(),
                runner.as_parallel().is_some(),
                runner.runs_tasks_in_current_sequence(),
                runner.sequence_token(),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(name, "crunch");
    assert!(is_parallel);
    assert!(!in_sequence);
    assert_eq!(token, None);
    assert!(ParallelTaskRunner::current().is_none());
}

#[test]
fn zero_concurrency_is_an_error() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let err = pool.parallel_runner_builder().max_concurrency(0).build().unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    // The direct constructor takes a NonZeroUsize: zero is refused by the conversion.
    assert!(NonZeroUsize::try_from(0usize).is_err());
}

#[test]
fn post_after_shutdown_hands_the_task_back() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(2));
    par.shutdown();
    par.shutdown(); // idempotent
    assert!(par.is_closed());
    assert!(matches!(par.post(|| {}), Err(PostError::Closed(_))));
    assert!(par.flush(|| {}).unwrap_err().is_closed());
    assert_eq!(par.wait_idle(LONG), Err(WaitError::ShutDown));
    par.wait_shutdown(LONG).unwrap();

    let par = pool.parallel_runner(TaskTraits::default(), nz(2));
    pool.shutdown();
    assert!(par.post(|| {}).unwrap_err().is_closed());
}

#[test]
fn shutdown_drops_queued_tasks_and_counts_them() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(1));
    let release_tx = block(&par);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let ran = ran.clone();
        par.post(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    par.shutdown();
    release_tx.send(()).unwrap();
    par.wait_shutdown(LONG).unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "SkipOnShutdown tasks queued at shutdown are dropped"
    );
    let report = pool.shutdown();
    assert_eq!(report.skipped(), 5);
}

#[test]
fn a_panic_is_reported_and_the_runner_goes_on() {
    let pool = ThreadPool::builder().workers(2).panic_handler(|_| {}).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), nz(2));
    let err = par.post_with_result(|| -> u8 { panic!("boom") }).unwrap().join().unwrap_err();
    assert_eq!(err.panic_message(), Some("boom"));
    assert_eq!(par.post_with_result(|| 7).unwrap().join().unwrap(), 7);
}
