//! The [`TaskRunner`] trait (one required method), its helper extension [`TaskRunnerExt`], and
//! [`RunnerHandle`], a handle to any kind of runner.

use std::panic::Location;
use std::time::Duration;

use crate::current::SequenceToken;
use crate::sync::Arc;
use crate::time::TimerTarget;
use crate::{
    DelayedHandle, ParallelTaskRunner, PostError, Repeat, RepeatingHandle, RunnerStats,
    SequencedTaskRunner, SingleThreadTaskRunner, Task, TaskHandle,
};

/// Something tasks can be posted to.
///
/// Implementors write one method, [`post_task`](TaskRunner::post_task); everything else has a
/// default, and the helpers (`post`, `post_with_result`, …) live in [`TaskRunnerExt`], which is
/// implemented for every runner. The trait is object safe: `&dyn TaskRunner` and
/// `Arc<dyn TaskRunner>` work.
///
/// Posting never runs the task inline, and a rejected task is handed back in the error.
pub trait TaskRunner: Send + Sync {
    /// Queues `task`. On error the task is handed back, unrun.
    fn post_task(&self, task: Task) -> Result<(), PostError>;

    /// The sequence this runner's tasks run in, if they run in one (sequenced and
    /// single-thread runners do; a pool or parallel runner does not).
    fn sequence_token(&self) -> Option<SequenceToken> {
        None
    }

    /// Whether the calling code runs in this runner's sequence: true inside one of its tasks.
    fn runs_tasks_in_current_sequence(&self) -> bool {
        let token = self.sequence_token();
        token.is_some() && token == SequenceToken::current()
    }

    /// Whether the runner has shut down (posts are rejected).
    fn is_closed(&self) -> bool {
        false
    }

    /// Queues `task` to be posted to this runner after `delay` (on the pool's
    /// [`Clock`](crate::Clock)), through [`post_task`](TaskRunner::post_task), so it queues
    /// behind the tasks posted before it expired.
    ///
    /// The default schedules on [`timer_target`](TaskRunner::timer_target) and returns
    /// [`PostError::Unsupported`] when there is none. A closed runner returns
    /// [`PostError::Closed`].
    fn post_delayed_task(&self, task: Task, delay: Duration) -> Result<DelayedHandle, PostError> {
        match self.timer_target() {
            Some(target) => target.post_delayed(task, delay),
            None if self.is_closed() => Err(PostError::Closed(task)),
            None => Err(PostError::Unsupported(task)),
        }
    }

    /// The timer service that holds this runner's delayed tasks, and how it reaches the runner
    /// at expiry. Runners of this crate return one; the default (`None`) makes the delayed and
    /// repeating helpers return [`PostError::Unsupported`]. A runner that wraps one of this
    /// crate's runners can forward its target.
    fn timer_target(&self) -> Option<TimerTarget> {
        None
    }
}

