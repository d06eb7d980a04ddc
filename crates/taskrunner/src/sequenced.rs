//! [`SequencedTaskRunner`]: a virtual thread on a pool.
//!
//! A sequenced runner may be **bounded**
//! ([`SequencedRunnerBuilder::capacity`]): at most that many tasks wait in its queue (the
//! task running does not count). On a bounded runner, `post` (and every helper of
//! [`TaskRunnerExt`]) never blocks: it behaves like [`try_post`](SequencedTaskRunner::try_post)
//! and returns [`PostError::Full`] with the task when there is no room.
//! [`post_timeout`](SequencedTaskRunner::post_timeout) waits for room; from the runner's own
//! task, when it would have to wait, it returns [`PostError::WouldDeadlock`] at once (the queue
//! cannot drain before that task returns).

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::current::{self, SequenceToken};
use crate::handle::wait_idle_behind;
use crate::pool::{Sequence, Shared};
use crate::stats::{RunnerKind, RunnerStats};
use crate::sync::Arc;
use crate::time::TimerTarget;
use crate::{BuildError, PostError, Task, TaskRunner, TaskRunnerExt, TaskTraits, WaitError};

/// Runs its tasks one at a time, in posting order, on the threads of a pool.
///
/// A sequence is a virtual thread: each task sees everything the tasks before it did, and no
/// two of its tasks ever overlap, so state reached only from its tasks needs no lock. Creating
/// one is cheap (one small allocation, no thread); a handle is a cheap `Clone`.
///
/// Posting is lock-free: the task goes into the sequence's queue, and only a sequence that was
/// idle is handed to the pool (so a busy sequence costs the pool one queue entry, not one per
/// task). A worker then runs a batch of its tasks before letting other sources run.
///
/// An unbounded runner never refuses a post for its length, but it slows down posters that
/// run far ahead of it: once about a thousand tasks wait, one post in 31 waits a few
/// microseconds for the worker to catch up, and if it has not, yields the posting thread's
/// core (`std::thread::yield_now`) before it returns, so that the queue does not grow into
/// fresh memory faster than the worker drains it. To bound the queue for real, give the
/// runner a capacity.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(2).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let (tx, rx) = std::sync::mpsc::channel();
/// for i in 0..10 {
///     let tx = tx.clone();
///     seq.post(move || tx.send(i).unwrap()).unwrap();
/// }
/// seq.wait_idle(Duration::from_secs(5)).unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
/// ```
#[derive(Clone)]
pub struct SequencedTaskRunner {
    sequence: Arc<Sequence>,
}

impl fmt::Debug for SequencedTaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequencedTaskRunner")
            .field("name", &self.name())
            .field("traits", &self.sequence.traits())
            .field("token", &self.sequence.token())
            .finish()
    }
}

impl SequencedTaskRunner {
    pub(crate) fn new(
        pool: Arc<Shared>,
        traits: TaskTraits,
        name: Option<std::sync::Arc<str>>,
    ) -> SequencedTaskRunner {
        SequencedTaskRunner { sequence: Arc::new(Sequence::new(pool, traits, name)) }
    }

    fn bounded(
        pool: Arc<Shared>,
        traits: TaskTraits,
        name: Option<std::sync::Arc<str>>,
        capacity: Option<usize>,
    ) -> SequencedTaskRunner {
        let sequence = Sequence::new(pool, traits, name).with_capacity(capacity);
        SequencedTaskRunner { sequence: Arc::new(sequence) }
    }

    pub(crate) fn from_sequence(sequence: Arc<Sequence>) -> SequencedTaskRunner {
        SequencedTaskRunner { sequence }
    }

    pub(crate) fn sequence(&self) -> &Arc<Sequence> {
        &self.sequence
    }

    /// The sequenced runner whose task is running on this thread, if any.
    pub fn current() -> Option<SequencedTaskRunner> {
        current::current_runner().and_then(|r| r.as_sequenced().cloned())
    }

