//! [`Clock`]: where every time-dependent part of the crate reads the time.
//!
//! The clock returns `std::time::Instant`, so real and mock time share one type: a mock clock
//! is a base `Instant` plus an offset that only the test environment moves.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock.
///
/// A pool reads its clock (set with
/// [`ThreadPoolBuilder::clock`](crate::ThreadPoolBuilder::clock), [`RealClock`] by default)
/// to compute the deadline of every delayed post and the next tick of every repeating task.
/// Tasks that need the pool's notion of "now" use [`ThreadPool::now`](crate::ThreadPool::now),
/// so under the `test-util` test environment they see mock time.
///
/// What reads the clock: delayed-post deadlines, repeating-task schedules, the timer service,
/// and [`ThreadPool::now`](crate::ThreadPool::now). What does not: the timeouts of blocking
/// waits (`join_timeout`, `wait_idle`, `wait_shutdown`, `shutdown_timeout`, the test
/// environment's watchdog) and the workers' batch budget, which bound how long a thread blocks
/// or runs and so are real time by nature.
///
/// The timer thread waits for the *real* time between now and the next deadline (it cannot
/// know how another clock will move); a clock that jumps ahead is seen at the next wake-up,
/// which the next delayed post that is already due triggers.
/// The mock clock of the test environment does not rely on the timer thread: the environment
/// fires due timers itself.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time. Never goes backwards.
    fn now(&self) -> Instant;
}

/// A shared clock is a clock, so one clock can drive several pools (and the test's own code).
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    #[inline]
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// The system's monotonic clock (`Instant::now()`). The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl Clock for RealClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Mock time: a base instant plus an offset that moves only when told to.
#[derive(Debug)]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) struct MockClock {
    base: Instant,
    offset_nanos: AtomicU64,
}

#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
impl MockClock {
    pub(crate) fn new() -> MockClock {
        MockClock { base: Instant::now(), offset_nanos: AtomicU64::new(0) }
    }

    /// Moves time forward by `d`.
    pub(crate) fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::AcqRel);
    }

    /// Moves time forward to `t` (no-op if `t` is not later than now).
    pub(crate) fn advance_to(&self, t: Instant) {
        let target =
            u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_max(target, Ordering::AcqRel);
    }
}

impl Clock for MockClock {
    #[inline]
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_nanos.load(Ordering::Acquire))
    }
}
