//! [`SequenceBound<T>`]: a value that lives on a sequence and is reached only by posting to it.
//!
//! # How the value is kept
//!
//! The value sits in a slot shared by the handles and the tasks they post (an `Arc`), and every
//! access happens inside a task of the bound sequence. The sequence runs its tasks one at a time,
//! each seeing the effects of the ones before, so accesses never overlap. Safe Rust cannot see
//! that guarantee, so the slot is an `Exclusive<Option<T>>` (`sync.rs`: a try-lock, which like
//! a `Mutex` needs only `T: Send` to be `Sync`, exactly the bound we want) that is only ever
//! taken from the sequence: with one compare-and-swap, never waited on, and given back with a
//! plain store. A failure to take it would mean a runner broke the [`SequencedRunner`] contract
//! (it panics with that message; it cannot happen with the crate's runners). It was a
//! `std::sync::Mutex`, whose unlock is a second read-modify-write; the try-lock made a bound's
//! posts about 5-10 % faster (docs/PERFORMANCE.md, step 26). An `UnsafeCell` alone would save
//! the rest at the price of an `unsafe` block whose proof rests on every runner's exclusion,
//! and a task handed back by a rejected post may run on any runner. The loom models check the
//! try-lock through the `sync` facade.
//!
//! # Posts without a reference count
//!
//! A task that holds a clone of the slot's `Arc` costs two contended read-modify-writes per
//! `post`: the poster's increment and the worker's decrement of the same count, a cache line
//! that crosses between the two cores once per task. With that, a bound ran at about half the
//! rate of a plain sequence (docs/PERFORMANCE.md, step 19). So when the runner is the crate's
//! own [`SequencedTaskRunner`], `post` hands its task the slot's address instead
//! ([`BoundPost`]), and the slot is kept alive by an ordering argument rather than a count:
//!
//! 1. Such a task exists only inside that sequence's queue, or in the hands of its worker
//!    while it runs or drops it. A post the sequence rejects comes back in the `PostError`, and
//!    `post` swaps it for an ordinary task holding a clone of the `Arc` before returning it.
//! 2. Every such post happens before the last handle is dropped (it is made through a handle).
//!    Dropping the last handle posts the task that drops the value, holding a clone of the
//!    `Arc`. The sequence takes its tasks in order and finishes each (runs it or drops it)
//!    before it takes the next, so that task, and with it the slot, goes after every task that
//!    holds the address.
//! 3. If the sequence no longer accepts posts at that point, that task is rejected. If the
//!    sequence has terminated (closed, idle, nothing queued), no task with the address is left
//!    and the slot goes at once; otherwise the sequence keeps the rejected task until it has
//!    terminated, or at the latest until it is dropped, after its queue
//!    (`Sequence::keep_until_terminated`).
//!
//! Other runners (a [`SingleThreadTaskRunner`](crate::SingleThreadTaskRunner), or one outside
//! this crate, whose order the crate cannot vouch for) get tasks that hold a clone of the
//! `Arc`, as `call` always does.
//!
//! The handle gives no way to reach `&T` or `&mut T` except inside a closure run on the
//! sequence, and what a closure returns must be `'static`, so no borrow of the value escapes.
//!
//! The life cycle (creation, use, drop, shutdown) is documented on [`SequenceBound`].

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;

use crate::sync::{Exclusive, ExclusiveGuard};

use crossbeam_utils::CachePadded;

use crate::closure::{Job, PostedFrom};
use crate::runner::SequencedRunner;
use crate::sync;
use crate::{PostError, SequenceToken, SequencedTaskRunner, Task, TaskHandle, TaskRunner};

