//! Time: delayed and repeating tasks, and the clock they read.
//!
//! # How a delayed task runs
//!
//! [`post_delayed`](crate::TaskRunnerExt::post_delayed) computes a deadline from the pool's
//! [`Clock`] and hands the task to the pool's timer service (`service.rs`): one thread per pool,
//! started on the first delayed post, with a min-heap ordered by deadline and then by posting
//! order (`timer.rs`). At expiry the task is posted to its runner through the runner's normal
//! post path, so it queues behind the tasks already posted there; two delayed tasks with equal
//! deadlines reach the runner in posting order. A task never runs before its deadline.
//!
//! Decisions the issue left open:
//!
//! - **Dropping a [`DelayedHandle`] detaches** the task (it still runs), as with
//!   [`TaskHandle`](crate::TaskHandle); only [`DelayedHandle::cancel`] cancels. Cancelling drops
//!   the task's closure at once, on the caller's thread, and works until the task *starts*
//!   (even after it fired and sits in the runner's queue).
//! - **Dropping a [`RepeatingHandle`] stops** the task, unless [`RepeatingHandle::detach`] was
//!   called: a repeating task nobody can stop any more is almost always a leak. It is
//!   `#[must_use]` for that reason.
//! - **Pool shutdown** drops every delayed task still waiting for its deadline, whatever the
//!   runner's [`ShutdownBehavior`](crate::ShutdownBehavior) (as in Chromium, a delayed task
//!   never blocks shutdown), and counts each as skipped by posted-from location in the
//!   [`ShutdownReport`](crate::ShutdownReport). A delayed task whose runner was shut down
//!   alone is dropped and counted when it expires.
//! - A delayed post to a closed runner returns `Err(PostError::Closed(task))` at once.
//! - Runners outside this crate get [`PostError::Unsupported`] from the delayed helpers, unless
//!   they forward [`TaskRunner::timer_target`] to a runner of
//!   this crate that they wrap.
//! - The first tick of a repeating task runs one interval after the post, unless
//!   [`Repeat::with_initial_delay`] says otherwise. A zero interval is refused
//!   ([`PostError::InvalidInterval`]).
//!
//! # Schedules of a repeating task
//!
//! Interval 10 ms, the third run takes 25 ms (`[===]` is a run, times in ms):
//!
//! ```text
//! fixed delay          next start = previous end + interval
//!   0   10 [=] 20 [=] 30 [=========] 55   65 [=] 75 ...
//!
//! fixed rate, Burst    missed ticks run back to back, then the grid resumes
//!   0   10 [=] 20 [=] 30 [=========] 55[=][=] 60 [=] 70 ...       (ticks 40 and 50 run late)
//!
//! fixed rate, Skip     missed ticks are dropped; next tick on the grid at or after now
//!   0   10 [=] 20 [=] 30 [=========] 55   60 [=] 70 ...
//!
//! fixed rate, Delay    the grid shifts: next tick = now + interval
//!   0   10 [=] 20 [=] 30 [=========] 55   65 [=] 75 ...
//! ```
//!
//! # For runner authors (inside this crate)
//!
//! A runner gets delayed and repeating tasks by overriding one provided method of
//! [`TaskRunner`]:
//!
//! ```ignore
//! fn timer_target(&self) -> Option<TimerTarget> {
//!     // The pool's timer service, and a cheap clone of this runner that the service posts to
//!     // at expiry (through `post_task`, so the task queues behind earlier posts). The clone
//!     // must not keep a `ThreadPool` owner alive.
//!     Some(TimerTarget::new(self.pool.timer().clone(), std::sync::Arc::new(self.clone())))
//! }
//! ```
//!
//! `post_delayed_task`, `post_delayed`, `post_delayed_with_result` and `post_repeating` then
//! work unchanged; `RunnerHandle` forwards `timer_target` per runner kind. A runner without a
//! pool (a dedicated thread) makes its own `TimerService::new(name, clock, false, on_skip)`,
//! with `on_skip` counting dropped tasks where its shutdown report comes from.
//!
//! # Endings of a repeating task
//!
//! A repeating task stops when its handle is stopped or dropped (not detached), when its runner
//! or pool shuts down ([`StopReason::ShutDown`], seen once the pending tick is dropped), and
//! when the closure panics ([`StopReason::Panicked`]; the panic is also reported once to the
//! pool's panic handler).

mod clock;
pub(crate) mod repeating;
mod service;
pub(crate) mod timer;

use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg_attr(not(feature = "test-util"), allow(unused_imports))]
pub(crate) use clock::MockClock;
pub use clock::{Clock, RealClock};
pub(crate) use service::TimerService;

use crate::{PostError, Task, TaskRunner};
use repeating::RepeatState;
use timer::Entry;