    /// The runner's name (`"sequence"` unless set with
    /// [`ThreadPool::sequenced_runner_builder`](crate::ThreadPool::sequenced_runner_builder)).
    pub fn name(&self) -> &str {
        self.sequence.name()
    }

    /// The traits the runner was created with.
    pub fn traits(&self) -> TaskTraits {
        self.sequence.traits()
    }

    /// Tasks queued and not yet started.
    pub fn pending(&self) -> usize {
        self.sequence.queued()
    }

    /// The capacity of a bounded runner; `None` when unbounded.
    pub fn capacity(&self) -> Option<usize> {
        self.sequence.capacity()
    }

    /// Posts `f` if there is room, never blocking. On an unbounded runner this is `post`.
    ///
    /// Errors: [`PostError::Full`] when the queue is at capacity (counted in
    /// [`RunnerStats::rejected`]), [`PostError::Closed`] after shutdown; both hand the task
    /// back.
    ///
    /// ```
    /// use taskrunner::{PostError, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let seq = pool.sequenced_runner_builder().capacity(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let (started_tx, started_rx) = std::sync::mpsc::channel();
    /// seq.try_post(move || { started_tx.send(()).unwrap(); rx.recv().unwrap(); }).unwrap();
    /// started_rx.recv().unwrap();           // running: it no longer takes a place
    /// seq.try_post(|| {}).unwrap();          // queued: the one place
    /// assert!(matches!(seq.try_post(|| {}), Err(PostError::Full(_))));
    /// tx.send(()).unwrap();
    /// ```
    #[track_caller]
    pub fn try_post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        Sequence::post(&self.sequence, Task::with_location(f, Location::caller()))
    }

    /// Posts `f`, waiting up to `timeout` for room in a bounded runner's queue (on an
    /// unbounded runner this is `post`).
    ///
    /// Errors: [`PostError::Full`] when the timeout elapsed first (counted in
    /// [`RunnerStats::rejected`]), [`PostError::Closed`] when the runner is or becomes
    /// closed, [`PostError::WouldDeadlock`] when the queue is full and the caller is one of the
    /// runner's own tasks. Each hands the task back.
    #[track_caller]
    pub fn post_timeout<F>(&self, f: F, timeout: Duration) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        let task = Task::with_location(f, Location::caller());
        let sequence = &self.sequence;
        if sequence.capacity().is_none() {
            return Sequence::post(sequence, task);
        }
        if self.runs_tasks_in_current_sequence() {
            // Never wait here: the queue cannot drain before the caller returns.
            return match Sequence::post(sequence, task) {
                Err(PostError::Full(task)) => Err(PostError::WouldDeadlock(task)),
                other => other,
            };
        }
        Sequence::post_until(sequence, task, Instant::now().checked_add(timeout))
    }

    /// A snapshot of the runner's statistics (see [`RunnerStats`]).
    pub fn stats(&self) -> RunnerStats {
        let (running, tasks_run, rejected) = self.sequence.stats();
        RunnerStats {
            name: self.name().to_owned(),
            kind: RunnerKind::Sequenced,
            pending: self.sequence.queued(),
            running,
            rejected,
            closed: self.is_closed(),
            barrier_pending: false,
            tasks_run,
        }
    }

    /// Stops accepting posts. Tasks already queued run or are dropped according to the
    /// runner's [`ShutdownBehavior`](crate::ShutdownBehavior); dropped ones are counted in the
    /// pool's [`ShutdownReport`](crate::ShutdownReport). Idempotent, never blocks, and may be
    /// called from the runner's own tasks.
    pub fn shutdown(&self) {
        self.sequence.close();
    }

    /// Whether the runner (or its pool) has shut down.
    pub fn is_closed(&self) -> bool {
        self.sequence.is_closed()
    }

    /// Runs `callback` after every task posted before it, and before every task posted after
    /// it. (On a sequence every task is such a barrier; the method exists so code can flush any
    /// runner the same way.)
    #[track_caller]
    pub fn flush<F>(&self, callback: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post(callback)
    }

    /// Waits until every task posted before the call has finished.
    ///
    /// Errors: [`WaitError::WouldDeadlock`] when called from one of this runner's own tasks,
    /// [`WaitError::Timeout`], and [`WaitError::ShutDown`] when the runner is closed or shuts
    /// down during the wait (so those tasks may never run). On a bounded runner the wait
    /// includes waiting for room for the marker task it posts.
    #[track_caller]
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.runs_tasks_in_current_sequence() {
            return Err(WaitError::WouldDeadlock);
        }
        // On a bounded runner the marker waits for room, within the same timeout.
        wait_idle_behind(self.sequence_token(), timeout, Location::caller(), |marker, deadline| {
            Sequence::post_until(&self.sequence, marker, deadline)
        })
    }

    /// Waits until the runner has shut down (someone called [`shutdown`](Self::shutdown), or
    /// the pool shut down) and its last task has finished or been dropped.
    ///
    /// Errors: [`WaitError::WouldDeadlock`] from one of this runner's own tasks,
    /// [`WaitError::Timeout`].
    pub fn wait_shutdown(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.runs_tasks_in_current_sequence() {
            return Err(WaitError::WouldDeadlock);
        }
        let deadline = Instant::now().checked_add(timeout);
        let sequence = &self.sequence;
        if sequence.pool().wait_runner_event(deadline, || sequence.is_terminated()) {
            Ok(())
        } else {
            Err(WaitError::Timeout)
        }
    }
}

