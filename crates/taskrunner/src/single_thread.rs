//! [`SingleThreadTaskRunner`]: a runner with its own dedicated, named OS thread.
//!
//! Every task runs on that one thread, in posting order (it is a sequence, with its own
//! [`SequenceToken`]), so thread-affine state (a non-`Send` handle, an FFI library that wants
//! one thread) can live there. It shares the error and shutdown contract of the pool runners
//! but not the pool: it has its own queue, its own panic handler and its own shutdown count.
//!
//! Decisions where the design is silent:
//!
//! - **Queue policy.** Unbounded by default. With a capacity, a full queue either rejects the
//!   post ([`QueuePolicy::Reject`], **the default**: `post` returns [`PostError::Full`] with the
//!   task, the rejection is counted and the `on_rejected` callback is called) or makes `post`
//!   wait for room ([`QueuePolicy::Block`]). A blocking post from the runner's own thread could
//!   never end, so it returns [`PostError::WouldDeadlock`] at once. Whatever the policy,
//!   [`try_post`](SingleThreadTaskRunner::try_post) never waits and
//!   [`post_timeout`](SingleThreadTaskRunner::post_timeout) waits at most its timeout.
//! - **Shutdown.** [`shutdown`](SingleThreadTaskRunner::shutdown) stops accepting posts and
//!   never blocks; queued tasks then run (`BlockShutdown`) or are dropped and counted (the
//!   other behaviours), and the thread exits. [`stop`](SingleThreadTaskRunner::stop) shuts down
//!   and joins the thread (whatever the behaviour: joining is its purpose), returning a
//!   [`ShutdownReport`]. Called from the runner's own task it cannot join itself: it returns
//!   at once and the thread exits after that task. Dropping the last handle does what `stop`
//!   does. Handles from [`current_runner`](crate::current_runner) do not keep the thread
//!   alive.
//! - **Panics** are caught, the thread goes on, and the panic is reported once: to the handler
//!   given to the builder, or as one line on stderr.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::time::{Duration, Instant};

use crate::current::{self, SequenceToken};
use crate::error::panic_message;
use crate::handle::wait_idle_behind;
use crate::observe::{self, RejectReason, RejectedReport};
use crate::pool::{Bounded, PanicHandler, Reserve, Tracker};
use crate::stats::{RunnerCounters, RunnerKind, RunnerStats};
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::thread::{self, JoinHandle, Thread};
use crate::sync::{Arc, Mutex, Queue};
use crate::time::{RealClock, TimerService, TimerTarget};
use crate::{
    BuildError, PanicReport, PostError, RunnerHandle, ShutdownReport, Task, TaskRunner,
    TaskRunnerExt, TaskTraits, WaitError,
};

/// What a post does when a bounded single-thread runner's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum QueuePolicy {
    /// `post` returns [`PostError::Full`] with the task; the rejection is counted
    /// ([`RunnerStats::rejected`]) and the `on_rejected` callback is called. The default.
    #[default]
    Reject,
    /// `post` waits until there is room (or the runner shuts down). From the runner's own
    /// thread it returns [`PostError::WouldDeadlock`] instead of waiting forever.
    Block,
}

/// A post refused because the queue was full, as handed to the `on_rejected` callback of
/// [`SingleThreadRunnerBuilder`]. The task itself goes back to the caller inside the error.
#[derive(Debug)]
pub struct Rejection<'a> {
    runner: &'a str,
    location: &'static Location<'static>,
    capacity: usize,
}

impl Rejection<'_> {
    /// The name of the runner that refused the task.
    pub fn runner(&self) -> &str {
        self.runner
    }

    /// Where the refused task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// The runner's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Display for Rejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "taskrunner: task posted from {} rejected: runner '{}' is full ({} queued)",
            self.location, self.runner, self.capacity
        )
    }
}

