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
use crate::sync::{Condvar, Mutex};

const SLEEPER: u64 = 1;
const SPINNER: u64 = 1 << 16;
const COUNT_MASK: u64 = 0xffff;
const SHUTDOWN: u64 = 1 << 62;
const TERMINATED: u64 = 1 << 63;

/// The most workers that spin at once.
const MAX_SPINNERS: u64 = 1;

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

/// One worker's parking spot: a wake-up flag and a condition variable. (Not `thread::park`:
/// an explicit flag keeps a wake-up that arrives before the worker parks, and is modelled
/// exactly by loom.)
#[derive(Debug, Default)]
struct Parker {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Parker {
    fn park(&self) {
        let mut woken = self.woken.lock();
        while !*woken {
            woken = self.wake.wait(woken);
        }
        *woken = false;
    }

    fn unpark(&self) {
        *self.woken.lock() = true;
        self.wake.notify_one();
    }
}

#[derive(Debug)]
pub(crate) struct Sleep {
    state: AtomicU64,
    /// Parked (or about to park) workers, by index.
    idle: Mutex<Vec<usize>>,
    parkers: Box<[Parker]>,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        Sleep {
            state: AtomicU64::new(0),
            idle: Mutex::new(Vec::with_capacity(workers)),
            parkers: (0..workers).map(|_| Parker::default()).collect(),
        }
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
        let index = {
            let mut idle = self.idle.lock();
            let Some(index) = idle.pop() else { return };
            self.state.fetch_sub(SLEEPER, Ordering::AcqRel);
            index
        };
        // Unpark after releasing the lock.
        self.parkers[index].unpark();
    }

    /// A worker asks to look for work without parking. At most `MAX_SPINNERS` workers spin at
    /// once (the others park at once): one awake worker is enough to pick up a post without a
    /// wake-up, and more would only take CPU time from the threads that post.
    pub(crate) fn try_start_spinning(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if spinners(state) >= MAX_SPINNERS {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state + SPINNER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => state = current,
            }
        }
    }

    /// A spinning worker found work. Returns true if it was the last spinner: posters that saw
    /// it spinning did not wake anyone, so the caller wakes a worker if more work is queued.
    pub(crate) fn stop_spinning(&self) -> bool {
        spinners(self.state.fetch_sub(SPINNER, Ordering::AcqRel)) == 1
    }

    /// A worker found no work: it registers as a sleeper, leaving the spinners in the same RMW
    /// if it was one. The caller must re-check the queues before parking.
    pub(crate) fn register_sleeper(&self, index: usize, was_spinning: bool) -> Registered {
        let mut idle = self.idle.lock();
        idle.push(index);
        let delta = if was_spinning { SLEEPER.wrapping_sub(SPINNER) } else { SLEEPER };
        let prev = self.state.fetch_add(delta, Ordering::AcqRel);
        drop(idle);
        if prev & SHUTDOWN != 0 {
            Registered::ShuttingDown
        } else {
            Registered::MayPark
        }
    }

    /// Removes the worker from the sleepers if a waker has not done so already.
    pub(crate) fn unregister_sleeper(&self, index: usize) {
        let mut idle = self.idle.lock();
        if let Some(pos) = idle.iter().position(|&i| i == index) {
            idle.swap_remove(pos);
            self.state.fetch_sub(SLEEPER, Ordering::AcqRel);
        }
    }

    /// Parks worker `index` until a waker unparks it. A wake-up sent after the worker
    /// registered but before it parked is kept, so the park returns at once.
    pub(crate) fn park(&self, index: usize) {
        self.parkers[index].park();
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
        for index in sleepers {
            self.parkers[index].unpark();
        }
    }

    /// Sets TERMINATED (the last worker is exiting). From now on posters drain what they push.
    pub(crate) fn terminate(&self) {
        self.state.fetch_or(TERMINATED, Ordering::AcqRel);
    }
}
