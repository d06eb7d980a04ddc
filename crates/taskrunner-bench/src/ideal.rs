//! The ideal FIFO hand-off: the most a sequence could reach on this machine.
//!
//! A sequence hands every operation from the posting thread to one consumer, in a single order
//! all posters agree on. However it is built, that takes at least what this does: writers claim
//! a position with a read-modify-write on a shared counter (a total order needs one per
//! operation) and store the operation into a slot of an array that was allocated, and its pages
//! touched, before the clock started; one thread that never parks reads the slots in order and
//! applies each operation. There is no memory management, no wake-up, no closure, no shutdown,
//! no batching limit: everything a real executor must also do is left out.
//!
//! The claim is a compare-and-swap whose losers back off and, after repeated losses, yield
//! their core, as the sequence's queue does. A `fetch_add` never fails, but with more posting
//! threads than cores it is the slower claim: nothing makes the writers give way, so the one
//! consumer gets only its fair share of the cores while every writer keeps adding to the
//! backlog. On the 2-core machine of docs/PERFORMANCE.md the `fetch_add` claim moved 64-byte
//! slots at about half the rate of this one at 16 writers.
//!
//! So where this ideal queue misses a goal, a sequence built on the same shared position cannot
//! be expected to meet it on the machine the run is on. Its payload is 8 bytes (the crossbeam
//! thread's message) or a 64-byte line (the size of a `taskrunner` task), so the table shows
//! what moving a task costs against moving a word.
//!
//! Those two carry the operation's key, and the consumer applies it inline, as the channel
//! baselines do. An executor cannot: what it is handed is a closure, whose captures it must
//! move and whose code it reaches through a pointer. The third queue (`TaskLine`) carries
//! exactly that: the writer stores the closure's bytes in a 64-byte slot beside the address
//! of a function that runs them, and the consumer calls that function with the slot, one
//! indirect call per operation, as a `taskrunner` task's vtable call is. It is the bound for
//! a sequence: everything in it a sequence must do too.
//!
//! The consumer of the 64-byte queues reads ahead as a sequence's worker does: it prefetches
//! the slot a few positions on while it is well behind the writers (`Queue::read_ahead`).
//! Without that the sequence, which reads ahead since step 23 of docs/PERFORMANCE.md, passed
//! these queues at 4 and 16 writers on the Intel machine there, and a bound must not leave out
//! what the bounded does. The writers need no prefetch of their own: nothing after their store
//! waits for it to complete (a sequence's post does, its `lock xadd`; step 21).
//!
//! What it does not bound: designs that hand over several operations per shared
//! read-modify-write (a poster that batches its own tasks, or one thread that combines
//! others' operations and runs them under a lock); both change what `post` promises.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::{Backoff, CachePadded};
use hdrhistogram::Histogram;

use crate::latency::{histogram, paced, record_ns};
use crate::seq_state::SeqOwned;
use crate::variants::drive;
use crate::workload::State;

/// One slot: the operation plus one (0 means "not written yet").
pub(crate) trait Slot: Sync + Sized {
    fn empty() -> Self;
    fn value(&self) -> &AtomicU64;
}

/// An 8-byte slot: eight to a cache line, like a channel of words.
impl Slot for AtomicU64 {
    fn empty() -> Self {
        AtomicU64::new(0)
    }

    fn value(&self) -> &AtomicU64 {
        self
    }
}

/// A 64-byte slot, one per cache line, like a `taskrunner` task.
#[repr(align(64))]
pub(crate) struct Line(AtomicU64);

impl Slot for Line {
    fn empty() -> Self {
        Line(AtomicU64::new(0))
    }

    fn value(&self) -> &AtomicU64 {
        &self.0
    }
}

/// A 64-byte slot holding a task: the closure's captures, and the address of the function
/// that runs them, which is written last and doubles as the "written" flag (0 while empty).
#[repr(C, align(64))]
pub(crate) struct TaskLine {
    call: AtomicUsize,
    captures: UnsafeCell<MaybeUninit<[u64; 7]>>,
}

// SAFETY: a writer writes `captures` only after claiming the slot, before it publishes `call`
// (release); the one consumer reads them only after it saw `call` set (acquire), once.
unsafe impl Sync for TaskLine {}

