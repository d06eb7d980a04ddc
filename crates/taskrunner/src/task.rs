//! Tasks and the traits a runner gives them.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::ptr::NonNull;

use crate::closure::{Closure, Job, SmallFn};
use crate::observe::Stamp;

/// A unit of work: a closure to run once, and the place it was posted from.
///
/// Runners take `Task`s through [`TaskRunner::post_task`](crate::TaskRunner::post_task); the
/// helpers of [`TaskRunnerExt`](crate::TaskRunnerExt) build them for you and record the caller's
/// location with `#[track_caller]`. A rejected post hands its `Task` back inside the
/// [`PostError`](crate::PostError), so the caller may run it elsewhere or drop it.
///
/// A closure that captures at most 48 bytes is stored inside the `Task` (64 bytes in all), so
/// posting it allocates nothing; a larger one is boxed.
#[repr(C)]
pub struct Task {
    /// The closure and the posted-from location.
    f: SmallFn,
    /// Post time and id for the `tracing` and `metrics` features; zero-sized without them.
    stamp: Stamp,
}

/// A task without its vtable pointer: what a queue slot stores beside the pointer (see
/// `Task::move_into`). `repr(C)`, like `Task` and `SmallFn`, so that the pointer followed by a
/// `TaskBody` has exactly the layout of a `Task` (checked below).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct TaskBody {
    closure: [std::mem::MaybeUninit<u8>; crate::closure::INLINE_BYTES],
    location: &'static Location<'static>,
    /// Zero-sized without the `tracing` and `metrics` features.
    stamp: Stamp,
}

/// A `Task` is its closure's vtable pointer followed by a `TaskBody`, byte for byte, so a queue
/// slot that stores the pointer and then the body holds a `Task` and can be read back as one
/// (`pool/queue.rs`: one aligned 64-byte copy, where reassembling the halves cost a
/// store-forwarding stall per task).
pub(crate) const VTABLE_THEN_BODY: bool = {
    use std::mem::{offset_of, size_of};
    let word = size_of::<*mut ()>();
    crate::closure::VTABLE_STORAGE_LOCATION
        && offset_of!(Task, f) == 0
        && offset_of!(TaskBody, closure) == 0
        && offset_of!(TaskBody, location) == crate::closure::INLINE_BYTES
        && offset_of!(Task, stamp) == size_of::<SmallFn>()
        && offset_of!(Task, stamp) == word + offset_of!(TaskBody, stamp)
        && size_of::<Task>() == word + size_of::<TaskBody>()
};
const _: () = assert!(VTABLE_THEN_BODY);

impl Task {
    /// Wraps `f`, recording the caller as the posted-from location.
    #[track_caller]
    pub fn new<F>(f: F) -> Task
    where
        F: FnOnce() + Send + 'static,
    {
        Task::with_location(f, Location::caller())
    }

    /// Wraps `f` with an explicit posted-from location (for wrappers that forward their own
    /// caller's location).
    pub fn with_location<F>(f: F, location: &'static Location<'static>) -> Task
    where
        F: FnOnce() + Send + 'static,
    {
        Task::from_job(Closure(f), location)
    }

    /// A task that runs one of the library's own [`Job`]s.
    #[inline]
    pub(crate) fn from_job<J: Job>(job: J, location: &'static Location<'static>) -> Task {
        Task { f: SmallFn::new(job, location), stamp: Stamp::default() }
    }

