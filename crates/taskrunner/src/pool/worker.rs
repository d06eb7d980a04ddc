//! A worker thread: find a source, run it, spin briefly, park. See `README.md`.

// loom's `thread_local!` has no `const { .. }` form, and the models need loom's.
#![allow(clippy::missing_const_for_thread_local)]

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::parallel;
use super::sequence::Consumer;
use super::sleep::Registered;
use super::{
    Parallel, Release, Sequence, Shared, SlotEnd, Source, IDLE, RUNNING_CONTINUE, RUNNING_WAITED,
};
use crate::current;
use crate::observe;
use crate::sync::atomic::Ordering;
use crate::sync::{spin_hint, thread, thread_local, Arc};
use crate::task::TaskInPlace;
use crate::{
    ParallelTaskRunner, Priority, RunnerHandle, SequencedTaskRunner, ShutdownBehavior, Task,
    TaskTraits,
};

/// How many tasks of one sequence a worker runs before it checks whether other sources wait.
/// Each batch ends with bookkeeping (the queue position written back, two statistics
/// counters, the next batch's clock read and look at the tail), several hundred nanoseconds
/// that 64 small tasks of about 35 ns each felt: 256 measured about 1.15x at 1 and 4 posting
/// threads (docs/PERFORMANCE.md, step 24). Sources that wait still get their turn after 1 ms
/// (`BATCH_TIME`) whatever the count; 256 tasks of that size take about 10 µs.
#[cfg(not(loom))]
const BATCH: usize = 256;
#[cfg(loom)]
const BATCH: usize = 2;

/// Tasks of one batch after which the owner tells posts that it is working through a backlog
/// and needs no notice of them (`Sequence::start_draining`): a stream of posts that mostly find
/// the queue empty (ping-pong, the benchmark's latency load) rarely gets there, so its releases
/// rarely pay the heavy barrier (189 in the five seconds of that load, docs/PERFORMANCE.md,
/// step 29); a backlog gets there within a microsecond. 8 and 128 measured alike.
#[cfg(not(loom))]
const DRAIN_AFTER: usize = 32;
#[cfg(loom)]
const DRAIN_AFTER: usize = 1;

/// How long a batch may run before other sources get a turn (checked every 16 tasks, while
/// another source waits; see `run_batch`).
#[cfg(not(loom))]
const BATCH_TIME: std::time::Duration = std::time::Duration::from_millis(1);

/// How long the spinning worker polls the queues before it parks. Long enough that a steady
/// stream of posts (one every few microseconds) never waits for a wake-up; short enough that an
/// idle pool stops using CPU almost at once.
#[cfg(not(loom))]
const SPIN_TIME: std::time::Duration = std::time::Duration::from_micros(50);

/// How long the owner of a sequence polls its empty queue before releasing it: a post arriving
/// meanwhile is run at once, without a round trip through the pool's queues and a wake-up. It
/// gives way sooner when another source waits for a worker. A steady stream of posts a few
/// microseconds apart (the benchmark's latency load: 200k posts per second from 8 threads)
/// mostly arrives within it; docs/PERFORMANCE.md, step 13, has the measurement.
#[cfg(not(loom))]
const LINGER_TIME: std::time::Duration = std::time::Duration::from_micros(20);

/// Polls of the empty queue between two looks at the clock and at the pool's queues while the
/// owner lingers (a poll is one spin hint, some tens of nanoseconds).
#[cfg(not(loom))]
const LINGER_CHECK_EVERY: usize = 32;

thread_local! {
    /// (pool id, worker index) of the current thread, when it is a pool worker.
    static WORKER: Cell<Option<(u64, usize)>> = Cell::new(None);
}

/// The index of the current thread in pool `pool_id`, if it is one of its workers.
pub(super) fn current_worker_index(pool_id: u64) -> Option<usize> {
    WORKER.with(|w| w.get()).filter(|(id, _)| *id == pool_id).map(|(_, index)| index)
}

pub(super) fn spawn(
    shared: Arc<Shared>,
    index: usize,
    name: String,
) -> std::io::Result<thread::JoinHandle<()>> {
    let run = move || Worker { shared, index, ages: [0; Priority::COUNT] }.run();
    #[cfg(not(loom))]
    {
        thread::Builder::new().name(name).spawn(run)
    }
    #[cfg(loom)]
    {
        let _ = name;
        Ok(thread::spawn(run))
    }
}

