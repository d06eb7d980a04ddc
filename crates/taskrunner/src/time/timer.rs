//! The timer entry (one delayed task) and the heap of pending entries.
//!
//! # Entry state machine
//!
//! One atomic word per entry; every transition is a named function below and nothing else
//! touches it. The user's task lives in the entry (not in the heap or the runner's queue) until
//! the transition that wins it takes it out, so a cancelled task is released at once.
//!
//! ```text
//!   PENDING ──fire (timer service, at expiry)──▶ FIRED ──start (runner runs the wrapper)──▶ STARTED
//!     │                                            │
//!     ├──cancel (handle)─────▶ CANCELLED ◀─────────┤   the canceller takes and drops the task
//!     └──discard (dropped)───▶ DISCARDED ◀─────────┘   shutdown / closed runner drops it unrun
//! ```
//!
//! `fire`, `start`, `cancel` and `discard` are compare-and-swaps out of `PENDING` or `FIRED`,
//! so exactly one of `start`, `cancel` and `discard` wins and takes the task: a cancelled task
//! never runs, a started one can no longer be cancelled, and the task is dropped exactly once.
//! A task that has fired sits in its runner's queue as a small wrapper holding the entry; it
//! can still be cancelled there (the wrapper then finds nothing to run).
//!
//! # The heap
//!
//! A min-heap ordered by (deadline, posting order): the posting order is a counter taken under
//! the heap's lock, so two entries with equal deadlines fire in the order they were posted.
//! Cancelled entries stay in the heap (small: the task is gone) until they reach the top or the
//! heap is compacted, which happens when it doubles in size.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::Mutex;
use crate::{Task, TaskRunner};

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const STARTED: u8 = 2;
const CANCELLED: u8 = 3;
const DISCARDED: u8 = 4;

/// One delayed task.
pub(crate) struct Entry {
    state: AtomicU8,
    task: Mutex<Option<Task>>,
    deadline: Instant,
    location: &'static Location<'static>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("posted_from", &format_args!("{}", self.location))
            .finish_non_exhaustive()
    }
}

impl Entry {
    pub(crate) fn new(task: Task, deadline: Instant) -> Entry {
        Entry {
            state: AtomicU8::new(PENDING),
            location: task.location(),
            task: Mutex::new(Some(task)),
            deadline,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// Transition `fire`: PENDING → FIRED. False when the entry was cancelled or discarded.
    pub(crate) fn fire(&self) -> bool {
        self.state.compare_exchange(PENDING, FIRED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Transition `start`: FIRED → STARTED, taking the task to run it. `None` when the entry
    /// was cancelled (or discarded) first.
    pub(crate) fn start(&self) -> Option<Task> {
        if self.state.compare_exchange(FIRED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.task.lock().take()
        } else {
            None
        }
    }

    /// Transition `cancel`: PENDING or FIRED → CANCELLED, taking the task (for the caller to
    /// drop). `None` when the task had started or was already cancelled or discarded.
    pub(crate) fn cancel(&self) -> Option<Task> {
        self.finish_unstarted(CANCELLED)
    }

    /// Transition `discard`: PENDING or FIRED → DISCARDED, taking the task to drop it unrun.
    pub(crate) fn discard(&self) -> Option<Task> {
        self.finish_unstarted(DISCARDED)
    }

    fn finish_unstarted(&self, to: u8) -> Option<Task> {
        let mut current = self.state.load(Ordering::Acquire);
        while current == PENDING || current == FIRED {
            match self.state.compare_exchange(current, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return self.task.lock().take(),
                Err(actual) => current = actual,
            }
        }
        None
    }

    /// Still waiting for its deadline.
    pub(crate) fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) == CANCELLED
    }
}

/// What the runner's queue holds for a fired entry: runs the task if it was not cancelled in
/// the meantime; dropped unrun, it discards the task.
pub(crate) struct Expired {
    entry: Arc<Entry>,
}

impl Expired {
    pub(crate) fn into_task(entry: Arc<Entry>) -> Task {
        let location = entry.location();
        let expired = Expired { entry };
        Task::with_location(move || expired.run(), location)
    }

    fn run(self) {
        if let Some(task) = self.entry.start() {
            task.run();
        }
    }
}

impl Drop for Expired {
    fn drop(&mut self) {
        drop(self.entry.discard());
    }
}

/// A pending entry and the runner it goes to at expiry.
pub(crate) struct Timer {
    seq: u64,
    pub(crate) entry: Arc<Entry>,
    pub(crate) runner: Arc<dyn TaskRunner>,
}

impl Timer {
    fn key(&self) -> (Instant, u64) {
        (self.entry.deadline(), self.seq)
    }
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest (deadline, seq) first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.key().cmp(&self.key())
    }
}

/// The pending entries, earliest deadline first, ties in posting order.
#[derive(Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Timer>,
    next_seq: u64,
    compact_at: usize,
}

impl TimerHeap {
    /// Adds an entry. Returns true when no pending entry is due before it (the timer thread
    /// must re-arm).
    pub(crate) fn push(&mut self, entry: Arc<Entry>, runner: Arc<dyn TaskRunner>) -> bool {
        if self.heap.len() >= self.compact_at.max(64) {
            self.heap.retain(|t| t.entry.is_pending());
            self.compact_at = self.heap.len() * 2;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let deadline = entry.deadline();
        let earliest = self.next_deadline().map_or(true, |d| deadline <= d);
        self.heap.push(Timer { seq, entry, runner });
        earliest
    }

    /// The earliest deadline of an entry still pending (drops cancelled ones from the top).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(top) = self.heap.peek() {
            if top.entry.is_pending() {
                return Some(top.entry.deadline());
            }
            self.heap.pop();
        }
        None
    }

    /// The earliest pending entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.next_deadline() {
            Some(deadline) if deadline <= now => self.heap.pop(),
            _ => None,
        }
    }

    /// Every entry, for shutdown.
    pub(crate) fn drain(&mut self) -> Vec<Timer> {
        let mut all: Vec<Timer> = std::mem::take(&mut self.heap).into_vec();
        all.sort_by(|a, b| b.cmp(a));
        all
    }

    /// How many entries are still pending (not cancelled, not fired).
    pub(crate) fn pending_count(&self) -> usize {
        self.heap.iter().filter(|t| t.entry.is_pending()).count()
    }

    /// The pending entries in firing order: (deadline, posted-from location).
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn pending(&self) -> Vec<(Instant, &'static Location<'static>)> {
        let mut all: Vec<&Timer> = self.heap.iter().filter(|t| t.entry.is_pending()).collect();
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter().map(|t| (t.entry.deadline(), t.entry.location())).collect()
    }
}