/// Helpers over [`TaskRunner::post_task`], for every runner.
///
/// Each helper records its caller as the task's posted-from location (`#[track_caller]`), so
/// panics and shutdown reports name the line that posted.
pub trait TaskRunnerExt: TaskRunner {
    /// Posts a closure.
    ///
    /// ```
    /// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPool::builder().workers(2).build().unwrap();
    /// let seq = pool.sequenced_runner(TaskTraits::default());
    /// seq.post(|| println!("runs on the sequence")).unwrap();
    /// seq.wait_idle(Duration::from_secs(5)).unwrap();
    /// ```
    #[track_caller]
    fn post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_task(Task::with_location(f, Location::caller()))
    }

    /// Posts a closure and returns a handle to its result.
    ///
    /// A panic in the task becomes `Err` ([`TaskError::is_panic`](crate::TaskError::is_panic))
    /// for the handle, is reported once to the pool's panic handler, and the runner goes on.
    ///
    /// ```
    /// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(2).build().unwrap();
    /// let seq = pool.sequenced_runner(TaskTraits::default());
    /// let answer = seq.post_with_result(|| 6 * 7).unwrap();
    /// assert_eq!(answer.join().unwrap(), 42);
    /// ```
    #[track_caller]
    fn post_with_result<F, T>(&self, f: F) -> Result<TaskHandle<T>, PostError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let location = Location::caller();
        let (handle, run) = TaskHandle::new(f, location, self.sequence_token());
        self.post_task(Task::with_location(run, location))?;
        Ok(handle)
    }

    /// Posts a closure to run after `delay`.
    ///
    /// The task runs no earlier than `delay` from now (on the pool's [`Clock`](crate::Clock));
    /// at expiry it queues behind the tasks already posted to the runner, and delayed tasks with
    /// equal deadlines run in posting order. Dropping the returned handle lets the task run;
    /// [`DelayedHandle::cancel`] stops it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let seq = pool.sequenced_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// seq.post_delayed(Duration::from_millis(5), move || tx.send("later").unwrap()).unwrap();
    /// let never = seq.post_delayed(Duration::from_secs(60), || unreachable!()).unwrap();
    /// assert!(never.cancel());
    /// assert_eq!(rx.recv().unwrap(), "later");
    /// ```
    #[track_caller]
    fn post_delayed<F>(&self, delay: Duration, f: F) -> Result<DelayedHandle, PostError>
    where
        F: FnOnce() + Send + 'static,
    {
        self.post_delayed_task(Task::with_location(f, Location::caller()), delay)
    }

    /// Posts a closure to run after `delay` and returns a handle to its result, which resolves
    /// after the task ran. [`TaskHandle::cancel`] before it starts means it never runs (its
    /// closure is then dropped at the deadline).
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let seq = pool.sequenced_runner(TaskTraits::default());
    /// let h = seq.post_delayed_with_result(Duration::from_millis(5), || 6 * 7).unwrap();
    /// assert_eq!(h.join().unwrap(), 42);
    /// ```
    #[track_caller]
    fn post_delayed_with_result<F, T>(
        &self,
        delay: Duration,
        f: F,
    ) -> Result<TaskHandle<T>, PostError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let location = Location::caller();
        let (handle, run) = TaskHandle::new(f, location, self.sequence_token());
        // The handle alone decides cancellation; the timer entry is detached.
        drop(self.post_delayed_task(Task::with_location(run, location), delay)?);
        Ok(handle)
    }

    /// Runs `f` repeatedly on this runner, as `repeat` says (interval, initial delay, fixed
    /// delay or fixed rate with a missed-tick policy).
    ///
    /// The returned handle stops it; **dropping the handle stops it too**, unless
    /// [`RepeatingHandle::detach`] was called. It also stops when the runner or its pool shuts
    /// down, and when `f` panics ([`RepeatingHandle::stop_reason`] says which). A zero interval
    /// returns [`PostError::InvalidInterval`]. On error the handed-back task runs `f` once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Repeat, TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let seq = pool.sequenced_runner(TaskTraits::default());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut n = 0;
    /// let every = seq
    ///     .post_repeating(Repeat::every(Duration::from_millis(1)), move || {
    ///         n += 1;
    ///         let _ = tx.send(n);
    ///     })
    ///     .unwrap();
    /// assert_eq!(rx.iter().take(3).collect::<Vec<_>>(), [1, 2, 3]);
    /// assert!(every.stop());
    /// ```
    #[track_caller]
    fn post_repeating<F>(&self, repeat: Repeat, f: F) -> Result<RepeatingHandle, PostError>
    where
        F: FnMut() + Send + 'static,
    {
        let location = Location::caller();
        match self.timer_target() {
            Some(target) => RepeatingHandle::start(target, repeat, Box::new(f), location),
            None => {
                let task = Task::with_location(f, location);
                Err(if self.is_closed() {
                    PostError::Closed(task)
                } else {
                    PostError::Unsupported(task)
                })
            }
        }
    }

    /// Posts `task` to this runner; when it has run, posts `reply` with its result to the
    /// runner that made this call ([`current_runner`](crate::current_runner)).
    ///
    /// The reply runs after the task, on the calling task's runner, so a sequence can hand work
    /// to another runner and take the result back without a lock or a blocking wait. For a task
    /// that returns nothing the reply takes `()`. If the task panics, the panic is reported once
    /// (the pool's panic handler) and the reply does not run. The task's captured state is
    /// dropped on this runner, the reply's on the reply runner.
    ///
    /// Errors: [`PostError::NoCurrentRunner`] when the calling thread is not running a task of
    /// any runner (use [`post_and_reply_to`](TaskRunnerExt::post_and_reply_to) there); the
    /// usual rejections when this runner does not accept the task; a rejected task, run
    /// elsewhere, still replies on the runner chosen here. If the reply runner has shut down by
    /// the time the task finishes, the reply is dropped, unrun, where the task ran.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use taskrunner::{SequenceToken, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(2).build().unwrap();
    /// let ui = pool.sequenced_runner(TaskTraits::default());
    /// let io = pool.sequenced_runner(TaskTraits::default());
    /// let (tx, rx) = mpsc::channel();
    /// let ui_token = ui.sequence_token();
    /// ui.post(move || {
    ///     io.post_and_reply(|| "loaded".len(), move |n| {
    ///         // Back on `ui`.
    ///         tx.send((n, SequenceToken::current())).unwrap();
    ///     })
    ///     .unwrap();
    /// })
    /// .unwrap();
    /// assert_eq!(rx.recv().unwrap(), (6, ui_token));
    /// ```
    #[track_caller]
    fn post_and_reply<F, T, R>(&self, task: F, reply: R) -> Result<(), PostError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        let location = Location::caller();
        match crate::current::reply_runner() {
            Some(origin) => crate::reply::post_and_reply(
                self,
                crate::reply::Home(origin),
                task,
                reply,
                location,
            ),
            None => {
                Err(PostError::NoCurrentRunner(crate::reply::without_runner(task, reply, location)))
            }
        }
    }

    /// [`post_and_reply`](TaskRunnerExt::post_and_reply) under the name Chromium and the Go
    /// library give the typed-result form: the reply receives the task's result.
    #[track_caller]
    fn post_and_reply_with_result<F, T, R>(&self, task: F, reply: R) -> Result<(), PostError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        self.post_and_reply(task, reply)
    }

    /// Like [`post_and_reply`](TaskRunnerExt::post_and_reply), replying on `reply_runner`, any
    /// kind of runner, from any thread.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
    ///
    /// let pool = ThreadPool::builder().workers(2).build().unwrap();
    /// let worker = pool.sequenced_runner(TaskTraits::default());
    /// let home = pool.sequenced_runner(TaskTraits::default());
    /// let (tx, rx) = mpsc::channel();
    /// // From `main`, which runs in no runner: name where the reply goes.
    /// worker.post_and_reply_to(&home, || 6 * 7, move |n| tx.send(n).unwrap()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// ```
    #[track_caller]
    fn post_and_reply_to<P, F, T, R>(
        &self,
        reply_runner: &P,
        task: F,
        reply: R,
    ) -> Result<(), PostError>
    where
        P: TaskRunner + Clone + 'static,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        let reply_runner = crate::reply::Named(reply_runner.clone());
        crate::reply::post_and_reply(self, reply_runner, task, reply, Location::caller())
    }
}