type RejectHandler = Box<dyn Fn(&Rejection<'_>) + Send + Sync>;

/// The thread waits for a task (set by the thread, cleared by whoever wakes it).
const SLEEPING: u8 = 1;
/// No post is accepted.
const CLOSED: u8 = 2;
/// The thread has left its loop: a poster that sees this drops what it pushed itself.
const EXITED: u8 = 4;

/// State shared by the handles and the thread.
///
/// # Sleep protocol
///
/// A poster pushes its task, then `fetch_and(!SLEEPING)`: if the bit was set it unparks the
/// thread. The thread, finding the queue empty, `fetch_or(SLEEPING)`, re-checks the queue and
/// parks while the bit stays set. Both are RMWs on `state`, so one is first: either the
/// poster sees `SLEEPING` (and wakes the thread), or the thread's RMW acquires the push and its
/// re-check finds the task. Exit works the same way with `EXITED`: a poster whose RMW comes
/// after the thread set it drains the queue itself, dropping and counting each task, so a post
/// racing shutdown is never leaked.
struct Inner {
    state: AtomicU8,
    queue: Queue<Task>,
    bounded: Option<Bounded>,
    policy: QueuePolicy,
    on_rejected: Option<RejectHandler>,
    panic_handler: PanicHandler,
    tracker: std::sync::Arc<Tracker>,
    /// Delayed and repeating tasks for this runner (its own timer thread, started on first use).
    timer: std::sync::Arc<TimerService>,
    counters: RunnerCounters,
    name: std::sync::Arc<str>,
    traits: TaskTraits,
    token: SequenceToken,
    /// Metric keys (zero-sized without the `metrics` feature).
    metrics: observe::RunnerMetrics,
    /// The runner's thread, set by the thread itself before it first sleeps.
    thread: Mutex<Option<Thread>>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn is_own_thread(&self) -> bool {
        SequenceToken::current() == Some(self.token)
    }

    /// Admission (closed, capacity) and push; `wait`: how long a full queue may be waited on.
    #[allow(unused_mut)] // `observe::posted` stamps the task only with `tracing` or `metrics`.
    fn post(&self, mut task: Task, wait: Wait) -> Result<(), PostError> {
        if self.is_closed() {
            return Err(self.rejected_closed(task));
        }
        if let Some(bounded) = &self.bounded {
            if !bounded.try_reserve() {
                let deadline = match wait {
                    Wait::No => return Err(self.rejected(task, bounded)),
                    _ if self.is_own_thread() => return Err(PostError::WouldDeadlock(task)),
                    Wait::Forever => None,
                    Wait::Until(deadline) => deadline,
                };
                match bounded.reserve_until(deadline, || self.is_closed()) {
                    Reserve::Reserved => {}
                    Reserve::TimedOut => return Err(self.rejected(task, bounded)),
                    Reserve::Closed => return Err(self.rejected_closed(task)),
                }
            }
        }
        observe::posted(&mut task, &self.name);
        self.queue.push(task);
        let prev = self.state.fetch_and(!SLEEPING, Ordering::AcqRel);
        if prev & EXITED != 0 {
            self.drain();
        } else if prev & SLEEPING != 0 {
            self.unpark();
        }
        Ok(())
    }

    /// A post refused because the runner is closed: recorded by `observe` (tracing, metrics).
    #[cold]
    fn rejected_closed(&self, task: Task) -> PostError {
        self.observe_rejection(RejectReason::Closed, &task);
        PostError::Closed(task)
    }

    #[cold]
    fn rejected(&self, task: Task, bounded: &Bounded) -> PostError {
        self.counters.add_rejected();
        self.observe_rejection(RejectReason::Full, &task);
        if let Some(on_rejected) = &self.on_rejected {
            let rejection = Rejection {
                runner: &self.name,
                location: task.location(),
                capacity: bounded.capacity(),
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| on_rejected(&rejection))) {
                self.report_panic(&*payload, task.location());
            }
        }
        PostError::Full(task)
    }

    fn observe_rejection(&self, reason: RejectReason, task: &Task) {
        let report =
            RejectedReport::new(&self.name, self.traits.priority(), reason, task.location());
        observe::rejected(&report);
    }

    #[cold]
    fn unpark(&self) {
        if let Some(thread) = self.thread.lock().as_ref() {
            thread.unpark();
        }
    }

    fn pop(&self) -> Option<Task> {
        let task = self.queue.pop();
        if let (Some(_), Some(bounded)) = (&task, &self.bounded) {
            bounded.free();
        }
        task
    }

    /// Drops every queued task, counting each (the thread has exited).
    #[cold]
    fn drain(&self) {
        while let Some(task) = self.pop() {
            self.skip(task);
        }
    }

    /// Stops accepting posts and wakes the thread so it finishes. Idempotent, never blocks.
    fn close(&self) {
        let prev = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if prev & CLOSED != 0 {
            return;
        }
        if let Some(bounded) = &self.bounded {
            bounded.notify_waiters();
        }
        // Pending delayed tasks are dropped and counted now, like queued ones.
        self.timer.shutdown();
        if self.state.fetch_and(!SLEEPING, Ordering::AcqRel) & SLEEPING != 0 {
            self.unpark();
        }
    }

    /// Runs or drops one task by the runner's shutdown behaviour. Returns whether it ran.
    fn run_or_skip(&self, task: Task) -> bool {
        if self.tracker.should_run(self.traits.shutdown_behavior(), self.is_closed()) {
            let location = task.location();
            let runner = observe::Runner::new(&self.name, self.traits.priority(), &self.metrics);
            let running = observe::start(&task, runner);
            let result = catch_unwind(AssertUnwindSafe(|| task.run()));
            let panicked = result.is_err();
            if let Err(payload) = result {
                self.report_panic(&*payload, location);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            }
            observe::finish(running, panicked, &observe::Settings::default());
            true
        } else {
            self.skip(task);
            false
        }
    }

    fn skip(&self, task: Task) {
        let location = task.location();
        self.tracker.record_skipped(location);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(task))) {
            self.report_panic(&*payload, location);
        }
    }

    #[cold]
    fn report_panic(
        &self,
        payload: &(dyn std::any::Any + Send),
        location: &'static Location<'static>,
    ) {
        let message = panic_message(payload);
        let report = PanicReport::new(&self.name, &message, location);
        let _ = catch_unwind(AssertUnwindSafe(|| (self.panic_handler)(&report)));
    }

    /// The thread's body.
    fn run(this: Arc<Inner>) {
        *this.thread.lock() = Some(thread::current());
        let handle = SingleThreadTaskRunner { inner: this.clone(), _owner: None };
        let _context = current::enter(RunnerHandle::single_thread(handle), Some(this.token));
        loop {
            this.counters.enter();
            let mut ran = 0;
            while let Some(task) = this.pop() {
                ran += u64::from(this.run_or_skip(task));
                if ran == 64 {
                    this.counters.add_run(ran);
                    ran = 0;
                }
            }
            this.counters.add_run(ran);
            this.counters.exit();
            let prev = this.state.fetch_or(SLEEPING, Ordering::AcqRel);
            if !this.queue.is_empty() {
                this.state.fetch_and(!SLEEPING, Ordering::AcqRel);
                continue;
            }
            if prev & CLOSED != 0 {
                break;
            }
            while this.state.load(Ordering::Acquire) & SLEEPING != 0 {
                thread::park();
            }
        }
        // Closed and empty. Posts whose RMW came before this one are in the queue now; later
        // ones see EXITED and drain themselves.
        this.state.fetch_or(EXITED, Ordering::AcqRel);
        let mut ran = 0;
        while let Some(task) = this.pop() {
            ran += u64::from(this.run_or_skip(task));
        }
        this.counters.add_run(ran);
    }
}

