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
//! - **Handles carried back.** The task carries a counted handle to the reply runner and
//!   drops it where the task ran, once the reply is posted. For `post_and_reply` the handle is
//!   made on the reply runner's own thread, so that alone would update its reference count on
//!   both sides of every round; the count shares a cache line with what posts to the runner
//!   write, and that line would cross between the cores twice more per round trip. So the
//!   reply also carries a handle to its runner, made on the target's side just after the post
//!   that wrote the line. The reply runner keeps it (one at most, until its context ends: a
//!   worker's batch) and the next `post_and_reply` made there takes it instead of making one.
//!   A reply carries it only if it still fits the task's inline storage: a reply and result of
//!   up to 32 bytes between them (docs/PERFORMANCE.md, step 27).

use std::panic::Location;

use crate::closure::{fits, Job, PostedFrom};
use crate::{PostError, RunnerHandle, Task, TaskRunner};

/// Where a reply goes.
pub(crate) trait ReplyRunner: Send + 'static {
    /// Posts `task` there. A runner that has shut down rejects it; it is dropped here (see
    /// the module docs).
    fn post(&self, task: Task);

    /// The task that runs `reply(value)` there.
    fn reply_task<T, R>(&self, reply: R, value: T, posted_from: PostedFrom) -> Task
    where
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        Task::with_location(move || reply(value), posted_from)
    }
}

/// The reply runner named in `post_and_reply_to`: any runner.
pub(crate) struct Named<P>(pub(crate) P);

impl<P: TaskRunner + 'static> ReplyRunner for Named<P> {
    fn post(&self, task: Task) {
        let _ = self.0.post_task(task);
    }
}

/// The reply runner of `post_and_reply`: the runner whose task made the call. Its reply
/// carries a handle back (see "Handles carried back" in the module docs).
pub(crate) struct Home(pub(crate) RunnerHandle);

impl ReplyRunner for Home {
    fn post(&self, task: Task) {
        let _ = self.0.post_task(task);
    }

    fn reply_task<T, R>(&self, reply: R, value: T, posted_from: PostedFrom) -> Task
    where
        T: Send + 'static,
        R: FnOnce(T) + Send + 'static,
    {
        if fits::<ReplyWithHandle<R, T>>() {
            let job = ReplyWithHandle { reply, value, handle: self.0.clone() };
            Task::from_job(job, posted_from)
        } else {
            Task::with_location(move || reply(value), posted_from)
        }
    }
}

/// A reply to `post_and_reply`, with a handle to the runner it runs on.
struct ReplyWithHandle<R, T> {
    reply: R,
    value: T,
    handle: RunnerHandle,
}

impl<R, T> Job for ReplyWithHandle<R, T>
where
    T: Send + 'static,
    R: FnOnce(T) + Send + 'static,
{
    fn run(self, _posted_from: PostedFrom) {
        // Before the reply, which may call `post_and_reply` again and take it.
        crate::current::keep_spare(self.handle);
        (self.reply)(self.value);
    }
}

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
    P: ReplyRunner,
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
    P: ReplyRunner,
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
struct PendingReply<P: ReplyRunner, R: Send + 'static> {
    reply: Option<R>,
    runner: P,
    posted_from: PostedFrom,
}

impl<P: ReplyRunner, R: Send + 'static> PendingReply<P, R> {
    fn send<T>(mut self, value: T)
    where
        R: FnOnce(T),
        T: Send + 'static,
    {
        if let Some(reply) = self.reply.take() {
            self.runner.post(self.runner.reply_task(reply, value, self.posted_from));
        }
    }
}

impl<P: ReplyRunner, R: Send + 'static> Drop for PendingReply<P, R> {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            self.runner.post(Task::with_location(move || drop(reply), self.posted_from));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::current::has_spare;
    use crate::{SequencedTaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};

    #[test]
    fn a_reply_capturing_32_bytes_travels_inline() {
        let captured = [1u64, 2, 3, 4];
        let reply = move |(): ()| {
            std::hint::black_box(captured);
        };
        assert_eq!(std::mem::size_of_val(&reply), 32);
        assert_eq!(std::mem::size_of::<RunnerHandle>(), 2 * std::mem::size_of::<usize>());
        fn fit<F, R>(_: &F, _: &R) -> (bool, bool) {
            (fits::<WithReply<F, Home, R>>(), fits::<ReplyWithHandle<R, ()>>())
        }
        // Both ways: the task with the reply, and the reply with a handle to carry back.
        assert_eq!(fit(&|| (), &reply), (true, true));
    }

    /// Whether a reply `R` to a task returning `T` carries a handle back.
    fn carries_a_handle<R, T>(_: &R) -> bool {
        fits::<ReplyWithHandle<R, T>>()
    }

    /// Runs `first` on a sequence A, with a sequence B to call `post_and_reply` on, and
    /// returns the `n` messages its tasks and replies send on `rx`; then shuts the pool down
    /// and checks that every handle to A the replies carried back was dropped (kept or not)
    /// exactly once.
    fn play<T>(
        first: impl FnOnce(SequencedTaskRunner) + Send + 'static,
        rx: mpsc::Receiver<T>,
        n: usize,
    ) -> Vec<T> {
        let pool = ThreadPool::builder().workers(2).build().unwrap();
        let a = pool.sequenced_runner(TaskTraits::default());
        let b = pool.sequenced_runner(TaskTraits::default());
        let handles_before = crate::sync::Arc::strong_count(a.sequence());
        a.post(move || first(b)).unwrap();
        let sent = (0..n).map(|_| rx.recv().unwrap()).collect();
        let report = pool.shutdown();
        assert_eq!(report.skipped(), 0);
        assert_eq!(crate::sync::Arc::strong_count(a.sequence()), handles_before);
        sent
    }

    #[test]
    fn a_reply_brings_a_handle_home_for_the_next_post_and_reply_to_take() {
        let (tx, rx) = mpsc::channel();
        // Whether A's context holds a spare: before the first call, in the first reply before
        // and after it calls again, and in the second reply. All on A, one after the other.
        let sent = play(
            move |b| {
                tx.send(has_spare()).unwrap();
                let again = b.clone();
                b.post_and_reply(
                    || (),
                    move |()| {
                        tx.send(has_spare()).unwrap();
                        let last = tx.clone();
                        again
                            .post_and_reply(|| (), move |()| last.send(has_spare()).unwrap())
                            .unwrap();
                        tx.send(has_spare()).unwrap();
                    },
                )
                .unwrap();
            },
            rx,
            4,
        );
        assert_eq!(sent, [false, true, false, true]);
    }

    #[test]
    fn a_reply_too_large_to_carry_a_handle_runs_without_one() {
        let (tx, rx) = mpsc::channel();
        let sent = play(
            move |b| {
                let captured = [7u64; 5];
                let reply = move |n: u64| tx.send((n + captured[4], has_spare())).unwrap();
                assert!(!carries_a_handle::<_, u64>(&reply));
                b.post_and_reply(|| 35, reply).unwrap();
            },
            rx,
            1,
        );
        assert_eq!(sent, [(42, false)]);
    }
}
