//! Errors: rejected posts, failed tasks, failed waits, bad configuration.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::panic::Location;

use crate::Task;

/// A post that was not accepted. The task is handed back, unrun.
///
/// ```
/// use taskrunner::{PostError, TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// seq.shutdown();
/// match seq.post(|| println!("never runs")) {
///     Err(PostError::Closed(task)) => drop(task), // or run it elsewhere
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[non_exhaustive]
pub enum PostError {
    /// The runner, or its pool, has shut down.
    Closed(Task),
    /// The runner's queue is at capacity.
    Full(Task),
    /// The post would have to wait for room in the queue of the runner the caller runs on,
    /// which cannot drain until the caller returns (a blocking post from the runner's own
    /// task).
    WouldDeadlock(Task),
    /// A reply was asked for with
    /// [`post_and_reply`](crate::TaskRunnerExt::post_and_reply) from a thread that is not
    /// running a task of any runner, so there is no runner to reply on. Nothing was posted; the
    /// handed-back task runs the task and then its reply, both wherever it is run. Use
    /// [`post_and_reply_to`](crate::TaskRunnerExt::post_and_reply_to) to name the reply runner.
    NoCurrentRunner(Task),
    /// The runner cannot run delayed or repeating tasks: the default of
    /// [`TaskRunner::timer_target`](crate::TaskRunner::timer_target) for runners outside this
    /// crate.
    Unsupported(Task),
    /// A repeating task was posted with a zero interval. (The handed-back task runs the
    /// closure once.)
    InvalidInterval(Task),
}

impl PostError {
    /// The same error around another task (for a caller that hands back a different form of
    /// the task it was given).
    pub(crate) fn map_task(self, f: impl FnOnce(Task) -> Task) -> PostError {
        match self {
            PostError::Closed(task) => PostError::Closed(f(task)),
            PostError::Full(task) => PostError::Full(f(task)),
            PostError::WouldDeadlock(task) => PostError::WouldDeadlock(f(task)),
            PostError::NoCurrentRunner(task) => PostError::NoCurrentRunner(f(task)),
            PostError::Unsupported(task) => PostError::Unsupported(f(task)),
            PostError::InvalidInterval(task) => PostError::InvalidInterval(f(task)),
        }
    }

    /// The rejected task.
    pub fn into_task(self) -> Task {
        match self {
            PostError::Closed(task)
            | PostError::Full(task)
            | PostError::WouldDeadlock(task)
            | PostError::NoCurrentRunner(task)
            | PostError::Unsupported(task)
            | PostError::InvalidInterval(task) => task,
        }
    }

    /// Whether the runner or its pool had shut down.
    pub fn is_closed(&self) -> bool {
        matches!(self, PostError::Closed(_))
    }

    /// Whether the runner's queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, PostError::Full(_))
    }

    /// Whether waiting for room was refused because it could never end.
    pub fn is_would_deadlock(&self) -> bool {
        matches!(self, PostError::WouldDeadlock(_))
    }

    /// Whether the post asked for a reply on the current runner, and there was none.
    pub fn is_no_current_runner(&self) -> bool {
        matches!(self, PostError::NoCurrentRunner(_))
    }

    /// Where the rejected task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.task().location()
    }

    fn task(&self) -> &Task {
        match self {
            PostError::Closed(task)
            | PostError::Full(task)
            | PostError::WouldDeadlock(task)
            | PostError::NoCurrentRunner(task)
            | PostError::Unsupported(task)
            | PostError::InvalidInterval(task) => task,
        }
    }
}

impl fmt::Debug for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Closed(task) => f.debug_tuple("Closed").field(task).finish(),
            PostError::Full(task) => f.debug_tuple("Full").field(task).finish(),
            PostError::WouldDeadlock(task) => f.debug_tuple("WouldDeadlock").field(task).finish(),
            PostError::NoCurrentRunner(task) => {
                f.debug_tuple("NoCurrentRunner").field(task).finish()
            }
            PostError::Unsupported(task) => f.debug_tuple("Unsupported").field(task).finish(),
            PostError::InvalidInterval(task) => {
                f.debug_tuple("InvalidInterval").field(task).finish()
            }
        }
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Closed(task) => {
                write!(f, "task posted from {} rejected: runner is shut down", task.location())
            }
            PostError::Full(task) => {
                write!(f, "task posted from {} rejected: runner queue is full", task.location())
            }
            PostError::WouldDeadlock(task) => write!(
                f,
                "task posted from {} rejected: the queue is full and waiting for room from the \
                 runner's own task would deadlock",
                task.location()
            ),
            PostError::NoCurrentRunner(task) => write!(
                f,
                "task posted from {} rejected: no current runner to reply on",
                task.location()
            ),
            PostError::Unsupported(task) => write!(
                f,
                "task posted from {} rejected: the runner has no timer for delayed tasks",
                task.location()
            ),
            PostError::InvalidInterval(task) => write!(
                f,
                "repeating task posted from {} rejected: its interval is zero",
                task.location()
            ),
        }
    }
}

