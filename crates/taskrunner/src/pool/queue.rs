//! `TaskQueue`: the sequence's multi-producer, single-consumer queue of tasks.
//!
//! Tasks are stored by value (64 bytes each, closures inline) in blocks of `BLOCK_CAP` slots,
//! linked in a list. Producers claim a slot with a compare-and-swap on the tail position, write
//! the task, and publish the slot; the one consumer (the worker that owns the sequence, see
//! `sequence.rs`) reads slots in order without any read-modify-write. A block the consumer has
//! finished goes back into a one-block cache that the next block install takes from, so a
//! queue that keeps flowing allocates nothing; an idle, never-used queue owns no block at all.
//!
//! When that one-block cache is full, a finished block goes to the pool's [`BlockCache`]
//! (a bounded set of blocks shared by the pool's queues), and an install that finds no spare
//! takes from there before it allocates. This matters when posters outrun the consumer: the
//! queue grows, the posting thread allocates a block every `BLOCK_CAP` posts, and without the
//! shared cache the consumer would free blocks into the allocator at the same time. With
//! glibc that free waits on the allocator's lock while the poster holds it to grow its heap,
//! and in the throughput benchmark the consumer spent a sixth of its time blocked there.
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
//! it as `head_block`; a loser reads the tail and then its block again, never a block older
//! than the tail). CAS `tail` from `p` to `p + 1`; on success the slot at `p` is ours (a
//! producer that loses backs off before it retries, and yields its core after repeated losses).
//! The producer that claims the last slot of a block installs the next one *before* writing its
//! slot: `tail_block = next`, `tail += 1` (skipping the marker), `block.next = next`. Then it
//! writes the task's body and then its vtable pointer, which is the slot's "written" flag
//! (release). Each slot is one cache line.
//!
//! Pop (consumer only, through a `Cursor` it writes back once per batch): if the head slot's
//! vtable word is null, return `None` — the queue is empty, or a
//! producer claimed the slot and is still writing it. The consumer never waits for a producer
//! (one descheduled mid-push must not hold a worker): the producer notifies the sequence after
//! its write, and the sequence's state machine (`sequence.rs`) turns that into another pop.
//! Otherwise the task is run (or moved out) where it lies, and then, even if that unwinds, the
//! consumer clears the vtable word and advances `head`; after the last slot of a block it
//! follows `block.next` (already set, see push) and recycles the old block.
//!
//! A block is recycled only after the consumer read all its slots, and a producer touches a
//! block only after a successful CAS on a position inside it, which the consumer has not read
//! yet; so no producer can still be using a recycled block.

#![allow(unsafe_code)]

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::{self, NonNull};

use crate::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use crate::sync::{Backoff, BoundedQueue, UnsafeCell};
use crate::task::{TaskBody, TaskInPlace};
use crate::Task;

#[cfg(not(loom))]
pub(crate) const BLOCK_CAP: usize = 31;
#[cfg(loom)]
pub(crate) const BLOCK_CAP: usize = 2;
const LAP: usize = BLOCK_CAP + 1;
/// How many places ahead of the head the consumer prefetches a slot for reading
/// (`TaskQueue::pop_with`), within the head block and only among positions that were claimed
/// when its batch began: with a backlog, each slot's line is in the producer's core, and the
/// worker waited for it task after task. Prefetching a slot that was not yet claimed would take
/// its line from the producer that is about to write it, and prefetching for writing did worse
/// (docs/PERFORMANCE.md, step 23).
const CONSUMER_AHEAD: usize = 4;

/// How many places ahead of its own a post prefetches a slot for writing (`TaskQueue::write`).
/// The consumer wrote each slot last (it clears the vtable word), so a slot's line is in the
/// consumer's cache when a producer comes to write it, and the `lock xadd` that follows every
/// push waits until that line has arrived: one cross-core round trip per post, unhidden. Asked
/// for a few posts earlier, the line is there when the post comes. Measured in
/// docs/PERFORMANCE.md (step 21); 2, 4 and 8 did alike there.
const PREFETCH_AHEAD: usize = 4;

/// How many finished blocks a pool keeps for its queues (2 KiB each).
#[cfg(not(loom))]
const CACHED_BLOCKS: usize = 32;
#[cfg(loom)]
const CACHED_BLOCKS: usize = 1;

