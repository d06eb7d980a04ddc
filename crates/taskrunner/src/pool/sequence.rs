//! The sequence: a queue of tasks plus the state word that decides who runs them.
//!
//! # State machine
//!
//! One atomic word; every transition is a named function below and nothing else touches it.
//!
//! ```text
//!   bit 0  SCHEDULED  the pool owns the sequence: it is in a pool queue or a worker runs it
//!   bit 1  CLOSED     the runner was shut down: posts are rejected
//!   bit 2  DRAINING   the owner is working through a backlog: posts need not count themselves
//!   bits 3+  NOTIFIED   how many posts completed since the owner last looked
//!
//!   post:    push the task (claim a slot, write it, mark it ready), then read the word with
//!            a light barrier (`sync::asymmetric`); if DRAINING is set, done. Otherwise
//!            fetch_add(NOTIFIED); if SCHEDULED was clear, fetch_or(SCHEDULED), and whoever
//!            set it (saw it clear) enqueues the sequence
//!   drain:   the owner, after 32 tasks in one batch: fetch_or(DRAINING) (only where the
//!            heavy barrier is available)
//!   release: the owner's pop found no ready task:
//!            fetch_and(SCHEDULED | CLOSED) (take the count and DRAINING); if DRAINING was
//!            set → heavy barrier, pop again; if the count was non-zero → pop again;
//!            else CAS(SCHEDULED → clear), failing if anything changed → pop again
//!   close:   fetch_or(CLOSED) (queued tasks run or are dropped by behaviour)
//! ```
//!
//! Why no task is stranded: a poster marks its slot ready *before* it reads the word, and the
//! owner gives the sequence up only with a CAS that fails if a post was counted after the
//! owner's `fetch_and` took the count. Take any post P. If P read DRAINING set, that read came
//! before the `fetch_and` that cleared it (only the owner sets the bit, while it holds
//! SCHEDULED, and only that `fetch_and` clears it; the release that clears SCHEDULED comes
//! later); the owner issues the heavy barrier after that `fetch_and` and pops again, and the
//! pair of barriers makes P's slot visible to that pop. Otherwise P counts itself: if its
//! `fetch_add` comes before the owner's `fetch_and`, that RMW acquires P's release, so the
//! owner's next pop sees P's slot ready. If it comes between the `fetch_and` and the CAS, the
//! CAS fails and the owner pops again. If it comes after the CAS, P sees `SCHEDULED` clear
//! and, through `fetch_or`, exactly one such poster schedules the sequence.
//!
//! Why DRAINING: the count's `fetch_add` is a locked instruction, which waits until the
//! post's slot stores have reached the cache, and the slot's line is usually in the worker's
//! cache, where the worker last cleared it: a cross-core round trip per post. While the owner
//! works through a backlog it polls the queue anyway and needs no notice, so the posts read
//! the word instead and go on; the owner pays one `membarrier(2)` when it lets the backlog go
//! (docs/PERFORMANCE.md, step 29). Where the barrier is missing (not Linux, or a kernel or
//! seccomp filter without it) the owner never sets DRAINING and every post counts itself.
//!
//! The owner never waits for a poster: a slot claimed but not yet written (its poster was
//! descheduled mid-push) simply ends the batch; that poster's `fetch_add` comes later and
//! schedules the sequence again. Tasks stay in claim order, so a task written after the slow
//! one waits behind it, as FIFO requires.
//!
//! Why two tasks never overlap: only the thread that moved SCHEDULED from 0 to 1 owns the
//! sequence (only the owner pops: the queue has one consumer), and it gives ownership up only
//! by clearing the bit or by handing the sequence to a pool queue, which the next worker takes
//! with acquire ordering. Each task therefore happens-before the next.
//!
//! # Bounded sequences
//!
//! A sequence built with a capacity also has a [`Bounded`] count (see `bounded.rs`): `post`
//! reserves a place before pushing (or returns `Full`), `pop` frees it. An unbounded sequence
//! has no `Bounded` and its post path is unchanged.

use std::mem::ManuallyDrop;
use std::time::Instant;