impl TaskRunner for SequencedTaskRunner {
    #[inline(always)]
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        Sequence::post(&self.sequence, task)
    }

    fn sequence_token(&self) -> Option<SequenceToken> {
        Some(self.sequence.token())
    }

    fn is_closed(&self) -> bool {
        self.sequence.is_closed()
    }

    fn timer_target(&self) -> Option<TimerTarget> {
        let sequence = self.sequence.clone();
        Some(
            TimerTarget::new(
                self.sequence.pool().timer().clone(),
                std::sync::Arc::new(self.clone()),
            )
            .with_reject_closed(move |task| sequence.reject(crate::RejectReason::Closed, task)),
        )
    }
}

/// Configuration for a [`SequencedTaskRunner`]; see
/// [`ThreadPool::sequenced_runner_builder`](crate::ThreadPool::sequenced_runner_builder).
///
/// ```
/// use taskrunner::{Priority, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let db = pool
///     .sequenced_runner_builder()
///     .name("db")
///     .traits(TaskTraits::default().with_priority(Priority::UserBlocking))
///     .build()
///     .unwrap();
/// assert_eq!(db.name(), "db");
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SequencedRunnerBuilder {
    pool: Arc<Shared>,
    name: Option<std::sync::Arc<str>>,
    traits: TaskTraits,
    capacity: Option<usize>,
}

impl fmt::Debug for SequencedRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequencedRunnerBuilder")
            .field("name", &self.name)
            .field("traits", &self.traits)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl SequencedRunnerBuilder {
    pub(crate) fn new(pool: Arc<Shared>) -> SequencedRunnerBuilder {
        SequencedRunnerBuilder { pool, name: None, traits: TaskTraits::default(), capacity: None }
    }

    /// The runner's name, shown in panic reports.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = Some(std::sync::Arc::from(name.as_ref()));
        self
    }

    /// The runner's traits.
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }

    /// Bounds the queue: at most `capacity` tasks wait (the running task does not count).
    /// Default: unbounded. `build` rejects 0. See [`SequencedTaskRunner::try_post`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Creates the runner.
    pub fn build(self) -> Result<SequencedTaskRunner, BuildError> {
        if self.capacity == Some(0) {
            return Err(BuildError::new(
                "a bounded runner needs a capacity of at least 1, got 0 (leave it unset for an \
                 unbounded queue)",
            ));
        }
        Ok(SequencedTaskRunner::bounded(self.pool, self.traits, self.name, self.capacity))
    }
}
