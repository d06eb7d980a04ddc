//! `TaskQueue`: the sequence's multi-producer, single-consumer queue of tasks.
//!
//! Tasks are stored by value (64 bytes each, closures inline) in blocks of `BLOCK_CAP` slots,
//! linked in a list. Producers claim a slot with a compare-and-swap on the tail position, write
//! the task, and mark the slot ready; the one consumer (the worker that owns the sequence, see
//! `sequence.rs`) reads slots in order without any read-modify-write. A block the consumer has
//! finished goes back into a one-block cache that the next block install takes from, so a
//! queue that keeps flowing allocates nothing; an idle, never-used queue owns no block at all.
//!
//! Compared with crossbeam's `SegQueue` (which this replaces on the post path), the gain is the
//! single consumer: no CAS per pop, and blocks recycled instead of freed and reallocated. The
//! algorithm is crossbeam's list-channel one, restricted to one consumer.
//!
//! # Positions
//!
//! A position counts slots across laps of `LAP = BLOCK_CAP + 1`: offsets `0..BLOCK_CAP` are
//! slots of the lap's block, and offset `BLOCK_CAP` is a marker meaning "the next block is
//! being installed" (producers wait while the tail sits on it). Positions only grow, so a stale
//! position can never be mistaken for a current one.
//!
//! # Protocol
//!
//! Push: load `tail` then `tail_block`. If the tail sits on a marker, wait. If the queue has no
//! block yet, install the first one (CAS on `tail_block` from null; the winner also publishes
//! it as `head_block`). CAS `tail` from `p` to `p + 1`; on success the slot at `p` is ours.
//! The producer that claims the last slot of a block installs the next one *before* writing its
//! slot: `tail_block = next`, `tail += 1` (skipping the marker), `block.next = next`. Then it
//! writes the task and sets the slot's `ready` flag (release).
//!
//! Pop (consumer only): if the head slot is not ready, return `None` — the queue is empty, or a
//! producer claimed the slot and is still writing it. The consumer never waits for a producer
//! (one descheduled mid-push must not hold a worker): the producer notifies the sequence after
//! its write, and the sequence's state machine (`sequence.rs`) turns that into another pop.
//! Otherwise it moves the task out, clears the flag, and advances `head`; after the last slot
//! of a block it follows `block.next` (already set, see push) and recycles the old block.
//!
//! A block is recycled only after the consumer read all its slots, and a producer touches a
//! block only after a successful CAS on a position inside it, which the consumer has not read
//! yet; so no producer can still be using a recycled block.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr;

use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use crate::sync::{Backoff, UnsafeCell};
use crate::Task;

#[cfg(not(loom))]
const BLOCK_CAP: usize = 31;
#[cfg(loom)]
const BLOCK_CAP: usize = 2;
const LAP: usize = BLOCK_CAP + 1;

struct Slot {
    task: UnsafeCell<MaybeUninit<Task>>,
    ready: AtomicBool,
}

struct Block {
    next: AtomicPtr<Block>,
    slots: [Slot; BLOCK_CAP],
}

impl Block {
    fn new() -> Box<Block> {
        Box::new(Block {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                task: UnsafeCell::new(MaybeUninit::uninit()),
                ready: AtomicBool::new(false),
            }),
        })
    }
}

/// The number of task slots before `position`.
fn slots_before(position: usize) -> usize {
    position / LAP * BLOCK_CAP + (position % LAP).min(BLOCK_CAP)
}

pub(crate) struct TaskQueue {
    /// Next position producers claim.
    tail: AtomicUsize,
    /// The block holding `tail`'s lap (null until the first push).
    tail_block: AtomicPtr<Block>,
    /// Next position the consumer reads. Written by the consumer only.
    head: AtomicUsize,
    /// The block holding `head`'s lap. Written by the consumer only (and once by the producer
    /// that installs the first block).
    head_block: AtomicPtr<Block>,
    /// A finished block kept for the next install.
    spare: AtomicPtr<Block>,
}

impl std::fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue").field("len", &self.len()).finish()
    }
}