    /// Moves the task into a queue slot: writes everything after its vtable pointer to `body`
    /// and returns the pointer (never null), for the slot to publish last.
    ///
    /// The copy goes one 8-byte word at a time, with volatile reads so the compiler keeps it
    /// that way: the poster wrote the task just before, in pieces of 8 bytes, and a wider load
    /// that straddles two stores still in the store buffer waits for them to reach the cache.
    /// Copying through a local first, or with 16-byte loads, made a post about 5 ns slower
    /// (docs/PERFORMANCE.md, step 14).
    ///
    /// # Safety
    /// `task` points to a live task, which is moved out: the caller neither uses nor drops it
    /// afterwards. `body` is valid for writes of a `TaskBody` that nothing else accesses.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(crate) unsafe fn move_into(task: *const Task, body: *mut TaskBody) -> *mut () {
        type Word = std::mem::MaybeUninit<u64>;
        const WORDS: usize = std::mem::size_of::<TaskBody>() / std::mem::size_of::<Word>();
        const _: () = assert!(std::mem::size_of::<TaskBody>() % std::mem::size_of::<Word>() == 0);
        const _: () = assert!(std::mem::align_of::<Task>() >= std::mem::align_of::<Word>());
        let src = task.cast::<Word>();
        let dst = body.cast::<Word>();
        // SAFETY: per the contract both ends are valid; a `Task` is its vtable pointer followed
        // by a `TaskBody` (`VTABLE_THEN_BODY`), both a whole number of aligned words, and
        // `MaybeUninit` words carry any bytes, padding and uninitialised closure storage
        // included. Ownership moves with the bytes (the caller forgets the task).
        unsafe {
            for i in 0..WORDS {
                std::ptr::write(dst.add(i), std::ptr::read_volatile(src.add(i + 1)));
            }
            std::ptr::read(src.cast::<*mut ()>())
        }
    }

    /// Reassembles a task that `move_into` moved out.
    ///
    /// # Safety
    /// `vtable` and `body` must come from one `move_into` call, and be reassembled once.
    // Only the loom build reassembles tasks from their halves; the queue otherwise reads a
    // written slot back as a whole `Task` (pool/queue.rs).
    #[cfg_attr(not(loom), allow(dead_code))]
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) unsafe fn from_raw(vtable: *mut (), body: TaskBody) -> Task {
        // SAFETY: forwarded from the caller.
        let f = unsafe { SmallFn::from_raw(vtable, body.closure, body.location) };
        Task { f, stamp: body.stamp }
    }

    /// Moves the job out, unrun, as the `J` it was built from (the location and stamp are
    /// dropped; neither needs a drop).
    ///
    /// # Safety
    /// The task was built by `Task::from_job::<J>` (with this very `J`).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn into_job<J: Job>(self) -> J {
        // SAFETY: forwarded from the caller: `f` was built by `SmallFn::new::<J>`.
        unsafe { self.f.into_job::<J>() }
    }

    /// Where the task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.f.location()
    }

    /// What the `tracing` and `metrics` features carry from the post to the run.
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    pub(crate) fn stamp(&self) -> &Stamp {
        &self.stamp
    }

    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    pub(crate) fn stamp_mut(&mut self) -> &mut Stamp {
        &mut self.stamp
    }

    /// Runs the task on the current thread.
    pub fn run(self) {
        self.f.call()
    }
}

/// A task run or dropped where it is stored, without moving it: a queue slot (the worker's path,
/// `pool/queue.rs`) or a local that owns it (`TaskInPlace::with`). Exactly one of `run`, `take`
/// or the drop consumes the task.
///
/// Moving a 64-byte task from the slot through the worker's frames to the call took about five
/// copies of it per task; running it in place copies only the closure's captures, into the call
/// (measured in docs/PERFORMANCE.md, step 12).
pub(crate) struct TaskInPlace<'a> {
    task: NonNull<Task>,
    /// Owns the task for `'a`, like a `&'a mut Task` that must consume it.
    _owns: PhantomData<&'a mut Task>,
}

impl<'a> TaskInPlace<'a> {
    /// # Safety
    /// `task` points to a live `Task` that, for `'a`, nothing else reads, writes or drops; the
    /// returned value owns it and consumes it exactly once. Afterwards its bytes are dead.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) unsafe fn new(task: NonNull<Task>) -> TaskInPlace<'a> {
        TaskInPlace { task, _owns: PhantomData }
    }

    /// Passes an owned task to `f` as a `TaskInPlace` (for paths where the task is a value).
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn with<R>(task: Task, f: impl FnOnce(TaskInPlace<'_>) -> R) -> R {
        let mut task = ManuallyDrop::new(task);
        // SAFETY: the local is live for the call, nothing else reaches it, and it is never
        // dropped as a `Task` (`ManuallyDrop`): the `TaskInPlace` consumes it.
        f(unsafe { TaskInPlace::new(NonNull::from(&mut *task)) })
    }

    /// The task, to read its location and stamp.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn task(&self) -> &Task {
        // SAFETY: live and not written by anyone else while `self` exists (see `new`).
        unsafe { self.task.as_ref() }
    }

    /// Runs the task where it lies.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn run(self) {
        let this = ManuallyDrop::new(self);
        let task = this.task.as_ptr();
        // SAFETY: the task is live and owned by `this`, which is forgotten, so the closure is
        // consumed exactly once; `Stamp` is `Copy` and needs no drop.
        unsafe { SmallFn::call_in_place(std::ptr::addr_of_mut!((*task).f)) }
    }

    /// Moves the task out (for the paths that keep or drop it unrun).
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn take(self) -> Task {
        let this = ManuallyDrop::new(self);
        // SAFETY: live and owned by `this`, which is forgotten: the task is moved out once.
        unsafe { std::ptr::read(this.task.as_ptr()) }
    }
}