/// One task, in exactly one cache line: the closure's vtable pointer, published last, doubles
/// as the "written" flag (null while the slot is free), and the rest of the task sits beside
/// it. A consumer reading a task therefore moves one line between cores.
///
/// A written slot holds the bytes of a `Task` (`task::VTABLE_THEN_BODY`; the asserts below
/// check the slot's side), and the consumer reads it back as one (`pop_with`).
#[repr(C, align(64))]
struct Slot {
    vtable: AtomicPtr<()>,
    body: UnsafeCell<MaybeUninit<TaskBody>>,
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(Slot, vtable) == 0);
    assert!(offset_of!(Slot, body) == size_of::<*mut ()>());
    assert!(size_of::<Slot>() >= size_of::<Task>());
    assert!(align_of::<Slot>() >= align_of::<Task>());
};

/// Slots first (so each is line-aligned), the link last: 32 lines, 2 KiB, allocated on a
/// 2 KiB boundary so that no block straddles a 4 KiB page. The consumer reads a block's slots
/// in order and the producers write them in order, and the processors' stream prefetchers,
/// which follow such runs of lines, stop at a page boundary: a block that crossed one (half
/// of them, at the allocator's 64-byte alignment) made two short runs, each fetched line by
/// line from the other core until the prefetcher caught on again (docs/PERFORMANCE.md, step
/// 25). With the `tracing` or `metrics` feature a task takes two lines, a block 4 KiB, and
/// the block is aligned on its page.
#[repr(C)]
#[cfg_attr(all(not(loom), not(any(feature = "tracing", feature = "metrics"))), repr(align(2048)))]
#[cfg_attr(all(not(loom), any(feature = "tracing", feature = "metrics")), repr(align(4096)))]
struct Block {
    slots: [Slot; BLOCK_CAP],
    next: AtomicPtr<Block>,
}

// A block is exactly its alignment, at most a page: it lies within one page.
#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<Block>() == align_of::<Block>() && size_of::<Block>() <= 4096);
};

impl Block {
    fn new() -> Box<Block> {
        Box::new(Block {
            slots: std::array::from_fn(|_| Slot {
                vtable: AtomicPtr::new(ptr::null_mut()),
                body: UnsafeCell::new(MaybeUninit::uninit()),
            }),
            next: AtomicPtr::new(ptr::null_mut()),
        })
    }
}

/// A finished block, owned by the [`BlockCache`] while it sits there.
struct CachedBlock(*mut Block);

// SAFETY: a cached block is not referred to by any queue (see `BlockCache`); whoever pops it
// owns it, from any thread.
unsafe impl Send for CachedBlock {}

/// Finished blocks shared by the queues of one pool, at most `CACHED_BLOCKS` of them, so that a
/// queue that grows reuses the blocks another queue (or its own consumer) finished instead of
/// allocating. A block enters only in the state a new one has: every slot's vtable word null
/// and `next` null.
pub(crate) struct BlockCache {
    blocks: BoundedQueue<CachedBlock>,
}

impl BlockCache {
    pub(crate) fn new() -> BlockCache {
        BlockCache { blocks: BoundedQueue::new(CACHED_BLOCKS) }
    }

    fn take(&self) -> Option<*mut Block> {
        self.blocks.pop().map(|block| block.0)
    }

    #[cfg(all(test, not(loom)))]
    fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Keeps `block`, or hands it back when the cache is full.
    fn give(&self, block: *mut Block) -> Result<(), *mut Block> {
        self.blocks.push(CachedBlock(block)).map_err(|block| block.0)
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        while let Some(block) = self.take() {
            // SAFETY: a cached block came from `Box::into_raw` and nothing else refers to it.
            drop(unsafe { Box::from_raw(block) });
        }
    }
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache").finish_non_exhaustive()
    }
}

/// Tasks queued ahead of a post beyond which the queue has outgrown the blocks it recycles
/// (its spare and the pool's cache): every further block comes from the allocator, fresh
/// pages and cold cache lines for the consumer. `push_from` tells its caller when a post opens
/// a block past it.
pub(crate) const LONG_BACKLOG: usize = CACHED_BLOCKS * BLOCK_CAP;

/// The number of task slots before `position`.
fn slots_before(position: usize) -> usize {
    position / LAP * BLOCK_CAP + (position % LAP).min(BLOCK_CAP)
}

/// Field order matters (`repr(C)`): the producers' fields come first and the consumer's last,
/// so that the sequence can place its hot state word before and the owner's fields after
/// (see `Sequence`).
#[repr(C)]
pub(crate) struct TaskQueue {
    /// Next position producers claim.
    tail: AtomicUsize,
    /// The block holding `tail`'s lap (null until the first push).
    tail_block: AtomicPtr<Block>,
    /// Next position the consumer reads. Written by the consumer, once per batch (see
    /// `Cursor`), so producers' cache lines are not disturbed on every pop.
    head: AtomicUsize,
    /// The block holding `head`'s lap. Written by the consumer (and once by the producer
    /// that installs the first block).
    head_block: AtomicPtr<Block>,
    /// A finished block kept for the next install.
    spare: AtomicPtr<Block>,
}

