//! The ways of serialising access to the state, and one throughput run of each.
//!
//! Adding a variant takes an entry in [`Variant`], its name, and one arm in
//! [`Variant::run_throughput`] (plus one in `latency.rs` if it is an executor one can post
//! to).

use std::sync::atomic::AtomicU64;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use taskrunner::{SequenceBound, SequencedTaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};

use crate::seq_state::SeqOwned;
use crate::workload::{key, share, State};

/// How long a run may wait for its executor to drain before it is reported as failed.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// One way of giving W writer threads access to the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// A `taskrunner` sequence; writers post fire-and-forget tasks that reach the state
    /// through a cell only the sequence's tasks use (`seq_state`), without a lock.
    Sequence,
    /// The state inside a `taskrunner::SequenceBound`; writers call its fire-and-forget `post`.
    SequenceBound,
    /// `std::sync::Mutex` around the state.
    StdMutex,
    /// `parking_lot::Mutex` around the state (the reference the ratios are taken against).
    ParkingLot,
    /// A dedicated OS thread owning the state, fed through an unbounded crossbeam channel.
    CrossbeamThread,
    /// A tokio task owning the state, fed through an unbounded `tokio::sync::mpsc` channel.
    TokioActor,
    /// Not an executor but a bound: the ideal FIFO hand-off of `ideal.rs` with 8-byte slots.
    IdealWord,
    /// The ideal FIFO hand-off with 64-byte slots, the size of a task.
    IdealLine,
    /// The ideal FIFO hand-off of tasks: 64-byte slots holding a closure, run by an indirect
    /// call, as an executor must.
    IdealTask,
}

impl Variant {
    /// Every variant, in the order of the tables.
    pub(crate) const ALL: [Variant; 9] = [
        Variant::Sequence,
        Variant::SequenceBound,
        Variant::ParkingLot,
        Variant::StdMutex,
        Variant::CrossbeamThread,
        Variant::TokioActor,
        Variant::IdealWord,
        Variant::IdealLine,
        Variant::IdealTask,
    ];

    /// The variants one can post work to, measured for latency (with the ideal queue as the
    /// bound).
    pub(crate) const EXECUTORS: [Variant; 5] = [
        Variant::Sequence,
        Variant::SequenceBound,
        Variant::CrossbeamThread,
        Variant::TokioActor,
        Variant::IdealWord,
    ];

    /// The ideal queues: bounds on what any sequence can reach, not executors.
    pub(crate) const IDEAL: [Variant; 3] =
        [Variant::IdealWord, Variant::IdealLine, Variant::IdealTask];

    /// The name used in tables and the plot.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::Sequence => "taskrunner sequence",
            Variant::SequenceBound => "taskrunner SequenceBound",
            Variant::StdMutex => "std::sync::Mutex",
            Variant::ParkingLot => "parking_lot::Mutex",
            Variant::CrossbeamThread => "crossbeam-channel thread",
            Variant::TokioActor => "tokio mpsc actor",
            Variant::IdealWord => "ideal FIFO queue (8 B)",
            Variant::IdealLine => "ideal FIFO queue (64 B)",
            Variant::IdealTask => "ideal FIFO queue of tasks (64 B)",
        }
    }

    /// Runs `ops` operations from `writers` threads and returns how long it took from the
    /// moment the writers were released until every operation had executed. The final state
    /// is checked after the clock stops; a wrong state is an error.
    pub(crate) fn run_throughput(
        self,
        writers: usize,
        ops: u64,
        workers: usize,
    ) -> Result<Duration, String> {
        match self {
            Variant::Sequence => run_sequence(writers, ops, workers),
            Variant::SequenceBound => run_sequence_bound(writers, ops, workers),
            Variant::StdMutex => {
                let state = Mutex::new(State::new());
                let start = drive(writers, ops, |k| {
                    state.lock().map_err(|_| "poisoned".to_string())?.apply(k);
                    Ok(())
                })?;
                let elapsed = start.elapsed();
                state.into_inner().map_err(|_| "poisoned".to_string())?.check(ops)?;
                Ok(elapsed)
            }
            Variant::ParkingLot => {
                let state = parking_lot::Mutex::new(State::new());
                let start = drive(writers, ops, |k| {
                    state.lock().apply(k);
                    Ok(())
                })?;
                let elapsed = start.elapsed();
                state.into_inner().check(ops)?;
                Ok(elapsed)
            }
            Variant::CrossbeamThread => {
                let (tx, rx) = crossbeam_channel::unbounded::<u64>();
                let owner = std::thread::spawn(move || {
                    let mut state = State::new();
                    for k in rx {
                        state.apply(k);
                    }
                    state
                });
                let start = drive(writers, ops, |k| tx.send(k).map_err(|e| e.to_string()))?;
                drop(tx);
                let state = owner.join().map_err(|_| "owner thread panicked".to_string())?;
                let elapsed = start.elapsed();
                state.check(ops)?;
                Ok(elapsed)
            }
            Variant::IdealWord => crate::ideal::throughput::<AtomicU64>(writers, ops),
            Variant::IdealLine => crate::ideal::throughput::<crate::ideal::Line>(writers, ops),
            Variant::IdealTask => crate::ideal::throughput_tasks(writers, ops),
            Variant::TokioActor => {
                let rt = tokio_runtime(workers)?;
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
                let actor = rt.spawn(async move {
                    let mut state = State::new();
                    while let Some(k) = rx.recv().await {
                        state.apply(k);
                    }
                    state
                });
                let start = drive(writers, ops, |k| tx.send(k).map_err(|e| e.to_string()))?;
                drop(tx);
                let state = rt.block_on(actor).map_err(|e| e.to_string())?;
                let elapsed = start.elapsed();
                state.check(ops)?;
                Ok(elapsed)
            }
        }
    }
}