use crate::current::SequenceToken;
use crate::observe::{self, RejectReason};
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{asymmetric, Arc};
use crate::task::TaskInPlace;
use crate::{PostError, Task, TaskTraits};

use super::bounded::{Bounded, Reserve};
#[cfg(not(loom))]
use super::queue::LONG_BACKLOG;
use super::queue::{BlockCache, Cursor, TaskQueue};
use super::{Shared, Source};

const SCHEDULED: usize = 1;
const CLOSED: usize = 2;
const DRAINING: usize = 4;
/// Bits 3 and up count the posts completed since the owner last looked (`NOTIFIED` is one).
const NOTIFIED: usize = 8;
/// What `release` keeps of the word: it takes the count and DRAINING.
const FLAGS: usize = SCHEDULED | CLOSED;

/// Polls of the queue's length by a post that found a long backlog before it yields its core
/// (`Sequence::let_the_owner_catch_up`): a spin hint and two loads each, a few microseconds in
/// all, about two of the worker's batches of small tasks.
#[cfg(not(loom))]
const CATCH_UP_POLLS: usize = 128;

/// What a worker does after [`Sequence::release`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// The sequence is idle: the worker is done with it.
    Released,
    /// A post completed meanwhile: the worker still owns the sequence and pops again.
    Reacquired,
}

/// Field order matters (`repr(C)`). The `Arc`'s reference counts sit just before the first
/// field, and the allocation starts 0, 16, 32 or 48 bytes past a cache line, so the order is
/// chosen to work in all four placements:
///
/// - the fields every post touches (`state`, `bounded`, the queue's tail) come first, in or
///   near the counts' line: a thread that clones a handle to post through it writes that line
///   anyway;
/// - the fields the owner reads for every task (`closed`, `traits`, `pool`) come last, at
///   least 64 bytes after the counts and 64 after the tail, so that neither a post nor a
///   handle's clone or drop takes their line from the worker;
/// - the owner's own writes (the queue's head, `tasks_run`) and the fields read rarely fill
///   the middle.
///
/// Before this order, `closed` and `pool` shared a line with the counts, and in the
/// `post` ping-pong (a task clones the other sequence's handle and posts to it) each hop
/// waited for that line twice: 440-510 ns per round trip, 320-360 after (docs/PERFORMANCE.md,
/// step 22). The size stays 112 bytes (128 with the counts: the memory goal's limit).
#[repr(C)]
pub(crate) struct Sequence {
    state: AtomicUsize,
    /// Present only on a bounded sequence (it also counts the rejections).
    bounded: Option<Box<Bounded>>,
    queue: TaskQueue,
    /// Statistics: tasks run, added by the owner once per batch.
    tasks_run: AtomicU64,
    name: Option<std::sync::Arc<str>>,
    token: SequenceToken,
    /// Metric keys (zero-sized without the `metrics` feature).
    metrics: observe::RunnerMetrics,
    /// Tasks kept until the sequence has terminated, or else until it is dropped, after its
    /// queue (see `keep_until_terminated`). Declared after `queue`, so dropped after it.
    kept: Kept,
    /// `CLOSED`, repeated where the owner can read it on every task without touching the cache
    /// line that posters write.
    closed: AtomicBool,
    traits: TaskTraits,
    /// Statistics: a worker runs the sequence's tasks now (in what was padding).
    running: AtomicBool,
    pool: Arc<Shared>,
}

/// The owner's access to the queue for one batch. It keeps the queue position locally and
/// writes it back when dropped, which must happen before the sequence is released or handed
/// to another worker.
pub(crate) struct Consumer<'a> {
    queue: &'a TaskQueue,
    cursor: Cursor,
    /// The pool's block cache, where finished blocks go.
    blocks: &'a BlockCache,
    /// A bounded sequence's capacity count: each pop frees a place.
    bounded: Option<&'a Bounded>,
}

