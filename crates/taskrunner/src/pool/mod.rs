//! The thread pool: workers, the queues of ready task sources, sleep and wake, shutdown.
//!
//! The protocols are written down in `README.md` beside this file.

mod bounded;
mod parallel;
pub(crate) mod queue;
mod sequence;
mod sleep;
mod tracker;
mod worker;

use std::fmt;
use std::panic::Location;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::panic_message;
use crate::observe::{self, RejectReason, RejectedReport};
use crate::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crate::sync::{thread, Arc, Condvar, Mutex, Queue};
use crate::time::{Clock, RealClock, TimerService, TimerTarget};
use crate::{BuildError, PostError, Priority, SequencedTaskRunner, Task, TaskRunner, TaskTraits};

pub(crate) use bounded::{Bounded, Reserve};
pub(crate) use parallel::{Parallel, SlotEnd};
pub(crate) use sequence::{Release, Sequence};
pub use tracker::ShutdownReport;
pub(crate) use tracker::Tracker;

use queue::BlockCache;
use sleep::{Notified, Sleep};

/// Something the pool schedules: a whole sequence (one entry however many tasks it holds), one
/// slot of a parallel runner (see `parallel.rs`), or a one-off task.
pub(crate) enum Source {
    Sequence(Arc<Sequence>),
    Parallel(Arc<Parallel>),
    Task(Task, TaskTraits),
}

/// Test environment: tasks accepted and not yet run or dropped.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    next_id: u64,
    tasks: std::collections::HashMap<u64, &'static Location<'static>>,
}

/// Removes a tracked task from `InFlight` when it has run or is dropped.
struct Untrack {
    in_flight: std::sync::Arc<crate::sync::Mutex<InFlight>>,
    id: u64,
}

impl Drop for Untrack {
    fn drop(&mut self) {
        self.in_flight.lock().tasks.remove(&self.id);
    }
}

/// What a worker is doing, as seen by shutdown.
const IDLE: u8 = 0;
const RUNNING_WAITED: u8 = 1;
const RUNNING_CONTINUE: u8 = 2;

/// Per-worker counters, padded so workers do not share cache lines.
#[derive(Debug, Default)]
struct WorkerSlot {
    ran: AtomicU64,
    activity: AtomicU8,
}

/// A panic caught in a task, as handed to the pool's panic handler.
#[derive(Debug)]
pub struct PanicReport<'a> {
    runner: &'a str,
    message: &'a str,
    location: &'static Location<'static>,
}

impl<'a> PanicReport<'a> {
    pub(crate) fn new(
        runner: &'a str,
        message: &'a str,
        location: &'static Location<'static>,
    ) -> PanicReport<'a> {
        PanicReport { runner, message, location }
    }

    /// The name of the runner whose task panicked.
    pub fn runner(&self) -> &str {
        self.runner
    }

    /// The panic message (`<non-string panic payload>` when it was not a string).
    pub fn message(&self) -> &str {
        self.message
    }

    /// Where the task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

impl fmt::Display for PanicReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "taskrunner: task on runner '{}' posted from {} panicked: {}",
            self.runner, self.location, self.message
        )
    }
}

