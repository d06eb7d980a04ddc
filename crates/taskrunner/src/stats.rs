//! Statistics: [`RunnerStats`] for every runner, [`PoolStats`] for a pool.
//!
//! Every figure is read from atomics with `Relaxed` loads, without a lock: a snapshot is cheap
//! and never slows the runners down, and each field is exact on its own but the fields are not
//! taken at one single instant (a task may finish between two loads). Posting never touches a
//! statistics counter: `tasks_run` and `running` are updated by the thread that runs the tasks,
//! once per batch, and `rejected` only when a post is refused for a full queue. So a figure may
//! lag a little behind what a task already made visible: `tasks_run` is added at the end of a
//! batch, and a runner waited on with `wait_idle` may still show `running` (or a parallel
//! runner `barrier_pending`) for the moment its thread takes to let it go.

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The kind of a runner, as reported by [`RunnerStats::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunnerKind {
    /// A [`SequencedTaskRunner`](crate::SequencedTaskRunner): one task at a time on a pool.
    Sequenced,
    /// A [`ParallelTaskRunner`](crate::ParallelTaskRunner): up to N tasks at once on a pool.
    Parallel,
    /// A [`SingleThreadTaskRunner`](crate::SingleThreadTaskRunner): one dedicated OS thread.
    SingleThread,
}

/// A snapshot of a runner's statistics (`stats()` on every runner).
///
/// ```
/// use taskrunner::{RunnerKind, TaskRunnerExt, TaskTraits, ThreadPool};
/// use std::time::Duration;
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner_builder().name("db").build().unwrap();
/// seq.post(|| {}).unwrap();
/// seq.wait_idle(Duration::from_secs(5)).unwrap();
/// let stats = seq.stats();
/// assert_eq!(stats.name, "db");
/// assert_eq!(stats.kind, RunnerKind::Sequenced);
/// assert!(!stats.closed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerStats {
    /// The runner's name.
    pub name: String,
    /// The kind of runner.
    pub kind: RunnerKind,
    /// Tasks (and flush callbacks) posted and not yet started. Exact for parallel,
    /// single-thread and bounded sequenced runners; an unbounded sequenced runner reads its
    /// queue's positions, which its worker writes back once per batch, so while a batch runs
    /// its tasks that already started may still be counted.
    pub pending: usize,
    /// Threads running the runner's tasks right now: 0 or 1 for sequenced and single-thread
    /// runners, at most the max concurrency for a parallel runner. A thread counts from the
    /// moment it takes the runner's queue until it lets it go (it may be between two tasks).
    pub running: usize,
    /// Posts refused because the queue was full (bounded runners only; a post refused
    /// because the runner was closed is not counted here, its error says so).
    pub rejected: u64,
    /// Whether the runner (or its pool) has shut down: posts are refused.
    pub closed: bool,
    /// Whether a [`flush`](crate::ParallelTaskRunner::flush) barrier has been reached and is
    /// holding back later tasks while earlier ones finish. Always `false` on sequenced and
    /// single-thread runners, where every task is a barrier for the next.
    pub barrier_pending: bool,
    /// Tasks run to completion or to a panic since the runner was created (flush callbacks
    /// included; tasks dropped unrun at shutdown are not).
    pub tasks_run: u64,
}

/// A snapshot of a pool's statistics ([`ThreadPool::stats`](crate::ThreadPool::stats)).
///
/// ```
/// use taskrunner::ThreadPool;
///
/// let pool = ThreadPool::builder().workers(2).build().unwrap();
/// let stats = pool.stats();
/// assert_eq!(stats.workers, 2);
/// assert!(stats.running);
/// pool.shutdown();
/// assert!(!pool.stats().running);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Worker threads that have not exited.
    pub workers: usize,
    /// Task sources waiting in the pool's queues for a worker: sequences and parallel-runner
    /// slots with tasks to run, and one-off tasks. A busy sequence counts once, however many
    /// tasks it holds (its tasks are in its own [`RunnerStats::pending`]).
    pub queued_sources: usize,
    /// Workers running a task source right now.
    pub active_tasks: usize,
    /// Delayed and repeating tasks of the pool's runners waiting for their deadline (read under
    /// the timer's lock, briefly; never on the post path).
    pub delayed_tasks: usize,
    /// Whether the pool accepts work (shutdown has not started).
    pub running: bool,
}

/// The counters a runner keeps for its [`RunnerStats`]. All `Relaxed`: they order nothing.
#[derive(Debug, Default)]
pub(crate) struct RunnerCounters {
    running: AtomicUsize,
    tasks_run: AtomicU64,
    rejected: AtomicU64,
}

impl RunnerCounters {
    /// A thread starts running the runner's tasks.
    #[inline]
    pub(crate) fn enter(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// The thread lets the runner go.
    #[inline]
    pub(crate) fn exit(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// `n` more tasks ran (called once per batch).
    #[inline]
    pub(crate) fn add_run(&self, n: u64) {
        if n > 0 {
            self.tasks_run.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A post was refused for a full queue.
    #[cold]
    pub(crate) fn add_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub(crate) fn tasks_run(&self) -> u64 {
        self.tasks_run.load(Ordering::Relaxed)
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}