/// Runs the closure of type `F` whose bytes `captures` holds, moving it out.
///
/// # Safety
/// `captures` holds an `F` written by `TaskLine`'s writer, not run before.
unsafe fn call_erased<F: FnOnce()>(captures: *mut u8) {
    // SAFETY: per the contract; `F` fits the slot and its alignment (checked in `push_task`).
    let f = unsafe { std::ptr::read(captures.cast::<F>()) };
    f()
}

impl TaskLine {
    fn empty() -> Self {
        TaskLine { call: AtomicUsize::new(0), captures: UnsafeCell::new(MaybeUninit::uninit()) }
    }
}

/// The queue: `len` slots, written once each.
struct Queue<S> {
    slots: Vec<S>,
    tail: CachePadded<AtomicUsize>,
    /// Set when the writers failed: the consumer stops waiting for slots nobody will write.
    abandoned: AtomicBool,
}

/// The smallest allocation the slots get: above glibc's largest dynamic mmap threshold
/// (32 MiB on 64-bit). Freeing an mmapped block below that size raises malloc's mmap and trim
/// thresholds for the rest of the process, after which the heap no longer shrinks between
/// runs and the variants measured later fault in fewer fresh pages: one 8 MiB array made the
/// sequence's median at W = 16 about twice as fast in the runs after it. Above the threshold
/// the free changes nothing; the capacity beyond `len` is never touched.
const MIN_BYTES: usize = 33 << 20;

/// How far ahead the consumer reads (`Queue::read_ahead`).
const AHEAD: usize = 4;

/// How often, in positions, the consumer may read the tail that the writers keep changing. A
/// sequence's worker reads it once per batch (`BATCH` in `taskrunner`'s worker, 256 tasks at
/// most), so this reads it at least as often. Read at every position once the consumer has
/// caught up, that line went back and forth with the one writer's claims and the 1-writer
/// rates fell from about 56 to 12 M ops/s.
const LOOK_AT_TAIL_EVERY: usize = 64;

impl<S> Queue<S> {
    /// Allocates and touches every slot (`empty` writes each one).
    fn with_slots(len: usize, empty: impl Fn() -> S) -> Self {
        let mut slots = Vec::with_capacity(len.max(MIN_BYTES / std::mem::size_of::<S>()));
        slots.extend((0..len).map(|_| empty()));
        Queue { slots, tail: CachePadded::default(), abandoned: AtomicBool::new(false) }
    }