impl TaskQueue {
    pub(crate) fn new() -> TaskQueue {
        TaskQueue {
            tail: AtomicUsize::new(0),
            tail_block: AtomicPtr::new(ptr::null_mut()),
            head: AtomicUsize::new(0),
            head_block: AtomicPtr::new(ptr::null_mut()),
            spare: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A block for an install: the spare one if any, else a new one.
    fn take_block(&self) -> *mut Block {
        let spare = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if spare.is_null() {
            Box::into_raw(Block::new())
        } else {
            spare
        }
    }

    /// Keeps `block` as the spare, or frees it if there is one already.
    fn put_block(&self, block: *mut Block) {
        if self
            .spare
            .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: `block` came from `Box::into_raw` and nothing else refers to it (a block
            // reaches here unused by an install, or recycled after the consumer read it all).
            drop(unsafe { Box::from_raw(block) });
        }
    }

    /// Appends a task. Any thread.
    pub(crate) fn push(&self, task: Task) {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Acquire);
        let mut block = self.tail_block.load(Ordering::Acquire);
        let mut next_block: *mut Block = ptr::null_mut();
        loop {
            let offset = tail % LAP;
            if offset == BLOCK_CAP {
                // Another producer is installing the next block. Re-read with an RMW, which
                // always sees the latest position (a plain load may keep seeing this one).
                backoff.snooze();
                tail = self.tail.fetch_add(0, Ordering::AcqRel);
                block = self.tail_block.load(Ordering::Acquire);
                continue;
            }
            if offset + 1 == BLOCK_CAP && next_block.is_null() {
                // Prepare the next block before claiming the last slot, so the install that
                // other producers wait for is short.
                next_block = self.take_block();
            }
            if block.is_null() {
                let first = self.take_block();
                match self.tail_block.compare_exchange(
                    ptr::null_mut(),
                    first,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        self.head_block.store(first, Ordering::Release);
                        block = first;
                    }
                    Err(current) => {
                        self.put_block(first);
                        block = current;
                        tail = self.tail.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            match self.tail.compare_exchange_weak(
                tail,
                tail + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: the CAS gave us position `tail`, in `block`'s lap (see the module
                    // docs): the block is live and nobody else writes this slot.
                    unsafe { self.write(block, offset, tail, next_block, task) };
                    return;
                }
                Err(current) => {
                    tail = current;
                    block = self.tail_block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Second half of `push`, once position `tail` (at `offset` in `block`) is ours.
    ///
    /// # Safety
    /// The caller claimed the position with a successful CAS, and `block` is its lap's block.
    #[inline]
    unsafe fn write(
        &self,
        block: *mut Block,
        offset: usize,
        tail: usize,
        next_block: *mut Block,
        task: Task,
    ) {
        // SAFETY: per the caller's contract `block` is live until the consumer has read this
        // slot, which cannot happen before `ready` is set below.
        let block = unsafe { &*block };
        if offset + 1 == BLOCK_CAP {
            // Last slot: install the next block before anything else (producers wait on the
            // marker position meanwhile; the consumer follows `next` after reading this slot).
            self.tail_block.store(next_block, Ordering::Release);
            self.tail.store(tail + 2, Ordering::Release);
            block.next.store(next_block, Ordering::Release);
        } else if !next_block.is_null() {
            self.put_block(next_block);
        }
        let slot = &block.slots[offset];
        // SAFETY: the slot is ours (see above) and not ready, so the consumer does not read it.
        slot.task.with_mut(|cell| unsafe { (*cell).write(task) });
        slot.ready.store(true, Ordering::Release);
    }

    /// Takes the next task. Consumer only: the caller must be the sole consumer (the worker
    /// that owns the sequence).
    pub(crate) fn pop(&self) -> Option<Task> {
        let head = self.head.load(Ordering::Relaxed);
        let block = self.head_block.load(Ordering::Acquire);
        if block.is_null() {
            return None; // never pushed to
        }
        let offset = head % LAP;
        debug_assert!(offset < BLOCK_CAP, "the consumer skips marker positions");
        // SAFETY: the head block stays live until the consumer (us) recycles it.
        let block_ref = unsafe { &*block };
        let slot = &block_ref.slots[offset];
        if !slot.ready.load(Ordering::Acquire) {
            // Empty, or claimed by a producer that has not finished writing. The consumer never
            // waits for a producer: that producer notifies the sequence after writing (see
            // `sequence.rs`), so the task is picked up then.
            return None;
        }
        // SAFETY: `ready` (acquire) says the producer finished writing the task; we are the only
        // reader, and clearing `ready` below hands the slot back for the block's next lap.
        let task = slot.task.with_mut(|cell| unsafe { (*cell).assume_init_read() });
        slot.ready.store(false, Ordering::Relaxed);
        if offset + 1 == BLOCK_CAP {
            // The producer of the last slot set `next` before marking the slot ready.
            let next = block_ref.next.load(Ordering::Acquire);
            debug_assert!(!next.is_null());
            block_ref.next.store(ptr::null_mut(), Ordering::Relaxed);
            self.head_block.store(next, Ordering::Release);
            self.head.store(head + 2, Ordering::Release);
            self.put_block(block);
        } else {
            self.head.store(head + 1, Ordering::Release);
        }
        Some(task)
    }

    /// Whether the head slot holds a written task. Consumer only.
    #[inline]
    pub(crate) fn head_is_ready(&self) -> bool {
        let block = self.head_block.load(Ordering::Acquire);
        if block.is_null() {
            return false;
        }
        let offset = self.head.load(Ordering::Relaxed) % LAP;
        // SAFETY: the head block stays live until the consumer (the caller) recycles it.
        unsafe { (*block).slots[offset].ready.load(Ordering::Acquire) }
    }

    /// Whether no task is queued (a claimed slot being written counts as queued). Safe from
    /// any thread: reads positions only.
    pub(crate) fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Acquire) == self.head.load(Ordering::Acquire)
    }

    /// Tasks queued (approximate while producers race).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        slots_before(tail).saturating_sub(slots_before(head))
    }
}

impl Drop for TaskQueue {
    fn drop(&mut self) {
        // Exclusive access: drop the queued tasks, then the blocks.
        while self.pop().is_some() {}
        let head_block = self.head_block.load(Ordering::Relaxed);
        if !head_block.is_null() {
            // SAFETY: after draining, the head block is the last one and nothing refers to it.
            drop(unsafe { Box::from_raw(head_block) });
        }
        let spare = self.spare.load(Ordering::Relaxed);
        if !spare.is_null() {
            // SAFETY: the spare block is owned by the queue alone.
            drop(unsafe { Box::from_raw(spare) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::mpsc;
    use std::sync::Arc;

    fn task(tx: &mpsc::Sender<(usize, usize)>, producer: usize, i: usize) -> Task {
        let tx = tx.clone();
        Task::new(move || tx.send((producer, i)).unwrap())
    }

    #[test]
    fn fifo_across_many_blocks_with_len() {
        let queue = TaskQueue::new();
        assert!(queue.is_empty());
        assert!(queue.pop().is_none());
        let (tx, rx) = mpsc::channel();
        for round in 0..3 {
            for i in 0..(BLOCK_CAP * 5 + 3) {
                queue.push(task(&tx, round, i));
                assert_eq!(queue.len(), i + 1);
            }
            let mut n = 0;
            while let Some(t) = queue.pop() {
                t.run();
                n += 1;
            }
            assert_eq!(n, BLOCK_CAP * 5 + 3);
            assert!(queue.is_empty());
            assert_eq!(queue.len(), 0);
        }
        let got: Vec<_> = rx.try_iter().collect();
        let want: Vec<_> =
            (0..3).flat_map(|r| (0..(BLOCK_CAP * 5 + 3)).map(move |i| (r, i))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dropping_the_queue_drops_queued_tasks() {
        struct Counted(Arc<StdAtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let drops = Arc::new(StdAtomicUsize::new(0));
        let queue = TaskQueue::new();
        for _ in 0..(BLOCK_CAP * 2 + 1) {
            let c = Counted(drops.clone());
            queue.push(Task::new(move || drop(c)));
        }
        drop(queue.pop());
        drop(queue);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), BLOCK_CAP * 2 + 1);
    }

    #[test]
    fn concurrent_producers_keep_their_order() {
        const PRODUCERS: usize = 4;
        const EACH: usize = 20_000;
        let queue = Arc::new(TaskQueue::new());
        let (tx, rx) = mpsc::channel();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (queue, tx) = (queue.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        queue.push(task(&tx, p, i));
                    }
                })
            })
            .collect();
        let mut next = [0usize; PRODUCERS];
        let mut received = 0;
        while received < PRODUCERS * EACH {
            match queue.pop() {
                Some(t) => {
                    t.run();
                    let (p, i) = rx.recv().unwrap();
                    assert_eq!(next[p], i, "producer {p} out of order");
                    next[p] += 1;
                    received += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        assert!(queue.pop().is_none());
        assert_eq!(next, [EACH; PRODUCERS]);
    }
}