impl Consumer<'_> {
    /// The next ready task.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Task> {
        self.pop_with(|task| task.take())
    }

    /// Passes the next ready task to `f`, in its slot (see `TaskQueue::pop_with`); `None` if
    /// none is ready.
    #[inline]
    pub(crate) fn pop_with<R>(&mut self, f: impl FnOnce(TaskInPlace<'_>) -> R) -> Option<R> {
        let bounded = self.bounded;
        self.queue.pop_with(&mut self.cursor, Some(self.blocks), |task| {
            if let Some(bounded) = bounded {
                bounded.free();
            }
            f(task)
        })
    }

    /// Whether the next task is ready.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn has_ready_task(&mut self) -> bool {
        self.queue.is_ready(&mut self.cursor)
    }
}

impl Drop for Consumer<'_> {
    fn drop(&mut self) {
        self.queue.store_cursor(&self.cursor);
    }
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequence")
            .field("name", &self.name)
            .field("traits", &self.traits)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Sequence {
    pub(crate) fn new(
        pool: Arc<Shared>,
        traits: TaskTraits,
        name: Option<std::sync::Arc<str>>,
    ) -> Sequence {
        Sequence {
            closed: AtomicBool::new(false),
            traits,
            pool,
            name,
            running: AtomicBool::new(false),
            tasks_run: AtomicU64::new(0),
            bounded: None,
            token: SequenceToken::next(),
            metrics: observe::RunnerMetrics::default(),
            queue: TaskQueue::new(),
            state: AtomicUsize::new(0),
            kept: Kept::default(),
        }
    }

    /// Makes the sequence bounded (`capacity` ≥ 1; the builder checks).
    pub(crate) fn with_capacity(mut self, capacity: Option<usize>) -> Sequence {
        self.bounded = capacity.map(|c| Box::new(Bounded::new(c)));
        self
    }

    /// Transition `post`: push, then schedule the sequence if it was idle.
    #[inline(always)]
    pub(crate) fn post(this: &Arc<Sequence>, task: Task) -> Result<(), PostError> {
        if this.state.load(Ordering::Acquire) & CLOSED != 0 || !this.pool.is_accepting() {
            return Err(this.reject(RejectReason::Closed, task));
        }
        if let Some(bounded) = &this.bounded {
            if !bounded.try_reserve() {
                bounded.add_rejected();
                return Err(this.reject(RejectReason::Full, task));
            }
        }
        if this.pool.tracks_tasks() {
            Sequence::push_tracked(this, task);
        } else {
            Sequence::push(this, task);
        }
        Ok(())
    }

    /// `push` in a test environment's pool, which wraps each task for its watchdog. Out of
    /// line: selecting between the wrapped and the plain task in `post` cost a copy of the task.
    #[inline(never)]
    fn push_tracked(this: &Arc<Sequence>, task: Task) {
        Sequence::push(this, this.pool.track(task));
    }

    /// The push half of `post`, for a task that was admitted (and given a place if bounded).
    ///
    /// `post` and `push` are inlined into the caller's `post`, and the task reaches the queue
    /// by reference (`TaskQueue::push_from`): moved by value through these frames it was copied
    /// three times, each copy reading what the previous one had just written, which cost about
    /// half of a post (docs/PERFORMANCE.md, step 14).
    #[inline(always)]
    #[allow(unused_mut)] // `observe::posted` stamps the task only with `tracing` or `metrics`.
    #[allow(unsafe_code)]
    fn push(this: &Arc<Sequence>, task: Task) {
        let mut task = ManuallyDrop::new(task);
        observe::posted(&mut task, this.name());
        // SAFETY: `task` is forgotten, never used again.
        let long_backlog = unsafe { this.queue.push_from(&task, this.pool.blocks()) };
        if asymmetric::SUPPORTED && asymmetric::light_load(&this.state) & DRAINING != 0 {
            // The owner polls its queue and will see the slot (see the module docs).
            #[cfg(all(test, not(loom)))]
            tests::SKIPPED.with(|skipped| skipped.set(skipped.get() + 1));
        } else if this.state.fetch_add(NOTIFIED, Ordering::AcqRel) & SCHEDULED == 0 {
            // One `lock xadd`: a `fetch_or` of two bits whose result is used is a CAS loop on
            // x86.
            Sequence::schedule_idle(this);
        }
        if long_backlog {
            Sequence::let_the_owner_catch_up(this);
        }
    }

    /// Backpressure without blocking: a post that opens a block of the queue while more than
    /// `LONG_BACKLOG` tasks (about a thousand) wait ahead of it gives the worker a moment to
    /// catch up, once per block (31 posts). The posts that outrun the worker otherwise grow the
    /// queue into freshly allocated blocks, whose page faults the posters pay and whose cold
    /// cache lines the worker reads.
    ///
    /// First the post polls the queue's length for a few microseconds (about two of the
    /// worker's batches): a worker running on another core brings it under the threshold and
    /// the post goes on. Only if it does not is the core yielded, which hands it to another
    /// runnable thread, perhaps the worker itself when posters and worker share a core. On the
    /// 2-core machine of docs/PERFORMANCE.md the yield alone (step 18) raised the throughput
    /// benchmark's medians about 1.15x with one posting thread and 1.4-1.5x with 4 and 16; but
    /// with other processes keeping the cores busy, each yield gave a whole time slice to them,
    /// and the sequence fell to a few million posts per second (step 20, which added the poll).
    /// The price: a thread that posts a long burst alone waits up to the poll and a system call
    /// per 31 posts once the backlog is long, while the worker is the bottleneck anyway.
    #[cold]
    #[inline(never)]
    fn let_the_owner_catch_up(this: &Sequence) {
        #[cfg(not(loom))]
        for _ in 0..CATCH_UP_POLLS {
            crate::sync::spin_hint();
            if this.queue.len() <= LONG_BACKLOG {
                return;
            }
        }
        #[cfg(all(test, not(loom)))]
        tests::YIELDS.with(|yields| yields.set(yields.get() + 1));
        // Under loom the models post a handful of tasks and check the protocol, which this
        // hint is not part of.
        #[cfg(not(loom))]
        crate::sync::thread::yield_now();
        #[cfg(loom)]
        let _ = this;
    }

    /// The second half of `post` when the sequence looked idle: whoever sets SCHEDULED first
    /// schedules it. Kept out of line, so that what `post` inlines into callers stays small.
    #[inline(never)]
    fn schedule_idle(this: &Arc<Sequence>) {
        if this.state.fetch_or(SCHEDULED, Ordering::AcqRel) & SCHEDULED == 0 {
            this.pool.schedule(Source::Sequence(this.clone()), this.traits.priority());
        }
    }

    /// `post` that waits until `deadline` for room in a bounded sequence (same as `post` on an
    /// unbounded one). The caller has checked it does not run in this sequence.
    #[cold]
    pub(crate) fn post_until(
        this: &Arc<Sequence>,
        task: Task,
        deadline: Option<Instant>,
    ) -> Result<(), PostError> {
        let Some(bounded) = &this.bounded else { return Sequence::post(this, task) };
        if this.is_closed() {
            return Err(this.reject(RejectReason::Closed, task));
        }
        match bounded.reserve_until(deadline, || this.is_closed()) {
            Reserve::Reserved => {
                Sequence::push(this, task);
                Ok(())
            }
            Reserve::TimedOut => {
                bounded.add_rejected();
                Err(this.reject(RejectReason::Full, task))
            }
            Reserve::Closed => Err(this.reject(RejectReason::Closed, task)),
        }
    }

    /// A refused post: reported to the pool's observers, handed back in the error.
    #[cold]
    pub(crate) fn reject(&self, reason: RejectReason, task: Task) -> PostError {
        self.pool.reject(self.name(), self.traits.priority(), reason, task)
    }

    /// The capacity, for a bounded sequence.
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.bounded.as_ref().map(|b| b.capacity())
    }

    /// Transition `drain`: the owner has a backlog and polls its queue, so posts may stop
    /// counting themselves until its next `release`. Only the owner calls this; a no-op where
    /// the heavy barrier that `release` then needs is missing.
    pub(crate) fn start_draining(&self) {
        if asymmetric::available() {
            // Relaxed: what makes a skipped post safe is `release`'s barrier, not this write.
            self.state.fetch_or(DRAINING, Ordering::Relaxed);
        }
    }

    /// Statistics: whether a worker runs the sequence's tasks now (set by the owner).
    #[inline]
    pub(crate) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    /// Statistics: `n` more tasks ran (once per batch, by the owner).
    #[inline]
    pub(crate) fn add_run(&self, n: u64) {
        if n > 0 {
            self.tasks_run.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Statistics: (running, tasks run, rejected for a full queue).
    pub(crate) fn stats(&self) -> (usize, u64, u64) {
        (
            usize::from(self.running.load(Ordering::Relaxed)),
            self.tasks_run.load(Ordering::Relaxed),
            self.bounded.as_ref().map_or(0, |b| b.rejected()),
        )
    }

    /// Access to the queue for one batch. Only the thread that owns the sequence (holds
    /// `SCHEDULED`) may call this: the queue has a single consumer.
    #[inline]
    pub(crate) fn consumer(&self) -> Consumer<'_> {
        Consumer {
            queue: &self.queue,
            cursor: self.queue.cursor(),
            blocks: self.pool.blocks(),
            bounded: self.bounded.as_deref(),
        }
    }

    /// Transition `release`: the owner's pop found no ready task; it gives the sequence up
    /// unless a post completed since it last looked.
    pub(crate) fn release(&self) -> Release {
        let prev = self.state.fetch_and(FLAGS, Ordering::AcqRel);
        if prev & DRAINING != 0 {
            // Posts that read DRAINING set did not count themselves: make their slots visible
            // to this thread, and look again.
            asymmetric::heavy();
            return Release::Reacquired;
        }
        if prev & !FLAGS != 0 {
            return Release::Reacquired;
        }
        let idle = prev & !SCHEDULED;
        if self.state.compare_exchange(prev, idle, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // A post (or a close) landed in between: look again.
            return Release::Reacquired;
        }
        if idle & CLOSED != 0 || !self.pool.is_accepting() {
            // Someone may wait for this runner to finish shutting down.
            self.pool.notify_runner_event();
            self.drop_kept_if_terminated();
        }
        Release::Released
    }

    /// Transition `close`: no post is accepted from now on. Idempotent, never blocks.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let prev = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if let Some(bounded) = &self.bounded {
            // Posters waiting for room give up: the runner is closed.
            bounded.notify_waiters();
        }
        if prev & (CLOSED | SCHEDULED) == 0 {
            // Idle: it has terminated right now.
            self.pool.notify_runner_event();
        }
    }

    /// The owner's per-task check: the runner was shut down, or its pool is shutting down.
    /// Reads no cache line that posts write.
    #[inline]
    pub(crate) fn is_closed_for_owner(&self) -> bool {
        self.closed.load(Ordering::Acquire) || !self.pool.is_accepting()
    }

    /// The runner was shut down, or its pool is shutting down.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0 || !self.pool.is_accepting()
    }

    /// Keeps `task` until every task the queue holds now has run or been dropped, and drops it
    /// then: once the sequence has terminated, or at the latest with the sequence, after its
    /// queue. For a task that must outlive what is queued when the sequence no longer accepts
    /// posts (`SequenceBound`'s last handle, `sequence_bound.rs`).
    ///
    /// The kept tasks are dropped by whoever takes them and then sees the sequence terminated:
    /// this call, after its push, or the owner, after each release of a closed sequence; a
    /// taker that does not see it terminated puts them back. Taking first matters: the take is
    /// a read-modify-write of the stack's head, so it follows every push it finds, and with it
    /// every post made before that push. A termination seen after the take therefore means the
    /// queue was empty after those posts, so their tasks have all run or been dropped. (A check
    /// made before the take could miss a post that a later push vouches for.) Without the
    /// owner's part, a kept task that holds the sequence, say a value that keeps a handle to
    /// its own runner, would keep it alive for ever.
    pub(crate) fn keep_until_terminated(&self, task: Task) {
        self.kept.push(task);
        self.drop_kept_if_terminated();
    }

    /// Takes the kept tasks and drops them if the sequence has terminated, or puts them back.
    fn drop_kept_if_terminated(&self) {
        let kept = self.kept.take();
        if kept.is_empty() {
            return;
        }
        if self.is_terminated() {
            drop(kept);
        } else {
            self.kept.put_back(kept);
        }
    }

    /// Closed, not owned by any worker, and nothing queued: nothing will ever run again.
    pub(crate) fn is_terminated(&self) -> bool {
        self.is_closed()
            && self.state.load(Ordering::Acquire) & SCHEDULED == 0
            && self.queue.is_empty()
    }

    pub(crate) fn pool(&self) -> &Arc<Shared> {
        &self.pool
    }

    pub(crate) fn traits(&self) -> TaskTraits {
        self.traits
    }

    pub(crate) fn token(&self) -> SequenceToken {
        self.token
    }

    /// The runner's name (`"sequence"` when none was given).
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("sequence")
    }

    /// The runner as spans and metrics see it.
    #[inline]
    pub(crate) fn observed(&self) -> observe::Runner<'_> {
        observe::Runner::new(self.name(), self.traits.priority(), &self.metrics)
    }

    /// Tasks queued and not yet started: exact on a bounded sequence (its capacity count);
    /// otherwise the queue's positions, where the owner's position is written back at the end
    /// of a batch, so tasks of the running batch may still be counted.
    pub(crate) fn queued(&self) -> usize {
        match &self.bounded {
            Some(bounded) => bounded.len(),
            None => self.queue.len(),
        }
    }
}

