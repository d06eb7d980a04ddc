//! The parallel runner's task source: a queue of entries, a pop lock, and the state word that
//! bounds how many of its tasks run at once and holds later tasks back at a `flush` barrier.
//!
//! # Slots
//!
//! A parallel runner with max concurrency N is scheduled in the pool as up to N **slots**. A
//! slot is one `Source::Parallel` entry: a worker that pops it *holds* the slot and runs the
//! runner's tasks one after the other until the queue is empty (it releases the slot), or its
//! budget is spent (it pushes the slot back on the pool queue, still held). A held slot runs at
//! most one task at a time, so at most N tasks run at once.
//!
//! # State machine
//!
//! One atomic word; every transition is a named method below and nothing else touches it.
//!
//! ```text
//!   bits  0..32  QUEUED   entries (tasks and flushes) pushed and not yet claimed
//!   bits 32..48  SLOTS    slots held: in a pool queue, or run by a worker
//!   bit  62      BARRIER  a flush was claimed; no entry is claimed until its callback ran
//!   bit  63      CLOSED   the runner was shut down: posts are rejected
//!
//!   post     push the entry, then QUEUED+1, and if !BARRIER and SLOTS<N also SLOTS+1
//!            (the poster then schedules that new slot in the pool)
//!   claim    (slot holder, under the pop lock)
//!              BARRIER or QUEUED=0 → SLOTS-1: the slot is released. If BARRIER and SLOTS
//!                                    became 0, this thread runs the barrier callback.
//!              else                → QUEUED-1, and if entries remain and SLOTS<N also
//!                                    SLOTS+1 (fan out: the holder schedules one more slot);
//!                                    then pop the entry.
//!   reach_barrier  (the entry popped was a flush; still under the pop lock; its callback is
//!            parked in `barrier` first) BARRIER set and SLOTS-1. If SLOTS became 0 this
//!            thread runs the callback at once.
//!   finish_barrier (after the callback ran) BARRIER cleared, and if QUEUED>0 also SLOTS+1:
//!            the thread holds a slot again and goes on claiming.
//!   close    CLOSED set.
//! ```
//!
//! Why at most N tasks run at once: SLOTS only grows by a CAS that checks SLOTS < N, a task
//! runs only on a held slot, and a slot runs one task at a time.
//!
//! Why no post is stranded: the post's RMW and a slot's release are RMWs on one word. If the
//! post comes first, the release sees QUEUED > 0 and claims instead; if the release comes first,
//! the post sees SLOTS < N and schedules a slot itself. During a barrier posts schedule nothing;
//! `finish_barrier` sees their QUEUED and takes a slot.
//!
//! Why the barrier is never overtaken: entries are claimed and popped under the pop lock, so
//! claim order is queue order, and the thread that pops a flush sets BARRIER before it lets the
//! lock go. Every later claim sees BARRIER and releases its slot instead of taking a task, so
//! nothing posted after the flush starts until `finish_barrier`, which comes after the
//! callback. Every task claimed before the flush holds its slot until it finished, and the
//! callback runs only when SLOTS is 0, so after all of them. No worker blocks: the last slot to
//! be released runs the callback.
//!
//! Why a claimed entry is in the queue: the poster pushes before its release-RMW on the word,
//! and the claim is an acquire-RMW that reads a value including that increment (RMWs extend
//! release sequences), so the push happens-before the pop.

use std::fmt;

use crate::observe::{self, RejectReason};
use crate::stats::RunnerCounters;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, Mutex, Queue};
use crate::{PostError, Task, TaskTraits};

use super::{Shared, Source};

const QUEUED_ONE: u64 = 1;
const QUEUED_MASK: u64 = 0xffff_ffff;
const SLOT_ONE: u64 = 1 << 32;
const SLOT_SHIFT: u32 = 32;
const SLOT_MASK: u64 = 0xffff;
const BARRIER: u64 = 1 << 62;
const CLOSED: u64 = 1 << 63;

/// The largest max concurrency (the width of the slot count). Larger values are clamped: no
/// pool has that many workers anyway.
pub(crate) const MAX_CONCURRENCY: usize = SLOT_MASK as usize;

/// How many tasks a slot runs before it checks whether other sources wait.
#[cfg(not(loom))]
pub(super) const BATCH: usize = 64;
#[cfg(loom)]
pub(super) const BATCH: usize = 2;

fn queued(state: u64) -> u64 {
    state & QUEUED_MASK
}

fn slots(state: u64) -> u64 {
    (state >> SLOT_SHIFT) & SLOT_MASK
}

/// An entry of the runner's queue.
enum Entry {
    Task(Task),
    /// A `flush` callback: runs after every earlier entry finished, before any later starts.
    Flush(Task),
}