/// What a fixed-rate repeating task does about ticks it missed because a run (or the runner)
/// was late. See the [module docs](crate::time) for timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissedTickPolicy {
    /// Run the missed ticks back to back, then continue on the original grid.
    Burst,
    /// Drop the missed ticks; the next tick is the first grid point at or after now.
    Skip,
    /// Shift the grid: the next tick is one interval after now.
    Delay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Schedule {
    FixedDelay,
    FixedRate(MissedTickPolicy),
}

/// How a task repeats: the interval, the delay before the first run, and the schedule.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{MissedTickPolicy, Repeat};
///
/// // Fixed delay: the next run starts one interval after the previous one ended.
/// let poll = Repeat::every(Duration::from_secs(1)).with_initial_delay(Duration::ZERO);
/// // Fixed rate: runs on a grid of 100 ms; ticks missed by a slow run are skipped.
/// let frame = Repeat::at_fixed_rate(Duration::from_millis(100), MissedTickPolicy::Skip);
/// assert_eq!(frame.missed_tick_policy(), Some(MissedTickPolicy::Skip));
/// assert_eq!(poll.missed_tick_policy(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repeat {
    interval: Duration,
    initial_delay: Option<Duration>,
    schedule: Schedule,
}

impl Repeat {
    /// Fixed delay: each run starts `interval` after the previous run ended. The first run
    /// starts `interval` after the post.
    pub const fn every(interval: Duration) -> Repeat {
        Repeat { interval, initial_delay: None, schedule: Schedule::FixedDelay }
    }

    /// Fixed rate: runs start on a grid of `interval` from the first run; `policy` says what
    /// happens to ticks missed by a late run. The first run starts `interval` after the post.
    pub const fn at_fixed_rate(interval: Duration, policy: MissedTickPolicy) -> Repeat {
        Repeat { interval, initial_delay: None, schedule: Schedule::FixedRate(policy) }
    }

    /// Sets the delay before the first run (default: one interval).
    #[must_use]
    pub const fn with_initial_delay(mut self, delay: Duration) -> Repeat {
        self.initial_delay = Some(delay);
        self
    }

    /// The interval.
    pub const fn interval(&self) -> Duration {
        self.interval
    }

    /// The delay before the first run.
    pub const fn first_delay(&self) -> Duration {
        match self.initial_delay {
            Some(delay) => delay,
            None => self.interval,
        }
    }

    /// The missed-tick policy of a fixed-rate repeat; `None` for fixed delay.
    pub const fn missed_tick_policy(&self) -> Option<MissedTickPolicy> {
        match self.schedule {
            Schedule::FixedDelay => None,
            Schedule::FixedRate(policy) => Some(policy),
        }
    }

    /// The deadline of the run after one scheduled for `previous` that ended at `now`.
    pub(crate) fn next_deadline(&self, previous: Instant, now: Instant) -> Instant {
        let policy = match self.schedule {
            Schedule::FixedDelay => return now + self.interval,
            Schedule::FixedRate(policy) => policy,
        };
        let next = previous + self.interval;
        if next >= now {
            return next;
        }
        match policy {
            MissedTickPolicy::Burst => next,
            MissedTickPolicy::Delay => now + self.interval,
            MissedTickPolicy::Skip => {
                let behind = (now - next).as_nanos();
                let interval = self.interval.as_nanos();
                let steps = behind.div_ceil(interval);
                next + duration_from_nanos(steps * interval)
            }
        }
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

/// Where a runner's delayed tasks go: the timer service that holds them and the runner they
/// are posted to at expiry.
///
/// Returned by [`TaskRunner::timer_target`]; the delayed helpers of
/// [`TaskRunnerExt`](crate::TaskRunnerExt) are built on it. Only runners of this crate make
/// one; a runner that wraps one of them can forward it.
#[derive(Clone)]
pub struct TimerTarget {
    service: Arc<TimerService>,
    runner: Arc<dyn TaskRunner>,
    /// Builds the error for a delayed post to a closed runner, reporting the rejection to the
    /// pool's observers (see `observe`). `None`: a plain `PostError::Closed`.
    reject_closed: Option<Arc<dyn Fn(Task) -> PostError + Send + Sync>>,
}

impl fmt::Debug for TimerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerTarget").field("service", &self.service).finish_non_exhaustive()
    }
}

impl TimerTarget {
    /// Delayed tasks of `runner`, held by `service`. `runner` is what the service posts to at
    /// expiry: a cheap clone of the runner (it must not keep its pool's owner alive).
    pub(crate) fn new(service: Arc<TimerService>, runner: Arc<dyn TaskRunner>) -> TimerTarget {
        TimerTarget { service, runner, reject_closed: None }
    }

