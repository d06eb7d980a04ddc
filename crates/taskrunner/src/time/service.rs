//! The timer service: one thread per pool that moves due tasks into their runner's queue.
//!
//! # Protocol
//!
//! - `schedule` pushes an entry on the heap under the service's lock, and wakes the timer thread
//!   only when the entry became the earliest or is already due. The thread is started by the first `schedule`
//!   (named `{pool}-timer`), so a pool that never delays a task has no timer thread.
//! - The timer thread sleeps until the earliest deadline (real time, see [`Clock`]) or until
//!   woken, then calls `fire_due`.
//! - `fire_due` holds `fire_lock` while it pops each due entry (under the heap lock) and posts
//!   it to its runner's normal post path (outside the heap lock): the task enters the queue
//!   behind the tasks already posted, and because one firer at a time posts in heap order, equal
//!   deadlines reach the runner in posting order. A post that fails (the runner shut down) drops
//!   the task and counts it as skipped.
//! - Under a test environment (`manual`), there is no timer thread: the environment advances
//!   the mock clock and calls `fire_due` itself, so `advance_clock` never runs a task.
//! - `shutdown` (at pool shutdown) rejects further schedules, drops every pending task, counting
//!   each as skipped by posted-from location, and stops the thread; `join` waits for it.
//! - A pool that never delayed a task shuts its service down without taking the lock: `schedule`
//!   stores `used` then loads `closing`, `shutdown` stores `closing` then loads `used`, all
//!   `SeqCst`, so at least one of them sees the other's store: either the schedule is refused, or
//!   the shutdown takes the locked path and finds the entry. (This also keeps the service out
//!   of the loom models of pool shutdown.)

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::Arc;
use std::time::Instant;

use super::timer::{Entry, Expired, TimerHeap};
use super::{Clock, DelayedHandle};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{thread, Condvar, Mutex};
use crate::{PostError, Task, TaskRunner};

/// Called with the location of each task the service drops unrun.
pub(crate) type SkipSink = Box<dyn Fn(&'static Location<'static>) + Send + Sync>;

struct State {
    heap: TimerHeap,
    shut_down: bool,
    thread: Option<thread::JoinHandle<()>>,
    started: bool,
}

pub(crate) struct TimerService {
    name: String,
    clock: Arc<dyn Clock>,
    manual: bool,
    state: Mutex<State>,
    changed: Condvar,
    fire_lock: Mutex<()>,
    on_skip: SkipSink,
    /// Set by every `schedule`, read by `shutdown` (see the protocol above).
    used: AtomicBool,
    /// Set by `shutdown`, read by every `schedule`.
    closing: AtomicBool,
}

impl fmt::Debug for TimerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("manual", &self.manual)
            .finish_non_exhaustive()
    }
}