/// The consumer's position while it pops a batch, kept in the worker's registers and written
/// back to the queue by [`TaskQueue::store_cursor`].
#[derive(Debug)]
pub(crate) struct Cursor {
    head: usize,
    /// The tail when the cursor was taken: every position before it was claimed, so the
    /// consumer may prefetch slots up to there without taking a line a producer is about to
    /// write (see `CONSUMER_AHEAD`).
    claimed: usize,
    block: *mut Block,
}

impl std::fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue").field("len", &self.len()).finish()
    }
}

impl TaskQueue {
    /// The bytes at the start of the queue that producers write: `tail` and `tail_block`.
    #[cfg(all(test, not(loom)))]
    pub(crate) const PRODUCER_BYTES: usize = {
        use std::mem::{offset_of, size_of};
        assert!(offset_of!(TaskQueue, tail) == 0);
        assert!(offset_of!(TaskQueue, tail_block) == size_of::<usize>());
        2 * size_of::<usize>()
    };

    pub(crate) fn new() -> TaskQueue {
        TaskQueue {
            spare: AtomicPtr::new(ptr::null_mut()),
            head: AtomicUsize::new(0),
            head_block: AtomicPtr::new(ptr::null_mut()),
            tail: AtomicUsize::new(0),
            tail_block: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// A block for an install: the spare one if any, else one from the pool's cache, else a
    /// new one.
    fn take_block(&self, cache: &BlockCache) -> *mut Block {
        let spare = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        if !spare.is_null() {
            return spare;
        }
        cache.take().unwrap_or_else(|| Box::into_raw(Block::new()))
    }

    /// Keeps `block` as the spare, or gives it to the pool's cache, or frees it. A block
    /// reaches here unused by an install, or recycled after the consumer read it all, so it
    /// is in the state a new block has (every vtable word and `next` null).
    fn put_block(&self, block: *mut Block, cache: Option<&BlockCache>) {
        if self
            .spare
            .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let block = match cache {
            Some(cache) => match cache.give(block) {
                Ok(()) => return,
                Err(block) => block,
            },
            None => block,
        };
        // SAFETY: `block` came from `Box::into_raw` and nothing else refers to it (see above).
        drop(unsafe { Box::from_raw(block) });
    }

    /// Appends a task, taking any block it needs from `cache` first. Any thread.
    #[cfg(test)]
    pub(crate) fn push(&self, task: Task, cache: &BlockCache) {
        let task = ManuallyDrop::new(task);
        // SAFETY: `task` is forgotten, never used again.
        unsafe { self.push_from(&task, cache) };
    }

    /// Moves the task `task` points to to the end of the queue, taking any block it needs
    /// from `cache` first. Any thread.
    ///
    /// It takes the task by reference, not by value: the post path then hands the caller's
    /// task down without copying it, and the one copy, into the slot, reads it only after the
    /// claim (see `Task::move_into`).
    ///
    /// Returns true when the task opened a block with more than `LONG_BACKLOG` tasks queued
    /// ahead of it (once per block at most), so that the caller can let the consumer catch up.
    ///
    /// # Safety
    /// The task is moved out: the caller neither uses nor drops it afterwards.
    pub(crate) unsafe fn push_from(&self, task: &ManuallyDrop<Task>, cache: &BlockCache) -> bool {
        let backoff = Backoff::new();
        let (mut tail, mut block) = self.tail_and_block();
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
                next_block = self.take_block(cache);
            }
            if block.is_null() {
                let first = self.take_block(cache);
                #[cfg(all(test, not(loom)))]
                tests::first_install_hook(tests::Hook::BeforeInstall);
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
                    Err(_) => {
                        self.put_block(first, Some(cache));
                        #[cfg(all(test, not(loom)))]
                        tests::first_install_hook(tests::Hook::AfterLostInstall);
                        // Not the block the failed CAS saw: other producers may have filled
                        // it and installed the next since (see `tail_and_block`).
                        (tail, block) = self.tail_and_block();
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
                    unsafe { self.write(block, offset, tail, next_block, task, cache) };
                    return offset == 0 && self.queued_before(tail) > LONG_BACKLOG;
                }
                Err(current) => {
                    tail = current;
                    block = self.tail_block.load(Ordering::Acquire);
                    // Spin as after any lost race, but after seven losses in a row yield the
                    // core (`snooze`): the other producers are making progress, and with more
                    // runnable threads than cores the thread that needs the core is the one
                    // draining the queue. Measured in docs/PERFORMANCE.md (step 10): about
                    // 1.5-1.7x at 4 and 16 posting threads on 2 cores, no change with one.
                    backoff.snooze();
                }
            }
        }
    }