/// A stack of kept tasks (`Sequence::keep_until_terminated`): pushed with a compare-and-swap
/// on the head, taken whole with a swap. An empty stack is one null pointer.
#[derive(Default)]
struct Kept {
    head: AtomicPtr<KeptTask>,
}

struct KeptTask {
    task: Task,
    next: *mut KeptTask,
}

/// Kept tasks taken off the stack, owned by the taker: dropped with it, or put back.
struct KeptList(*mut KeptTask);

impl Kept {
    fn push(&self, task: Task) {
        self.push_node(Box::into_raw(Box::new(KeptTask { task, next: std::ptr::null_mut() })));
    }

    #[allow(unsafe_code)]
    fn push_node(&self, node: *mut KeptTask) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours (fresh, or taken off a `KeptList`) until the CAS below
            // publishes it.
            unsafe { (*node).next = head };
            match self.head.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Takes every kept task.
    fn take(&self) -> KeptList {
        KeptList(self.head.swap(std::ptr::null_mut(), Ordering::AcqRel))
    }

    /// Puts taken tasks back.
    #[allow(unsafe_code)]
    fn put_back(&self, list: KeptList) {
        let mut node = list.0;
        std::mem::forget(list);
        while !node.is_null() {
            // SAFETY: the list owns its nodes (taken off the stack whole); each is read here
            // before it is pushed, and pushed once.
            let next = unsafe { (*node).next };
            self.push_node(node);
            node = next;
        }
    }
}