/// A `T` owned by a sequence: created, used and dropped only there.
///
/// This is the "replace your mutex" type: instead of `Arc<Mutex<T>>`, bind the value to a
/// sequence and send it closures. `T` must be `Send` (it is built and dropped on pool threads)
/// but need not be `Sync`: only one closure ever touches it at a time.
///
/// ```
/// use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(2).build()?;
/// let seq = pool.sequenced_runner(TaskTraits::default());
///
/// let counter = SequenceBound::new(&seq, || 0u64);       // T lives on the sequence
/// let c = counter.clone();                               // cheap handle
/// std::thread::spawn(move || c.post(|n| *n += 1).unwrap()).join().unwrap();
/// counter.post(|n| *n += 1)?;
/// assert_eq!(counter.call(|n| *n)?.join()?, 2);          // or `.await`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A `T` that is `Send` but not `Sync`, such as a `Cell`, is fine:
///
/// ```
/// use std::cell::Cell;
/// use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let cell = SequenceBound::new(&seq, || Cell::new(1));
/// cell.post(|c| c.set(c.get() + 1)).unwrap();
/// assert_eq!(cell.call(|c| c.get()).unwrap().join().unwrap(), 2);
/// ```
///
/// # Life cycle
///
/// - **Creation.** `new` posts the constructor to the sequence; `T` is built there. If the
///   sequence has already shut down, the constructor is dropped unrun and every later `post` or
///   `call` is rejected too.
/// - **Use.** `post` and `call` run their closure on the sequence, in posting order with
///   everything else posted there. A closure that panics is reported like any task; the value
///   stays as the panic left it and the bound goes on working. If the constructor itself
///   panicked there is no value: each later closure panics with a message saying so (reported,
///   and an error for `call`'s handle), rather than being skipped silently.
/// - **Drop.** When the last handle is dropped, a task that drops `T` is posted to the sequence;
///   it runs after every closure posted through any handle. If the sequence has shut down, `T` is
///   dropped by whichever holder of the slot goes last: a task of the sequence still queued or
///   running (on the sequence), a task handed back by a rejected `post` or `call`, or else the
///   thread that dropped the last handle. On a [`SequencedTaskRunner`] that has shut down but
///   still holds closures posted through the handles (queued, or behind a running task), the
///   sequence itself holds the slot until those closures have run or been dropped, and `T` goes
///   then (on the sequence's worker, or on the thread that dropped the last handle if it saw
///   the sequence finish). Either way, never while a closure is using it.
///
/// # What does not compile
///
/// A `T` that cannot move between threads (`Rc`):
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let shared = SequenceBound::new(&seq, || Rc::new(5)); // error: `Rc<i32>` cannot be sent
/// ```
///
/// Taking the state out of the sequence, to use it elsewhere:
///
/// ```compile_fail
/// use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let state = SequenceBound::new(&seq, || vec![1, 2, 3]);
/// let escaped = state.call(|v| v).unwrap().join().unwrap(); // error: the borrow cannot escape
/// escaped.push(4);
/// ```
///
/// Touching the state from a task of another runner (the guide's "cross-runner state access"
/// mistake, which in languages without borrow checking compiles and races):
///
/// ```compile_fail,E0521
/// use taskrunner::{SequenceBound, TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(2).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let other = pool.sequenced_runner(TaskTraits::default());
/// let state = SequenceBound::new(&seq, || 0u64);
/// state
///     .post(move |n| {
///         other.post(move || *n += 1).unwrap(); // error: `n` does not live long enough
///     })
///     .unwrap();
/// ```
///
/// Nor does keeping a reference to the value across closures, or using it from a thread:
///
/// ```compile_fail,E0521
/// use taskrunner::{SequenceBound, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(1).build().unwrap();
/// let seq = pool.sequenced_runner(TaskTraits::default());
/// let state = SequenceBound::new(&seq, || String::from("owned by seq"));
/// let mut leaked: Option<&mut String> = None;
/// state.post(|s| leaked = Some(s)).unwrap(); // error: the closure must be 'static
/// std::thread::spawn(move || leaked.unwrap().push('!'));
/// ```
pub struct SequenceBound<T: Send + 'static> {
    /// The handles' count goes through the `sync` facade: its release and acquire order every
    /// post through any handle before the last handle's drop, which the loom model of the
    /// address-carrying posts relies on (`tests/loom_sequence.rs`).
    inner: sync::Arc<Inner<T>>,
}

