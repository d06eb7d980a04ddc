//! Criterion micro-benchmarks of the sequenced runner.
//!
//! - `post`: the caller's cost of one fire-and-forget post (the sequence drains concurrently;
//!   draining is waited for outside the measurement).
//! - `wakeup`: `post_with_result(..).join()` round trip, back to back (`hot`: a worker may still
//!   be spinning) and after the pool went idle (`idle`: an unmeasured pause first, so the
//!   worker has parked and must be woken).
//! - `post/sequence_bound`: the caller's cost of `SequenceBound::post`.
//! - `pingpong`: a task on sequence A posts to B, whose task posts back to A (`post`), or posts
//!   an empty task to B with `post_and_reply`, whose reply on A starts the next round; per
//!   round trip.
//! - `fanout`: post one task to each of N sequences and wait until all have run.
//!
//! - `timer/insert`: the caller's cost of `post_delayed` with a far deadline (a fresh pool per
//!   sample; shutting it down drops the pending timers, unmeasured).
//! - `timer_with_pending/{insert,fire}/{10000,100000}`: the same with that many far-future
//!   timers pending (an insert is cancelled right away, so the heap keeps its size).
//! - `timer/fire`: `post_delayed_with_result(1 µs, ..).join()`: insert, the timer service
//!   firing, the task running and the result coming back.
//!
//! Sample sizes are small so a full `cargo bench -p taskrunner-bench` stays around a minute on
//! a two-core machine.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../src/games.rs"]
mod games;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taskrunner::{SequenceBound, TaskRunnerExt, TaskTraits, ThreadPool};

const WAIT: Duration = Duration::from_secs(30);

fn pool() -> ThreadPool {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    ThreadPool::builder().name("criterion").workers(workers).build().expect("pool")
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

fn post(c: &mut Criterion) {
    let pool = pool();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let mut group = c.benchmark_group("post");
    group.throughput(Throughput::Elements(1));
    group.bench_function("noop", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                seq.post(|| {}).expect("post");
            }
            let elapsed = start.elapsed();
            seq.wait_idle(WAIT).expect("wait_idle");
            elapsed
        })
    });
    group.bench_function("136_byte_closure", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let payload = [i; 17];
                seq.post(move || {
                    std::hint::black_box(payload);
                })
                .expect("post");
            }
            let elapsed = start.elapsed();
            seq.wait_idle(WAIT).expect("wait_idle");
            elapsed
        })
    });
    let bound = SequenceBound::new(&seq, || 0u64);
    group.bench_function("sequence_bound", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                bound.post(|n| *n += 1).expect("post");
            }
            let elapsed = start.elapsed();
            seq.wait_idle(WAIT).expect("wait_idle");
            elapsed
        })
    });
    group.finish();
    let _report = pool.shutdown();
}

fn wakeup(c: &mut Criterion) {
    let pool = pool();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let mut group = c.benchmark_group("wakeup");
    group.bench_function("hot", |b| {
        b.iter(|| seq.post_with_result(|| 1u64).expect("post").join().expect("join"))
    });
    // The pause lets the workers finish spinning and park; it is not measured, and it waits
    // for no result.
    group.measurement_time(Duration::from_millis(500));
    group.bench_function("idle", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_micros(100));
                let start = Instant::now();
                seq.post_with_result(|| 1u64).expect("post").join().expect("join");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
    let _report = pool.shutdown();
}

fn pingpong(c: &mut Criterion) {
    let pool = pool();
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    c.bench_function("pingpong/two_sequences", |bench| {
        bench.iter_custom(|iters| games::post_rounds(&a, &b, iters).expect("ping-pong"))
    });
    c.bench_function("pingpong/post_and_reply", |bench| {
        bench.iter_custom(|iters| games::reply_rounds(&a, &b, iters).expect("ping-pong"))
    });
    let _report = pool.shutdown();
}

fn fanout(c: &mut Criterion) {
    let pool = pool();
    let mut group = c.benchmark_group("fanout");
    for n in [16usize, 256] {
        let seqs: Vec<_> = (0..n).map(|_| pool.sequenced_runner(TaskTraits::default())).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                let left = Arc::new(AtomicUsize::new(n));
                let (done, finished) = crossbeam_channel::bounded(1);
                for seq in &seqs {
                    let (left, done) = (left.clone(), done.clone());
                    seq.post(move || {
                        if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                            let _ = done.send(());
                        }
                    })
                    .expect("post");
                }
                finished.recv().expect("every sequence ran its task");
            })
        });
    }
    group.finish();
    let _report = pool.shutdown();
}

fn timer(c: &mut Criterion) {
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let pool = pool();
            let seq = pool.sequenced_runner(TaskTraits::default());
            let start = Instant::now();
            for _ in 0..iters {
                let handle = seq.post_delayed(Duration::from_secs(3600), || {}).expect("post");
                std::hint::black_box(&handle);
                // Dropping the handle leaves the timer pending (only `cancel` cancels).
            }
            let elapsed = start.elapsed();
            let _report = pool.shutdown();
            elapsed
        })
    });
    group.finish();

    let pool = pool();
    let seq = pool.sequenced_runner(TaskTraits::default());
    c.bench_function("timer/fire", |b| {
        b.iter(|| {
            seq.post_delayed_with_result(Duration::from_micros(1), || 1u64)
                .expect("post")
                .join()
                .expect("join")
        })
    });
    let _report = pool.shutdown();

    // The same two operations with 10k and 100k far-future timers already pending, so the
    // heap is deep: an insert sifts up through it, and firing pops past none of them.
    let mut group = c.benchmark_group("timer_with_pending");
    group.throughput(Throughput::Elements(1));
    for pending in [10_000usize, 100_000] {
        let deep = self::pool();
        let seq = deep.sequenced_runner(TaskTraits::default());
        let parked: Vec<_> = (0..pending)
            .map(|i| {
                let far = Duration::from_secs(3600) + Duration::from_nanos(i as u64);
                seq.post_delayed(far, || {}).expect("post")
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("insert", pending), &pending, |b, _| {
            b.iter(|| {
                let handle = seq.post_delayed(Duration::from_secs(7200), || {}).expect("post");
                // Cancelled at once, so the heap stays at `pending` entries.
                handle.cancel();
            })
        });
        group.bench_with_input(BenchmarkId::new("fire", pending), &pending, |b, _| {
            b.iter(|| {
                seq.post_delayed_with_result(Duration::from_micros(1), || 1u64)
                    .expect("post")
                    .join()
                    .expect("join")
            })
        });
        drop(parked);
        let _report = deep.shutdown();
    }
    group.finish();
}

// `criterion_group!` defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = config();
        targets = post, wakeup, pingpong, fanout, timer
    }
}
criterion_main!(group::benches);
