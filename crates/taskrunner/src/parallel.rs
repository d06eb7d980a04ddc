//! [`ParallelTaskRunner`]: up to N tasks at once on a pool, with `flush` barriers.
//!
//! Decisions where the design is silent:
//!
//! - **Max concurrency** is a [`NonZeroUsize`](std::num::NonZeroUsize) in
//!   [`ThreadPool::parallel_runner`](crate::ThreadPool::parallel_runner), so a zero cannot be
//!   passed (`pool.parallel_runner(traits, 8.try_into()?)`), and a plain `usize` in
//!   [`ParallelRunnerBuilder::max_concurrency`], whose `build` returns a [`BuildError`] for 0.
//!   Values above 65535 are treated as 65535 (no pool has more workers).
//! - **Tasks start in posting order** (the queue is FIFO), but run concurrently, so they may
//!   finish in any order. There is no sequence token: [`TaskRunner::sequence_token`] is `None`.
//! - **`flush` is a barrier**: its callback runs after every task posted before it finished,
//!   and no task posted after it starts before the callback returned. No worker thread blocks
//!   while a barrier waits: the last earlier task's worker runs the callback.
//! - **`wait_idle`** posts a flush and waits for it, so it waits for the tasks posted before
//!   the call, not for later ones. From one of the runner's own tasks it returns
//!   [`WaitError::WouldDeadlock`] (the flush cannot run before that task returns).
//!
//! The machinery (slots, the state word, the barrier protocol) is in `pool/parallel.rs`.

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::current::{self, SequenceToken};
use crate::handle::wait_idle_behind;
use crate::pool::{Parallel, Shared};
use crate::stats::{RunnerKind, RunnerStats};
use crate::sync::Arc;
use crate::time::TimerTarget;
use crate::{BuildError, PostError, Task, TaskRunner, TaskTraits, WaitError};

/// Runs at most N of its tasks at once, on the threads of a pool, at the runner's priority.
///
/// Tasks start in posting order. [`flush`](ParallelTaskRunner::flush) posts a barrier. A handle
/// is a cheap `Clone`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(4).build()?;
/// let par = pool.parallel_runner(TaskTraits::default(), 2.try_into()?);
/// let done = Arc::new(AtomicUsize::new(0));
/// for _ in 0..10 {
///     let done = done.clone();
///     par.post(move || { done.fetch_add(1, Ordering::Relaxed); })?;
/// }
/// let (tx, rx) = std::sync::mpsc::channel();
/// let seen = done.clone();
/// par.flush(move || tx.send(seen.load(Ordering::Relaxed)).unwrap())?;
/// assert_eq!(rx.recv()?, 10); // the barrier ran after all ten
/// par.wait_idle(Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ParallelTaskRunner {
    parallel: Arc<Parallel>,
}

impl fmt::Debug for ParallelTaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelTaskRunner")
            .field("name", &self.name())
            .field("traits", &self.parallel.traits())
            .field("max_concurrency", &self.max_concurrency())
            .finish()
    }
}

impl ParallelTaskRunner {
    pub(crate) fn new(
        pool: Arc<Shared>,
        traits: TaskTraits,
        max_concurrency: usize,
        name: Option<std::sync::Arc<str>>,
    ) -> ParallelTaskRunner {
        ParallelTaskRunner {
            parallel: Arc::new(Parallel::new(pool, traits, max_concurrency, name)),
        }
    }

    pub(crate) fn from_parallel(parallel: Arc<Parallel>) -> ParallelTaskRunner {
        ParallelTaskRunner { parallel }
    }

    /// The parallel runner whose task is running on this thread, if any.
    pub fn current() -> Option<ParallelTaskRunner> {
        current::current_runner().and_then(|r| r.as_parallel().cloned())
    }

    /// The runner's name (`"parallel"` unless set with
    /// [`ThreadPool::parallel_runner_builder`](crate::ThreadPool::parallel_runner_builder)).
    pub fn name(&self) -> &str {
        self.parallel.name()
    }

    /// The traits the runner was created with.
    pub fn traits(&self) -> TaskTraits {
        self.parallel.traits()
    }

    /// The most tasks that run at once.
    pub fn max_concurrency(&self) -> usize {
        self.parallel.max_concurrency()
    }

    /// Tasks (and flush callbacks) queued and not yet started.
    pub fn pending(&self) -> usize {
        self.parallel.pending()
    }

    /// Posts a barrier: `callback` runs after every task posted before it has finished, and no
    /// task posted after it starts before `callback` has returned.
    ///
    /// The callback is a task of the runner: it counts in the statistics, a panic in it is
    /// reported like any task's, and at shutdown it runs or is dropped by the runner's
    /// [`ShutdownBehavior`](crate::ShutdownBehavior) (the barrier still holds either way).
    #[track_caller]
    pub fn flush<F>(&self, callback: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        Parallel::flush(&self.parallel, Task::with_location(callback, Location::caller()))
    }

