//! [`TaskHandle`]: the result of a posted task, waited on by blocking or by `.await`.
//!
//! # State machine
//!
//! One atomic word, `state`, with these transitions (nothing else touches it):
//!
//! ```text
//!   QUEUED ──start()──▶ RUNNING ──complete()──▶ DONE
//!     │                                           ▲
//!     ├──cancel()────────────▶ DONE (Cancelled) ──┤
//!     └──dropped unrun───────▶ DONE (Skipped) ────┘
//! ```
//!
//! `start` and `cancel` race with a compare-and-swap on `QUEUED`: exactly one wins, so a task
//! cancelled before it starts never runs, and a started task can no longer be cancelled. The
//! result itself lives in a small mutex-protected slot written once, before `DONE` is published;
//! the waiter side (blocking `join` or a `Waker`) is woken after the lock is released.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::current::SequenceToken;
use crate::error::{TaskError, TaskErrorKind};
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::sync::{Arc, Condvar, Mutex};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

struct Slot<T> {
    result: Option<Result<T, TaskError>>,
    waker: Option<Waker>,
    /// The result was handed out already.
    taken: bool,
}

pub(crate) struct Shared<T> {
    state: AtomicU8,
    slot: Mutex<Slot<T>>,
    done: Condvar,
}

impl<T> Shared<T> {
    fn new() -> Self {
        Shared {
            state: AtomicU8::new(QUEUED),
            slot: Mutex::new(Slot { result: None, waker: None, taken: false }),
            done: Condvar::new(),
        }
    }

    /// QUEUED → RUNNING. False when the task was cancelled first.
    fn start(&self) -> bool {
        self.state.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// QUEUED → DONE with `error`. False when the task had already started or finished.
    fn finish_unstarted(&self, error: TaskErrorKind) -> bool {
        if self.state.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.complete(Err(TaskError::new(error)));
            true
        } else {
            false
        }
    }

    /// RUNNING → DONE with the result; wakes the waiter after releasing the lock.
    fn complete(&self, result: Result<T, TaskError>) {
        let waker = {
            let mut slot = self.slot.lock();
            slot.result = Some(result);
            self.state.store(DONE, Ordering::Release);
            slot.waker.take()
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }
}

/// The pending result of a task posted with
/// [`post_with_result`](crate::TaskRunnerExt::post_with_result).
///
/// Wait for it with [`join`](TaskHandle::join) or [`join_timeout`](TaskHandle::join_timeout),
/// or `.await` it in any async runtime (the handle is a plain `Future`, tied to none).
/// Dropping the handle detaches the task: it still runs, and its result is dropped. Only
/// [`cancel`](TaskHandle::cancel) stops a task from running.
///
/// Waiting from inside the sequence the task was posted to, before the task has run, would
/// wait forever (the task cannot start until the waiting task returns); it returns an error
/// that says so instead ([`TaskError::is_would_deadlock`]).
#[must_use = "dropping a TaskHandle detaches the task; use `cancel()` to cancel it"]
pub struct TaskHandle<T> {
    shared: Arc<Shared<T>>,
    token: Option<SequenceToken>,
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle").field("finished", &self.is_finished()).finish()
    }
}

impl<T: Send + 'static> TaskHandle<T> {
    /// Builds a handle and the closure to post for it. `token` is the sequence the closure will
    /// run in, when the target runner has one.
    pub(crate) fn new<F>(
        f: F,
        location: &'static Location<'static>,
        token: Option<SequenceToken>,
    ) -> (TaskHandle<T>, impl FnOnce() + Send + 'static)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let shared = Arc::new(Shared::new());
        let completer = Completer { shared: Some(shared.clone()) };
        let run = move || completer.run(f, location);
        (TaskHandle { shared, token }, run)
    }
}

impl<T> TaskHandle<T> {
    /// Whether the task has finished (ran, panicked, was cancelled or was skipped).
    pub fn is_finished(&self) -> bool {
        self.shared.is_done()
    }