    /// Claims the next position and returns its slot. A writer that loses the claim backs
    /// off, and yields its core after repeated losses (`Backoff::snooze`; see the module docs).
    #[inline]
    fn claim(&self) -> Result<&S, String> {
        let backoff = Backoff::new();
        let mut position = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slots.get(position).ok_or("ideal queue overflow")?;
            match self.tail.compare_exchange_weak(
                position,
                position + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(slot),
                Err(current) => {
                    position = current;
                    backoff.snooze();
                }
            }
        }
    }

    /// Waits until `written` holds for the slot at `position`, and returns the slot, or `None`
    /// once the queue is abandoned. Spins, then yields the core between checks: a writer
    /// preempted between its claim and its store holds every later slot back until it runs
    /// again.
    #[inline]
    fn wait(&self, position: usize, written: impl Fn(&S) -> bool) -> Option<&S> {
        let slot = &self.slots[position];
        let mut spins = 0u32;
        loop {
            if written(slot) {
                return Some(slot);
            }
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else if self.abandoned.load(Ordering::Relaxed) {
                return None;
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Asks for the line of the slot `AHEAD` places after `position`, as a sequence's worker
    /// does (docs/PERFORMANCE.md, step 23), if the consumer is well behind the writers: that
    /// position and `LOOK_AT_TAIL_EVERY` more were claimed when it last read the tail
    /// (`claimed`, read at most once per `LOOK_AT_TAIL_EVERY` positions). Closer to the
    /// writers, the prefetch would take lines they are about to write: with one writer the
    /// ideal queue of tasks fell from about 40 to 30 M ops/s when it read ahead of any
    /// claimed position. Only for 64-byte slots.
    #[inline]
    fn read_ahead(&self, position: usize, claimed: &mut usize) {
        if std::mem::size_of::<S>() < 64 {
            // Eight words to a line: the next slots are in the line just read.
            return;
        }
        let ahead = position + AHEAD;
        if ahead >= *claimed && position % LOOK_AT_TAIL_EVERY == 0 {
            *claimed = self.tail.load(Ordering::Relaxed);
        }
        if ahead + LOOK_AT_TAIL_EVERY < *claimed {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch hint touches no memory architecturally and cannot fault; the
            // address is in bounds anyway (`ahead` was claimed, so it is a slot).
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>((&self.slots[ahead] as *const S).cast::<i8>());
            }
        }
    }

    /// Runs `writers` (which push everything) beside `consume` (which takes every slot), and
    /// returns both results; if the writers fail, the consumer is told to stop.
    fn run<W, C, A, B>(&self, writers: W, consume: C) -> Result<(A, B), String>
    where
        W: FnOnce() -> Result<A, String>,
        C: FnOnce() -> B + Send,
        B: Send,
    {
        std::thread::scope(|scope| {
            let consumer = scope.spawn(consume);
            let written = writers();
            if written.is_err() {
                self.abandoned.store(true, Ordering::Relaxed);
            }
            let consumed = consumer.join().map_err(|_| "consumer panicked".to_string())?;
            Ok((written?, consumed))
        })
    }
}

impl<S: Slot> Queue<S> {
    fn new(len: usize) -> Self {
        Queue::with_slots(len, S::empty)
    }

    /// Claims the next position and publishes `value` there (`value` must not be `u64::MAX`).
    #[inline]
    fn push(&self, value: u64) -> Result<(), String> {
        self.claim()?.value().store(value + 1, Ordering::Release);
        Ok(())
    }

    /// Waits for the slot at `position` and returns its value, or `None` once the queue is
    /// abandoned.
    #[inline]
    fn take(&self, position: usize) -> Option<u64> {
        let slot = self.wait(position, |slot| slot.value().load(Ordering::Acquire) != 0)?;
        Some(slot.value().load(Ordering::Relaxed) - 1)
    }
}

impl Queue<TaskLine> {
    /// Claims the next position and moves `task` into it. `F: Copy`: a task never run (the
    /// queue was abandoned) has nothing to drop.
    #[inline]
    fn push_task<F: FnOnce() + Send + Copy + 'static>(&self, task: F) -> Result<(), String> {
        const {
            assert!(std::mem::size_of::<F>() <= std::mem::size_of::<[u64; 7]>());
            assert!(std::mem::align_of::<F>() <= std::mem::align_of::<[u64; 7]>());
        }
        let slot = self.claim()?;
        // SAFETY: the slot is ours (claimed), nobody reads `captures` before `call` is set,
        // and `F` fits them (checked above).
        unsafe { std::ptr::write(slot.captures.get().cast::<F>(), task) };
        let call: unsafe fn(*mut u8) = call_erased::<F>;
        slot.call.store(call as usize, Ordering::Release);
        Ok(())
    }

    /// Waits for the task at `position` and runs it, or returns `None` once the queue is
    /// abandoned. Each position must be run once, by one consumer.
    #[inline]
    fn run_task(&self, position: usize) -> Option<()> {
        let slot = self.wait(position, |slot| slot.call.load(Ordering::Acquire) != 0)?;
        let call = slot.call.load(Ordering::Relaxed);
        // SAFETY: `call` is the address of a `call_erased::<F>` that `push_task` stored after
        // writing an `F` into `captures` (acquire above), and this position runs once.
        unsafe {
            let call: unsafe fn(*mut u8) = std::mem::transmute::<usize, unsafe fn(*mut u8)>(call);
            call(slot.captures.get().cast::<u8>());
        }
        Some(())
    }
}

/// One throughput run through the ideal queue with slots of type `S`: the same workload,
/// writers and clock as the other variants (`variants::drive`).
pub(crate) fn throughput<S: Slot>(writers: usize, ops: u64) -> Result<Duration, String> {
    let len = usize::try_from(ops).map_err(|e| e.to_string())?;
    let queue = Queue::<S>::new(len);
    let consume = || {
        let mut state = State::new();
        let mut claimed = 0;
        for position in 0..len {
            queue.read_ahead(position, &mut claimed);
            state.apply(queue.take(position)?);
        }
        Some(state)
    };
    let (start, state) = queue.run(|| drive(writers, ops, |k| queue.push(k)), consume)?;
    let elapsed = start.elapsed();
    state.ok_or("the consumer stopped early")?.check(ops)?;
    Ok(elapsed)
}

