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

use crate::closure::{Job, PostedFrom};
use crate::{PostError, Task, TaskRunner};

/// Posts `task` to `target`; its result is then posted, with `reply`, to `reply_runner`.
///
/// The task travels as one [`Job`] holding the task, the reply and the reply runner; the
/// posted-from location it needs for the reply comes from the task itself when it runs. With
/// a 16-byte runner handle, a task and reply that capture up to 32 bytes between them travel
/// inline, without an allocation.
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
    target.post_task(Task::from_job(WithReply { task, reply, runner: reply_runner }, location))
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

/// A task with its reply and the runner the reply goes to.
struct WithReply<F, P, R> {
    task: F,
    reply: R,
    runner: P,
}

impl<F, P, T, R> Job for WithReply<F, P, R>
where
    P: TaskRunner + 'static,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T) + Send + 'static,
{
    fn run(self, posted_from: PostedFrom) {
        let pending = PendingReply { reply: Some(self.reply), runner: self.runner, posted_from };
        // If `task` panics, `pending` is dropped during the unwind: the reply does not run.
        let value = (self.task)();
        pending.send(value);
    }

    fn discard(self, posted_from: PostedFrom) {
        drop(self.task);
        drop(PendingReply { reply: Some(self.reply), runner: self.runner, posted_from });
    }
}

/// A reply on its way, while its task runs or is dropped: posted to `runner` when the task
/// has run. Dropped without being sent (the task panicked or was dropped unrun), it still sends
/// the reply closure to `runner`, to be dropped there.
struct PendingReply<P: TaskRunner, R: Send + 'static> {
    reply: Option<R>,
    runner: P,
    posted_from: PostedFrom,
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
            let task = Task::with_location(move || reply(value), self.posted_from);
            let _ = self.runner.post_task(task);
        }
    }
}

impl<P: TaskRunner, R: Send + 'static> Drop for PendingReply<P, R> {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            let _ =
                self.runner.post_task(Task::with_location(move || drop(reply), self.posted_from));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::closure::fits;
    use crate::RunnerHandle;

    #[test]
    fn a_reply_capturing_32_bytes_travels_inline() {
        let captured = [1u64, 2, 3, 4];
        let reply = move |(): ()| {
            std::hint::black_box(captured);
        };
        assert_eq!(std::mem::size_of_val(&reply), 32);
        assert_eq!(std::mem::size_of::<RunnerHandle>(), 2 * std::mem::size_of::<usize>());
        fn job_fits<F, R>(_: &F, _: &R) -> bool {
            fits::<WithReply<F, RunnerHandle, R>>()
        }
        assert!(job_fits(&|| (), &reply));
    }
}