impl Drop for TaskInPlace<'_> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: live and owned by `self`; neither `run` nor `take` consumed it (both forget
        // `self`), so it is dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(self.task.as_ptr()) }
    }
}

const _: () = assert!(!std::mem::needs_drop::<Stamp>());

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("posted_from", &format_args!("{}", self.location())).finish()
    }
}

/// The priority of a runner's tasks, relative to the other task sources of its pool.
///
/// Priorities order *sources* (sequences, one-off tasks) in the pool, never the tasks inside one
/// sequence, which always run in posting order. When the pool is saturated, `UserBlocking`
/// sources start first; lower priorities still make progress (bounded aging: a waiting lower
/// priority source is started after at most a fixed number of higher-priority starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum Priority {
    /// Work the user will not notice if it is late (cleanup, prefetch, statistics).
    BestEffort,
    /// Work the user will see the result of, but is not waiting on right now. The default.
    #[default]
    UserVisible,
    /// Work the user is waiting on (input handling, a visible update).
    UserBlocking,
}

impl Priority {
    /// Number of priorities.
    pub(crate) const COUNT: usize = 3;

    /// Dense index: `BestEffort` is 0.
    pub(crate) fn index(self) -> usize {
        match self {
            Priority::BestEffort => 0,
            Priority::UserVisible => 1,
            Priority::UserBlocking => 2,
        }
    }
}

/// What happens to a runner's tasks when its pool (or the runner itself) shuts down.
///
/// | behaviour | queued when shutdown starts | running when shutdown starts |
/// | --- | --- | --- |
/// | `ContinueOnShutdown` | dropped, counted | not waited for |
/// | `SkipOnShutdown` (default) | dropped, counted | waited for |
/// | `BlockShutdown` | run, waited for | waited for |
///
/// Once shutdown has started no new post is accepted, whatever the behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ShutdownBehavior {
    /// Queued tasks are dropped; a task already running is not waited for.
    ContinueOnShutdown,
    /// Queued tasks are dropped; a task already running is waited for. The default.
    #[default]
    SkipOnShutdown,
    /// Queued tasks still run, and shutdown waits for them.
    BlockShutdown,
}

/// The traits of a runner, fixed when it is created.
///
/// ```
/// use taskrunner::{Priority, ShutdownBehavior, TaskTraits};
///
/// let traits = TaskTraits::default()
///     .with_priority(Priority::UserBlocking)
///     .with_shutdown_behavior(ShutdownBehavior::BlockShutdown);
/// assert_eq!(traits.priority(), Priority::UserBlocking);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TaskTraits {
    priority: Priority,
    shutdown_behavior: ShutdownBehavior,
}

impl TaskTraits {
    /// The default traits: `UserVisible`, `SkipOnShutdown`.
    pub const fn new() -> TaskTraits {
        TaskTraits {
            priority: Priority::UserVisible,
            shutdown_behavior: ShutdownBehavior::SkipOnShutdown,
        }
    }

    /// Sets the priority.
    #[must_use]
    pub const fn with_priority(mut self, priority: Priority) -> TaskTraits {
        self.priority = priority;
        self
    }

    /// Sets the shutdown behaviour.
    #[must_use]
    pub const fn with_shutdown_behavior(mut self, behavior: ShutdownBehavior) -> TaskTraits {
        self.shutdown_behavior = behavior;
        self
    }

    /// The priority.
    pub const fn priority(&self) -> Priority {
        self.priority
    }

    /// The shutdown behaviour.
    pub const fn shutdown_behavior(&self) -> ShutdownBehavior {
        self.shutdown_behavior
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_one_cache_line() {
        #[cfg(not(any(feature = "tracing", feature = "metrics")))]
        assert_eq!(std::mem::size_of::<Task>(), 64);
        // With `tracing` or `metrics` a task also carries its post time (and id).
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        assert!(std::mem::size_of::<Task>() <= 96);
    }
}
