//! Repeating tasks: each tick is a delayed task that, after running, schedules the next one.
//!
//! # State
//!
//! One atomic word per repeating task, `ACTIVE` until the first of these wins (compare-and-swap
//! out of `ACTIVE`, so the reason is set once):
//!
//! ```text
//!   ACTIVE ──stop() or handle dropped──▶ STOPPED
//!   ACTIVE ──the task panicked─────────▶ PANICKED
//!   ACTIVE ──a tick dropped unrun──────▶ SHUT_DOWN   (the runner or the pool shut down)
//! ```
//!
//! A tick checks `ACTIVE` before it runs the closure and again after it scheduled the next
//! tick. `stop` sets `STOPPED` and then cancels the pending tick (which releases the closure at
//! once). The handle of the pending tick is stored under a small lock; whichever of `stop` and
//! the tick comes second finds it and cancels it, so no tick runs once `stop` has returned,
//! except one whose run had already begun.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::sync::Arc;
use std::time::Instant;

use super::{DelayedHandle, Repeat, StopReason, TimerTarget};
use crate::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use crate::sync::Mutex;
use crate::{PostError, Task};

const ACTIVE: u8 = 0;
const STOPPED: u8 = 1;
const PANICKED: u8 = 2;
const SHUT_DOWN: u8 = 3;

pub(crate) struct RepeatState {
    state: AtomicU8,
    runs: AtomicU64,
    pending: Mutex<Option<DelayedHandle>>,
}

impl RepeatState {
    fn is_active(&self) -> bool {
        self.state.load(Ordering::Acquire) == ACTIVE
    }

    /// ACTIVE → `reason`. True if this call ended the task.
    fn finish(&self, reason: u8) -> bool {
        self.state.compare_exchange(ACTIVE, reason, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Stops the task and cancels its pending tick. True if it was still active.
    pub(crate) fn stop(&self) -> bool {
        let stopped = self.finish(STOPPED);
        self.cancel_pending();
        stopped
    }

    fn cancel_pending(&self) {
        let pending = self.pending.lock().take();
        if let Some(handle) = pending {
            handle.cancel();
        }
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        match self.state.load(Ordering::Acquire) {
            STOPPED => Some(StopReason::Stopped),
            PANICKED => Some(StopReason::Panicked),
            SHUT_DOWN => Some(StopReason::ShutDown),
            _ => None,
        }
    }

    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for RepeatState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepeatState")
            .field("stop_reason", &self.stop_reason())
            .field("runs", &self.runs())
            .finish_non_exhaustive()
    }
}

/// One scheduled run. Dropped without running (runner or pool shut down), it ends the task
/// with `SHUT_DOWN`.
struct Tick {
    state: Arc<RepeatState>,
    target: TimerTarget,
    repeat: Repeat,
    f: Box<dyn FnMut() + Send>,
    /// The deadline this tick was scheduled for (the fixed-rate grid point).
    deadline: Instant,
    location: &'static Location<'static>,
}

impl Tick {
    fn run(mut self) {
        if !self.state.is_active() {
            return;
        }
        self.state.runs.fetch_add(1, Ordering::AcqRel);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(&mut self.f)) {
            self.state.finish(PANICKED);
            // Let the runner report the panic once, with the posted-from location.
            resume_unwind(payload);
        }
        if !self.state.is_active() {
            return;
        }
        let now = self.target.now();
        self.deadline = self.repeat.next_deadline(self.deadline, now);
        let _ = schedule(self);
    }
}

impl Drop for Tick {
    fn drop(&mut self) {
        self.state.finish(SHUT_DOWN);
    }
}

/// Schedules `tick` at its deadline and records the pending handle. On error the tick has
/// been dropped (so the task is over, `SHUT_DOWN`).
fn schedule(tick: Tick) -> Result<(), ()> {
    let state = tick.state.clone();
    let target = tick.target.clone();
    let deadline = tick.deadline;
    let location = tick.location;
    let task = Task::with_location(move || tick.run(), location);
    match target.post_at(task, deadline) {
        Ok(handle) => {
            *state.pending.lock() = Some(handle);
            if !state.is_active() {
                // `stop` ran meanwhile and may have missed this handle.
                state.cancel_pending();
            }
            Ok(())
        }
        Err(rejected) => {
            drop(rejected);
            Err(())
        }
    }
}

/// Starts a repeating task; the first tick runs after the repeat's initial delay.
pub(crate) fn start(
    target: TimerTarget,
    repeat: Repeat,
    f: Box<dyn FnMut() + Send>,
    location: &'static Location<'static>,
) -> Result<Arc<RepeatState>, PostError> {
    if repeat.interval().is_zero() {
        return Err(PostError::InvalidInterval(Task::with_location(f, location)));
    }
    if target.is_closed() {
        return Err(PostError::Closed(Task::with_location(f, location)));
    }
    let state = Arc::new(RepeatState {
        state: AtomicU8::new(ACTIVE),
        runs: AtomicU64::new(0),
        pending: Mutex::new(None),
    });
    let deadline = target.now() + repeat.first_delay();
    let tick = Tick { state: state.clone(), target, repeat, f, deadline, location };
    match schedule(tick) {
        Ok(()) => Ok(state),
        // The timer service shut down between the check and the schedule; the closure is gone
        // with the dropped tick, so the handed-back task does nothing.
        Err(()) => Err(PostError::Closed(Task::with_location(|| {}, location))),
    }
}