/// What the spin phase found.
enum Spin {
    /// A source to run.
    Found(Source),
    /// Nothing within the spin time; still counted as a spinner.
    SpunOut,
    /// Another worker spins already; this one parks directly.
    NotSpinning,
}

/// Why a batch ended.
enum BatchEnd {
    /// The queue looked empty.
    Empty,
    /// The count or time budget was spent.
    Budget,
}

struct Worker {
    shared: Arc<Shared>,
    index: usize,
    ages: [u32; Priority::COUNT],
}

impl Worker {
    fn run(mut self) {
        WORKER.with(|w| w.set(Some((self.shared.id, self.index))));
        loop {
            if let Some(source) = self.shared.pop_source(&mut self.ages) {
                self.run_source(source);
                continue;
            }
            let spinning = match self.spin() {
                Spin::Found(source) => {
                    self.run_source(source);
                    continue;
                }
                Spin::SpunOut => true,
                Spin::NotSpinning => false,
            };
            if !self.shared.is_accepting() {
                if spinning {
                    self.shared.sleep.stop_spinning();
                }
                if self.shared.has_queued() {
                    continue;
                }
                break;
            }
            self.park(spinning);
        }
        self.exit();
    }

    /// Polls the queues for a while before parking, if no other worker is doing so already (a
    /// post arriving now is then picked up without a wake-up). A spinner that finds work and was
    /// the last spinner wakes another worker if more is queued, because posters skip the
    /// wake-up while someone spins.
    fn spin(&mut self) -> Spin {
        let sleep = &self.shared.sleep;
        if !sleep.try_start_spinning() {
            return Spin::NotSpinning;
        }
        #[cfg(not(loom))]
        let deadline = std::time::Instant::now() + SPIN_TIME;
        let mut polls: usize = 0;
        loop {
            if let Some(source) = self.shared.pop_source(&mut self.ages) {
                if sleep.stop_spinning() && self.shared.has_queued() {
                    let _ = sleep.notify_one();
                }
                return Spin::Found(source);
            }
            polls += 1;
            #[cfg(not(loom))]
            if polls % 32 == 0 && std::time::Instant::now() >= deadline {
                break;
            }
            #[cfg(loom)]
            if polls >= 1 {
                break;
            }
            spin_hint();
        }
        // Still counted as a spinner: `park` turns that into a sleeper in one step.
        Spin::SpunOut
    }

    /// Registers as a sleeper (leaving the spinners), re-checks, and parks.
    fn park(&mut self, was_spinning: bool) {
        let sleep = &self.shared.sleep;
        let registered = sleep.register_sleeper(self.index, was_spinning);
        if registered == Registered::ShuttingDown || self.shared.has_queued() {
            if !sleep.unregister_sleeper(self.index) && registered == Registered::MayPark {
                // A poster picked this worker for its source while the worker re-checked and
                // found work anyway: it takes one source, so pass that wake-up on, or a
                // second source could wait behind a task that blocks (sleep.rs).
                let _ = sleep.notify_one();
            }
            return;
        }
        sleep.park(self.index);
        let _ = sleep.unregister_sleeper(self.index);
    }

    fn run_source(&mut self, source: Source) {
        self.run_source_inner(source);
        self.shared.source_finished();
    }

    fn run_source_inner(&mut self, source: Source) {
        match source {
            Source::Sequence(sequence) => self.run_sequence(sequence),
            Source::Parallel(parallel) => self.run_parallel(parallel),
            Source::Task(task, traits) => {
                self.set_activity(traits.shutdown_behavior());
                let closed = !self.shared.is_accepting();
                if self.shared.tracker.should_run(traits.shutdown_behavior(), closed) {
                    TaskInPlace::with(task, |task| {
                        run_task_as(
                            &self.shared,
                            self.index,
                            traits.shutdown_behavior(),
                            self.shared.observed(traits.priority()),
                            task,
                        )
                    });
                    self.add_ran(1);
                } else {
                    skip_task(&self.shared, task);
                }
                self.clear_activity();
            }
        }
    }