/// How long a post may wait for room.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Option<Instant>),
}

/// Joins the thread when the last owning handle goes.
struct Owner {
    inner: Arc<Inner>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = stop(&self.inner);
    }
}

fn stop(inner: &Inner) -> ShutdownReport {
    inner.close();
    if inner.is_own_thread() {
        // From the runner's own task: the thread exits after it; it cannot join itself.
        return inner.tracker.report(inner.counters.tasks_run(), 1, false);
    }
    let handle = inner.join.lock().take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
    inner.timer.join();
    inner.tracker.report(inner.counters.tasks_run(), 0, false)
}

/// Runs its tasks one at a time, in posting order, on one dedicated OS thread.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{SingleThreadTaskRunner, TaskRunnerExt};
///
/// let io = SingleThreadTaskRunner::builder().name("io").capacity(1024).build()?;
/// let a = io.post_with_result(|| std::thread::current().id())?.join()?;
/// let b = io.post_with_result(|| std::thread::current().name().map(String::from))?.join()?;
/// assert_ne!(a, std::thread::current().id());
/// assert_eq!(b.as_deref(), Some("io"));
/// io.stop(); // joins the thread (dropping the last handle does too)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SingleThreadTaskRunner {
    inner: Arc<Inner>,
    /// `None` for the handles given out inside the thread (`current_runner`), so the thread
    /// does not keep itself alive.
    _owner: Option<Arc<Owner>>,
}

impl fmt::Debug for SingleThreadTaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleThreadTaskRunner")
            .field("name", &self.name())
            .field("traits", &self.inner.traits)
            .field("capacity", &self.capacity())
            .field("policy", &self.inner.policy)
            .finish()
    }
}

impl SingleThreadTaskRunner {
    /// A builder for a single-thread runner.
    pub fn builder() -> SingleThreadRunnerBuilder {
        SingleThreadRunnerBuilder::default()
    }