/// One throughput run through the ideal queue of tasks: the writers post what the sequence
/// variant posts, a closure that applies its key to the state through a pointer only the
/// consumer's calls use.
pub(crate) fn throughput_tasks(writers: usize, ops: u64) -> Result<Duration, String> {
    let len = usize::try_from(ops).map_err(|e| e.to_string())?;
    let queue = Queue::with_slots(len, TaskLine::empty);
    let owned = SeqOwned::new(State::new());
    let state = owned.handle();
    let consume = || {
        let mut claimed = 0;
        (0..len).try_for_each(|position| {
            queue.read_ahead(position, &mut claimed);
            queue.run_task(position)
        })
    };
    let post = |k: u64| {
        queue.push_task(move || {
            // SAFETY: only the consumer thread runs these tasks, one at a time; `owned` is
            // taken back after it finished.
            unsafe { state.with(|s| s.apply(k)) }
        })
    };
    let (start, consumed) = queue.run(|| drive(writers, ops, post), consume)?;
    let elapsed = start.elapsed();
    consumed.ok_or("the consumer stopped early")?;
    // SAFETY: the consumer thread ran every task and has been joined (`run`).
    let state = unsafe { owned.into_inner() };
    state.check(ops)?;
    Ok(elapsed)
}

/// One paced latency run through the ideal queue (8-byte slots): each slot carries the
/// post instant, as nanoseconds since the run's start.
pub(crate) fn latency(
    writers: usize,
    ops: u64,
    rate: u64,
) -> Result<(Histogram<u64>, Duration), String> {
    let len = usize::try_from(ops).map_err(|e| e.to_string())?;
    let queue = Queue::<AtomicU64>::new(len);
    let base = Instant::now();
    let since_base = |at: Instant| u64::try_from((at - base).as_nanos()).unwrap_or(u64::MAX - 1);
    let consume = || {
        let mut h = histogram();
        for position in 0..len {
            let posted = queue.take(position)?;
            record_ns(&mut h, since_base(Instant::now()).saturating_sub(posted));
        }
        Some(h)
    };
    let write = || paced(writers, ops, rate, |posted| queue.push(since_base(posted)));
    let (posting, h) = queue.run(write, consume)?;
    Ok((h.ok_or("the consumer stopped early")?, posting))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_arrives_in_claim_order() {
        let queue = Queue::<Line>::new(3);
        for v in [5, 0, 9] {
            queue.push(v).unwrap();
        }
        assert_eq!((queue.take(0), queue.take(1), queue.take(2)), (Some(5), Some(0), Some(9)));
        assert!(queue.push(1).is_err(), "a fourth push overflows");
    }

    #[test]
    fn failing_writers_release_the_consumer() {
        let queue = Queue::<AtomicU64>::new(2);
        let result = queue.run(
            || {
                queue.push(1)?;
                Err::<(), _>("writer failed".to_string())
            },
            || (queue.take(0), queue.take(1)),
        );
        assert_eq!(result, Err("writer failed".to_string()));
    }

    #[test]
    fn tasks_run_once_each_in_claim_order() {
        static ORDER: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
        let queue = Queue::with_slots(3, TaskLine::empty);
        for v in [5, 0, 9] {
            queue.push_task(move || ORDER.lock().unwrap().push(v)).unwrap();
        }
        assert!(queue.push_task(|| ()).is_err(), "a fourth task overflows");
        assert_eq!((0..3).map(|p| queue.run_task(p)).collect::<Vec<_>>(), vec![Some(()); 3]);
        assert_eq!(*ORDER.lock().unwrap(), vec![5, 0, 9]);
    }

    #[test]
    fn every_slot_kind_runs_the_workload() {
        throughput::<AtomicU64>(3, 1000).unwrap();
        throughput::<Line>(4, 1000).unwrap();
        throughput_tasks(5, 1000).unwrap();
        let (h, _) = latency(3, 300, 1_000_000).unwrap();
        assert_eq!(h.len(), 300);
    }
}