    /// Cancels the task if it has not started. Returns `true` if it was cancelled: it will
    /// never run, and waiting on the handle returns [`TaskError::is_cancelled`]. Returns
    /// `false` if it had already started or finished.
    pub fn cancel(&self) -> bool {
        self.shared.finish_unstarted(TaskErrorKind::Cancelled)
    }

    /// Blocks until the task finishes and returns its result.
    pub fn join(mut self) -> Result<T, TaskError> {
        self.wait(None)
    }

    /// Blocks at most `timeout`. On timeout the handle is intact and can be waited on again;
    /// the error says [`TaskError::is_timeout`].
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<T, TaskError> {
        self.wait(Some(timeout))
    }

    fn would_deadlock(&self) -> bool {
        self.token.is_some() && self.token == SequenceToken::current() && !self.is_finished()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<T, TaskError> {
        if self.would_deadlock() {
            return Err(TaskError::new(TaskErrorKind::WouldDeadlock));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut slot = self.shared.slot.lock();
        loop {
            if let Some(result) = slot.result.take() {
                slot.taken = true;
                return result;
            }
            if slot.taken {
                // Only reachable after a successful `join_timeout`.
                return Err(TaskError::new(TaskErrorKind::Taken));
            }
            match deadline {
                None => slot = self.shared.done.wait(slot),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(TaskError::new(TaskErrorKind::TimedOut));
                    }
                    slot = self.shared.done.wait_timeout(slot, deadline - now);
                }
            }
        }
    }
}

/// `wait_idle` of any runner: posts a marker task with `post` (given the marker and the
/// deadline for room in a bounded queue) and waits for it within `timeout`, all told. A full
/// queue past the deadline is a timeout; any other refusal means the runner shut down.
pub(crate) fn wait_idle_behind(
    token: Option<SequenceToken>,
    timeout: Duration,
    location: &'static Location<'static>,
    post: impl FnOnce(crate::Task, Option<Instant>) -> Result<(), crate::PostError>,
) -> Result<(), crate::WaitError> {
    let deadline = Instant::now().checked_add(timeout);
    let (marker, run) = TaskHandle::new(|| (), location, token);
    match post(crate::Task::with_location(run, location), deadline) {
        Ok(()) => {}
        Err(crate::PostError::Full(_)) => return Err(crate::WaitError::Timeout),
        Err(_) => return Err(crate::WaitError::ShutDown),
    }
    let remaining = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
    marker.wait_as_marker(remaining)
}

impl TaskHandle<()> {
    /// For `wait_idle`: waits for a marker task posted behind the tasks to wait for. A marker
    /// dropped unrun means the runner shut down; on timeout the marker is cancelled.
    pub(crate) fn wait_as_marker(mut self, timeout: Duration) -> Result<(), crate::WaitError> {
        match self.join_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => {
                self.cancel();
                Err(crate::WaitError::Timeout)
            }
            Err(_) => Err(crate::WaitError::ShutDown),
        }
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.would_deadlock() {
            return Poll::Ready(Err(TaskError::new(TaskErrorKind::WouldDeadlock)));
        }
        let mut slot = this.shared.slot.lock();
        if let Some(result) = slot.result.take() {
            slot.taken = true;
            return Poll::Ready(result);
        }
        if slot.taken {
            return Poll::Ready(Err(TaskError::new(TaskErrorKind::Taken)));
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The runner-side half: owned by the posted closure. If the closure is dropped without
/// running (shutdown skipped it), `Drop` completes the handle with `Skipped`.
struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> Completer<T> {
    fn run<F>(mut self, f: F, location: &'static Location<'static>)
    where
        F: FnOnce() -> T,
    {
        let shared = self.shared.take().expect("completer runs once");
        if !shared.start() {
            return; // cancelled: `f` is dropped here, on the runner
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => shared.complete(Ok(value)),
            Err(payload) => {
                shared.complete(Err(TaskError::panicked(&*payload, location)));
                // Let the runner report the panic once, through its pool's panic handler.
                std::panic::resume_unwind(payload);
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish_unstarted(TaskErrorKind::Skipped);
        }
    }
}