impl TimerService {
    /// A service whose thread (started on first use) is named `name`. With `manual`, no thread
    /// is started and the owner calls [`fire_due`](Self::fire_due).
    pub(crate) fn new(
        name: String,
        clock: Arc<dyn Clock>,
        manual: bool,
        on_skip: SkipSink,
    ) -> TimerService {
        TimerService {
            name,
            clock,
            manual,
            state: Mutex::new(State {
                heap: TimerHeap::default(),
                shut_down: false,
                thread: None,
                started: false,
            }),
            changed: Condvar::new(),
            fire_lock: Mutex::new(()),
            on_skip,
            used: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Queues `task` for `runner` at `deadline`.
    pub(crate) fn schedule(
        self: &Arc<Self>,
        deadline: Instant,
        task: Task,
        runner: Arc<dyn TaskRunner>,
    ) -> Result<DelayedHandle, PostError> {
        self.used.store(true, Ordering::SeqCst);
        if self.closing.load(Ordering::SeqCst) {
            return Err(PostError::Closed(task));
        }
        let mut state = self.state.lock();
        if state.shut_down {
            return Err(PostError::Closed(task));
        }
        let entry = Arc::new(Entry::new(task, deadline));
        // Wake the thread when the entry is now the earliest, or already due (a clock other
        // than the real one may have jumped while the thread sleeps on real time).
        let wake = state.heap.push(entry.clone(), runner) || deadline <= self.clock.now();
        if !self.manual && !state.started {
            state.started = true;
            match self.spawn() {
                Ok(handle) => state.thread = Some(handle),
                Err(error) => {
                    // Without a thread nothing would ever fire: refuse rather than hang.
                    state.started = false;
                    drop(state.heap.drain());
                    drop(state);
                    let task = entry.discard().expect("the entry was just pushed");
                    eprintln!("taskrunner: cannot start the timer thread {}: {error}", self.name);
                    return Err(PostError::Closed(task));
                }
            }
        } else if wake {
            self.changed.notify_one();
        }
        Ok(DelayedHandle::new(entry))
    }

    fn spawn(self: &Arc<Self>) -> std::io::Result<thread::JoinHandle<()>> {
        let service = self.clone();
        let run = move || service.run();
        #[cfg(not(loom))]
        {
            thread::Builder::new().name(self.name.clone()).spawn(run)
        }
        #[cfg(loom)]
        {
            Ok(thread::spawn(run))
        }
    }

    /// The timer thread.
    fn run(&self) {
        loop {
            {
                let mut state = self.state.lock();
                loop {
                    if state.shut_down {
                        return;
                    }
                    match state.heap.next_deadline() {
                        None => state = self.changed.wait(state),
                        Some(deadline) => {
                            let now = self.clock.now();
                            if deadline <= now {
                                break;
                            }
                            state = self.changed.wait_timeout(state, deadline - now);
                        }
                    }
                }
            }
            self.fire_due();
        }
    }

    /// Posts every entry due now to its runner, in (deadline, posting order). Returns how many
    /// entries fired.
    pub(crate) fn fire_due(&self) -> usize {
        let _firing = self.fire_lock.lock();
        let mut fired = 0;
        loop {
            let timer = {
                let mut state = self.state.lock();
                if state.shut_down {
                    break;
                }
                match state.heap.pop_due(self.clock.now()) {
                    Some(timer) => timer,
                    None => break,
                }
            };
            if !timer.entry.fire() {
                continue; // cancelled meanwhile
            }
            fired += 1;
            let location = timer.entry.location();
            if let Err(rejected) = timer.runner.post_task(Expired::into_task(timer.entry)) {
                self.skip(location, rejected.into_task());
            }
        }
        fired
    }

    /// Drops a task unrun (its captured state's `Drop` may panic: reported to stderr, since
    /// there is no runner to report it to) and counts it.
    #[cold]
    fn skip(&self, location: &'static Location<'static>, task: Task) {
        (self.on_skip)(location);
        if catch_unwind(AssertUnwindSafe(move || drop(task))).is_err() {
            eprintln!("taskrunner: dropping a delayed task posted from {location} panicked");
        }
    }

    /// The earliest pending deadline.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.state.lock().heap.next_deadline()
    }

    /// How many delayed tasks wait for their deadline (0 without taking the lock if the
    /// service was never used).
    pub(crate) fn pending_count(&self) -> usize {
        if !self.used.load(Ordering::SeqCst) {
            return 0;
        }
        self.state.lock().heap.pending_count()
    }

    /// Pending entries in firing order: (deadline, posted-from location).
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub(crate) fn pending(&self) -> Vec<(Instant, &'static Location<'static>)> {
        self.state.lock().heap.pending()
    }

    /// Stops accepting entries, drops (and counts) the pending ones, and tells the thread to
    /// exit. Idempotent; never blocks on the thread.
    pub(crate) fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if !self.used.load(Ordering::SeqCst) {
            return; // never used: no entry and no thread, and every later schedule is refused
        }
        let timers = {
            let mut state = self.state.lock();
            state.shut_down = true;
            state.heap.drain()
        };
        self.changed.notify_all();
        for timer in timers {
            if let Some(task) = timer.entry.discard() {
                self.skip(timer.entry.location(), task);
            }
        }
    }

    /// Waits for the timer thread to exit (after [`shutdown`](Self::shutdown)); a no-op when
    /// called from the timer thread itself or when there is none.
    pub(crate) fn join(&self) {
        if !self.used.load(Ordering::SeqCst) {
            return;
        }
        let handle = self.state.lock().thread.take();
        if let Some(handle) = handle {
            #[cfg(not(loom))]
            if handle.thread().id() == std::thread::current().id() {
                return;
            }
            let _ = handle.join();
        }
    }
}