/// The sequence variant: writers post one task per operation; the run ends when the
/// sequence is idle again; the state is read back through a final task.
fn run_sequence(writers: usize, ops: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let seq: SequencedTaskRunner = pool.sequenced_runner(TaskTraits::default());
    let owned = SeqOwned::new(State::new());
    let state = owned.handle();
    let start = drive(writers, ops, |k| {
        seq.post(move || {
            // SAFETY: a task of `seq`, the one sequence `state` belongs to; `owned` is taken
            // back only after `seq` went idle.
            unsafe { state.with(|s| s.apply(k)) }
        })
        .map_err(|e| format!("post failed: {e:?}"))
    })?;
    seq.wait_idle(DRAIN_TIMEOUT).map_err(|e| format!("wait_idle failed: {e:?}"))?;
    let elapsed = start.elapsed();
    let checked = seq
        .post_with_result(move || {
            // SAFETY: as above; this is the last task that touches `state`.
            unsafe { state.with(|s| s.check(ops)) }
        })
        .map_err(|e| format!("post failed: {e:?}"))?
        .join()
        .map_err(|e| format!("final task failed: {e:?}"))?;
    // The final task has run, and nothing else was posted: the value is ours again.
    // SAFETY: `join` returned, so every task holding `state` has finished.
    drop(unsafe { owned.into_inner() });
    let _report = pool.shutdown();
    checked?;
    Ok(elapsed)
}

/// The `SequenceBound` variant: the state is bound to a sequence and reached only through
/// the bound's `post`; the run ends when the sequence is idle again; the state is read back
/// through `call`.
fn run_sequence_bound(writers: usize, ops: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, State::new);
    let start = drive(writers, ops, |k| {
        bound.post(move |s| s.apply(k)).map_err(|e| format!("post failed: {e:?}"))
    })?;
    seq.wait_idle(DRAIN_TIMEOUT).map_err(|e| format!("wait_idle failed: {e:?}"))?;
    let elapsed = start.elapsed();
    let checked = bound
        .call(move |s| s.check(ops))
        .map_err(|e| format!("call failed: {e:?}"))?
        .join()
        .map_err(|e| format!("final task failed: {e:?}"))?;
    drop(bound);
    let _report = pool.shutdown();
    checked?;
    Ok(elapsed)
}

/// A pool of `workers` threads for one run.
pub(crate) fn pool(workers: usize) -> Result<ThreadPool, String> {
    ThreadPool::builder().name("bench").workers(workers).build().map_err(|e| format!("pool: {e:?}"))
}

/// A multi-thread tokio runtime of `workers` threads for one run.
pub(crate) fn tokio_runtime(workers: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Starts `writers` threads, releases them together, and has writer `w` call `submit` with
/// the key of each of its operations. Returns the instant the first writer started, once
/// every writer has finished submitting.
///
/// Each writer reads the clock itself after the barrier: the thread that waits on a barrier
/// may be woken long after the others started, so the caller's clock would start late.
pub(crate) fn drive<F>(writers: usize, ops: u64, submit: F) -> Result<Instant, String>
where
    F: Fn(u64) -> Result<(), String> + Sync,
{
    let barrier = Barrier::new(writers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (barrier, submit) = (&barrier, &submit);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    (0..share(ops, writers, w)).try_for_each(|i| submit(key(w, i)))?;
                    Ok::<Instant, String>(start)
                })
            })
            .collect();
        earliest(handles)
    })
}

/// Joins the writers and returns the earliest start any of them reported.
pub(crate) fn earliest(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<Instant, String>>>,
) -> Result<Instant, String> {
    let mut first: Option<Instant> = None;
    for h in handles {
        let start = h.join().map_err(|_| "writer panicked".to_string())??;
        first = Some(first.map_or(start, |f| f.min(start)));
    }
    first.ok_or_else(|| "no writers".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_leaves_the_expected_state() {
        for v in Variant::ALL {
            for writers in [1, 3] {
                v.run_throughput(writers, 1000, 2)
                    .unwrap_or_else(|e| panic!("{} with {writers} writers: {e}", v.name()));
            }
        }
    }
}