/// The slot the value lives in: locked only from the bound sequence (see the module docs).
///
/// Padded to its own cache lines: every `post` clones the `Arc` on the posting thread and every
/// task drops it on the worker, so the reference counts cross between cores once per task;
/// unpadded, the flag the worker takes and gives back per task shared their line and
/// crossed with them. Padded, the flag stays in the worker's cache. Measured in
/// docs/PERFORMANCE.md (step 11); the cost is about 200 bytes more per `SequenceBound`.
type Slot<T> = Arc<CachePadded<Exclusive<Option<T>>>>;

struct Inner<T: Send + 'static> {
    runner: Runner,
    token: Option<SequenceToken>,
    slot: Slot<T>,
    created_at: &'static Location<'static>,
}

impl<T: Send + 'static> SequenceBound<T> {
    /// Binds a value to `runner`'s sequence: `ctor` is posted there and builds the value.
    ///
    /// If the runner has shut down, `ctor` is dropped unrun and every later `post` and `call`
    /// returns `Err(PostError::Closed(..))`.
    #[track_caller]
    pub fn new<R, F>(runner: &R, ctor: F) -> SequenceBound<T>
    where
        R: SequencedRunner,
        F: FnOnce() -> T + Send + 'static,
    {
        let created_at = Location::caller();
        let slot: Slot<T> = Arc::new(CachePadded::new(Exclusive::new(None)));
        let target = slot.clone();
        let construct = move || {
            let value = ctor();
            access(&target).with(|slot| *slot = Some(value));
        };
        // A rejected constructor is dropped here, unrun; later posts are rejected the same way.
        let _ = runner.post_task(Task::with_location(construct, created_at));
        SequenceBound {
            inner: sync::Arc::new(Inner {
                runner: match (runner as &dyn Any).downcast_ref::<SequencedTaskRunner>() {
                    Some(sequence) => Runner::Sequence(sequence.clone()),
                    None => Runner::Other(Box::new(runner.clone())),
                },
                token: runner.sequence_token(),
                slot,
                created_at,
            }),
        }
    }

    /// Posts `f` to the sequence, to run with the value.
    #[track_caller]
    pub fn post<F>(&self, f: F) -> Result<(), PostError>
    where
        F: FnOnce(&mut T) + Send + 'static,
    {
        let location = Location::caller();
        let Runner::Sequence(sequence) = &self.inner.runner else {
            let slot = self.inner.slot.clone();
            return self
                .inner
                .runner
                .get()
                .post_task(Task::with_location(move || with_value(&slot, f), location));
        };
        let job = BoundPost { slot: Arc::as_ptr(&self.inner.slot), f };
        sequence.post_task(Task::from_job(job, location)).map_err(|error| {
            // The task must not leave with the slot's address (module docs, point 1).
            error.map_task(|task| {
                // SAFETY: `SequencedTaskRunner::post_task` hands back, unchanged, the task it
                // was given (`Sequence::post` and `Sequence::reject`), built just above from a
                // `BoundPost<T, F>`.
                #[allow(unsafe_code)]
                let job = unsafe { task.into_job::<BoundPost<T, F>>() };
                let slot = self.inner.slot.clone();
                Task::with_location(move || with_value(&slot, job.f), location)
            })
        })
    }

    /// Posts `f` to the sequence and returns a handle to what it returns.
    ///
    /// Waiting on the handle from inside the bound sequence itself, before `f` has run, is
    /// refused ([`TaskError::is_would_deadlock`](crate::TaskError::is_would_deadlock)).
    #[track_caller]
    pub fn call<F, U>(&self, f: F) -> Result<TaskHandle<U>, PostError>
    where
        F: FnOnce(&mut T) -> U + Send + 'static,
        U: Send + 'static,
    {
        let slot = self.inner.slot.clone();
        let location = Location::caller();
        let (handle, run) =
            TaskHandle::new(move || with_value(&slot, f), location, self.inner.token);
        self.inner.runner.get().post_task(Task::with_location(run, location))?;
        Ok(handle)
    }

    /// The token of the sequence the value lives on.
    pub fn sequence_token(&self) -> Option<SequenceToken> {
        self.inner.token
    }

    /// Whether the bound sequence has shut down (every post is rejected).
    pub fn is_closed(&self) -> bool {
        self.inner.runner.get().is_closed()
    }
}