/// What a slot holder does after `claim`.
enum Claim {
    /// Pop the next entry. `fan_out`: also schedule one more slot (taken in the same CAS).
    Entry { fan_out: bool },
    /// The slot is released. `run_barrier`: this thread runs the barrier callback now.
    Released { run_barrier: bool },
}

/// What the thread that ran a barrier callback does next.
enum AfterBarrier {
    /// It holds a slot again: go on claiming.
    Continue,
    /// Nothing is queued: done.
    Done,
}

/// Why a slot stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotEnd {
    /// The slot was released (nothing to claim, or a barrier holds the rest back).
    Released,
    /// The budget was spent: the caller still holds the slot and must reschedule it.
    Budget,
}

pub(crate) struct Parallel {
    state: AtomicU64,
    queue: Queue<Entry>,
    /// Serialises claim + pop + reach_barrier, so claim order is queue order. Taken by slot
    /// holders only, never by posters.
    pop_lock: Mutex<()>,
    /// The callback of the flush that set BARRIER, until the last slot is released.
    barrier: Mutex<Option<Task>>,
    max: u64,
    pool: Arc<Shared>,
    traits: TaskTraits,
    name: Option<std::sync::Arc<str>>,
    counters: RunnerCounters,
    /// Metric keys (zero-sized without the `metrics` feature).
    metrics: observe::RunnerMetrics,
}

impl fmt::Debug for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parallel")
            .field("name", &self.name)
            .field("max", &self.max)
            .field("state", &format_args!("{:#x}", self.state.load(Ordering::Relaxed)))
            .finish_non_exhaustive()
    }
}

impl Parallel {
    pub(crate) fn new(
        pool: Arc<Shared>,
        traits: TaskTraits,
        max_concurrency: usize,
        name: Option<std::sync::Arc<str>>,
    ) -> Parallel {
        Parallel {
            state: AtomicU64::new(0),
            queue: Queue::new(),
            pop_lock: Mutex::new(()),
            barrier: Mutex::new(None),
            max: max_concurrency.clamp(1, MAX_CONCURRENCY) as u64,
            pool,
            traits,
            name,
            counters: RunnerCounters::default(),
            metrics: observe::RunnerMetrics::default(),
        }
    }

    /// Posts a task.
    #[inline]
    pub(crate) fn post(this: &Arc<Parallel>, task: Task) -> Result<(), PostError> {
        Parallel::push(this, this.pool.track(task), Entry::Task)
    }

    /// Posts a flush barrier whose callback is `task`.
    pub(crate) fn flush(this: &Arc<Parallel>, task: Task) -> Result<(), PostError> {
        Parallel::push(this, this.pool.track(task), Entry::Flush)
    }

