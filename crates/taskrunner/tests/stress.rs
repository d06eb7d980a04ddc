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

/// Queue blocks move between sequences through the pool's block cache: bursts of posts grow
/// some queues by many blocks while others drain theirs. Every task must still run exactly
/// once and in each producer's order on its sequence (a block handed over unclean would replay
/// or skip a task).
#[test]
fn blocks_recycled_across_sequences_keep_every_order() {
    const SEQUENCES: usize = 8;
    const PRODUCERS: usize = 4;
    const BURSTS: u64 = 40;
    const BURST: u64 = 500;
    let pool = ThreadPool::builder().workers(3).build().unwrap();
    let sequences: Vec<_> =
        (0..SEQUENCES).map(|_| pool.sequenced_runner(TaskTraits::default())).collect();
    // next[s][p]: the next number producer p's task on sequence s must carry. Only tasks of
    // sequence s touch row s.
    let next: Arc<Vec<Vec<AtomicU64>>> = Arc::new(
        (0..SEQUENCES).map(|_| (0..PRODUCERS).map(|_| AtomicU64::new(0)).collect()).collect(),
    );
    let violations = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (sequences, next, violations) =
                (sequences.clone(), next.clone(), violations.clone());
            std::thread::spawn(move || {
                let mut sent = vec![0u64; SEQUENCES];
                for burst in 0..BURSTS {
                    // Each burst goes to one sequence, so that queue grows by many blocks.
                    let s = (burst as usize + p) % SEQUENCES;
                    for _ in 0..BURST {
                        let (next, violations) = (next.clone(), violations.clone());
                        let n = sent[s];
                        sent[s] += 1;
                        sequences[s]
                            .post(move || {
                                let slot = &next[s][p];
                                if slot.load(Ordering::Relaxed) != n {
                                    violations.fetch_add(1, Ordering::Relaxed);
                                }
                                slot.store(n + 1, Ordering::Relaxed);
                            })
                            .unwrap();
                    }
                }
                sent
            })
        })
        .collect();
    let sent: Vec<Vec<u64>> = producers.into_iter().map(|h| h.join().unwrap()).collect();
    for seq in &sequences {
        seq.wait_idle(Duration::from_secs(60)).unwrap();
    }
    assert_eq!(violations.load(Ordering::Relaxed), 0, "a task ran twice or out of order");
    for (s, seq) in sequences.iter().enumerate() {
        let next = next.clone();
        let seen = seq
            .post_with_result(move || {
                next[s].iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        let want: Vec<u64> = (0..PRODUCERS).map(|p| sent[p][s]).collect();
        assert_eq!(seen, want, "sequence {s}: tasks missing");
    }
    let report = pool.shutdown();
    // Plus, per sequence, the marker task of `wait_idle` and the final check.
    assert_eq!(report.ran(), PRODUCERS as u64 * BURSTS * BURST + 2 * SEQUENCES as u64);
    assert_eq!(report.skipped(), 0);
}
