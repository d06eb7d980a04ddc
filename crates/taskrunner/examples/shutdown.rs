//! Shutdown: what the pool does with each runner's tasks, and the report that says what ran
//! and what was dropped, by the line that posted it. Nothing is lost silently.
//!
//! Run: `cargo run -p taskrunner --example shutdown`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use taskrunner::{ShutdownBehavior, TaskRunnerExt, TaskTraits, ThreadPool};

const THREADS: usize = 4;
const EACH: usize = 50;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("shutdown-demo").workers(1).build()?;
    let must_finish = pool.sequenced_runner(
        TaskTraits::default().with_shutdown_behavior(ShutdownBehavior::BlockShutdown),
    );
    let may_skip = pool.sequenced_runner(TaskTraits::default()); // SkipOnShutdown

    // Hold the only worker so everything below is still queued when shutdown starts.
    let (release, released) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    may_skip.post(move || {
        started_tx.send(()).unwrap();
        released.recv().unwrap();
    })?;
    started.recv()?;

    let saved = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let posters: Vec<_> = (0..THREADS)
        .map(|_| {
            let (must_finish, may_skip, saved, start) =
                (must_finish.clone(), may_skip.clone(), saved.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut skip_line = 0; // where the skipped tasks are posted
                for _ in 0..EACH {
                    let saved = saved.clone();
                    must_finish
                        .post(move || {
                            saved.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                    skip_line = line!() + 1;
                    may_skip.post(|| unreachable!("skipped at shutdown")).unwrap();
                }
                skip_line
            })
        })
        .collect();
    let lines: Vec<u32> = posters.into_iter().map(|p| p.join().expect("poster")).collect();
    let skip_line = lines[0];

    // Shut down from another thread (it waits for the blocked task), then unblock the worker.
    let p = pool.clone();
    let shutting_down = std::thread::spawn(move || p.shutdown());
    while !pool.is_shut_down() {
        std::thread::yield_now();
    }
    let rejected = must_finish.post(|| {}).unwrap_err();
    assert!(rejected.is_closed(), "no post is accepted once shutdown has started");
    release.send(())?;
    let report = shutting_down.join().expect("shutdown thread");

    println!("shutdown report: {report}");
    let total = (THREADS * EACH) as u64;
    assert_eq!(saved.load(Ordering::SeqCst) as u64, total, "every BlockShutdown task ran");
    assert_eq!(report.ran(), total + 1, "the BlockShutdown tasks and the blocking one");
    assert_eq!(report.skipped(), total, "every SkipOnShutdown task was dropped and counted");
    let by_location = report.skipped_by_location();
    assert_eq!(by_location.len(), 1);
    assert_eq!((by_location[0].0.line(), by_location[0].1), (skip_line, total));
    assert_eq!(by_location[0].0.file(), file!());
    assert_eq!(report.still_running(), 0);
    assert!(!report.timed_out());
    Ok(())
}