impl<R: TaskRunner + ?Sized> TaskRunnerExt for R {}

/// A runner whose tasks run one at a time, in posting order, in one sequence: what
/// [`SequenceBound`](crate::SequenceBound) needs to keep its value free of data races.
///
/// The contract, for implementors: [`sequence_token`](TaskRunner::sequence_token) is `Some`, no
/// two tasks posted through any clone of the runner ever overlap, and each sees the effects of
/// the ones that ran before it. [`SequencedTaskRunner`] and [`SingleThreadTaskRunner`] implement
/// it; a runner that runs tasks in parallel (a pool, a parallel runner) must not.
pub trait SequencedRunner: TaskRunner + Clone + 'static {}

impl SequencedRunner for SequencedTaskRunner {}

impl SequencedRunner for SingleThreadTaskRunner {}

/// A handle to a runner of any kind, as returned by
/// [`current_runner`](crate::current_runner). Cheap to clone.
///
/// A handle to a single-thread runner obtained here does not keep its thread alive: once the
/// runner's own handles are gone, posts through it return `Closed`.
#[derive(Clone, Debug)]
pub struct RunnerHandle {
    kind: Kind,
}

/// 16 bytes: every variant is one pointer (a single-thread runner's handle is two, so it sits
/// behind an `Arc`). A `post_and_reply` task carries one of these, and a smaller handle leaves
/// more of the task's inline storage to the reply (see `reply.rs`).
#[derive(Clone, Debug)]
enum Kind {
    Sequenced(SequencedTaskRunner),
    Parallel(ParallelTaskRunner),
    SingleThread(Arc<SingleThreadTaskRunner>),
}