    /// Transition `post`: push, then count the entry and maybe take a new slot.
    #[inline]
    #[allow(unused_mut)] // `observe::posted` stamps the task only with `tracing` or `metrics`.
    fn push(
        this: &Arc<Parallel>,
        mut task: Task,
        wrap: fn(Task) -> Entry,
    ) -> Result<(), PostError> {
        if this.state.load(Ordering::Acquire) & CLOSED != 0 || !this.pool.is_accepting() {
            let priority = this.traits.priority();
            return Err(this.pool.reject(this.name(), priority, RejectReason::Closed, task));
        }
        observe::posted(&mut task, this.name());
        this.queue.push(wrap(task));
        let mut state = this.state.load(Ordering::Relaxed);
        loop {
            let mut next = state + QUEUED_ONE;
            let schedule = state & BARRIER == 0 && slots(state) < this.max;
            if schedule {
                next += SLOT_ONE;
            }
            match this.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if schedule {
                        Parallel::schedule_slot(this);
                    }
                    return Ok(());
                }
                Err(actual) => state = actual,
            }
        }
    }

    fn schedule_slot(this: &Arc<Parallel>) {
        this.pool.schedule(Source::Parallel(this.clone()), this.traits.priority());
    }

    /// Transition `claim` (under the pop lock).
    fn claim(&self) -> Claim {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (next, claim) = if state & BARRIER != 0 || queued(state) == 0 {
                let next = state - SLOT_ONE;
                let run_barrier = state & BARRIER != 0 && slots(next) == 0;
                (next, Claim::Released { run_barrier })
            } else {
                let mut next = state - QUEUED_ONE;
                let fan_out = queued(next) > 0 && slots(state) < self.max;
                if fan_out {
                    next += SLOT_ONE;
                }
                (next, Claim::Entry { fan_out })
            };
            match self.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if let Claim::Released { .. } = claim {
                        self.released(next);
                    }
                    return claim;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Transition `reach_barrier` (under the pop lock, after parking the callback). Returns
    /// whether this thread runs the callback now.
    fn reach_barrier(&self) -> bool {
        let prev = self.state.fetch_add(BARRIER.wrapping_sub(SLOT_ONE), Ordering::AcqRel);
        debug_assert!(prev & BARRIER == 0);
        let next = (prev | BARRIER) - SLOT_ONE;
        self.released(next);
        slots(next) == 0
    }

    /// Transition `finish_barrier`: the callback ran.
    fn finish_barrier(&self) -> AfterBarrier {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(state & BARRIER != 0 && slots(state) == 0);
            let mut next = state & !BARRIER;
            let take = queued(state) > 0;
            if take {
                next += SLOT_ONE;
            }
            match self.state.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) if take => return AfterBarrier::Continue,
                Ok(_) => {
                    self.released(next);
                    return AfterBarrier::Done;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// A slot was released into `state`: tell `wait_shutdown` waiters when it terminated.
    fn released(&self, state: u64) {
        if slots(state) == 0 && (state & CLOSED != 0 || !self.pool.is_accepting()) {
            self.pool.notify_runner_event();
        }
    }

    /// Transition `close`: no post is accepted from now on. Idempotent, never blocks.
    pub(crate) fn close(&self) {
        let prev = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if slots(prev) == 0 {
            self.pool.notify_runner_event();
        }
    }

    /// Runs one held slot: claims entries and hands each to `run` (which returns whether the
    /// task ran, rather than being dropped), at most `budget` of them. Returns how many ran.
    pub(crate) fn run_slot(
        this: &Arc<Parallel>,
        budget: usize,
        mut run: impl FnMut(Task) -> bool,
    ) -> (u64, SlotEnd) {
        let mut taken = 0;
        let mut ran = 0;
        loop {
            if taken == budget {
                return (ran, SlotEnd::Budget);
            }
            let mut barrier = false;
            let mut fan_out = false;
            let entry = {
                let _pop = this.pop_lock.lock();
                match this.claim() {
                    Claim::Released { run_barrier } => {
                        barrier = run_barrier;
                        None
                    }
                    Claim::Entry { fan_out: more } => {
                        fan_out = more;
                        match this.queue.pop().expect("a claimed entry is in the queue") {
                            Entry::Task(task) => Some(task),
                            Entry::Flush(callback) => {
                                *this.barrier.lock() = Some(callback);
                                barrier = this.reach_barrier();
                                None
                            }
                        }
                    }
                }
            };
            if fan_out {
                // Outside the pop lock: scheduling may drain a terminated pool, which claims.
                Parallel::schedule_slot(this);
            }
            if let Some(task) = entry {
                taken += 1;
                ran += u64::from(run(task));
                continue;
            }
            if !barrier {
                return (ran, SlotEnd::Released);
            }
            // The last slot is gone: every task claimed before the flush has finished.
            let callback = this.barrier.lock().take().expect("a barrier callback is parked");
            taken += 1;
            ran += u64::from(run(callback));
            match this.finish_barrier() {
                AfterBarrier::Continue => continue,
                AfterBarrier::Done => return (ran, SlotEnd::Released),
            }
        }
    }

    /// A slot popped when the pool is terminated, or run with nobody to run it: every entry it
    /// can claim is dropped with `skip`.
    pub(crate) fn drain(this: &Arc<Parallel>, mut skip: impl FnMut(Task)) {
        let _ = Parallel::run_slot(this, usize::MAX, |task| {
            skip(task);
            false
        });
    }

    /// Tasks queued and not yet started.
    pub(crate) fn pending(&self) -> usize {
        queued(self.state.load(Ordering::Relaxed)) as usize
    }

    /// A flush has been reached and holds later tasks back.
    pub(crate) fn barrier_pending(&self) -> bool {
        self.state.load(Ordering::Relaxed) & BARRIER != 0
    }

    /// The runner was shut down, or its pool is shutting down.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0 || !self.pool.is_accepting()
    }

    /// Closed, no slot held, nothing queued: nothing will ever run again.
    pub(crate) fn is_terminated(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        self.is_closed() && slots(state) == 0 && queued(state) == 0 && state & BARRIER == 0
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.max as usize
    }

    pub(crate) fn pool(&self) -> &Arc<Shared> {
        &self.pool
    }

    pub(crate) fn traits(&self) -> TaskTraits {
        self.traits
    }

    /// The runner's name (`"parallel"` when none was given).
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("parallel")
    }

    /// The runner as spans and metrics see it.
    pub(crate) fn observed(&self) -> observe::Runner<'_> {
        observe::Runner::new(self.name(), self.traits.priority(), &self.metrics)
    }

    pub(crate) fn counters(&self) -> &RunnerCounters {
        &self.counters
    }
}