    /// The tail and the block of its lap, read in that order. A block read before the tail may
    /// be a lap behind it (producers may fill that block and install the next in between), and
    /// a claim would then succeed on a position of the new lap and write into the old block,
    /// over a task not yet run, while the new lap's slot stayed empty for ever. Read after the
    /// tail, the block is the tail's or a later one, and then the claim fails and is retried.
    #[inline]
    fn tail_and_block(&self) -> (usize, *mut Block) {
        let tail = self.tail.load(Ordering::Acquire);
        (tail, self.tail_block.load(Ordering::Acquire))
    }

    /// Second half of `push_from`, once position `tail` (at `offset` in `block`) is ours.
    ///
    /// # Safety
    /// The caller claimed the position with a successful CAS, and `block` is its lap's block.
    /// The task is moved out (as `push_from`'s contract allows).
    #[inline]
    unsafe fn write(
        &self,
        block: *mut Block,
        offset: usize,
        tail: usize,
        next_block: *mut Block,
        task: &ManuallyDrop<Task>,
        cache: &BlockCache,
    ) {
        // SAFETY: per the caller's contract `block` is live until the consumer has read this
        // slot, which cannot happen before its vtable word is set below.
        let block = unsafe { &*block };
        if offset + 1 == BLOCK_CAP {
            // Last slot: install the next block before anything else (producers wait on the
            // marker position meanwhile; the consumer follows `next` after reading this slot).
            self.tail_block.store(next_block, Ordering::Release);
            self.tail.store(tail + 2, Ordering::Release);
            block.next.store(next_block, Ordering::Release);
        } else if !next_block.is_null() {
            self.put_block(next_block, Some(cache));
        }
        let slot = &block.slots[offset];
        debug_assert!(
            slot.vtable.load(Ordering::Relaxed).is_null(),
            "a producer claimed a slot that still holds a task (position {tail})"
        );
        if let Some(ahead) = block.slots.get(offset + PREFETCH_AHEAD) {
            // The post a few places on finds its slot's line here, writable, instead of
            // fetching it from the core that consumed it last while its `lock xadd` on the
            // sequence's state waits for the store (see `PREFETCH_AHEAD`).
            crate::sync::prefetch_for_write(ahead);
        }
        // SAFETY: the slot is ours (see above) and its vtable word is null, so the consumer
        // does not read it; the task is moved out, as our caller's contract allows.
        let vtable =
            slot.body.with_mut(|cell| unsafe { Task::move_into(&**task, (*cell).as_mut_ptr()) });
        slot.vtable.store(vtable, Ordering::Release);
    }

