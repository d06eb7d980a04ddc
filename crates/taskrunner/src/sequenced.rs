//! [`SequencedTaskRunner`]: a virtual thread on a pool.

use std::fmt;
use std::time::{Duration, Instant};

use crate::current::{self, SequenceToken};
use crate::pool::{Sequence, Shared};
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

    pub(crate) fn from_sequence(sequence: Arc<Sequence>) -> SequencedTaskRunner {
        SequencedTaskRunner { sequence }
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
    /// down during the wait (so those tasks may never run).
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.runs_tasks_in_current_sequence() {
            return Err(WaitError::WouldDeadlock);
        }
        let mut marker = self.post_with_result(|| ()).map_err(|_| WaitError::ShutDown)?;
        match marker.join_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => {
                marker.cancel();
                Err(WaitError::Timeout)
            }
            Err(_) => Err(WaitError::ShutDown),
        }
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
    #[inline]
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
        Some(TimerTarget::new(
            self.sequence.pool().timer().clone(),
            std::sync::Arc::new(self.clone()),
        ))
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
}

impl fmt::Debug for SequencedRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequencedRunnerBuilder")
            .field("name", &self.name)
            .field("traits", &self.traits)
            .finish_non_exhaustive()
    }
}

impl SequencedRunnerBuilder {
    pub(crate) fn new(pool: Arc<Shared>) -> SequencedRunnerBuilder {
        SequencedRunnerBuilder { pool, name: None, traits: TaskTraits::default() }
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

    /// Creates the runner.
    pub fn build(self) -> Result<SequencedTaskRunner, BuildError> {
        Ok(SequencedTaskRunner::new(self.pool, self.traits, self.name))
    }
}
