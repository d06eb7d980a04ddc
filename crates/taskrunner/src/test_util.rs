//! A test environment with mock time (feature `test-util`), in the spirit of Chromium's
//! `TaskEnvironment`.
//!
//! [`TestEnvironment`] owns a multi-threaded [`ThreadPool`] whose [`Clock`] is mock time: it
//! starts at an arbitrary instant and moves only when the test says so. Delayed and repeating
//! tasks of the pool's runners are fired by the environment, never by a timer thread, so a test
//! decides exactly when they run and never sleeps:
//!
//! - [`run_until_idle`](TestEnvironment::run_until_idle) runs every task that can run now
//!   (including delayed tasks already due, and whatever those post), without moving time;
//! - [`fast_forward_by`](TestEnvironment::fast_forward_by) moves time forward deadline by
//!   deadline, running everything that falls due, in deadline order, and waits for the pool to
//!   be idle before moving to the next deadline;
//! - [`advance_clock`](TestEnvironment::advance_clock) only moves time: due tasks run at the
//!   next `run_until_idle` or `fast_forward_by`;
//! - [`now`](TestEnvironment::now) is the mock time (also [`ThreadPool::now`], and the clock
//!   returned by [`TestEnvironment::clock`], from any thread).
//!
//! "Idle" means no task source of the pool is queued or running. A task that blocks forever
//! (or a chain of tasks that never ends) would hang the test; instead a **watchdog** (real time,
//! 30 s by default) makes the waiting call panic with the tasks still queued or running on the
//! pool's runners and the pending delayed tasks, each with the line that posted it. (The
//! environment's pool wraps each accepted task to keep that list; a normal pool does not.)
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use taskrunner::test_util::TestEnvironment;
//! use taskrunner::{TaskRunnerExt, TaskTraits};
//!
//! let env = TestEnvironment::new();
//! let seq = env.pool().sequenced_runner(TaskTraits::default());
//! let ran = Arc::new(AtomicUsize::new(0));
//! let r = ran.clone();
//! seq.post_delayed(Duration::from_secs(3600), move || {
//!     r.fetch_add(1, Ordering::SeqCst);
//! })
//! .unwrap();
//!
//! env.fast_forward_by(Duration::from_secs(3599));
//! assert_eq!(ran.load(Ordering::SeqCst), 0);
//! env.fast_forward_by(Duration::from_secs(1)); // an hour, instantly
//! assert_eq!(ran.load(Ordering::SeqCst), 1);
//! ```

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pool::Shared;
use crate::time::{Clock, MockClock};
use crate::{BuildError, SequencedTaskRunner, TaskTraits, ThreadPool};

/// A thread pool on mock time, for deterministic tests of delayed and repeating work. See the
/// [module docs](self).
pub struct TestEnvironment {
    pool: ThreadPool,
    clock: Arc<MockClock>,
    watchdog: Duration,
}

impl fmt::Debug for TestEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEnvironment")
            .field("pool", &self.pool)
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

impl Default for TestEnvironment {
    fn default() -> Self {
        TestEnvironment::new()
    }
}

impl TestEnvironment {
    /// An environment with a two-worker pool named `"test"` and a 30 s watchdog.
    pub fn new() -> TestEnvironment {
        TestEnvironment::builder().build().expect("the default test environment builds")
    }

    /// A builder for an environment.
    pub fn builder() -> TestEnvironmentBuilder {
        TestEnvironmentBuilder {
            workers: 2,
            watchdog: Duration::from_secs(30),
            name: "test".into(),
        }
    }

    /// The pool. Its runners' delayed tasks run on mock time.
    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// A sequenced runner on the pool (shorthand).
    pub fn sequenced_runner(&self, traits: TaskTraits) -> SequencedTaskRunner {
        self.pool.sequenced_runner(traits)
    }

