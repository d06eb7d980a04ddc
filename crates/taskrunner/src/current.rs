//! What the current thread is running: the sequence token and a handle to the runner.
//!
//! A worker sets the context once per batch of a sequence's tasks, not once per task, and
//! clears it afterwards (a guard restores the previous value even if a task panics).

// loom's `thread_local!` has no `const { .. }` form, and the models need loom's.
#![allow(clippy::missing_const_for_thread_local)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};

use crate::sync::thread_local;
use crate::RunnerHandle;

/// The identity of a sequence: two runners with equal tokens run their tasks one at a time,
/// in one order. Tokens are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SequenceToken(u64);

impl SequenceToken {
    /// A fresh token (a process-wide counter; never reused).
    pub(crate) fn next() -> SequenceToken {
        // Outside the loom facade on purpose: a unique number has no ordering to model.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SequenceToken(NEXT.fetch_add(1, StdOrdering::Relaxed))
    }

    /// The token of the sequence whose task is running on this thread, if any.
    pub fn current() -> Option<SequenceToken> {
        CURRENT.with(|c| c.borrow().as_ref().and_then(|ctx| ctx.token))
    }
}

struct Context {
    token: Option<SequenceToken>,
    runner: RunnerHandle,
    /// A second counted handle to `runner`, carried back by a reply (see `reply.rs`), for the
    /// next `post_and_reply` to take instead of cloning `runner`.
    spare: Option<RunnerHandle>,
}

thread_local! {
    static CURRENT: RefCell<Option<Context>> = RefCell::new(None);
}

/// Sets the current context until the guard is dropped.
pub(crate) fn enter(runner: RunnerHandle, token: Option<SequenceToken>) -> ContextGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Context { token, runner, spare: None }));
    ContextGuard { previous }
}

pub(crate) struct ContextGuard {
    previous: Option<Context>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // Dropping the context outside the borrow: it may release the last runner handle.
        let _current = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
    }
}

/// A handle to the runner whose task is running on this thread, if any.
///
/// ```
/// use taskrunner::{current_runner, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let inside = seq
///     .post_with_result(|| current_runner().map(|r| r.runs_tasks_in_current_sequence()))
///     .unwrap()
///     .join()
///     .unwrap();
/// assert_eq!(inside, Some(true));
/// assert!(current_runner().is_none()); // not inside a task here
/// ```
pub fn current_runner() -> Option<RunnerHandle> {
    CURRENT.with(|c| c.borrow().as_ref().map(|ctx| ctx.runner.clone()))
}

/// [`current_runner`] for `post_and_reply`: the spare handle a reply brought back, if there
/// is one, else a clone.
pub(crate) fn reply_runner() -> Option<RunnerHandle> {
    CURRENT.with(|c| {
        c.borrow_mut().as_mut().map(|ctx| ctx.spare.take().unwrap_or_else(|| ctx.runner.clone()))
    })
}

/// Keeps `handle`, a handle carried back by a reply, as the current context's spare if it is
/// a handle to the current runner and there is no spare yet; drops it otherwise.
pub(crate) fn keep_spare(handle: RunnerHandle) {
    let unkept = CURRENT.with(|c| match c.borrow_mut().as_mut() {
        Some(ctx) if ctx.spare.is_none() && ctx.runner.is_same_runner(&handle) => {
            ctx.spare = Some(handle);
            None
        }
        _ => Some(handle),
    });
    // Dropped outside the borrow: it may release the last handle to a runner.
    drop(unkept);
}

/// Whether the current context holds a spare handle.
#[cfg(all(test, not(loom)))]
pub(crate) fn has_spare() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|ctx| ctx.spare.is_some()))
}