pub(crate) type PanicHandler = Box<dyn Fn(&PanicReport<'_>) + Send + Sync>;
type ThreadNamer = Box<dyn Fn(usize) -> String + Send + Sync>;
type RejectedHandler = Box<dyn Fn(&RejectedReport<'_>) + Send + Sync>;

/// Exit bookkeeping, guarded by `Shared::exits`.
struct Exits {
    exited: Vec<bool>,
    handles: Vec<Option<thread::JoinHandle<()>>>,
}

/// State shared by the workers, the runners and the pool handles.
pub(crate) struct Shared {
    id: u64,
    name: std::sync::Arc<str>,
    queues: [Queue<Source>; Priority::COUNT],
    sleep: Sleep,
    tracker: std::sync::Arc<Tracker>,
    workers: Box<[CachePadded<WorkerSlot>]>,
    live_workers: AtomicUsize,
    /// Finished queue blocks, shared by the pool's sequences (see `queue.rs`).
    blocks: BlockCache,
    exits: Mutex<Exits>,
    exits_changed: Condvar,
    /// Bumped whenever a runner may have finished shutting down (`wait_shutdown` waits on it).
    runner_events: Mutex<u64>,
    runner_events_changed: Condvar,
    panic_handler: PanicHandler,
    /// Called for every rejected post (see `observe`); looked up on the error path only.
    rejected_handler: Option<RejectedHandler>,
    /// Tracing and metrics settings (empty without those features).
    observe: observe::Settings,
    /// Metric keys of the pool's one-off tasks, per priority (zero-sized without `metrics`).
    one_off_metrics: [observe::RunnerMetrics; Priority::COUNT],
    /// The pool's clock and its timer service (delayed and repeating tasks; see `time/`).
    clock: std::sync::Arc<dyn Clock>,
    timer: std::sync::Arc<TimerService>,
    /// Test environment only: count sources queued or running, so `sources_idle` can tell when
    /// the pool has nothing left to do. Off (one predictable branch) in normal pools.
    track_busy: bool,
    busy_sources: AtomicUsize,
    /// Test environment only: the posted-from location of every task accepted and not yet
    /// run or dropped, for the watchdog's report.
    in_flight: std::sync::Arc<crate::sync::Mutex<InFlight>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The queue blocks the pool's sequences share (see `queue.rs`).
    #[inline]
    pub(crate) fn blocks(&self) -> &BlockCache {
        &self.blocks
    }

    pub(crate) fn name(&self) -> &std::sync::Arc<str> {
        &self.name
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    #[inline]
    pub(crate) fn is_accepting(&self) -> bool {
        self.tracker.is_accepting()
    }

    pub(crate) fn timer(&self) -> &std::sync::Arc<TimerService> {
        &self.timer
    }

    /// Posts a one-off task with the default traits.
    #[allow(unused_mut)] // `observe::posted` stamps the task only with `tracing` or `metrics`.
    fn post_pool_task(&self, task: Task) -> Result<(), PostError> {
        let traits = TaskTraits::default();
        if !self.is_accepting() {
            return Err(self.reject(&self.name, traits.priority(), RejectReason::Closed, task));
        }
        let mut task = self.track(task);
        observe::posted(&mut task, &self.name);
        self.schedule(Source::Task(task, traits), traits.priority());
        Ok(())
    }

    /// Queues a ready source and wakes a worker if none is awake to find it.
    #[inline]
    pub(crate) fn schedule(&self, source: Source, priority: Priority) {
        if self.track_busy {
            self.busy_sources.fetch_add(1, Ordering::AcqRel);
        }
        self.queues[priority.index()].push(source);
        if self.sleep.notify_one() == Notified::Terminated {
            self.drain_after_termination();
        }
    }

    /// Whether `track` wraps tasks (only in a test environment's pool).
    #[inline]
    pub(crate) fn tracks_tasks(&self) -> bool {
        self.track_busy
    }

    /// Test environment: wraps an accepted task so the watchdog can list it until it has run or
    /// been dropped. Free (one predictable branch) in a normal pool.
    #[inline]
    pub(crate) fn track(&self, task: Task) -> Task {
        if self.track_busy {
            self.track_slow(task)
        } else {
            task
        }
    }

    #[cold]
    fn track_slow(&self, task: Task) -> Task {
        let location = task.location();
        let id = {
            let mut in_flight = self.in_flight.lock();
            in_flight.next_id += 1;
            let id = in_flight.next_id;
            in_flight.tasks.insert(id, location);
            id
        };
        let guard = Untrack { in_flight: self.in_flight.clone(), id };
        Task::with_location(
            move || {
                let _guard = guard;
                task.run();
            },
            location,
        )
    }

    /// Test environment: the posted-from locations of the tasks queued or running, with how
    /// many came from each, most first.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn in_flight(&self) -> Vec<(&'static Location<'static>, usize)> {
        let mut counts: std::collections::HashMap<&'static Location<'static>, usize> =
            std::collections::HashMap::new();
        for location in self.in_flight.lock().tasks.values() {
            *counts.entry(location).or_insert(0) += 1;
        }
        let mut all: Vec<_> = counts.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all
    }

    /// A worker finished with a source it popped (ran, re-queued or drained it).
    #[inline]
    pub(crate) fn source_finished(&self) {
        if self.track_busy && self.busy_sources.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify_runner_event();
        }
    }

    /// Test environment: waits until no source is queued or running (every task posted so
    /// far, and every task those posted, has run). False if `deadline` passed first.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn wait_sources_idle(&self, deadline: Instant) -> bool {
        debug_assert!(self.track_busy);
        self.wait_runner_event(Some(deadline), || self.busy_sources.load(Ordering::Acquire) == 0)
    }

    /// Test environment: how many sources are queued or running.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn busy_sources(&self) -> usize {
        self.busy_sources.load(Ordering::Acquire)
    }

    /// Any source queued, at any priority.
    pub(crate) fn has_queued(&self) -> bool {
        self.queues.iter().any(|q| !q.is_empty())
    }

    /// The next source, by priority with bounded aging: a non-empty lower priority level is
    /// passed over at most `AGING_LIMIT` times before it gets a turn. `ages` is per worker.
    pub(crate) fn pop_source(&self, ages: &mut [u32; Priority::COUNT]) -> Option<Source> {
        const AGING_LIMIT: u32 = 8;
        let highest = (0..Priority::COUNT).rev().find(|&p| !self.queues[p].is_empty())?;
        let mut pick = highest;
        for (level, age) in ages.iter_mut().enumerate().take(highest) {
            if !self.queues[level].is_empty() {
                *age += 1;
                if *age > AGING_LIMIT && pick == highest {
                    pick = level;
                }
            }
        }
        ages[pick] = 0;
        self.queues[pick].pop().or_else(|| self.queues.iter().rev().find_map(|q| q.pop()))
    }

    /// Reports a panic caught in a task.
    #[cold]
    pub(crate) fn report_panic(
        &self,
        runner: &str,
        payload: &(dyn std::any::Any + Send),
        location: &'static Location<'static>,
    ) {
        let message = panic_message(payload);
        let report = PanicReport { runner, message: &message, location };
        // A panicking handler must not take the worker down.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (self.panic_handler)(&report)
        }));
    }

    /// A post of `task` to `runner` was refused for `reason`: records it (metrics, tracing),
    /// calls the pool's rejected handler, and builds the error that hands the task back.
    #[cold]
    #[inline(never)]
    pub(crate) fn reject(
        &self,
        runner: &str,
        priority: Priority,
        reason: RejectReason,
        task: Task,
    ) -> PostError {
        let report = RejectedReport::new(runner, priority, reason, task.location());
        observe::rejected(&report);
        if let Some(handler) = &self.rejected_handler {
            // A panicking handler must not take the poster down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&report)));
        }
        match reason {
            RejectReason::Closed => PostError::Closed(task),
            RejectReason::Full => PostError::Full(task),
        }
    }

    /// The pool's one-off tasks of `priority`, as spans and metrics see them.
    pub(crate) fn observed(&self, priority: Priority) -> observe::Runner<'_> {
        observe::Runner::new(&self.name, priority, &self.one_off_metrics[priority.index()])
    }

    /// Tracing and metrics settings.
    #[inline]
    pub(crate) fn observe(&self) -> &observe::Settings {
        &self.observe
    }

    pub(crate) fn notify_runner_event(&self) {
        *self.runner_events.lock() += 1;
        self.runner_events_changed.notify_all();
    }

    /// Waits until `done()` holds, re-checking whenever a runner event is signalled.
    pub(crate) fn wait_runner_event(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut() -> bool,
    ) -> bool {
        let mut events = self.runner_events.lock();
        loop {
            if done() {
                return true;
            }
            match deadline {
                None => events = self.runner_events_changed.wait(events),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    events = self.runner_events_changed.wait_timeout(events, deadline - now);
                }
            }
        }
    }

    /// Called by a poster that found the pool terminated: every worker has exited, so the
    /// poster drops what is queued itself, counting each task as skipped.
    #[cold]
    fn drain_after_termination(&self) {
        for queue in &self.queues {
            while let Some(source) = queue.pop() {
                worker::drain_source(self, source);
            }
        }
    }

    fn stats(&self) -> crate::PoolStats {
        crate::PoolStats {
            workers: self.live_workers.load(Ordering::Relaxed),
            queued_sources: self.queues.iter().map(|q| q.len()).sum(),
            active_tasks: self
                .workers
                .iter()
                .filter(|w| w.activity.load(Ordering::Relaxed) != IDLE)
                .count(),
            delayed_tasks: self.timer.pending_count(),
            running: self.is_accepting(),
        }
    }

    fn ran(&self) -> u64 {
        self.workers.iter().map(|w| w.ran.load(Ordering::Relaxed)).sum()
    }

    fn begin_shutdown(&self) {
        self.tracker.begin_shutdown();
        // Pending delayed tasks are dropped and counted now, before any report is made.
        self.timer.shutdown();
        self.sleep.shutdown();
        self.notify_runner_event();
    }

    fn shutdown(&self, timeout: Option<Duration>) -> ShutdownReport {
        self.begin_shutdown();
        let me = worker::current_worker_index(self.id);
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut timed_out = false;
        let mut exits = self.exits.lock();
        let still_running = loop {
            let mut waited_for = 0;
            let mut not_waited = 0;
            for (index, slot) in self.workers.iter().enumerate() {
                if exits.exited[index] {
                    continue;
                }
                if Some(index) == me || slot.activity.load(Ordering::Acquire) == RUNNING_CONTINUE {
                    not_waited += 1;
                } else {
                    waited_for += 1;
                }
            }
            if waited_for == 0 {
                break not_waited;
            }
            match deadline {
                None => exits = self.exits_changed.wait(exits),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        timed_out = true;
                        break waited_for + not_waited;
                    }
                    exits = self.exits_changed.wait_timeout(exits, deadline - now);
                }
            }
        };
        // Join the workers that have exited (they are past their last lock, about to return).
        let exits_ref = &mut *exits;
        let handles: Vec<_> = exits_ref
            .handles
            .iter_mut()
            .zip(&exits_ref.exited)
            .filter(|(_, exited)| **exited)
            .filter_map(|(handle, _)| handle.take())
            .collect();
        drop(exits);
        for handle in handles {
            let _ = handle.join();
        }
        self.timer.join();
        self.tracker.report(self.ran(), still_running, timed_out)
    }
}