    /// The single-thread runner whose task is running on this thread, if any.
    pub fn current() -> Option<SingleThreadTaskRunner> {
        current::current_runner().and_then(|r| r.as_single_thread().cloned())
    }

    /// The runner's name, which is also its thread's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The traits the runner was created with.
    pub fn traits(&self) -> TaskTraits {
        self.inner.traits
    }

    /// The capacity of the queue; `None` when unbounded.
    pub fn capacity(&self) -> Option<usize> {
        self.inner.bounded.as_ref().map(|b| b.capacity())
    }

    /// What `post` does when the queue is full.
    pub fn queue_policy(&self) -> QueuePolicy {
        self.inner.policy
    }

    /// Tasks queued and not yet started.
    pub fn pending(&self) -> usize {
        self.inner.queue.len()
    }

    /// Posts `f` if there is room, never waiting, whatever the [`QueuePolicy`].
    ///
    /// Errors: [`PostError::Full`] (counted, `on_rejected` called), [`PostError::Closed`].
    #[track_caller]
    pub fn try_post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.inner.post(Task::with_location(f, Location::caller()), Wait::No)
    }

    /// Posts `f`, waiting up to `timeout` for room, whatever the [`QueuePolicy`].
    ///
    /// Errors: [`PostError::Full`] when the timeout elapsed (counted, `on_rejected` called),
    /// [`PostError::Closed`], and [`PostError::WouldDeadlock`] when the queue is full and the
    /// caller runs on the runner's own thread.
    #[track_caller]
    pub fn post_timeout<F>(&self, f: F, timeout: Duration) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        let deadline = Instant::now().checked_add(timeout);
        self.inner.post(Task::with_location(f, Location::caller()), Wait::Until(deadline))
    }

    /// Runs `callback` after every task posted before it and before every task posted after it
    /// (every task of a single-thread runner is such a barrier; the method exists so code can
    /// flush any runner the same way).
    #[track_caller]
    pub fn flush<F>(&self, callback: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post(callback)
    }

    /// Waits until every task posted before the call has finished.
    ///
    /// Errors: [`WaitError::WouldDeadlock`] from the runner's own thread,
    /// [`WaitError::Timeout`], [`WaitError::ShutDown`] when the runner is closed or shuts down
    /// during the wait (or its queue is full and refuses the marker task).
    #[track_caller]
    pub fn wait_idle(&self, timeout: Duration) -> Result<(), WaitError> {
        if self.inner.is_own_thread() {
            return Err(WaitError::WouldDeadlock);
        }
        // A full queue is waited on, within the same timeout.
        wait_idle_behind(Some(self.inner.token), timeout, Location::caller(), |marker, deadline| {
            self.inner.post(marker, Wait::Until(deadline))
        })
    }

    /// Stops accepting posts (they return [`PostError::Closed`]); queued tasks then run or are
    /// dropped by the runner's [`ShutdownBehavior`](crate::ShutdownBehavior), and the thread
    /// exits. Idempotent, never blocks, callable from the runner's own tasks.
    pub fn shutdown(&self) {
        self.inner.close();
    }

    /// Shuts down and joins the thread, then reports what ran and what was dropped. From the
    /// runner's own task it does not join (the thread exits once that task returns) and the
    /// report counts that task in [`still_running`](ShutdownReport::still_running).
    pub fn stop(&self) -> ShutdownReport {
        stop(&self.inner)
    }

    /// Whether the runner has shut down.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// A snapshot of the runner's statistics (see [`RunnerStats`]).
    pub fn stats(&self) -> RunnerStats {
        let counters = &self.inner.counters;
        RunnerStats {
            name: self.name().to_owned(),
            kind: RunnerKind::SingleThread,
            pending: self.pending(),
            running: counters.running(),
            rejected: counters.rejected(),
            closed: self.is_closed(),
            barrier_pending: false,
            tasks_run: counters.tasks_run(),
        }
    }
}

