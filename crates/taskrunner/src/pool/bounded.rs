//! The capacity of a bounded queue (bounded sequenced and single-thread runners).
//!
//! # Protocol
//!
//! `len` counts the tasks admitted and not yet taken off the queue. A poster *reserves* a
//! place before pushing (a CAS that increments `len` only below `capacity`); the consumer
//! *frees* a place after popping. So the queue never holds more than `capacity` tasks, and an
//! unbounded runner never touches any of this (it has no `Bounded` at all).
//!
//! Posters that wait for room (`reserve_until`) register in `waiters` and sleep on a condition
//! variable. A consumer that frees a place reads `waiters` and, only when someone waits, takes
//! the lock and notifies. No wake-up is lost: the waiter increments `waiters` before its
//! reservation attempt and the consumer decrements `len` before reading `waiters`, all
//! `SeqCst`, so either the consumer sees the waiter (and notifies, under the lock the waiter
//! holds from its attempt to its wait) or the waiter's attempt sees the freed place.

use std::time::Instant;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Condvar, Mutex};

/// What a wait for room ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// A place was reserved: push the task.
    Reserved,
    /// The deadline passed with the queue still full.
    TimedOut,
    /// The runner closed while waiting.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Bounded {
    capacity: usize,
    len: AtomicUsize,
    waiters: AtomicUsize,
    /// Posts refused for lack of room (statistics).
    rejected: AtomicU64,
    lock: Mutex<()>,
    room: Condvar,
}

impl Bounded {
    /// `capacity` must be at least 1 (builders check it).
    pub(crate) fn new(capacity: usize) -> Bounded {
        debug_assert!(capacity > 0);
        Bounded {
            capacity,
            len: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tasks admitted and not yet taken off the queue.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// A post was refused for lack of room.
    #[cold]
    pub(crate) fn add_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Reserves a place if there is one. Never blocks.
    #[inline]
    pub(crate) fn try_reserve(&self) -> bool {
        let mut len = self.len.load(Ordering::SeqCst);
        while len < self.capacity {
            match self.len.compare_exchange_weak(len, len + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(actual) => len = actual,
            }
        }
        false
    }

    /// Gives a reserved place back (the task was not pushed after all, or was popped).
    #[inline]
    pub(crate) fn free(&self) {
        self.len.fetch_sub(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify_waiters();
        }
    }

    /// Wakes every poster waiting for room (they re-check; used on close too).
    #[cold]
    pub(crate) fn notify_waiters(&self) {
        drop(self.lock.lock());
        self.room.notify_all();
    }

    /// Waits until a place is reserved, `deadline` passes (`None`: no deadline) or `closed()`
    /// holds.
    #[cold]
    pub(crate) fn reserve_until(
        &self,
        deadline: Option<Instant>,
        closed: impl Fn() -> bool,
    ) -> Reserve {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.lock.lock();
        let outcome = loop {
            if closed() {
                break Reserve::Closed;
            }
            if self.try_reserve() {
                break Reserve::Reserved;
            }
            match deadline {
                None => guard = self.room.wait(guard),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Reserve::TimedOut;
                    }
                    guard = self.room.wait_timeout(guard, deadline - now);
                }
            }
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}