/// A pool of worker threads that runs task sources: sequences and one-off tasks.
///
/// A `ThreadPool` is a cheap handle (`Clone`). Dropping the last handle starts shutdown
/// without waiting for it; runners created from the pool then reject posts. Call
/// [`shutdown`](ThreadPool::shutdown) or [`shutdown_timeout`](ThreadPool::shutdown_timeout) to
/// wait and get a [`ShutdownReport`].
///
/// ```
/// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().name("app").workers(2).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let h = seq.post_with_result(|| 1 + 1).unwrap();
/// assert_eq!(h.join().unwrap(), 2);
/// let report = pool.shutdown();
/// assert_eq!(report.ran(), 1);
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    owner: Arc<Owner>,
}

/// The user-facing owner of the pool: when the last handle goes, shutdown starts.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.owner.shared.name)
            .field("workers", &self.owner.shared.workers.len())
            .finish()
    }
}

impl ThreadPool {
    /// A builder for a pool.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::default()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.owner.shared.name
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.owner.shared.workers.len()
    }

    /// A new sequenced runner with the given traits. Runners are cheap: make one per piece of
    /// state.
    ///
    /// Memory: an idle sequence that never ran a task takes 128 bytes of heap (16 more with
    /// the `metrics` feature). Tasks are stored in its queue in blocks of 31 (2 KiB each); an
    /// idle sequence keeps its current block and at most one spare, and the pool keeps up to
    /// 32 more finished blocks (64 KiB) for any of its sequences to reuse.
    pub fn sequenced_runner(&self, traits: TaskTraits) -> SequencedTaskRunner {
        SequencedTaskRunner::new(self.owner.shared.clone(), traits, None)
    }

    /// A builder for a sequenced runner with a name (shown in panic reports).
    pub fn sequenced_runner_builder(&self) -> crate::SequencedRunnerBuilder {
        crate::SequencedRunnerBuilder::new(self.owner.shared.clone())
    }

    /// The current time on the pool's [`Clock`] (mock time under the test environment).
    pub fn now(&self) -> Instant {
        self.owner.shared.clock.now()
    }

    /// The pool's clock, for code that runs in its tasks and needs its notion of time.
    pub fn clock(&self) -> std::sync::Arc<dyn Clock> {
        self.owner.shared.clock.clone()
    }

    /// A new parallel runner with the given traits that runs at most `max_concurrency` of its
    /// tasks at once (values above 65535 are treated as 65535). A zero cannot be passed here
    /// (`0.try_into()` fails); [`parallel_runner_builder`](Self::parallel_runner_builder) takes
    /// a plain `usize` and returns a [`BuildError`] for 0.
    ///
    /// ```
    /// use taskrunner::{TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(2).build()?;
    /// let par = pool.parallel_runner(TaskTraits::default(), 8.try_into()?);
    /// assert_eq!(par.max_concurrency(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parallel_runner(
        &self,
        traits: TaskTraits,
        max_concurrency: std::num::NonZeroUsize,
    ) -> crate::ParallelTaskRunner {
        crate::ParallelTaskRunner::new(
            self.owner.shared.clone(),
            traits,
            max_concurrency.get(),
            None,
        )
    }

    /// A builder for a parallel runner with a name, traits and max concurrency.
    pub fn parallel_runner_builder(&self) -> crate::ParallelRunnerBuilder {
        crate::ParallelRunnerBuilder::new(self.owner.shared.clone())
    }

    /// A snapshot of the pool's statistics, read from atomics (no lock).
    pub fn stats(&self) -> crate::PoolStats {
        self.owner.shared.stats()
    }

    /// The shared state (the test environment and loom models drive it directly).
    #[cfg_attr(not(any(feature = "test-util", all(test, loom))), allow(dead_code))]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// Whether shutdown has started.
    pub fn is_shut_down(&self) -> bool {
        !self.owner.shared.is_accepting()
    }

    /// Shuts the pool down and waits: see [`ShutdownBehavior`](crate::ShutdownBehavior) for
    /// what happens to each task. Idempotent. Called from one of the pool's own tasks, it does
    /// not wait for that task (it is counted in
    /// [`still_running`](ShutdownReport::still_running)).
    pub fn shutdown(&self) -> ShutdownReport {
        self.owner.shared.shutdown(None)
    }

    /// Like [`shutdown`](ThreadPool::shutdown), waiting at most `timeout` for running tasks.
    pub fn shutdown_timeout(&self, timeout: Duration) -> ShutdownReport {
        self.owner.shared.shutdown(Some(timeout))
    }
}