impl RunnerHandle {
    pub(crate) fn sequenced(runner: SequencedTaskRunner) -> RunnerHandle {
        RunnerHandle { kind: Kind::Sequenced(runner) }
    }

    pub(crate) fn parallel(runner: ParallelTaskRunner) -> RunnerHandle {
        RunnerHandle { kind: Kind::Parallel(runner) }
    }

    pub(crate) fn single_thread(runner: SingleThreadTaskRunner) -> RunnerHandle {
        RunnerHandle { kind: Kind::SingleThread(Arc::new(runner)) }
    }

    /// Whether both handles lead to the same runner.
    pub(crate) fn is_same_runner(&self, other: &RunnerHandle) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Sequenced(a), Kind::Sequenced(b)) => Arc::ptr_eq(a.sequence(), b.sequence()),
            (Kind::Parallel(a), Kind::Parallel(b)) => a.is_same_runner(b),
            (Kind::SingleThread(a), Kind::SingleThread(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The runner as a sequenced runner, if it is one.
    pub fn as_sequenced(&self) -> Option<&SequencedTaskRunner> {
        match &self.kind {
            Kind::Sequenced(runner) => Some(runner),
            _ => None,
        }
    }

    /// The runner as a parallel runner, if it is one.
    pub fn as_parallel(&self) -> Option<&ParallelTaskRunner> {
        match &self.kind {
            Kind::Parallel(runner) => Some(runner),
            _ => None,
        }
    }

    /// The runner as a single-thread runner, if it is one.
    pub fn as_single_thread(&self) -> Option<&SingleThreadTaskRunner> {
        match &self.kind {
            Kind::SingleThread(runner) => Some(&**runner),
            _ => None,
        }
    }

    /// The runner's name.
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Sequenced(runner) => runner.name(),
            Kind::Parallel(runner) => runner.name(),
            Kind::SingleThread(runner) => runner.name(),
        }
    }

    /// A snapshot of the runner's statistics.
    pub fn stats(&self) -> RunnerStats {
        match &self.kind {
            Kind::Sequenced(runner) => runner.stats(),
            Kind::Parallel(runner) => runner.stats(),
            Kind::SingleThread(runner) => runner.stats(),
        }
    }
}

impl TaskRunner for RunnerHandle {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        match &self.kind {
            Kind::Sequenced(runner) => runner.post_task(task),
            Kind::Parallel(runner) => runner.post_task(task),
            Kind::SingleThread(runner) => runner.post_task(task),
        }
    }

    fn sequence_token(&self) -> Option<SequenceToken> {
        match &self.kind {
            Kind::Sequenced(runner) => runner.sequence_token(),
            Kind::Parallel(runner) => runner.sequence_token(),
            Kind::SingleThread(runner) => runner.sequence_token(),
        }
    }

    fn is_closed(&self) -> bool {
        match &self.kind {
            Kind::Sequenced(runner) => TaskRunner::is_closed(runner),
            Kind::Parallel(runner) => TaskRunner::is_closed(runner),
            Kind::SingleThread(runner) => TaskRunner::is_closed(&**runner),
        }
    }

    fn timer_target(&self) -> Option<TimerTarget> {
        match &self.kind {
            Kind::Sequenced(runner) => runner.timer_target(),
            Kind::Parallel(runner) => runner.timer_target(),
            Kind::SingleThread(runner) => runner.timer_target(),
        }
    }
}
