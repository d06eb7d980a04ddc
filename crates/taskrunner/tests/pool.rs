//! Pool construction: bad input, names, worker threads.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};

#[test]
fn zero_workers_is_an_error() {
    let err = ThreadPool::builder().workers(0).build().unwrap_err();
    assert!(err.to_string().contains("at least one worker"), "{err}");
}

#[test]
fn too_many_workers_is_an_error() {
    let err = ThreadPool::builder().workers(1 << 20).build().unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
}

#[test]
fn default_worker_count_is_the_machine_parallelism() {
    let pool = ThreadPool::builder().build().unwrap();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    assert_eq!(pool.workers(), cpus);
}

#[test]
fn worker_threads_are_named() {
    let pool = ThreadPool::builder().name("named").workers(2).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let name = seq
        .post_with_result(|| std::thread::current().name().map(str::to_owned))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert!(name.starts_with("named-"), "{name}");
    assert_eq!(pool.name(), "named");

    let custom = ThreadPool::builder().workers(1).thread_name(|i| format!("io#{i}")).build();
    let custom = custom.unwrap(); // kept alive: dropping the last pool handle shuts it down
    let seq = custom.sequenced_runner(TaskTraits::default());
    let name = seq.post_with_result(|| std::thread::current().name().map(str::to_owned));
    assert_eq!(name.unwrap().join().unwrap().as_deref(), Some("io#0"));
}

#[test]
fn every_worker_runs_tasks() {
    // Four sequences block on a barrier together: only possible if four workers run them.
    let pool = ThreadPool::builder().workers(4).build().unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let barrier = barrier.clone();
            pool.sequenced_runner(TaskTraits::default())
                .post_with_result(move || {
                    barrier.wait();
                    std::thread::current().id()
                })
                .unwrap()
        })
        .collect();
    let threads: HashSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(threads.len(), 4);
    let report = pool.shutdown_timeout(Duration::from_secs(30));
    assert!(!report.timed_out());
}
