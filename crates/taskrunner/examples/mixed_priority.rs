//! Priorities order task *sources* in the pool: when the pool is saturated, user-blocking
//! sequences start before best-effort ones (which still run; aging keeps them from starving).
//!
//! Run: `cargo run -p taskrunner --example mixed_priority`

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use taskrunner::{Priority, TaskRunnerExt, TaskTraits, ThreadPool};

const THREADS: usize = 4;
const SOURCES_PER_THREAD: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One worker, so "under load" is easy to arrange: block it, queue everything, release it.
    let pool = ThreadPool::builder().name("prio").workers(1).build()?;
    let gate = pool.sequenced_runner(TaskTraits::default());
    let (release, released) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    gate.post(move || {
        started_tx.send(()).unwrap();
        released.recv().unwrap();
    })?;
    started.recv()?;

    // Several threads post, interleaving best-effort and user-blocking sources.
    let order = Arc::new(Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(THREADS));
    let posters: Vec<_> = (0..THREADS)
        .map(|_| {
            let (pool, order, start) = (pool.clone(), order.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut runners = Vec::new();
                for _ in 0..SOURCES_PER_THREAD {
                    for priority in [Priority::BestEffort, Priority::UserBlocking] {
                        let seq =
                            pool.sequenced_runner(TaskTraits::default().with_priority(priority));
                        let order = order.clone();
                        seq.post(move || order.lock().unwrap().push(priority)).unwrap();
                        runners.push(seq);
                    }
                }
                runners
            })
        })
        .collect();
    let runners: Vec<_> =
        posters.into_iter().flat_map(|p| p.join().expect("poster thread")).collect();

    release.send(())?;
    for seq in &runners {
        seq.wait_idle(Duration::from_secs(30))?;
    }
    let order = order.lock().unwrap().clone();
    println!("start order: {order:?}");
    let blocking = THREADS * SOURCES_PER_THREAD;
    assert_eq!(order.len(), 2 * blocking, "every source ran, best-effort too");
    // With fewer user-blocking sources than the aging limit, all of them start first.
    assert!(
        order[..blocking].iter().all(|&p| p == Priority::UserBlocking),
        "user-blocking sources start before best-effort ones"
    );
    Ok(())
}