impl Error for PostError {}

/// Why a task did not produce its result.
///
/// Opaque on purpose (like tokio's `JoinError`): ask with the `is_*` methods.
pub struct TaskError {
    kind: TaskErrorKind,
}

pub(crate) enum TaskErrorKind {
    Panicked { message: String, location: &'static Location<'static> },
    Cancelled,
    Skipped,
    WouldDeadlock,
    TimedOut,
    Taken,
}

impl TaskError {
    pub(crate) fn new(kind: TaskErrorKind) -> TaskError {
        TaskError { kind }
    }

    pub(crate) fn panicked(
        payload: &(dyn Any + Send),
        location: &'static Location<'static>,
    ) -> Self {
        TaskError::new(TaskErrorKind::Panicked { message: panic_message(payload), location })
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, TaskErrorKind::Panicked { .. })
    }

    /// The task was cancelled before it started, and never ran.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, TaskErrorKind::Cancelled)
    }

    /// The task was dropped unrun because its runner or pool shut down.
    pub fn is_skipped(&self) -> bool {
        matches!(self.kind, TaskErrorKind::Skipped)
    }

    /// Waiting was refused: the caller runs on the task's own sequence, where the task cannot
    /// start until the caller returns.
    pub fn is_would_deadlock(&self) -> bool {
        matches!(self.kind, TaskErrorKind::WouldDeadlock)
    }

    /// A `join_timeout` elapsed before the task finished; the handle can be waited on again.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, TaskErrorKind::TimedOut)
    }

    /// The panic message, if the task panicked with a string payload.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            TaskErrorKind::Panicked { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Where the task that panicked was posted from.
    pub fn location(&self) -> Option<&'static Location<'static>> {
        match &self.kind {
            TaskErrorKind::Panicked { location, .. } => Some(location),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TaskErrorKind::Panicked { message, location } => f
                .debug_struct("Panicked")
                .field("message", message)
                .field("posted_from", &format_args!("{location}"))
                .finish(),
            TaskErrorKind::Cancelled => f.write_str("Cancelled"),
            TaskErrorKind::Skipped => f.write_str("Skipped"),
            TaskErrorKind::WouldDeadlock => f.write_str("WouldDeadlock"),
            TaskErrorKind::TimedOut => f.write_str("TimedOut"),
            TaskErrorKind::Taken => f.write_str("Taken"),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TaskErrorKind::Panicked { message, location } => {
                write!(f, "task posted from {location} panicked: {message}")
            }
            TaskErrorKind::Cancelled => f.write_str("task was cancelled before it started"),
            TaskErrorKind::Skipped => f.write_str("task was dropped unrun at shutdown"),
            TaskErrorKind::WouldDeadlock => {
                f.write_str("waiting on a task of the current sequence would deadlock")
            }
            TaskErrorKind::TimedOut => f.write_str("timed out waiting for the task"),
            TaskErrorKind::Taken => f.write_str("the task's result was already taken"),
        }
    }
}

impl Error for TaskError {}

/// Why a wait (`wait_idle`, `wait_shutdown`) did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The caller runs on the runner's own sequence: the wait could never end.
    WouldDeadlock,
    /// The timeout elapsed first.
    Timeout,
    /// The runner shut down before (or while) waiting, so what was waited for will not happen.
    ShutDown,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitError::WouldDeadlock => {
                "waiting from inside the runner's own sequence would deadlock"
            }
            WaitError::Timeout => "timed out",
            WaitError::ShutDown => "the runner shut down",
        })
    }
}

impl Error for WaitError {}

/// A builder was given a value it cannot build with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    message: String,
}

impl BuildError {
    pub(crate) fn new(message: impl Into<String>) -> BuildError {
        BuildError { message: message.into() }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for BuildError {}

/// The text of a panic payload (`&str` and `String` payloads; anything else is described).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}