    /// Waits until every task posted before the call has finished.
    ///
    /// Errors: [`WaitError::WouldDeadlock`] when called from one of this runner's own tasks,
    /// [`WaitError::Timeout`], and [`WaitError::ShutDown`] when the runner is closed or shuts
    /// down during the wait.
    #[track_caller]
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.is_current() {
            return Err(WaitError::WouldDeadlock);
        }
        // A flush is refused only when the runner is closed: the wait reports `ShutDown`.
        wait_idle_behind(None, timeout, Location::caller(), |marker, _| {
            Parallel::flush(&self.parallel, marker)
        })
    }

    /// Waits until the runner has shut down and its last task has finished or been dropped.
    ///
    /// Errors: [`WaitError::WouldDeadlock`] from one of this runner's own tasks,
    /// [`WaitError::Timeout`].
    pub fn wait_shutdown(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.is_current() {
            return Err(WaitError::WouldDeadlock);
        }
        let deadline = Instant::now().checked_add(timeout);
        let parallel = &self.parallel;
        if parallel.pool().wait_runner_event(deadline, || parallel.is_terminated()) {
            Ok(())
        } else {
            Err(WaitError::Timeout)
        }
    }

    /// Stops accepting posts. Queued tasks run or are dropped according to the runner's
    /// [`ShutdownBehavior`](crate::ShutdownBehavior); dropped ones are counted in the pool's
    /// [`ShutdownReport`](crate::ShutdownReport). Idempotent, never blocks, and may be called
    /// from the runner's own tasks.
    pub fn shutdown(&self) {
        self.parallel.close();
    }

    /// Whether the runner (or its pool) has shut down.
    pub fn is_closed(&self) -> bool {
        self.parallel.is_closed()
    }

    /// A snapshot of the runner's statistics (see [`RunnerStats`]).
    pub fn stats(&self) -> RunnerStats {
        let counters = self.parallel.counters();
        RunnerStats {
            name: self.name().to_owned(),
            kind: RunnerKind::Parallel,
            pending: self.parallel.pending(),
            running: counters.running(),
            rejected: counters.rejected(),
            closed: self.is_closed(),
            barrier_pending: self.parallel.barrier_pending(),
            tasks_run: counters.tasks_run(),
        }
    }

    /// Whether both handles lead to the same runner.
    pub(crate) fn is_same_runner(&self, other: &ParallelTaskRunner) -> bool {
        Arc::ptr_eq(&self.parallel, &other.parallel)
    }

    /// Whether the calling code is one of this runner's tasks.
    fn is_current(&self) -> bool {
        current::current_runner()
            .and_then(|r| r.as_parallel().map(|p| p.is_same_runner(self)))
            .unwrap_or(false)
    }
}

impl TaskRunner for ParallelTaskRunner {
    #[inline]
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        Parallel::post(&self.parallel, task)
    }

    fn sequence_token(&self) -> Option<SequenceToken> {
        None
    }

    fn is_closed(&self) -> bool {
        self.parallel.is_closed()
    }

    fn timer_target(&self) -> Option<TimerTarget> {
        let parallel = self.parallel.clone();
        Some(
            TimerTarget::new(
                self.parallel.pool().timer().clone(),
                std::sync::Arc::new(self.clone()),
            )
            .with_reject_closed(move |task| {
                let priority = parallel.traits().priority();
                parallel.pool().reject(parallel.name(), priority, crate::RejectReason::Closed, task)
            }),
        )
    }
}

/// Configuration for a [`ParallelTaskRunner`]; see
/// [`ThreadPool::parallel_runner_builder`](crate::ThreadPool::parallel_runner_builder).
///
/// ```
/// use taskrunner::{TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(2).build().unwrap();
/// assert!(pool.parallel_runner_builder().max_concurrency(0).build().is_err());
/// let io = pool.parallel_runner_builder().name("io").max_concurrency(4).build().unwrap();
/// assert_eq!((io.name(), io.max_concurrency()), ("io", 4));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ParallelRunnerBuilder {
    pool: Arc<Shared>,
    name: Option<std::sync::Arc<str>>,
    traits: TaskTraits,
    max_concurrency: Option<usize>,
}

impl fmt::Debug for ParallelRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelRunnerBuilder")
            .field("name", &self.name)
            .field("traits", &self.traits)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl ParallelRunnerBuilder {
    pub(crate) fn new(pool: Arc<Shared>) -> ParallelRunnerBuilder {
        ParallelRunnerBuilder {
            pool,
            name: None,
            traits: TaskTraits::default(),
            max_concurrency: None,
        }
    }

    /// The runner's name, shown in panic reports and statistics.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = Some(std::sync::Arc::from(name.as_ref()));
        self
    }

    /// The runner's traits.
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }

    /// The most tasks that run at once. Default: the pool's number of workers. `build`
    /// rejects 0.
    pub fn max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = Some(max_concurrency);
        self
    }

    /// Creates the runner.
    pub fn build(self) -> Result<ParallelTaskRunner, BuildError> {
        let max = match self.max_concurrency {
            Some(0) => {
                return Err(BuildError::new(
                    "a parallel runner needs a max concurrency of at least 1, got 0",
                ))
            }
            Some(n) => n,
            None => self.pool.worker_count(),
        };
        Ok(ParallelTaskRunner::new(self.pool, self.traits, max, self.name))
    }
}