impl KeptList {
    fn is_empty(&self) -> bool {
        self.0.is_null()
    }
}

impl Drop for KeptList {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let mut node = self.0;
        while !node.is_null() {
            // SAFETY: every node came from `Box::into_raw` in `push`, and the list owns the
            // nodes it took off the stack: each is freed once, here.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.next;
            drop(boxed.task);
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    std::thread_local! {
        /// Times this thread yielded in `Sequence::let_the_owner_catch_up`.
        pub(super) static YIELDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// Posts of this thread that read DRAINING set and did not count themselves.
        pub(super) static SKIPPED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn the_owners_fields_share_no_cache_line_with_posts_or_the_counts() {
        use std::mem::{offset_of, size_of};
        // Offsets in the `Arc`'s heap block: the two reference counts, then the sequence. Two
        // byte ranges can never share a 64-byte line, wherever the block starts, if the second
        // starts at least 64 bytes after the last byte of the first.
        let counts = 2 * size_of::<usize>();
        let at = |offset: usize| counts + offset;
        let apart = |last_byte: usize, start: usize| start >= last_byte + 64;
        let owner = at(offset_of!(Sequence, closed));
        assert!(at(offset_of!(Sequence, traits)) > owner && at(offset_of!(Sequence, pool)) > owner);
        // What posts write: the state word, and the queue's tail and tail block.
        let queue = at(offset_of!(Sequence, queue));
        let posts = [
            at(offset_of!(Sequence, state)) + size_of::<usize>() - 1,
            queue + TaskQueue::PRODUCER_BYTES - 1,
        ];
        for last in posts {
            assert!(apart(last, owner), "a post writes byte {last}, the owner reads {owner}");
        }
        assert!(apart(counts - 1, owner), "the owner reads byte {owner}, by the counts");
    }

    #[test]
    fn an_idle_sequence_fits_in_128_bytes_of_heap() {
        // The runner handle is one `Arc<Sequence>`: the heap block is the two reference counts
        // plus the sequence. An idle, never-used queue owns no block. The `metrics` feature
        // adds one runner's metric keys (a `OnceLock` of a box); the goal is for the
        // default build.
        let metrics = std::mem::size_of::<observe::RunnerMetrics>();
        #[cfg(not(feature = "metrics"))]
        assert_eq!(metrics, 0);
        #[cfg(feature = "metrics")]
        assert!(metrics <= 16, "the metric keys take {metrics} bytes");
        let heap = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Sequence>() - metrics;
        assert!(heap <= 128, "an idle sequence takes {heap} bytes");
    }

    /// A one-worker pool and a sequence whose first task holds the worker until the returned
    /// sender sends.
    fn held_sequence(
    ) -> (crate::ThreadPool, crate::SequencedTaskRunner, std::sync::mpsc::Sender<()>) {
        use crate::TaskRunnerExt;
        let pool = crate::ThreadPool::builder().workers(1).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        seq.post(move || hold.recv().unwrap()).unwrap();
        (pool, seq, release)
    }

    #[test]
    fn a_poster_far_ahead_of_the_worker_yields_once_per_block_and_loses_nothing() {
        use crate::TaskRunnerExt;
        let (pool, seq, release) = held_sequence();
        let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let yields_before = YIELDS.with(|y| y.get());
        let posts = 4000;
        for i in 0..posts {
            let ran = ran.clone();
            seq.post(move || ran.lock().unwrap().push(i)).unwrap();
        }
        let yields = YIELDS.with(|y| y.get()) - yields_before;
        // The first task holds the worker, so every post waits: once more than `LONG_BACKLOG`
        // are queued, each post that opens a block yields (the worker writes its position
        // back only when a batch ends, so the backlog is counted from the first task).
        let blocks_past =
            (posts - crate::pool::queue::LONG_BACKLOG) / crate::pool::queue::BLOCK_CAP;
        assert!(
            (blocks_past - 1..=blocks_past + 1).contains(&yields),
            "{yields} yields for {blocks_past} blocks past the long backlog"
        );
        release.send(()).unwrap();
        seq.wait_idle(std::time::Duration::from_secs(30)).unwrap();
        assert_eq!(*ran.lock().unwrap(), (0..posts).collect::<Vec<_>>());
        drop(pool.shutdown());
    }

    #[test]
    fn a_short_backlog_never_yields() {
        use crate::TaskRunnerExt;
        let (pool, seq, release) = held_sequence();
        let yields_before = YIELDS.with(|y| y.get());
        for _ in 0..crate::pool::queue::LONG_BACKLOG - 1 {
            seq.post(|| {}).unwrap();
        }
        assert_eq!(YIELDS.with(|y| y.get()), yields_before);
        release.send(()).unwrap();
        seq.wait_idle(std::time::Duration::from_secs(30)).unwrap();
        drop(pool.shutdown());
    }

    #[test]
    fn posts_skip_their_count_while_the_owner_drains_and_none_is_lost() {
        use crate::TaskRunnerExt;
        use std::sync::mpsc::channel;
        let (pool, seq, release) = held_sequence();
        let ran = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let post = |i: usize| {
            let ran = ran.clone();
            seq.post(move || ran.lock().unwrap().push(i)).unwrap();
        };
        // A backlog behind the held first task, with one task in it that stops the owner
        // well past the first `DRAIN_AFTER` tasks of its batch, until told to go on.
        let (reached, wait_reached) = channel::<()>();
        let (go_on, wait_go_on) = channel::<()>();
        let backlog = 100;
        let stop_at = 60;
        (0..stop_at).for_each(post);
        let stopper = ran.clone();
        seq.post(move || {
            stopper.lock().unwrap().push(stop_at);
            reached.send(()).unwrap();
            wait_go_on.recv().unwrap();
        })
        .unwrap();
        (stop_at + 1..backlog).for_each(post);
        let skipped_before = SKIPPED.with(|s| s.get());
        release.send(()).unwrap();
        wait_reached.recv().unwrap();
        // The owner is inside a task of a batch that has run more than `DRAIN_AFTER` tasks:
        // DRAINING is set, and it cannot be cleared before that task returns.
        let during = 50;
        (backlog..backlog + during).for_each(post);
        let skipped = SKIPPED.with(|s| s.get()) - skipped_before;
        let expected = if asymmetric::available() { during } else { 0 };
        assert_eq!(skipped, expected, "posts that skipped their count while the owner drained");
        go_on.send(()).unwrap();
        seq.wait_idle(std::time::Duration::from_secs(30)).unwrap();
        assert_eq!(*ran.lock().unwrap(), (0..backlog + during).collect::<Vec<_>>());
        // The owner lingers for a few microseconds, then releases the sequence: wait for that
        // (no event marks it, so watch the word), and it must have taken DRAINING with it.
        let state = &seq.sequence().state;
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while state.load(Ordering::Acquire) & SCHEDULED != 0 {
            assert!(Instant::now() < deadline, "the owner never released the sequence");
            std::thread::yield_now();
        }
        assert_eq!(state.load(Ordering::Acquire) & DRAINING, 0, "released while draining");
        // So the next post counts itself and schedules the sequence again.
        let skipped_before = SKIPPED.with(|s| s.get());
        let (done, wait_done) = channel::<()>();
        seq.post(move || done.send(()).unwrap()).unwrap();
        assert_eq!(SKIPPED.with(|s| s.get()), skipped_before);
        wait_done
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a post after the drain ran");
        drop(pool.shutdown());
    }

    #[test]
    fn bursts_from_several_threads_around_idle_periods_all_run_in_order() {
        // Each burst is long enough for the owner to start draining and ends in a release
        // that clears DRAINING with the heavy barrier; posts race with that release.
        use crate::TaskRunnerExt;
        let pool = crate::ThreadPool::builder().workers(2).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default());
        let (threads, bursts, burst) = (3, 100, 200);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![0usize; threads]));
        std::thread::scope(|s| {
            for t in 0..threads {
                let (seq, seen) = (&seq, &seen);
                s.spawn(move || {
                    for b in 0..bursts {
                        for i in 0..burst {
                            let seen = seen.clone();
                            let n = b * burst + i;
                            seq.post(move || {
                                let mut seen = seen.lock().unwrap();
                                assert_eq!(seen[t], n, "thread {t}'s tasks out of order");
                                seen[t] = n + 1;
                            })
                            .unwrap();
                        }
                        // Let the sequence go idle between bursts, now and then.
                        if b % 4 == 0 {
                            let (done, wait_done) = std::sync::mpsc::channel::<()>();
                            seq.post(move || done.send(()).unwrap()).unwrap();
                            let idle = std::time::Duration::from_secs(30);
                            wait_done.recv_timeout(idle).expect("the burst ran");
                        }
                    }
                });
            }
        });
        seq.wait_idle(std::time::Duration::from_secs(60)).unwrap();
        // A failed order check panics in its task and poisons the lock: the count stops short,
        // and this `unwrap` fails.
        assert_eq!(*seen.lock().unwrap(), vec![bursts * burst; threads]);
        drop(pool.shutdown());
    }
}