    /// The consumer's position, to pop a batch with. Consumer only: the caller must be the
    /// sole consumer (the worker that owns the sequence), and must hand the cursor back with
    /// `store_cursor` before it gives the sequence up.
    #[inline]
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            head: self.head.load(Ordering::Relaxed),
            // Loom models the protocol, not the hint; the load would only add interleavings.
            #[cfg(not(loom))]
            claimed: self.tail.load(Ordering::Relaxed),
            #[cfg(loom)]
            claimed: 0,
            block: self.head_block.load(Ordering::Acquire),
        }
    }

    /// Publishes the consumer's position (for `is_empty`, `len`, and the next owner).
    #[inline]
    pub(crate) fn store_cursor(&self, cursor: &Cursor) {
        // A null block means no block existed when the cursor was taken; the producer that
        // installs the first one publishes it itself, and must not be overwritten.
        if !cursor.block.is_null() {
            self.head_block.store(cursor.block, Ordering::Release);
        }
        self.head.store(cursor.head, Ordering::Release);
    }

    /// The head slot, if a block exists yet.
    #[inline]
    fn head_slot(&self, cursor: &mut Cursor) -> Option<&Slot> {
        if cursor.block.is_null() {
            // Never pushed to, or pushed to after the cursor was taken.
            cursor.block = self.head_block.load(Ordering::Acquire);
            if cursor.block.is_null() {
                return None;
            }
        }
        let offset = cursor.head % LAP;
        debug_assert!(offset < BLOCK_CAP, "the consumer skips marker positions");
        // SAFETY: the head block stays live until the consumer (the caller) recycles it.
        Some(unsafe { &(*cursor.block).slots[offset] })
    }

    /// Whether the head slot holds a written task. Consumer only. (For the owner's linger,
    /// which the loom build leaves out.)
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn is_ready(&self, cursor: &mut Cursor) -> bool {
        self.head_slot(cursor).is_some_and(|slot| !slot.vtable.load(Ordering::Acquire).is_null())
    }

    /// Takes the next task at `cursor`; a finished block goes back to `cache`. Consumer only
    /// (see `cursor`).
    #[cfg(test)]
    #[inline]
    pub(crate) fn pop(&self, cursor: &mut Cursor, cache: &BlockCache) -> Option<Task> {
        self.pop_with(cursor, Some(cache), |task| task.take())
    }

    /// Passes the next task at `cursor` to `f`, in its slot; `None` if no task is ready.
    /// Consumer only (see `cursor`).
    ///
    /// This is the worker's path: `f` runs the task where the producer wrote it (or takes it
    /// out), and only then is the slot freed and the cursor moved on, even if `f` unwinds. A
    /// task moved out of its slot first cost several 64-byte copies on its way to the call
    /// (docs/PERFORMANCE.md, steps 8 and 12).
    #[inline]
    pub(crate) fn pop_with<R>(
        &self,
        cursor: &mut Cursor,
        cache: Option<&BlockCache>,
        f: impl FnOnce(TaskInPlace<'_>) -> R,
    ) -> Option<R> {
        let head = cursor.head;
        let slot = self.head_slot(cursor)?;
        let vtable = slot.vtable.load(Ordering::Acquire);
        if vtable.is_null() {
            // Empty, or claimed by a producer that has not finished writing. The consumer never
            // waits for a producer: that producer notifies the sequence after writing (see
            // `sequence.rs`), so the task is picked up then.
            return None;
        }
        if head + CONSUMER_AHEAD < cursor.claimed {
            // SAFETY: the head block stays live until the consumer recycles it (as in
            // `head_slot`); `get` keeps the prefetch within it.
            if let Some(ahead) = unsafe { (*cursor.block).slots.get(head % LAP + CONSUMER_AHEAD) } {
                crate::sync::prefetch_for_read(ahead);
            }
        }
        // Frees the slot and moves the cursor once `f` is done with the task.
        let _done = Popped { queue: self, cursor, cache, slot, head };
        // SAFETY: the vtable word (acquire) says the producer finished writing the body, and
        // nothing writes the slot again until `_done` clears the word, after `f`; we are the
        // only reader. The slot holds the vtable pointer followed by the body, which is the
        // layout of a `Task` (`task::VTABLE_THEN_BODY` and the asserts on `Slot`), the two
        // halves that one `Task::move_into` wrote; every byte of it is inside an `UnsafeCell`
        // (the atomic word and the body cell), so it may be used through this pointer. The
        // `TaskInPlace` consumes the task once; the block is recycled only after `_done`.
        #[cfg(not(loom))]
        let task = unsafe { TaskInPlace::new(NonNull::from(slot).cast::<Task>()) };
        // Loom's atomics and cells are not plain memory: reassemble the halves into a local.
        #[cfg(loom)]
        // SAFETY: as above; `vtable` and `body` are the two halves of one `Task::move_into`.
        let mut local = std::mem::ManuallyDrop::new(unsafe {
            Task::from_raw(vtable, slot.body.with_mut(|cell| (*cell).assume_init_read()))
        });
        #[cfg(loom)]
        // SAFETY: the local is never dropped as a `Task`; the `TaskInPlace` consumes it.
        let task = unsafe { TaskInPlace::new(NonNull::from(&mut *local)) };
        Some(f(task))
    }

    /// Moves `cursor` from the last slot of its block, just read, to the next block, and
    /// recycles the finished one. Out of line: it runs once per `BLOCK_CAP` pops, and keeping
    /// it out of `pop` keeps the task's copy out of memory on the common path (measured: the
    /// inlined version drained a long queue about a third slower).
    #[cold]
    #[inline(never)]
    fn next_block(&self, cursor: &mut Cursor, cache: Option<&BlockCache>) {
        // The producer of the last slot set `next` before publishing the slot.
        let block = cursor.block;
        // SAFETY: as in `head_slot`; the block is recycled only below, after this read.
        let block_ref = unsafe { &*block };
        let next = block_ref.next.load(Ordering::Acquire);
        debug_assert!(!next.is_null() && next != block, "next block {next:p} after {block:p}");
        block_ref.next.store(ptr::null_mut(), Ordering::Relaxed);
        cursor.block = next;
        cursor.head += 2;
        // Publish the new head block before the old one can be reused.
        self.store_cursor(cursor);
        self.put_block(block, cache);
    }

    /// Whether no task is queued (a claimed slot being written counts as queued). Safe from
    /// any thread: reads positions only.
    pub(crate) fn is_empty(&self) -> bool {
        self.tail.load(Ordering::Acquire) == self.head.load(Ordering::Acquire)
    }

    /// Tasks queued ahead of `position` (approximate: the consumer writes its position back
    /// once per batch).
    fn queued_before(&self, position: usize) -> usize {
        slots_before(position).saturating_sub(slots_before(self.head.load(Ordering::Acquire)))
    }

    /// Tasks queued (approximate while producers race).
    pub(crate) fn len(&self) -> usize {
        self.queued_before(self.tail.load(Ordering::Acquire))
    }
}

