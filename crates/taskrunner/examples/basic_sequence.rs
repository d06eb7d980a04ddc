//! The basic guarantees of a sequence, checked under load from several threads: tasks never
//! overlap, each producer's tasks run in the order it posted them, results come back through
//! handles, and `flush` / `wait_idle` tell when earlier work is done.
//!
//! Run: `cargo run -p taskrunner --example basic_sequence`

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{SequenceBound, TaskRunner, TaskRunnerExt, ThreadPool};

const PRODUCERS: usize = 6;
const EACH: usize = 5_000;

/// What the sequence owns: the last number seen from each producer.
struct Log {
    last: Vec<Option<usize>>,
    total: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("basic").workers(2).build()?;
    let seq = pool.sequenced_runner_builder().name("log").build()?;
    let log = SequenceBound::new(&seq, || Log { last: vec![None; PRODUCERS], total: 0 });

    let start = Arc::new(Barrier::new(PRODUCERS));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (log, start) = (log.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..EACH {
                    log.post(move |log| {
                        // Per-producer FIFO: this producer's previous task ran just before.
                        assert_eq!(log.last[p], i.checked_sub(1), "producer {p} out of order");
                        log.last[p] = Some(i);
                        log.total += 1;
                    })
                    .expect("sequence open");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().expect("producer thread");
    }

    // A barrier callback: runs after everything posted before it.
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    seq.flush(move || {
        let _ = l.call(|log| log.total).map(|h| tx.send(h));
    })?;
    let total = rx.recv_timeout(Duration::from_secs(30))?.join()?;
    assert_eq!(total, PRODUCERS * EACH);

    // Results through handles, and a wait for idleness.
    let answer = seq.post_with_result(|| 6 * 7)?;
    assert_eq!(answer.join()?, 42);
    seq.wait_idle(Duration::from_secs(30))?;
    assert!(seq.sequence_token().is_some());
    println!("{total} tasks from {PRODUCERS} threads ran one at a time, each producer in order");

    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0);
    Ok(())
}
