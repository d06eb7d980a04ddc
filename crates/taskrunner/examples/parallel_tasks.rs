//! A parallel runner: resize "images" at most three at a time, then publish once with a
//! `flush` barrier. Asserts its outcome (exits non-zero on failure).
//!
//! Run: `cargo run -p taskrunner --example parallel_tasks`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("example").workers(4).build()?;
    let resize = pool.parallel_runner(TaskTraits::default(), 3.try_into()?);

    let in_flight = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let resized = Arc::new(AtomicUsize::new(0));
    for image in 0..24u64 {
        let (in_flight, most_at_once, resized) =
            (in_flight.clone(), most_at_once.clone(), resized.clone());
        resize.post(move || {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most_at_once.fetch_max(now, Ordering::SeqCst);
            // Some work: a checksum of the "pixels".
            let checksum: u64 = (0..20_000u64).map(|p| p.wrapping_mul(image + 1)).sum();
            std::hint::black_box(checksum);
            resized.fetch_add(1, Ordering::SeqCst);
            in_flight.fetch_sub(1, Ordering::SeqCst);
        })?;
    }

    // The barrier runs after all 24 resizes and before anything posted after it.
    let (published_tx, published_rx) = mpsc::channel();
    let seen = resized.clone();
    resize.flush(move || published_tx.send(seen.load(Ordering::SeqCst)).unwrap())?;
    let published = published_rx.recv_timeout(Duration::from_secs(30))?;
    resize.wait_idle(Duration::from_secs(30))?;

    let most = most_at_once.load(Ordering::SeqCst);
    println!("resized {published} images before publishing, at most {most} at once");
    println!("{:?}", resize.stats());
    assert_eq!(published, 24, "the flush ran before every resize finished");
    assert!((1..=3).contains(&most), "the bound of 3 was exceeded: {most}");

    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0);
    Ok(())
}