    /// Reports a delayed post refused at once because the runner is closed through `reject`.
    pub(crate) fn with_reject_closed(
        mut self,
        reject: impl Fn(Task) -> PostError + Send + Sync + 'static,
    ) -> TimerTarget {
        self.reject_closed = Some(Arc::new(reject));
        self
    }

    /// The current time on the service's clock.
    pub(crate) fn now(&self) -> Instant {
        self.service.clock().now()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.runner.is_closed()
    }

    /// Schedules `task` to be posted after `delay`.
    pub(crate) fn post_delayed(
        &self,
        task: Task,
        delay: Duration,
    ) -> Result<DelayedHandle, PostError> {
        let deadline = self.now() + delay;
        self.post_at(task, deadline)
    }

    /// Schedules `task` to be posted at `deadline`.
    pub(crate) fn post_at(
        &self,
        task: Task,
        deadline: Instant,
    ) -> Result<DelayedHandle, PostError> {
        if self.runner.is_closed() {
            return Err(match &self.reject_closed {
                Some(reject) => reject(task),
                None => PostError::Closed(task),
            });
        }
        self.service.schedule(deadline, task, self.runner.clone())
    }
}

/// A delayed task, as returned by [`post_delayed`](crate::TaskRunnerExt::post_delayed).
///
/// Dropping the handle detaches the task: it still runs. [`cancel`](Self::cancel) stops it.
#[derive(Clone)]
pub struct DelayedHandle {
    entry: Arc<Entry>,
}

impl fmt::Debug for DelayedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedHandle")
            .field("posted_from", &format_args!("{}", self.entry.location()))
            .field("pending", &self.entry.is_pending())
            .field("cancelled", &self.entry.is_cancelled())
            .finish()
    }
}

impl DelayedHandle {
    pub(crate) fn new(entry: Arc<Entry>) -> DelayedHandle {
        DelayedHandle { entry }
    }

    /// Cancels the task if it has not started. Returns `true` if this call cancelled it: it
    /// will never run, and its closure has been dropped (on this thread) before `cancel`
    /// returns. Returns `false` if it had already started, was cancelled, or was dropped by a
    /// shutdown.
    pub fn cancel(&self) -> bool {
        match self.entry.cancel() {
            Some(task) => {
                drop(task);
                true
            }
            None => false,
        }
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.entry.is_cancelled()
    }

    /// Whether the task still waits for its deadline (not yet handed to its runner).
    pub fn is_pending(&self) -> bool {
        self.entry.is_pending()
    }

    /// When the task is due, on the pool's clock.
    pub fn deadline(&self) -> Instant {
        self.entry.deadline()
    }

    /// Where the task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.entry.location()
    }
}

/// Why a repeating task stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// [`RepeatingHandle::stop`] was called, or the handle was dropped without `detach`.
    Stopped,
    /// The closure panicked (the panic was also reported to the pool's panic handler).
    Panicked,
    /// The runner or its pool shut down.
    ShutDown,
}

/// A repeating task, as returned by [`post_repeating`](crate::TaskRunnerExt::post_repeating).
///
/// Dropping the handle **stops** the task, unless [`detach`](Self::detach) was called.
#[must_use = "dropping a RepeatingHandle stops the task; call `detach()` to keep it running"]
pub struct RepeatingHandle {
    state: Arc<RepeatState>,
    detached: bool,
}

impl fmt::Debug for RepeatingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatingHandle")
            .field("runs", &self.runs())
            .field("stop_reason", &self.stop_reason())
            .finish()
    }
}

impl RepeatingHandle {
    /// Starts a repeating task on `target`.
    pub(crate) fn start(
        target: TimerTarget,
        repeat: Repeat,
        f: Box<dyn FnMut() + Send>,
        location: &'static Location<'static>,
    ) -> Result<RepeatingHandle, PostError> {
        let state = repeating::start(target, repeat, f, location)?;
        Ok(RepeatingHandle { state, detached: false })
    }

    /// Stops the task: the pending run is cancelled (its closure dropped at once) and no run
    /// begins after this returns; a run already under way finishes. Returns `true` if this call
    /// stopped it, `false` if it had stopped already (for any reason).
    pub fn stop(&self) -> bool {
        self.state.stop()
    }

    /// Lets the task run on after the handle is dropped, until its runner shuts down or it
    /// panics.
    pub fn detach(mut self) {
        self.detached = true;
    }

    /// Whether the task has stopped, for any reason.
    pub fn is_stopped(&self) -> bool {
        self.state.stop_reason().is_some()
    }

    /// Why the task stopped; `None` while it still runs.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.state.stop_reason()
    }

    /// How many runs of the closure have started (a run in progress and a run that panicked
    /// included).
    pub fn runs(&self) -> u64 {
        self.state.runs()
    }
}

impl Drop for RepeatingHandle {
    fn drop(&mut self) {
        if !self.detached {
            self.state.stop();
        }
    }
}
