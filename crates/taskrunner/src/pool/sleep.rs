//! How idle workers park without missing a wake-up. See `README.md` in this folder.
//!
//! All decisions go through one atomic word:
//!
//! ```text
//!  bits  0..16  sleepers: workers registered in `idle` (parked or about to park)
//!  bits 16..32  spinners: workers looking for work without parking
//!  bit  62      SHUTDOWN: the pool is shutting down; nobody parks any more
//!  bit  63      TERMINATED: every worker has exited; posters drain what they push
//! ```
//!
//! The rule that makes it correct: the poster's check after pushing a source and the worker's
//! registration before parking are both read-modify-writes of this word, so they are totally
//! ordered. Either the poster's RMW comes later and sees the sleeper (and wakes one), or the
//! worker's RMW comes later, acquires the poster's release, and its re-check of the queues
//! sees the pushed source (and it does not park).

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::thread::{self, Thread};
use crate::sync::Mutex;

const SLEEPER: u64 = 1;
const SPINNER: u64 = 1 << 16;
const COUNT_MASK: u64 = 0xffff;
const SHUTDOWN: u64 = 1 << 62;
const TERMINATED: u64 = 1 << 63;

/// The most workers one pool may have (the sleeper and spinner counts are 16 bits wide).
pub(crate) const MAX_WORKERS: usize = COUNT_MASK as usize;

fn sleepers(state: u64) -> u64 {
    state & COUNT_MASK
}

fn spinners(state: u64) -> u64 {
    (state >> 16) & COUNT_MASK
}

/// What a poster must do after notifying.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notified {
    /// Nothing: a worker is awake to find the source.
    Done,
    /// The pool has terminated; the caller must drain the queues itself.
    Terminated,
}

/// What a worker found when it registered as a sleeper.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// Registered; the caller re-checks the queues and parks if they are empty.
    MayPark,
    /// The pool is shutting down: do not park.
    ShuttingDown,
}

#[derive(Debug)]
pub(crate) struct Sleep {
    state: AtomicU64,
    /// Parked (or about to park) workers: their index and thread, to unpark.
    idle: Mutex<Vec<(usize, Thread)>>,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        Sleep { state: AtomicU64::new(0), idle: Mutex::new(Vec::with_capacity(workers)) }
    }

    /// Called after a source was pushed to a queue.
    #[inline]
    pub(crate) fn notify_one(&self) -> Notified {
        // An RMW that changes nothing: it orders this push against sleeper registrations.
        let state = self.state.fetch_add(0, Ordering::AcqRel);
        if state & TERMINATED != 0 {
            return Notified::Terminated;
        }
        if spinners(state) == 0 && sleepers(state) > 0 {
            self.wake_one();
        }
        Notified::Done
    }

    #[cold]
    fn wake_one(&self) {
        let thread = {
            let mut idle = self.idle.lock();
            let Some((_, thread)) = idle.pop() else { return };
            self.state.fetch_sub(SLEEPER, Ordering::AcqRel);
            thread
        };
        // Unpark after releasing the lock.
        thread.unpark();
    }

    /// A worker starts looking for work without parking.
    pub(crate) fn start_spinning(&self) {
        self.state.fetch_add(SPINNER, Ordering::AcqRel);
    }

    /// A spinning worker found work. Returns true if it was the last spinner: posters that saw
    /// it spinning did not wake anyone, so the caller wakes a worker if more work is queued.
    pub(crate) fn stop_spinning(&self) -> bool {
        spinners(self.state.fetch_sub(SPINNER, Ordering::AcqRel)) == 1
    }

    /// A spinning worker found no work: it stops spinning and registers as a sleeper, in one
    /// RMW. The caller must re-check the queues before parking.
    pub(crate) fn register_sleeper(&self, index: usize) -> Registered {
        let mut idle = self.idle.lock();
        idle.push((index, thread::current()));
        let prev = self.state.fetch_add(SLEEPER.wrapping_sub(SPINNER), Ordering::AcqRel);
        drop(idle);
        if prev & SHUTDOWN != 0 {
            Registered::ShuttingDown
        } else {
            Registered::MayPark
        }
    }

    /// Removes the worker from the sleepers if a waker has not done so already. Returns
    /// false when a waker had: it picked this worker to run a source.
    pub(crate) fn unregister_sleeper(&self, index: usize) -> bool {
        let mut idle = self.idle.lock();
        if let Some(pos) = idle.iter().position(|(i, _)| *i == index) {
            idle.swap_remove(pos);
            self.state.fetch_sub(SLEEPER, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// Parks the calling worker until a waker unparks it (or spuriously).
    pub(crate) fn park(&self) {
        thread::park();
    }

    /// Sets SHUTDOWN and wakes every sleeper.
    pub(crate) fn shutdown(&self) {
        self.state.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let sleepers: Vec<_> = {
            let mut idle = self.idle.lock();
            let all: Vec<_> = idle.drain(..).collect();
            self.state.fetch_sub(all.len() as u64 * SLEEPER, Ordering::AcqRel);
            all
        };
        for (_, thread) in sleepers {
            thread.unpark();
        }
    }

    /// Sets TERMINATED (the last worker is exiting). From now on posters drain what they push.
    pub(crate) fn terminate(&self) {
        self.state.fetch_or(TERMINATED, Ordering::AcqRel);
    }
}