    /// The mock clock, to read mock time from any thread (tasks included).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The mock time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Moves mock time forward by `d` without running anything.
    pub fn advance_clock(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Runs everything runnable now, without moving time: tasks already posted, delayed tasks
    /// already due, and everything those post that is runnable now. Returns when the pool is
    /// idle and no delayed task is due.
    ///
    /// # Panics
    ///
    /// When the watchdog limit passes first (a task blocks or the work never ends), with the
    /// pending delayed tasks and their posted-from locations.
    pub fn run_until_idle(&self) {
        let deadline = self.watchdog_deadline();
        self.run_until_idle_by(deadline);
    }

    /// Moves mock time forward by `d`, running everything that falls due on the way, in
    /// deadline order: time jumps to each due deadline, the due tasks are posted to their
    /// runners, and the pool runs until idle before time moves on. Ends at `now() + d`, idle.
    ///
    /// # Panics
    ///
    /// As [`run_until_idle`](Self::run_until_idle), when the watchdog limit passes.
    pub fn fast_forward_by(&self, d: Duration) {
        let deadline = self.watchdog_deadline();
        let target = self.clock.now() + d;
        self.run_until_idle_by(deadline);
        while let Some(next) = self.shared().timer().next_deadline().filter(|n| *n <= target) {
            self.clock.advance_to(next);
            self.run_until_idle_by(deadline);
        }
        self.clock.advance_to(target);
        self.run_until_idle_by(deadline);
    }

    /// Fast-forwards until no delayed task is left (a repeating task never ends: stop it
    /// first). Returns how far time moved.
    ///
    /// # Panics
    ///
    /// As [`run_until_idle`](Self::run_until_idle), when the watchdog limit passes.
    pub fn fast_forward_until_no_tasks_remain(&self) -> Duration {
        let deadline = self.watchdog_deadline();
        let start = self.clock.now();
        self.run_until_idle_by(deadline);
        while let Some(next) = self.shared().timer().next_deadline() {
            self.clock.advance_to(next);
            self.run_until_idle_by(deadline);
        }
        self.clock.now() - start
    }

    /// The delayed tasks still waiting for their deadline.
    pub fn pending_delayed_tasks(&self) -> usize {
        self.shared().timer().pending().len()
    }

    /// The earliest deadline of a pending delayed task.
    pub fn next_delayed_deadline(&self) -> Option<Instant> {
        self.shared().timer().next_deadline()
    }

    fn shared(&self) -> &Shared {
        self.pool.shared()
    }

    fn watchdog_deadline(&self) -> Instant {
        Instant::now() + self.watchdog
    }

    fn run_until_idle_by(&self, deadline: Instant) {
        let shared = self.shared();
        loop {
            shared.timer().fire_due();
            if !shared.wait_sources_idle(deadline) {
                self.hung();
            }
            let due = shared.timer().next_deadline().is_some_and(|d| d <= self.clock.now());
            if !due {
                return;
            }
            if Instant::now() >= deadline {
                self.hung();
            }
        }
    }

    #[cold]
    fn hung(&self) -> ! {
        let now = self.clock.now();
        let mut message = format!(
            "TestEnvironment watchdog: the pool was not idle after {:?} (real time); {} task \
             source(s) still queued or running.",
            self.watchdog,
            self.shared().busy_sources()
        );
        let in_flight = self.shared().in_flight();
        if !in_flight.is_empty() {
            let total: usize = in_flight.iter().map(|(_, n)| n).sum();
            let _ = write!(message, "\nTasks queued or running ({total}):");
            for (location, count) in in_flight {
                let _ = write!(message, "\n  {count} posted from {location}");
            }
        }
        let pending = self.shared().timer().pending();
        if pending.is_empty() {
            message.push_str("\nNo delayed task is pending.");
        } else {
            let _ = write!(message, "\nPending delayed tasks ({}):", pending.len());
            for (deadline, location) in pending {
                let _ = match deadline.checked_duration_since(now) {
                    Some(d) => write!(message, "\n  due in {d:?}, posted from {location}"),
                    None => {
                        write!(message, "\n  due {:?} ago, posted from {location}", now - deadline)
                    }
                };
            }
        }
        panic!("{message}");
    }
}

/// Configuration for a [`TestEnvironment`].
///
/// ```
/// use std::time::Duration;
/// use taskrunner::test_util::TestEnvironment;
///
/// let env = TestEnvironment::builder()
///     .workers(4)
///     .watchdog(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(env.pool().workers(), 4);
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TestEnvironmentBuilder {
    workers: usize,
    watchdog: Duration,
    name: String,
}

impl TestEnvironmentBuilder {
    /// Worker threads of the pool (default 2). `build` rejects 0.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// How long (real time) a waiting call may wait for the pool to become idle before it
    /// panics with the pending tasks (default 30 s).
    pub fn watchdog(mut self, limit: Duration) -> Self {
        self.watchdog = limit;
        self
    }

    /// The pool's name (default `"test"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Builds the environment.
    pub fn build(self) -> Result<TestEnvironment, BuildError> {
        let clock = Arc::new(MockClock::new());
        let pool = ThreadPool::builder()
            .name(self.name)
            .workers(self.workers)
            .test_mode(clock.clone())
            .build()?;
        Ok(TestEnvironment { pool, clock, watchdog: self.watchdog })
    }
}