/// One-off tasks posted to the pool itself run with the default [`TaskTraits`], in parallel
/// with each other (no sequence).
impl TaskRunner for ThreadPool {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        self.owner.shared.post_pool_task(task)
    }

    fn is_closed(&self) -> bool {
        !self.owner.shared.is_accepting()
    }

    fn timer_target(&self) -> Option<TimerTarget> {
        let shared = &self.owner.shared;
        let reporter = shared.clone();
        Some(
            TimerTarget::new(shared.timer.clone(), std::sync::Arc::new(PoolRunner(shared.clone())))
                .with_reject_closed(move |task| {
                    let priority = TaskTraits::default().priority();
                    reporter.reject(&reporter.name, priority, RejectReason::Closed, task)
                }),
        )
    }
}

/// What the timer posts a pool's delayed one-off tasks to: the pool's shared state, not a
/// `ThreadPool` handle, so a pending timer does not keep the pool from shutting down when its
/// last handle is dropped.
struct PoolRunner(Arc<Shared>);

impl TaskRunner for PoolRunner {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        self.0.post_pool_task(task)
    }

    fn is_closed(&self) -> bool {
        !self.0.is_accepting()
    }
}

/// Configuration for a [`ThreadPool`].
///
/// ```
/// use taskrunner::ThreadPool;
///
/// assert!(ThreadPool::builder().workers(0).build().is_err());
/// let pool = ThreadPool::builder()
///     .name("io")
///     .workers(2)
///     .thread_name(|i| format!("io-worker-{i}"))
///     .panic_handler(|report| eprintln!("{report}"))
///     .build()
///     .unwrap();
/// assert_eq!(pool.workers(), 2);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ThreadPoolBuilder {
    name: String,
    workers: Option<usize>,
    thread_name: Option<ThreadNamer>,
    panic_handler: Option<PanicHandler>,
    rejected_handler: Option<RejectedHandler>,
    observe: observe::Settings,
    clock: Option<std::sync::Arc<dyn Clock>>,
    /// Test environment: timers fired by the environment, busy sources counted.
    test_mode: bool,
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        ThreadPoolBuilder {
            name: "taskrunner".to_owned(),
            workers: None,
            thread_name: None,
            panic_handler: None,
            rejected_handler: None,
            observe: observe::Settings::default(),
            clock: None,
            test_mode: false,
        }
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl ThreadPoolBuilder {
    /// The pool's name; worker threads are named `{name}-{index}` unless
    /// [`thread_name`](Self::thread_name) says otherwise.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The number of worker threads. Default: the machine's available parallelism.
    /// `build` rejects 0.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Names worker threads from their index.
    pub fn thread_name(mut self, f: impl Fn(usize) -> String + Send + Sync + 'static) -> Self {
        self.thread_name = Some(Box::new(f));
        self
    }

    /// Called once for every panic caught in a task, on the worker thread, with the runner
    /// name, the message and the posted-from location. The default writes one line to stderr.
    /// (The process-wide panic hook of the standard library still runs first, as for any
    /// panic; replace it with `std::panic::set_hook` to silence it.)
    pub fn panic_handler(mut self, f: impl Fn(&PanicReport<'_>) + Send + Sync + 'static) -> Self {
        self.panic_handler = Some(Box::new(f));
        self
    }

    /// Called once for every post refused by one of the pool's runners (sequenced, parallel,
    /// the pool's one-off tasks, delayed tasks whose runner closed), on the posting thread (the
    /// timer thread for a delayed task that came due), with the runner name, the reason and
    /// the posted-from location. The default does nothing: the rejected task is handed back
    /// in the [`PostError`] anyway. Only the error path looks the handler up, so it costs an
    /// accepted post nothing. (A single-thread runner has its own `on_rejected`.)
    pub fn rejected_handler(
        mut self,
        f: impl Fn(&RejectedReport<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.rejected_handler = Some(Box::new(f));
        self
    }

    /// Feature `tracing`: a task of this pool that runs for `threshold` or longer records a
    /// `WARN` event `slow task` in its span. Default: one second.
    #[cfg(feature = "tracing")]
    pub fn slow_task_threshold(mut self, threshold: Duration) -> Self {
        self.observe.slow_task = threshold;
        self
    }

    /// The clock delayed and repeating tasks are scheduled on. Default: [`RealClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(std::sync::Arc::new(clock));
        self
    }

    /// Test environment: use `clock`, let the environment fire timers, count busy sources.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn test_mode(mut self, clock: std::sync::Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self.test_mode = true;
        self
    }

    /// Starts the pool's threads.
    ///
    /// On Linux the first pool of a process also registers the process for `membarrier(2)`
    /// (private expedited), once: a busy sequence then lets posts skip a locked instruction,
    /// and its worker pays one such barrier when the burst ends (the pool's `README.md`,
    /// section 1). Where the kernel refuses the command, posts take the plain path.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let workers = match self.workers {
            Some(0) => return Err(BuildError::new("a thread pool needs at least one worker")),
            Some(n) if n > sleep::MAX_WORKERS => {
                return Err(BuildError::new(format!(
                    "a thread pool can have at most {} workers, {n} requested",
                    sleep::MAX_WORKERS
                )))
            }
            Some(n) => n,
            None => default_workers(),
        };
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // Asked (and the process registered for the barrier) here, not on a worker's first
        // busy batch: the registration can take milliseconds (see `sync::asymmetric`).
        crate::sync::asymmetric::available();
        let tracker = std::sync::Arc::new(Tracker::new());
        let clock = self.clock.unwrap_or_else(|| std::sync::Arc::new(RealClock));
        let skipped_to = tracker.clone();
        let timer = std::sync::Arc::new(TimerService::new(
            format!("{}-timer", self.name),
            clock.clone(),
            self.test_mode,
            Box::new(move |location| skipped_to.record_skipped(location)),
        ));
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: std::sync::Arc::from(self.name.as_str()),
            queues: [Queue::new(), Queue::new(), Queue::new()],
            sleep: Sleep::new(workers),
            tracker,
            workers: (0..workers).map(|_| CachePadded::new(WorkerSlot::default())).collect(),
            live_workers: AtomicUsize::new(workers),
            blocks: BlockCache::new(),
            exits: Mutex::new(Exits {
                exited: vec![false; workers],
                handles: (0..workers).map(|_| None).collect(),
            }),
            exits_changed: Condvar::new(),
            runner_events: Mutex::new(0),
            runner_events_changed: Condvar::new(),
            panic_handler: self
                .panic_handler
                .unwrap_or_else(|| Box::new(|report| eprintln!("{report}"))),
            rejected_handler: self.rejected_handler,
            observe: self.observe,
            one_off_metrics: Default::default(),
            clock,
            timer,
            track_busy: self.test_mode,
            busy_sources: AtomicUsize::new(0),
            in_flight: Default::default(),
        });
        for index in 0..workers {
            let thread_name = match &self.thread_name {
                Some(f) => f(index),
                None => format!("{}-{index}", self.name),
            };
            match worker::spawn(shared.clone(), index, thread_name) {
                Ok(handle) => shared.exits.lock().handles[index] = Some(handle),
                Err(error) => {
                    // Workers that did start exit through the normal shutdown path.
                    shared.live_workers.fetch_sub(workers - index, Ordering::AcqRel);
                    {
                        let mut exits = shared.exits.lock();
                        for exited in &mut exits.exited[index..] {
                            *exited = true;
                        }
                    }
                    let pool = ThreadPool { owner: Arc::new(Owner { shared }) };
                    pool.shutdown();
                    return Err(BuildError::new(format!(
                        "failed to spawn a worker thread: {error}"
                    )));
                }
            }
        }
        Ok(ThreadPool { owner: Arc::new(Owner { shared }) })
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(sleep::MAX_WORKERS)
}

/// The process-wide pool, started on first use with one worker per available CPU. It is never
/// shut down by the library: there is nothing to set up and nothing to forget.
pub fn global() -> &'static ThreadPool {
    static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        ThreadPool::builder()
            .name("taskrunner")
            .build()
            .unwrap_or_else(|e| panic!("taskrunner: cannot start the global pool: {e}"))
    })
}

/// A sequenced runner on the [global](global()) pool.
///
/// ```
/// use taskrunner::{TaskRunnerExt, TaskTraits};
///
/// let seq = taskrunner::sequenced_runner(TaskTraits::default());
/// assert_eq!(seq.post_with_result(|| "hello").unwrap().join().unwrap(), "hello");
/// ```
pub fn sequenced_runner(traits: TaskTraits) -> SequencedTaskRunner {
    global().sequenced_runner(traits)
}
