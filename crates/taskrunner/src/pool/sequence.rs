//! The sequence: a queue of tasks plus the state word that decides who runs them.
//!
//! # State machine
//!
//! One atomic word; every transition is a named function below and nothing else touches it.
//!
//! ```text
//!   bit 0  SCHEDULED  the pool owns the sequence: it is in a pool queue or a worker runs it
//!   bit 1  CLOSED     the runner was shut down: posts are rejected
//!
//!   IDLE ──post: push task, then fetch_or(SCHEDULED) saw 0──▶ SCHEDULED   (poster enqueues it)
//!   SCHEDULED ──post: fetch_or saw SCHEDULED──▶ SCHEDULED                (nothing to do)
//!   SCHEDULED ──release: queue looked empty, fetch_and(!SCHEDULED)──▶ IDLE
//!                └─ then re-check the queue; if a task is there, fetch_or(SCHEDULED):
//!                   saw 0 → the worker owns it again; saw SCHEDULED → a poster took it
//!   any ──close: fetch_or(CLOSED)──▶ CLOSED set (queued tasks run or are dropped by behaviour)
//! ```
//!
//! Why no wake-up is lost: a poster pushes its task *before* its `fetch_or`, and a worker
//! re-checks the queue *after* its `fetch_and`. Both are RMWs on one word, so one comes first.
//! If the poster's comes first it saw SCHEDULED and did nothing, but the worker's later RMW
//! acquires it, so the re-check sees the task. If the worker's comes first, the poster sees the
//! bit clear and schedules the sequence itself.
//!
//! Why two tasks never overlap: only the thread that moved SCHEDULED from 0 to 1 owns the
//! sequence, and it gives ownership up only by clearing the bit (or by handing the sequence to
//! the pool queue, which the next worker takes with acquire ordering). Each task therefore
//! happens-before the next.

use crate::current::SequenceToken;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{Arc, Queue};
use crate::{PostError, Task, TaskTraits};

use super::{Shared, Source};

const SCHEDULED: usize = 1;
const CLOSED: usize = 2;

/// What a worker does after [`Sequence::release`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// The sequence is idle (or another thread scheduled it): the worker is done with it.
    Released,
    /// A task arrived during the release and the worker owns the sequence again.
    Reacquired,
}

pub(crate) struct Sequence {
    state: AtomicUsize,
    queue: Queue<Task>,
    pool: Arc<Shared>,
    traits: TaskTraits,
    token: SequenceToken,
    name: Option<std::sync::Arc<str>>,
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequence")
            .field("name", &self.name)
            .field("traits", &self.traits)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sequence {
    pub(crate) fn new(
        pool: Arc<Shared>,
        traits: TaskTraits,
        name: Option<std::sync::Arc<str>>,
    ) -> Sequence {
        Sequence {
            state: AtomicUsize::new(0),
            queue: Queue::new(),
            pool,
            traits,
            token: SequenceToken::next(),
            name,
        }
    }

    /// Transition `post`: push, then schedule the sequence if it was idle.
    #[inline]
    pub(crate) fn post(this: &Arc<Sequence>, task: Task) -> Result<(), PostError> {
        if this.state.load(Ordering::Acquire) & CLOSED != 0 || !this.pool.is_accepting() {
            return Err(PostError::Closed(task));
        }
        this.queue.push(task);
        if this.state.fetch_or(SCHEDULED, Ordering::AcqRel) & SCHEDULED == 0 {
            this.pool.schedule(Source::Sequence(this.clone()), this.traits.priority());
        }
        Ok(())
    }

    /// The next task, for the worker that owns the sequence.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Task> {
        self.queue.pop()
    }

    /// Transition `release`: the owner found the queue empty and gives the sequence up.
    pub(crate) fn release(&self) -> Release {
        let prev = self.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if prev & CLOSED != 0 || !self.pool.is_accepting() {
            // Someone may wait for this runner to finish shutting down.
            self.pool.notify_runner_event();
        }
        if self.queue.is_empty() {
            return Release::Released;
        }
        if self.state.fetch_or(SCHEDULED, Ordering::AcqRel) & SCHEDULED != 0 {
            Release::Released
        } else {
            Release::Reacquired
        }
    }

    /// Transition `close`: no post is accepted from now on. Idempotent, never blocks.
    pub(crate) fn close(&self) {
        let prev = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if prev & (CLOSED | SCHEDULED) == 0 {
            // Idle: it has terminated right now.
            self.pool.notify_runner_event();
        }
    }

    /// The runner was shut down, or its pool is shutting down.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0 || !self.pool.is_accepting()
    }

    /// Closed, not owned by any worker, and nothing queued: nothing will ever run again.
    pub(crate) fn is_terminated(&self) -> bool {
        self.is_closed()
            && self.state.load(Ordering::Acquire) & SCHEDULED == 0
            && self.queue.is_empty()
    }

    pub(crate) fn pool(&self) -> &Arc<Shared> {
        &self.pool
    }

    pub(crate) fn traits(&self) -> TaskTraits {
        self.traits
    }

    pub(crate) fn token(&self) -> SequenceToken {
        self.token
    }

    /// The runner's name (`"sequence"` when none was given).
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("sequence")
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }
}
