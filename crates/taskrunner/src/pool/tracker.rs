//! Shutdown policy in one place: whether posts are accepted, whether a task still runs, and
//! what was dropped.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;

use crate::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use crate::sync::Mutex;
use crate::ShutdownBehavior;

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;

#[derive(Debug)]
pub(crate) struct Tracker {
    phase: AtomicU8,
    skipped_total: AtomicU64,
    /// Dropped-unrun tasks by posted-from location. Touched only when a task is dropped.
    skipped: Mutex<HashMap<&'static Location<'static>, u64>>,
}

impl Tracker {
    pub(crate) fn new() -> Tracker {
        Tracker {
            phase: AtomicU8::new(RUNNING),
            skipped_total: AtomicU64::new(0),
            skipped: Mutex::new(HashMap::new()),
        }
    }

    /// Posts are accepted until shutdown starts.
    #[inline]
    pub(crate) fn is_accepting(&self) -> bool {
        self.phase.load(Ordering::Acquire) == RUNNING
    }

    /// Starts shutdown. Returns false if it had started already.
    pub(crate) fn begin_shutdown(&self) -> bool {
        self.phase.swap(SHUTTING_DOWN, Ordering::AcqRel) == RUNNING
    }

    /// Whether a task popped now still runs: always while the pool runs and the runner is
    /// open; after that only `BlockShutdown` tasks.
    #[inline]
    pub(crate) fn should_run(&self, behavior: ShutdownBehavior, runner_closed: bool) -> bool {
        !runner_closed || behavior == ShutdownBehavior::BlockShutdown
    }

    /// Records a task dropped unrun.
    #[cold]
    pub(crate) fn record_skipped(&self, location: &'static Location<'static>) {
        *self.skipped.lock().entry(location).or_insert(0) += 1;
        self.skipped_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn skipped_total(&self) -> u64 {
        self.skipped_total.load(Ordering::Relaxed)
    }

    fn skipped_by_location(&self) -> Vec<(&'static Location<'static>, u64)> {
        let mut all: Vec<_> = self.skipped.lock().iter().map(|(l, n)| (*l, *n)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all
    }

    pub(crate) fn report(&self, ran: u64, still_running: usize, timed_out: bool) -> ShutdownReport {
        ShutdownReport {
            ran,
            skipped: self.skipped_total(),
            skipped_by_location: self.skipped_by_location(),
            still_running,
            timed_out,
        }
    }
}

/// What a pool shutdown did.
///
/// `ran` and `skipped` count every task of the pool since it started; `skipped` includes the
/// tasks dropped when single runners were shut down. A task that is accepted while shutdown is
/// finishing, after this report was made, is dropped and counted in later reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    ran: u64,
    skipped: u64,
    skipped_by_location: Vec<(&'static Location<'static>, u64)>,
    still_running: usize,
    timed_out: bool,
}

impl ShutdownReport {
    /// Tasks that ran (including those that panicked).
    pub fn ran(&self) -> u64 {
        self.ran
    }

    /// Tasks dropped unrun.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Dropped tasks by posted-from location, most frequent first.
    pub fn skipped_by_location(&self) -> &[(&'static Location<'static>, u64)] {
        &self.skipped_by_location
    }

    /// Workers still busy when shutdown returned: in a `ContinueOnShutdown` task (not waited
    /// for), or in any task when the timeout elapsed, or the caller's own worker.
    pub fn still_running(&self) -> usize {
        self.still_running
    }

    /// Whether `shutdown_timeout` gave up waiting.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ran, {} skipped", self.ran, self.skipped)?;
        if self.still_running > 0 {
            write!(f, ", {} still running", self.still_running)?;
        }
        if self.timed_out {
            f.write_str(" (timed out)")?;
        }
        for (location, count) in &self.skipped_by_location {
            write!(f, "\n  {count} skipped, posted from {location}")?;
        }
        Ok(())
    }
}