impl TaskRunner for SingleThreadTaskRunner {
    /// Posts by the runner's [`QueuePolicy`] when the queue is full.
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        let wait = match self.inner.policy {
            QueuePolicy::Reject => Wait::No,
            QueuePolicy::Block => Wait::Forever,
        };
        self.inner.post(task, wait)
    }

    fn sequence_token(&self) -> Option<SequenceToken> {
        Some(self.inner.token)
    }

    /// The runner's own timer thread; a pending delayed task does not keep the runner alive
    /// (when the last handle is dropped, pending delayed tasks are dropped and counted).
    fn timer_target(&self) -> Option<TimerTarget> {
        let handle = SingleThreadTaskRunner { inner: self.inner.clone(), _owner: None };
        Some(TimerTarget::new(self.inner.timer.clone(), std::sync::Arc::new(handle)))
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// Configuration for a [`SingleThreadTaskRunner`].
///
/// ```
/// use taskrunner::{QueuePolicy, SingleThreadTaskRunner};
///
/// assert!(SingleThreadTaskRunner::builder().capacity(0).build().is_err());
/// let ui = SingleThreadTaskRunner::builder()
///     .name("ui")
///     .capacity(16)
///     .queue_policy(QueuePolicy::Reject)
///     .on_rejected(|rejection| eprintln!("{rejection}"))
///     .build()
///     .unwrap();
/// assert_eq!(ui.capacity(), Some(16));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct SingleThreadRunnerBuilder {
    name: String,
    capacity: Option<usize>,
    policy: QueuePolicy,
    traits: TaskTraits,
    on_rejected: Option<RejectHandler>,
    panic_handler: Option<PanicHandler>,
}

impl Default for SingleThreadRunnerBuilder {
    fn default() -> Self {
        SingleThreadRunnerBuilder {
            name: "taskrunner-thread".to_owned(),
            capacity: None,
            policy: QueuePolicy::default(),
            traits: TaskTraits::default(),
            on_rejected: None,
            panic_handler: None,
        }
    }
}

impl fmt::Debug for SingleThreadRunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleThreadRunnerBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("policy", &self.policy)
            .field("traits", &self.traits)
            .finish_non_exhaustive()
    }
}

impl SingleThreadRunnerBuilder {
    /// The runner's name and its thread's name. Default: `taskrunner-thread`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Bounds the queue: at most `capacity` tasks wait (the running task does not count).
    /// Default: unbounded. `build` rejects 0.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// What `post` does when the queue is full. Default: [`QueuePolicy::Reject`].
    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The runner's traits (its shutdown behaviour decides what happens to queued tasks at
    /// shutdown; the priority has no effect on a dedicated thread).
    pub fn traits(mut self, traits: TaskTraits) -> Self {
        self.traits = traits;
        self
    }

    /// Called on the posting thread for every post refused because the queue was full.
    pub fn on_rejected(mut self, f: impl Fn(&Rejection<'_>) + Send + Sync + 'static) -> Self {
        self.on_rejected = Some(Box::new(f));
        self
    }

    /// Called once for every panic caught in a task, on the runner's thread. The default
    /// writes one line to stderr.
    pub fn panic_handler(mut self, f: impl Fn(&PanicReport<'_>) + Send + Sync + 'static) -> Self {
        self.panic_handler = Some(Box::new(f));
        self
    }

    /// Starts the runner's thread.
    pub fn build(self) -> Result<SingleThreadTaskRunner, BuildError> {
        if self.capacity == Some(0) {
            return Err(BuildError::new(
                "a bounded runner needs a capacity of at least 1, got 0 (leave it unset for an \
                 unbounded queue)",
            ));
        }
        let tracker = std::sync::Arc::new(Tracker::new());
        let skipped_to = tracker.clone();
        let timer = std::sync::Arc::new(TimerService::new(
            format!("{}-timer", self.name),
            std::sync::Arc::new(RealClock),
            false,
            Box::new(move |location| skipped_to.record_skipped(location)),
        ));
        let inner = Arc::new(Inner {
            state: AtomicU8::new(0),
            queue: Queue::new(),
            bounded: self.capacity.map(Bounded::new),
            policy: self.policy,
            on_rejected: self.on_rejected,
            panic_handler: self
                .panic_handler
                .unwrap_or_else(|| Box::new(|report| eprintln!("{report}"))),
            tracker,
            timer,
            counters: RunnerCounters::default(),
            name: std::sync::Arc::from(self.name.as_str()),
            traits: self.traits,
            token: SequenceToken::next(),
            metrics: observe::RunnerMetrics::default(),
            thread: Mutex::new(None),
            join: Mutex::new(None),
        });
        let body = {
            let inner = inner.clone();
            move || Inner::run(inner)
        };
        #[cfg(not(loom))]
        let handle = thread::Builder::new()
            .name(self.name)
            .spawn(body)
            .map_err(|e| BuildError::new(format!("failed to spawn the runner's thread: {e}")))?;
        #[cfg(loom)]
        let handle = thread::spawn(body);
        *inner.join.lock() = Some(handle);
        Ok(SingleThreadTaskRunner { _owner: Some(Arc::new(Owner { inner: inner.clone() })), inner })
    }
}
