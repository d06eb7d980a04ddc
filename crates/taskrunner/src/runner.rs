//! The [`TaskRunner`] trait (one required method), its helper extension [`TaskRunnerExt`], and
//! [`RunnerHandle`], a handle to any kind of runner.

use std::panic::Location;

use crate::current::SequenceToken;
use crate::{PostError, SequencedTaskRunner, Task, TaskHandle};

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
        match crate::current_runner() {
            Some(origin) => crate::reply::post_and_reply(self, origin, task, reply, location),
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
        let location = Location::caller();
        match crate::current_runner() {
            Some(origin) => crate::reply::post_and_reply(self, origin, task, reply, location),
            None => {
                Err(PostError::NoCurrentRunner(crate::reply::without_runner(task, reply, location)))
            }
        }
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
        crate::reply::post_and_reply(self, reply_runner.clone(), task, reply, Location::caller())
    }
}

impl<R: TaskRunner + ?Sized> TaskRunnerExt for R {}

/// A runner whose tasks run one at a time, in posting order, in one sequence: what
/// [`SequenceBound`](crate::SequenceBound) needs to keep its value free of data races.
///
/// The contract, for implementors: [`sequence_token`](TaskRunner::sequence_token) is `Some`, no
/// two tasks posted through any clone of the runner ever overlap, and each sees the effects of
/// the ones that ran before it. [`SequencedTaskRunner`] implements it; a runner that runs tasks
/// in parallel (a pool, a parallel runner) must not.
pub trait SequencedRunner: TaskRunner + Clone + 'static {}

impl SequencedRunner for SequencedTaskRunner {}

/// A handle to a runner of any kind, as returned by
/// [`current_runner`](crate::current_runner). Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunnerHandle {
    kind: RunnerKind,
}

#[derive(Clone, Debug)]
enum RunnerKind {
    Sequenced(SequencedTaskRunner),
}

impl RunnerHandle {
    pub(crate) fn sequenced(runner: SequencedTaskRunner) -> RunnerHandle {
        RunnerHandle { kind: RunnerKind::Sequenced(runner) }
    }

    /// The runner as a sequenced runner, if it is one.
    pub fn as_sequenced(&self) -> Option<&SequencedTaskRunner> {
        match &self.kind {
            RunnerKind::Sequenced(runner) => Some(runner),
        }
    }

    /// The runner's name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RunnerKind::Sequenced(runner) => runner.name(),
        }
    }
}

impl TaskRunner for RunnerHandle {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        match &self.kind {
            RunnerKind::Sequenced(runner) => runner.post_task(task),
        }
    }

    fn sequence_token(&self) -> Option<SequenceToken> {
        match &self.kind {
            RunnerKind::Sequenced(runner) => runner.sequence_token(),
        }
    }

    fn is_closed(&self) -> bool {
        match &self.kind {
            RunnerKind::Sequenced(runner) => runner.is_closed(),
        }
    }
}
