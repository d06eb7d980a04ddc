//! A counter without a lock: the value lives on a sequence, and every thread sends it closures.
//!
//! `Arc<Mutex<u64>>` becomes `SequenceBound<u64>`: increments are fire-and-forget posts (no
//! thread ever waits for another), reads are `call`s that return a handle.
//!
//! Run: `cargo run -p taskrunner --example lock_free_counter`

use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{SequenceBound, TaskTraits, ThreadPool};

const THREADS: usize = 8;
const INCREMENTS: u64 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("counter").workers(2).build()?;
    let seq = pool.sequenced_runner(TaskTraits::default());
    let counter = SequenceBound::new(&seq, || 0u64);

    let start = Arc::new(Barrier::new(THREADS));
    let writers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (counter, start) = (counter.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..INCREMENTS {
                    counter.post(|n| *n += 1).expect("the sequence is open");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer thread");
    }

    // Every post happened before this call, and the sequence runs them in order: the read sees
    // them all.
    let total = counter.call(|n| *n)?.join()?;
    println!("{THREADS} threads x {INCREMENTS} increments = {total}");
    assert_eq!(total, THREADS as u64 * INCREMENTS);

    drop(counter); // the u64 is dropped on its sequence
    seq.wait_idle(Duration::from_secs(30))?;
    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0);
    Ok(())
}
