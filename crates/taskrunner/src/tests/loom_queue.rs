//! The task queue (`pool/queue.rs`) against a concurrent consumer: every task comes out exactly
//! once, each producer's in order, no slot is read while it is written, and finished blocks are
//! recycled safely, within a queue and through the pool's block cache to another queue.
//!
//! Not modelled: a producer waiting at a block boundary for another producer that is installing
//! the next block. That wait is a spin (crossbeam's `SegQueue` waits the same way), and loom
//! cannot schedule a spin-wait once its preemption bound is spent. The stress tests in
//! `queue.rs` and `tests/stress.rs` exercise it with 4 and 16 producers.

use std::sync::mpsc;

use crate::pool::queue::{BlockCache, TaskQueue};
use crate::sync::{thread, Arc};
use crate::Task;

fn drain(
    queue: &TaskQueue,
    cache: &BlockCache,
    rx: &mpsc::Receiver<(usize, usize)>,
    seen: &mut Vec<(usize, usize)>,
) {
    let mut cursor = queue.cursor();
    while let Some(task) = queue.pop(&mut cursor, cache) {
        task.run();
        seen.push(rx.try_recv().unwrap());
    }
    queue.store_cursor(&cursor);
}

/// Two producers race for the first block's install and for its two slots (the second claim
/// installs the next block) while the consumer pops.
#[test]
fn two_producers_race_for_install_and_slots() {
    super::model(|| {
        let queue = Arc::new(TaskQueue::new());
        let cache = Arc::new(BlockCache::new());
        let (tx, rx) = mpsc::channel();
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let (queue, cache, tx) = (queue.clone(), cache.clone(), tx.clone());
                thread::spawn(move || {
                    queue.push(Task::new(move || tx.send((p, 0)).unwrap()), &cache)
                })
            })
            .collect();
        let mut seen = Vec::new();
        drain(&queue, &cache, &rx, &mut seen);
        for producer in producers {
            producer.join().unwrap();
        }
        drain(&queue, &cache, &rx, &mut seen);
        seen.sort_unstable();
        assert_eq!(seen, vec![(0, 0), (1, 0)]);
        assert!(queue.is_empty());
    });
}

/// One producer crosses two block boundaries (two-slot blocks under loom) while the consumer
/// pops, so blocks are installed, finished, recycled and reused concurrently.
#[test]
fn producer_and_consumer_cross_block_boundaries() {
    super::model(|| {
        let queue = Arc::new(TaskQueue::new());
        let cache = Arc::new(BlockCache::new());
        let (tx, rx) = mpsc::channel();
        let producer = {
            let (queue, cache) = (queue.clone(), cache.clone());
            thread::spawn(move || {
                for i in 0..5 {
                    let tx = tx.clone();
                    queue.push(Task::new(move || tx.send((0, i)).unwrap()), &cache);
                }
            })
        };
        let mut seen = Vec::new();
        drain(&queue, &cache, &rx, &mut seen);
        drain(&queue, &cache, &rx, &mut seen);
        producer.join().unwrap();
        drain(&queue, &cache, &rx, &mut seen);
        assert_eq!(seen, (0..5).map(|i| (0, i)).collect::<Vec<_>>());
        assert!(queue.is_empty());
    });
}

/// Queue A's consumer finishes blocks (one becomes A's spare, the next goes to the shared
/// cache) while a producer of queue B installs blocks, taking from the cache when it can: a
/// block passed from one queue to another is clean, and B's tasks all come out in order.
#[test]
fn a_block_finished_by_one_queue_is_reused_by_another() {
    super::model(|| {
        let cache = Arc::new(BlockCache::new());
        let a = Arc::new(TaskQueue::new());
        let (tx, rx) = mpsc::channel();
        for i in 0..5 {
            let tx = tx.clone();
            a.push(Task::new(move || tx.send((0, i)).unwrap()), &cache);
        }
        let consumer = {
            let (a, cache) = (a.clone(), cache.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                drain(&a, &cache, &rx, &mut seen);
                seen
            })
        };
        let b = TaskQueue::new();
        let (tx_b, rx_b) = mpsc::channel();
        for i in 0..3 {
            let tx_b = tx_b.clone();
            b.push(Task::new(move || tx_b.send((1, i)).unwrap()), &cache);
        }
        let mut seen_b = Vec::new();
        drain(&b, &cache, &rx_b, &mut seen_b);
        assert_eq!(seen_b, (0..3).map(|i| (1, i)).collect::<Vec<_>>());
        assert_eq!(consumer.join().unwrap(), (0..5).map(|i| (0, i)).collect::<Vec<_>>());
        assert!(a.is_empty() && b.is_empty());
    });
}