    /// Runs batches of the sequence's tasks; the worker owns the sequence throughout.
    fn run_sequence(&mut self, sequence: Arc<Sequence>) {
        let traits = sequence.traits();
        let behavior = traits.shutdown_behavior();
        self.set_activity(behavior);
        let _context = current::enter(
            RunnerHandle::sequenced(SequencedTaskRunner::from_sequence(sequence.clone())),
            Some(sequence.token()),
        );
        sequence.set_running(true);
        loop {
            let (ran, end) = self.run_batch(&sequence, traits);
            self.add_ran(ran);
            sequence.add_run(ran);
            observe::queue_depth(sequence.observed(), || sequence.queued());
            match end {
                BatchEnd::Budget if self.shared.has_queued() => {
                    // Let waiting sources go first; the sequence stays scheduled.
                    sequence.set_running(false);
                    self.shared.schedule(Source::Sequence(sequence), traits.priority());
                    break;
                }
                BatchEnd::Budget => continue,
                BatchEnd::Empty => {
                    sequence.set_running(false);
                    match sequence.release() {
                        Release::Released => break,
                        Release::Reacquired => sequence.set_running(true),
                    }
                }
            }
        }
        self.clear_activity();
    }

    /// Runs one slot of a parallel runner (see `parallel.rs`): batches of its tasks until it
    /// releases the slot or others sources wait.
    fn run_parallel(&mut self, parallel: Arc<Parallel>) {
        let behavior = parallel.traits().shutdown_behavior();
        let runner = parallel.observed();
        self.set_activity(behavior);
        let _context = current::enter(
            RunnerHandle::parallel(ParallelTaskRunner::from_parallel(parallel.clone())),
            None,
        );
        let counters = parallel.counters();
        counters.enter();
        let shared = &*self.shared;
        let index = self.index;
        let end = loop {
            let (ran, end) = Parallel::run_slot(&parallel, parallel::BATCH, |task| {
                if shared.tracker.should_run(behavior, parallel.is_closed()) {
                    TaskInPlace::with(task, |task| {
                        run_task_as(shared, index, behavior, runner, task)
                    });
                    true
                } else {
                    skip_task(shared, task);
                    false
                }
            });
            self.add_ran(ran);
            counters.add_run(ran);
            observe::queue_depth(runner, || parallel.pending());
            if end == SlotEnd::Released || self.shared.has_queued() {
                break end;
            }
        };
        counters.exit();
        if end == SlotEnd::Budget {
            let priority = parallel.traits().priority();
            self.shared.schedule(Source::Parallel(parallel), priority);
        }
        self.clear_activity();
    }

