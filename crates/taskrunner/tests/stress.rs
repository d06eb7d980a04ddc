//! Many producers, one sequence: every task exactly once, per-producer FIFO, no overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};

const PRODUCERS: usize = 16;
const PER_PRODUCER: u64 = 20_000;

#[test]
fn sixteen_producers_one_sequence() {
    let pool = ThreadPool::builder().workers(4).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    // Relaxed everywhere: only the sequence's ordering makes these checks pass.
    let next_expected: Arc<Vec<AtomicU64>> =
        Arc::new((0..PRODUCERS).map(|_| AtomicU64::new(0)).collect());
    let in_task = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(PRODUCERS));

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (seq, next_expected, in_task, violations, start) = (
                seq.clone(),
                next_expected.clone(),
                in_task.clone(),
                violations.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_PRODUCER {
                    let (next_expected, in_task, violations) =
                        (next_expected.clone(), in_task.clone(), violations.clone());
                    seq.post(move || {
                        if in_task.swap(true, Ordering::Relaxed) {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        let expected = next_expected[p].load(Ordering::Relaxed);
                        if expected != i {
                            violations.fetch_add(1, Ordering::Relaxed);
                        }
                        next_expected[p].store(i + 1, Ordering::Relaxed);
                        in_task.store(false, Ordering::Relaxed);
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    seq.wait_idle(Duration::from_secs(60)).unwrap();
    let check = {
        let next_expected = next_expected.clone();
        seq.post_with_result(move || {
            next_expected.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>()
        })
        .unwrap()
    };
    assert_eq!(violations.load(Ordering::Relaxed), 0, "overlap or FIFO violation");
    // Every producer's tasks ran exactly once, in order: the counter reached the end.
    assert_eq!(check.join().unwrap(), vec![PER_PRODUCER; PRODUCERS]);
    let report = pool.shutdown();
    assert_eq!(report.ran(), PRODUCERS as u64 * PER_PRODUCER + 2);
    assert_eq!(report.skipped(), 0);
}

#[test]
fn many_sequences_many_producers() {
    let pool = ThreadPool::builder().workers(4).build().unwrap();
    let sequences: Vec<_> = (0..32).map(|_| pool.sequenced_runner(TaskTraits::default())).collect();
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..32).map(|_| AtomicU64::new(0)).collect());
    let producers: Vec<_> = (0..8)
        .map(|_| {
            let sequences = sequences.clone();
            let counters = counters.clone();
            std::thread::spawn(move || {
                for round in 0..2_000 {
                    for (i, seq) in sequences.iter().enumerate() {
                        if (round + i) % 3 == 0 {
                            let counters = counters.clone();
                            seq.post(move || {
                                let c = &counters[i];
                                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                            })
                            .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    for seq in &sequences {
        seq.wait_idle(Duration::from_secs(60)).unwrap();
    }
    for (i, seq) in sequences.iter().enumerate() {
        let counters = counters.clone();
        let n = seq.post_with_result(move || counters[i].load(Ordering::Relaxed)).unwrap();
        let expected = (0..2_000).filter(|round| (round + i) % 3 == 0).count() as u64 * 8;
        assert_eq!(n.join().unwrap(), expected);
    }
}
