//! Task and reply: run a task on one runner, then a reply with its result on another (by
//! default the runner that posted), without blocking anyone in between.
//!
//! The public entry points are [`TaskRunnerExt::post_and_reply`](crate::TaskRunnerExt::post_and_reply),
//! [`post_and_reply_with_result`](crate::TaskRunnerExt::post_and_reply_with_result) (the same
//! call under the name Chromium and the Go library use) and
//! [`post_and_reply_to`](crate::TaskRunnerExt::post_and_reply_to), which names the reply runner.
//!
//! # Decisions
//!
//! - **Where the reply runs.** `post_and_reply` replies on [`current_runner`](crate::current_runner):
//!   the runner whose task is running on the calling thread. From any other thread (`main`, a
//!   thread of your own, a one-off pool task, which runs in no runner) there is nowhere to reply,
//!   and the call returns [`PostError::NoCurrentRunner`] rather than guessing. The explicit reply
//!   runner is an argument of one more method, `post_and_reply_to(&reply_runner, task, reply)`,
//!   rather than an option value: a closure passed through a generic option type loses the
//!   argument-type inference that makes `|data| show(data)` work.
//! - **The reply receives the task's result.** `post_and_reply(|| load(), |data| show(data))`;
//!   for a task that returns nothing the reply takes `()` (`|()| done()`). There is one
//!   signature, so `post_and_reply_with_result` is the same method under its familiar name.
//! - **Panics.** If the task panics, the runner that ran it catches and reports the panic once
//!   (the pool's panic handler, with the line that called `post_and_reply`); the reply never
//!   runs and nothing else reports.
//! - **Where captured state is dropped.** The task's captures are consumed or dropped on the
//!   target runner; the reply's on the reply runner, also when the task panicked or was dropped
//!   unrun (skipped at shutdown, cancelled by a rejected post): the reply closure is then sent
//!   to the reply runner just to be dropped there. Only if the reply runner has itself shut down
//!   is the reply (and the result) dropped where the task ran, since it has nowhere else to go.
//! - **Rejections.** If the target rejects the task, the error hands it back; running that task
//!   anywhere still replies on the reply runner chosen at the call. For `NoCurrentRunner` the
//!   handed-back task runs the task and then the reply, one after the other, wherever it is run.

use std::panic::Location;

use crate::{PostError, Task, TaskRunner};

/// Posts `task` to `target`; its result is then posted, with `reply`, to `reply_runner`.
pub(crate) fn post_and_reply<S, P, F, T, R>(
    target: &S,
    reply_runner: P,
    task: F,
    reply: R,
    location: &'static Location<'static>,
) -> Result<(), PostError>
where
    S: TaskRunner + ?Sized,
    P: TaskRunner + 'static,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T) + Send + 'static,
{
    let pending = PendingReply { reply: Some(reply), runner: reply_runner, location };
    target.post_task(Task::with_location(
        move || {
            // If `task` panics, `pending` is dropped during the unwind: the reply does not run.
            let value = task();
            pending.send(value);
        },
        location,
    ))
}

/// The task handed back when there is no runner to reply on: the task, then its reply.
pub(crate) fn without_runner<F, T, R>(
    task: F,
    reply: R,
    location: &'static Location<'static>,
) -> Task
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T) + Send + 'static,
{
    Task::with_location(move || reply(task()), location)
}

/// A reply on its way: travels with the task, and is posted to `runner` when the task has run.
/// Dropped without being sent (the task panicked or was dropped unrun), it still sends the
/// reply closure to `runner`, to be dropped there.
struct PendingReply<P: TaskRunner, R: Send + 'static> {
    reply: Option<R>,
    runner: P,
    location: &'static Location<'static>,
}

impl<P: TaskRunner, R: Send + 'static> PendingReply<P, R> {
    fn send<T>(mut self, value: T)
    where
        R: FnOnce(T),
        T: Send + 'static,
    {
        if let Some(reply) = self.reply.take() {
            // A reply runner that has shut down rejects the reply; it is dropped here, with the
            // result (see the module docs).
            let _ = self.runner.post_task(Task::with_location(move || reply(value), self.location));
        }
    }
}

impl<P: TaskRunner, R: Send + 'static> Drop for PendingReply<P, R> {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ = self.runner.post_task(Task::with_location(move || drop(reply), self.location));
        }
    }
}