    /// Polls the owned sequence's empty queue for up to `LINGER_TIME` before releasing it, or
    /// until another source waits for a worker. True if a task arrived.
    #[cfg(not(loom))]
    fn linger(&self, consumer: &mut Consumer<'_>) -> bool {
        let deadline = std::time::Instant::now() + LINGER_TIME;
        loop {
            for _ in 0..LINGER_CHECK_EVERY {
                spin_hint();
                if consumer.has_ready_task() {
                    return true;
                }
            }
            if self.shared.has_queued() || std::time::Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Loom explores every interleaving instead: no polling, release at once.
    #[cfg(loom)]
    fn linger(&self, _consumer: &mut Consumer<'_>) -> bool {
        false
    }

    /// Runs up to `BATCH` tasks (or `BATCH_TIME`). Returns how many ran and why it stopped.
    ///
    /// The time budget only matters to sources that wait, so every 16 tasks the batch first
    /// looks at the pool's queues (a few loads of lines that rarely change) and reads the
    /// clock only if a source waits there. A clock read costs about 25 ns here, more than
    /// running a small task; reading it every 16 tasks made the worker's cost per task about
    /// a quarter higher (docs/PERFORMANCE.md, step 16).
    #[inline]
    fn run_batch(&self, sequence: &Sequence, traits: TaskTraits) -> (u64, BatchEnd) {
        let behavior = traits.shutdown_behavior();
        let runner = sequence.observed();
        #[cfg(not(loom))]
        let started = std::time::Instant::now();
        let mut consumer = sequence.consumer();
        let mut popped = 0;
        let mut ran = 0;
        loop {
            if popped == BATCH {
                return (ran, BatchEnd::Budget);
            }
            let outcome = consumer.pop_with(|task| {
                if self.shared.tracker.should_run(behavior, sequence.is_closed_for_owner()) {
                    run_task_as(&self.shared, self.index, behavior, runner, task);
                    true
                } else {
                    skip_task(&self.shared, task.take());
                    false
                }
            });
            match outcome {
                Some(run) => {
                    popped += 1;
                    ran += u64::from(run);
                    if popped == DRAIN_AFTER {
                        sequence.start_draining();
                    }
                }
                None if self.linger(&mut consumer) => continue,
                None => return (ran, BatchEnd::Empty),
            }
            #[cfg(not(loom))]
            if popped % 16 == 0 && self.shared.has_queued() && started.elapsed() >= BATCH_TIME {
                return (ran, BatchEnd::Budget);
            }
        }
    }

    fn add_ran(&self, n: u64) {
        if n > 0 {
            self.shared.workers[self.index].ran.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Marks the worker busy with a source: shutdown waits for it. (Only the call of a
    /// `ContinueOnShutdown` task itself is not waited for; see `run_task_as`.)
    fn set_activity(&self, _behavior: ShutdownBehavior) {
        self.shared.workers[self.index].activity.store(RUNNING_WAITED, Ordering::Release);
    }

    fn clear_activity(&self) {
        self.shared.workers[self.index].activity.store(IDLE, Ordering::Release);
        if !self.shared.is_accepting() {
            // Shutdown may be waiting for this worker.
            let _exits = self.shared.exits.lock();
            self.shared.exits_changed.notify_all();
        }
    }

    fn exit(self) {
        if self.shared.live_workers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last one out: from now on posters drain what they push (see sleep.rs).
            self.shared.sleep.terminate();
            self.shared.drain_after_termination();
        }
        let mut exits = self.shared.exits.lock();
        exits.exited[self.index] = true;
        self.shared.exits_changed.notify_all();
    }
}

/// Runs one task of a runner with `behavior`. While a `ContinueOnShutdown` task runs, the
/// worker is marked as not waited for by shutdown; before and after it (popping, skipping
/// queued tasks) it is waited for, so every task dropped by shutdown is counted before the
/// report is made. `runner` names the runner (for panic reports, spans and metrics).
///
/// This and `run_task` are inlined into the batch loops: as calls of their own they made a
/// worker's cost per task about a fifth higher (docs/PERFORMANCE.md, step 15). The
/// `ContinueOnShutdown` case stays out of line.
#[inline(always)]
fn run_task_as(
    shared: &Shared,
    index: usize,
    behavior: ShutdownBehavior,
    runner: observe::Runner<'_>,
    task: TaskInPlace<'_>,
) {
    if behavior == ShutdownBehavior::ContinueOnShutdown {
        run_task_not_waited_for(shared, index, runner, task)
    } else {
        run_task(shared, runner, task)
    }
}

/// `run_task_as` for a `ContinueOnShutdown` task.
#[inline(never)]
fn run_task_not_waited_for(
    shared: &Shared,
    index: usize,
    runner: observe::Runner<'_>,
    task: TaskInPlace<'_>,
) {
    let activity = &shared.workers[index].activity;
    activity.store(RUNNING_CONTINUE, Ordering::Release);
    if !shared.is_accepting() {
        // A shutdown waiting for this worker no longer needs to.
        let _exits = shared.exits.lock();
        shared.exits_changed.notify_all();
    }
    run_task(shared, runner, task);
    activity.store(RUNNING_WAITED, Ordering::Release);
}

/// Runs one task where it lies, catching and reporting a panic. The `observe` calls are empty
/// without the `tracing` and `metrics` features.
#[inline(always)]
fn run_task(shared: &Shared, runner: observe::Runner<'_>, task: TaskInPlace<'_>) {
    let location = task.task().location();
    let running = observe::start(task.task(), runner);
    let result = catch_unwind(AssertUnwindSafe(|| task.run()));
    let panicked = result.is_err();
    if let Err(payload) = result {
        shared.report_panic(runner.name, &*payload, location);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    }
    observe::finish(running, panicked, shared.observe());
}

/// Drops a task unrun, counting it. Its captured state's `Drop` may panic: reported too.
#[cold]
fn skip_task(shared: &Shared, task: Task) {
    let location = task.location();
    shared.tracker.record_skipped(location);
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(task))) {
        shared.report_panic(shared.name(), &*payload, location);
    }
}

/// Drops every task of a source popped after termination (see `Shared::drain_after_termination`).
pub(super) fn drain_source(shared: &Shared, source: Source) {
    drain_source_inner(shared, source);
    shared.source_finished();
}

fn drain_source_inner(shared: &Shared, source: Source) {
    match source {
        Source::Task(task, _) => skip_task(shared, task),
        Source::Parallel(parallel) => Parallel::drain(&parallel, |task| skip_task(shared, task)),
        Source::Sequence(sequence) => loop {
            {
                let mut consumer = sequence.consumer();
                while let Some(task) = consumer.pop() {
                    skip_task(shared, task);
                }
            }
            if sequence.release() == Release::Released {
                break;
            }
        },
    }
}