impl<T: Send + 'static> Clone for SequenceBound<T> {
    fn clone(&self) -> Self {
        SequenceBound { inner: self.inner.clone() }
    }
}

impl<T: Send + 'static> fmt::Debug for SequenceBound<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceBound")
            .field("type", &std::any::type_name::<T>())
            .field("token", &self.inner.token)
            .field("created_at", &format_args!("{}", self.inner.created_at))
            .finish()
    }
}

impl<T: Send + 'static> Drop for Inner<T> {
    fn drop(&mut self) {
        let slot = self.slot.clone();
        let drop_value =
            Task::with_location(move || drop(access(&slot).with(Option::take)), self.created_at);
        let Runner::Sequence(sequence) = &self.runner else {
            // If the sequence has shut down, the value goes with the last holder of the slot
            // (see the type's docs); the rejected task is dropped right here.
            let _ = self.runner.get().post_task(drop_value);
            return;
        };
        if let Err(rejected) = sequence.post_task(drop_value) {
            // Tasks holding the slot's address may still be queued in the closed sequence, or
            // running: the slot must outlive them (module docs, point 3). If the sequence has
            // terminated, the kept task goes at once.
            sequence.sequence().keep_until_terminated(rejected.into_task());
        }
    }
}

/// The runner a bound posts to. On the crate's own sequenced runner, `post` hands its tasks the
/// slot's address instead of a clone of the `Arc` (see the module docs).
enum Runner {
    Sequence(SequencedTaskRunner),
    Other(Box<dyn TaskRunner>),
}

impl Runner {
    fn get(&self) -> &dyn TaskRunner {
        match self {
            Runner::Sequence(sequence) => sequence,
            Runner::Other(runner) => &**runner,
        }
    }
}

/// A `post` to the crate's own sequenced runner: the closure and the address of the slot,
/// without a reference count (see the module docs for why the slot outlives it).
struct BoundPost<T, F> {
    slot: *const CachePadded<Exclusive<Option<T>>>,
    f: F,
}

// SAFETY: the slot is an `Exclusive<Option<T>>`, which is `Sync` for `T: Send`, so reaching
// it from the worker's thread through the address is what sending a clone of the `Arc` would
// allow; `F` is `Send`.
#[allow(unsafe_code)]
unsafe impl<T: Send, F: Send> Send for BoundPost<T, F> {}

impl<T: Send + 'static, F: FnOnce(&mut T) + Send + 'static> Job for BoundPost<T, F> {
    fn run(self, _posted_from: PostedFrom) {
        // SAFETY: the slot is alive: this task is running on the bound sequence, whose task
        // that frees the slot (or whose own drop) comes after it (module docs, points 1-3).
        #[allow(unsafe_code)]
        let slot = unsafe { &*self.slot };
        with_value(slot, self.f)
    }
    // Dropped unrun: the closure goes, and the slot is not touched.
}

/// Runs `f` with the value, on the sequence.
fn with_value<T, U>(slot: &Exclusive<Option<T>>, f: impl FnOnce(&mut T) -> U) -> U {
    access(slot).with(|value| match value.as_mut() {
        Some(value) => f(value),
        None => panic!(
            "SequenceBound<{}>: no value, its constructor panicked (or, for a task handed back \
             by a rejected post, the value was dropped with the last handle)",
            std::any::type_name::<T>()
        ),
    })
}

/// Takes the slot. Only tasks of the bound sequence call this, so it is never contended. A
/// closure that panicked while it used the value gave it back as it left it (the guard's drop
/// runs during the unwind).
fn access<T>(slot: &Exclusive<Option<T>>) -> ExclusiveGuard<'_, Option<T>> {
    slot.try_take().unwrap_or_else(|| {
        panic!("SequenceBound accessed from two tasks at once: the runner is not sequenced")
    })
}
