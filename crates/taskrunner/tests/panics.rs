//! Panics in tasks and in the Drop of captured state: reported once, the pool survives.

mod common;

use std::panic::Location;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::block;
use taskrunner::{ShutdownBehavior, TaskRunnerExt, TaskTraits, ThreadPool};

const LONG: Duration = Duration::from_secs(30);

type Reports = Arc<Mutex<Vec<(String, String, &'static Location<'static>)>>>;

fn recording_pool(workers: usize) -> (ThreadPool, Reports) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let pool = ThreadPool::builder()
        .workers(workers)
        .panic_handler(move |r| {
            sink.lock().unwrap().push((r.runner().to_owned(), r.message().to_owned(), r.location()))
        })
        .build()
        .unwrap();
    (pool, reports)
}

#[test]
fn panic_is_reported_once_with_runner_message_and_location() {
    let (pool, reports) = recording_pool(1);
    let seq = pool.sequenced_runner_builder().name("worker-state").build().unwrap();
    let line = line!() + 1;
    let h = seq.post_with_result(|| -> () { panic!("bad state") }).unwrap();
    assert!(h.join().unwrap_err().is_panic());
    // The handler runs before the sequence's next task: wait for one.
    seq.wait_idle(LONG).unwrap();
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "reported exactly once");
    let (runner, message, location) = &reports[0];
    assert_eq!(runner, "worker-state");
    assert_eq!(message, "bad state");
    assert_eq!((location.file(), location.line()), (file!(), line));
}

#[test]
fn fire_and_forget_panics_are_reported_and_the_runner_goes_on() {
    let (pool, reports) = recording_pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    for i in 0..10 {
        seq.post(move || {
            if i % 2 == 0 {
                panic!("even {i}");
            }
        })
        .unwrap();
    }
    assert_eq!(seq.post_with_result(|| "alive").unwrap().join().unwrap(), "alive");
    assert_eq!(reports.lock().unwrap().len(), 5);
    assert_eq!(pool.shutdown().ran(), 11);
}

#[test]
fn a_panicking_handler_does_not_take_the_worker_down() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pool = ThreadPool::builder()
        .workers(1)
        .panic_handler(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            panic!("handler panics too");
        })
        .build()
        .unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    seq.post(|| panic!("task panics")).unwrap();
    assert_eq!(seq.post_with_result(|| 1).unwrap().join().unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

struct PanicOnDrop(mpsc::Sender<&'static str>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
        panic!("drop panics");
    }
}

#[test]
fn panic_in_drop_of_a_skipped_task_is_reported_and_counted() {
    let (pool, reports) = recording_pool(1);
    let seq = pool.sequenced_runner(
        TaskTraits::default().with_shutdown_behavior(ShutdownBehavior::SkipOnShutdown),
    );
    let release_tx = block(&seq);
    let (tx, rx) = mpsc::channel();
    let guard = PanicOnDrop(tx);
    seq.post(move || drop(guard)).unwrap();
    seq.shutdown();
    release_tx.send(()).unwrap();
    seq.wait_shutdown(LONG).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "dropped");
    assert_eq!(reports.lock().unwrap().len(), 1);
    let report = pool.shutdown();
    assert_eq!(report.skipped(), 1);
    // The pool survived: a fresh runner on it would have been rejected only by the shutdown.
    assert_eq!(report.still_running(), 0);
}

#[test]
fn pool_survives_many_panics() {
    let (pool, _reports) = recording_pool(2);
    let runners: Vec<_> = (0..8).map(|_| pool.sequenced_runner(TaskTraits::default())).collect();
    for seq in &runners {
        for _ in 0..50 {
            seq.post(|| panic!("again")).unwrap();
        }
    }
    for seq in &runners {
        assert_eq!(seq.post_with_result(|| 0).unwrap().join().unwrap(), 0);
    }
    assert_eq!(pool.shutdown().ran(), 8 * 51);
}