/// The consumer's step past a popped slot, taken when the task in it has been consumed: clear
/// the slot's vtable word (freeing it for the block's next lap) and advance the cursor,
/// crossing to the next block after the last slot.
struct Popped<'a> {
    queue: &'a TaskQueue,
    cursor: &'a mut Cursor,
    cache: Option<&'a BlockCache>,
    slot: &'a Slot,
    head: usize,
}

impl Drop for Popped<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.vtable.store(ptr::null_mut(), Ordering::Relaxed);
        if self.head % LAP + 1 == BLOCK_CAP {
            self.queue.next_block(self.cursor, self.cache);
        } else {
            self.cursor.head = self.head + 1;
        }
    }
}

impl Drop for TaskQueue {
    fn drop(&mut self) {
        // Exclusive access: drop the queued tasks, then the blocks.
        let mut cursor = self.cursor();
        while self.pop_with(&mut cursor, None, |task| drop(task)).is_some() {}
        self.store_cursor(&cursor);
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

    /// Counts its drops: a task's captures are dropped exactly once, run or not.
    struct Counted(Arc<StdAtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn task(tx: &mpsc::Sender<(usize, usize)>, producer: usize, i: usize) -> Task {
        let tx = tx.clone();
        Task::new(move || tx.send((producer, i)).unwrap())
    }

    // With `tracing` or `metrics` a task also carries its post time (and id): two lines.
    #[cfg(not(any(feature = "tracing", feature = "metrics")))]
    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        assert_eq!(std::mem::size_of::<Block>(), (BLOCK_CAP + 1) * 64);
    }

    #[test]
    fn every_block_lies_within_one_page() {
        // Held at once, so that the allocator cannot hand back the same place each time.
        let blocks: Vec<Box<Block>> = (0..64).map(|_| Block::new()).collect();
        for block in &blocks {
            let first = &**block as *const Block as usize;
            let last = first + std::mem::size_of::<Block>() - 1;
            assert_eq!(first / 4096, last / 4096, "block at {first:#x} straddles a page");
        }
    }

    #[test]
    fn fifo_across_many_blocks_with_len() {
        let cache = BlockCache::new();
        let queue = TaskQueue::new();
        assert!(queue.is_empty());
        assert!(queue.pop(&mut queue.cursor(), &cache).is_none());
        let (tx, rx) = mpsc::channel();
        for round in 0..3 {
            for i in 0..(BLOCK_CAP * 5 + 3) {
                queue.push(task(&tx, round, i), &cache);
                assert_eq!(queue.len(), i + 1);
            }
            let mut n = 0;
            let mut cursor = queue.cursor();
            while let Some(t) = queue.pop(&mut cursor, &cache) {
                t.run();
                n += 1;
            }
            queue.store_cursor(&cursor);
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
    fn tasks_run_in_their_slots_and_a_pop_that_unwinds_still_moves_on() {
        let cache = BlockCache::new();
        let queue = TaskQueue::new();
        let ran = Arc::new(StdAtomicUsize::new(0));
        let dropped = Arc::new(StdAtomicUsize::new(0));
        // Enough tasks that some pops cross into the next block.
        let n = BLOCK_CAP + 5;
        for _ in 0..n {
            let (ran, captured) = (ran.clone(), Counted(dropped.clone()));
            queue.push(
                Task::new(move || {
                    let _keep = &captured;
                    ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }),
                &cache,
            );
        }
        let mut cursor = queue.cursor();
        let mut seen = 0;
        for i in 0..n {
            match i % 3 {
                // Run where it lies.
                0 => assert!(queue.pop_with(&mut cursor, Some(&cache), |t| t.run()).is_some()),
                // Dropped by an `f` that unwinds before consuming it.
                1 => {
                    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        queue.pop_with(&mut cursor, Some(&cache), |t| {
                            let _t = t;
                            panic!("the consumer's closure unwinds");
                        })
                    }));
                    assert!(unwound.is_err());
                }
                // Moved out and dropped unrun.
                _ => drop(queue.pop(&mut cursor, &cache).expect("a task is queued")),
            }
            seen += 1;
            // Each task's captures are dropped exactly once, as soon as it is consumed, and the
            // cursor has moved past it.
            assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), seen);
        }
        assert!(queue.pop(&mut cursor, &cache).is_none());
        queue.store_cursor(&cursor);
        assert!(queue.is_empty());
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), n.div_ceil(3));
    }

    #[test]
    fn dropping_the_queue_drops_queued_tasks() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let cache = BlockCache::new();
        let queue = TaskQueue::new();
        for _ in 0..(BLOCK_CAP * 2 + 1) {
            let c = Counted(drops.clone());
            queue.push(Task::new(move || drop(c)), &cache);
        }
        let mut cursor = queue.cursor();
        drop(queue.pop(&mut cursor, &cache));
        queue.store_cursor(&cursor);
        drop(queue);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), BLOCK_CAP * 2 + 1);
    }

    /// Starts `producers` threads; producer `p` pushes `each` tasks sending `(p, i)` to the
    /// queue `p % queues.len()`.
    fn spawn_producers(
        queues: &[Arc<TaskQueue>],
        cache: &Arc<BlockCache>,
        tx: &mpsc::Sender<(usize, usize)>,
        producers: usize,
        each: usize,
    ) -> Vec<std::thread::JoinHandle<()>> {
        (0..producers)
            .map(|p| {
                let (queue, cache, tx) =
                    (queues[p % queues.len()].clone(), cache.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 0..each {
                        queue.push(task(&tx, p, i), &cache);
                    }
                })
            })
            .collect()
    }

    /// Pushes `n` tasks that count their runs into `runs`.
    fn fill(queue: &TaskQueue, cache: &BlockCache, n: usize, runs: &Arc<StdAtomicUsize>) {
        for _ in 0..n {
            let runs = runs.clone();
            queue.push(
                Task::new(move || {
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }),
                cache,
            );
        }
    }

    fn drain(queue: &TaskQueue, cache: &BlockCache) -> usize {
        let mut cursor = queue.cursor();
        let mut n = 0;
        while let Some(t) = queue.pop(&mut cursor, cache) {
            t.run();
            n += 1;
        }
        queue.store_cursor(&cursor);
        n
    }

    #[test]
    fn blocks_finished_by_one_queue_are_reused_by_another_up_to_the_cap() {
        let cache = BlockCache::new();
        let runs = Arc::new(StdAtomicUsize::new(0));
        // Queue A grows to many blocks, then its consumer finishes all but the last: one
        // becomes A's spare, the cache takes `CACHED_BLOCKS`, and the rest are freed.
        let a = TaskQueue::new();
        let blocks = CACHED_BLOCKS + 5;
        fill(&a, &cache, blocks * BLOCK_CAP, &runs);
        assert_eq!(drain(&a, &cache), blocks * BLOCK_CAP);
        assert_eq!(cache.len(), CACHED_BLOCKS);
        // Queue B installs its first block and the next three from the cache.
        let b = TaskQueue::new();
        fill(&b, &cache, 3 * BLOCK_CAP + 1, &runs);
        assert_eq!(cache.len(), CACHED_BLOCKS - 4);
        assert_eq!(drain(&b, &cache), 3 * BLOCK_CAP + 1);
        assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), (blocks + 3) * BLOCK_CAP + 1);
        // Queues free their own blocks, the cache what it holds (no block is in both).
        drop((a, b));
        drop(cache);
    }

    #[test]
    fn queues_sharing_a_cache_keep_every_producers_order() {
        const PRODUCERS: usize = 4;
        const EACH: usize = 20_000;
        let cache = Arc::new(BlockCache::new());
        let queues = [Arc::new(TaskQueue::new()), Arc::new(TaskQueue::new())];
        let (tx, rx) = mpsc::channel();
        let producers = spawn_producers(&queues, &cache, &tx, PRODUCERS, EACH);
        let mut next = [0usize; PRODUCERS];
        let mut received = 0;
        let mut cursors = [queues[0].cursor(), queues[1].cursor()];
        while received < PRODUCERS * EACH {
            for (queue, cursor) in queues.iter().zip(&mut cursors) {
                // A few tasks from one queue, then the other, so both recycle blocks.
                for _ in 0..100 {
                    let Some(t) = queue.pop(cursor, &cache) else { break };
                    t.run();
                    let (p, i) = rx.recv().unwrap();
                    assert_eq!(next[p], i, "producer {p} out of order");
                    next[p] += 1;
                    received += 1;
                }
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        for (queue, cursor) in queues.iter().zip(&cursors) {
            queue.store_cursor(cursor);
            assert!(queue.is_empty());
        }
        assert_eq!(next, [EACH; PRODUCERS]);
    }

    /// Points in `push_from`'s install of a queue's first block where a test may run code.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Hook {
        /// After taking the block, before trying to install it.
        BeforeInstall,
        /// After another producer's install won, before the tail is read again.
        AfterLostInstall,
    }

    /// Code to run once at a `Hook`.
    type HookFn = Box<dyn FnOnce()>;

    std::thread_local! {
        /// Code to run once at a `Hook` in this thread's pushes.
        static FIRST_INSTALL_HOOKS: std::cell::RefCell<Vec<(Hook, HookFn)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    pub(super) fn first_install_hook(at: Hook) {
        let hook = FIRST_INSTALL_HOOKS.with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            let index = hooks.iter().position(|(point, _)| *point == at)?;
            Some(hooks.remove(index).1)
        });
        if let Some(hook) = hook {
            hook();
        }
    }

    /// A producer loses the first block's install, and meanwhile another fills that block and
    /// installs the next. Its claim lands in the new lap and must be written into the new
    /// block: it used to keep the block it had seen when the install failed, and wrote over the
    /// first queued task while the new lap's first slot stayed empty, so the consumer stopped
    /// there for ever (the throughput probe lost 992 tasks in one run and hung in another).
    #[test]
    fn a_producer_that_lost_the_first_install_writes_into_the_current_block() {
        let queue = Arc::new(TaskQueue::new());
        let cache = Arc::new(BlockCache::new());
        let (tx, rx) = mpsc::channel();
        // Another producer pushes `range` from its own thread, to completion.
        let other = |range: std::ops::Range<usize>| {
            let (queue, cache, tx) = (queue.clone(), cache.clone(), tx.clone());
            move || {
                std::thread::spawn(move || {
                    for i in range {
                        let tx = tx.clone();
                        queue.push(Task::new(move || tx.send((1, i)).unwrap()), &cache);
                    }
                })
                .join()
                .unwrap();
            }
        };
        // It installs the first block before this thread can, and once this thread has lost
        // that race, fills the block and installs the next.
        FIRST_INSTALL_HOOKS.with(|hooks| {
            let mut hooks = hooks.borrow_mut();
            hooks.push((Hook::BeforeInstall, Box::new(other(0..1))));
            hooks.push((Hook::AfterLostInstall, Box::new(other(1..BLOCK_CAP))));
        });
        queue.push(Task::new(move || tx.send((0, 0)).unwrap()), &cache);
        let mut seen = Vec::new();
        let mut cursor = queue.cursor();
        while let Some(task) = queue.pop(&mut cursor, &cache) {
            task.run();
            seen.push(rx.try_recv().unwrap());
        }
        queue.store_cursor(&cursor);
        let mut expected: Vec<_> = (0..BLOCK_CAP).map(|i| (1, i)).collect();
        expected.push((0, 0));
        assert_eq!(seen, expected);
        assert!(queue.is_empty());
    }

    #[test]
    fn concurrent_producers_keep_their_order() {
        const PRODUCERS: usize = 4;
        const EACH: usize = 20_000;
        let queue = Arc::new(TaskQueue::new());
        let cache = Arc::new(BlockCache::new());
        let (tx, rx) = mpsc::channel();
        let producers = spawn_producers(std::slice::from_ref(&queue), &cache, &tx, PRODUCERS, EACH);
        let mut next = [0usize; PRODUCERS];
        let mut received = 0;
        let mut cursor = queue.cursor();
        while received < PRODUCERS * EACH {
            match queue.pop(&mut cursor, &cache) {
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
        assert!(queue.pop(&mut cursor, &cache).is_none());
        queue.store_cursor(&cursor);
        assert!(queue.is_empty());
        assert_eq!(next, [EACH; PRODUCERS]);
    }
}
