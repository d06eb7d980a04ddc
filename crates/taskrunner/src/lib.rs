//! Lock-free state ownership by sequential execution.
//!
//! Instead of guarding state with a mutex, give it to a **sequence**: a virtual thread on a
//! shared thread pool that runs the tasks posted to it one at a time, in posting order, each
//! seeing everything the previous one did. State reached only from the sequence's tasks needs
//! no lock. The model is Chromium's `base/task`; this crate adds what Rust can check.
//!
//! # Tour
//!
//! A pool and a sequence on it:
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().name("app").workers(2).build()?;
//! let seq = pool.sequenced_runner(TaskTraits::default());
//!
//! seq.post(|| println!("runs alone on the sequence"))?;        // Result<(), PostError>
//! let answer = seq.post_with_result(|| 6 * 7)?;                 // TaskHandle<i32>
//! assert_eq!(answer.join()?, 42);                               // or `.await`
//! seq.wait_idle(Duration::from_secs(5))?;                       // everything posted so far ran
//!
//! let report = pool.shutdown();                                 // what ran, what was dropped
//! assert_eq!(report.skipped(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The global pool starts on first use, so there is nothing to set up:
//!
//! ```
//! use taskrunner::{TaskRunnerExt, TaskTraits};
//!
//! let seq = taskrunner::sequenced_runner(TaskTraits::default());
//! assert_eq!(seq.post_with_result(|| "hi").unwrap().join().unwrap(), "hi");
//! ```
//!
//! Nothing is lost silently. A rejected post hands the task back; a panic is reported once to
//! the pool's panic handler with the line that posted the task, and delivered to whoever waits:
//!
//! ```
//! use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().workers(1).panic_handler(|_| {}).build().unwrap();
//! let seq = pool.sequenced_runner(TaskTraits::default());
//! let err = seq.post_with_result(|| -> u32 { panic!("boom") }).unwrap().join().unwrap_err();
//! assert!(err.is_panic());
//! assert_eq!(err.panic_message(), Some("boom"));
//! assert_eq!(seq.post_with_result(|| 1).unwrap().join().unwrap(), 1); // the runner goes on
//! ```
//!
//! Waiting on a sequence from inside itself is refused instead of hanging:
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{TaskRunnerExt, TaskTraits, ThreadPool, WaitError};
//!
//! let pool = ThreadPool::builder().workers(1).build().unwrap();
//! let seq = pool.sequenced_runner(TaskTraits::default());
//! let inner = seq.clone();
//! let result = seq.post_with_result(move || inner.wait_idle(Duration::from_secs(1))).unwrap();
//! assert_eq!(result.join().unwrap(), Err(WaitError::WouldDeadlock));
//! ```
//!
//! State that belongs to a sequence is best held in a [`SequenceBound`], which makes the
//! sequence the only place the value can be reached; work handed to another runner can answer
//! with a reply on the caller's own sequence:
//!
//! ```
//! use std::sync::mpsc;
//! use taskrunner::{SequenceBound, TaskRunnerExt, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().workers(2).build()?;
//! let seq = pool.sequenced_runner(TaskTraits::default());
//! let counter = SequenceBound::new(&seq, || 0u64);   // instead of Arc<Mutex<u64>>
//! counter.post(|n| *n += 1)?;
//! assert_eq!(counter.call(|n| *n)?.join()?, 1);
//!
//! let io = pool.sequenced_runner(TaskTraits::default());
//! let (tx, rx) = mpsc::channel();
//! seq.post(move || {
//!     io.post_and_reply(|| 6 * 7, move |n| tx.send(n).unwrap()).unwrap(); // reply on `seq`
//! })?;
//! assert_eq!(rx.recv()?, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The guide to these patterns, and to the cases where a sequence is the wrong tool, is the
//! [`patterns`] module (`docs/PATTERNS.md` in the repository); every pattern also has a
//! self-checking program in `examples/`.
//!
//! # Time
//!
//! Delayed and repeating tasks run on the runner they were posted to, on the pool's [`Clock`].
//! A delayed task returns a [`DelayedHandle`] (dropping it lets the task run; `cancel` stops
//! it); a repeating task returns a [`RepeatingHandle`], and dropping that one stops the task:
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{MissedTickPolicy, Repeat, TaskRunnerExt, TaskTraits, ThreadPool};
//!
//! let pool = ThreadPool::builder().workers(2).build()?;
//! let seq = pool.sequenced_runner(TaskTraits::default());
//!
//! let later = seq.post_delayed_with_result(Duration::from_millis(5), || "later")?;
//! let never = seq.post_delayed(Duration::from_secs(60), || unreachable!())?;
//! assert!(never.cancel());                                      // dropped now, never runs
//! assert_eq!(later.join()?, "later");
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! let rate = Repeat::at_fixed_rate(Duration::from_millis(2), MissedTickPolicy::Skip);
//! let ticks = seq.post_repeating(rate, move || drop(tx.send(())))?;
//! rx.iter().take(3).for_each(drop);                             // three ticks
//! assert!(ticks.stop());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Tests do not sleep: with the `test-util` feature, `test_util::TestEnvironment` runs a pool
//! on mock time (`fast_forward_by`, `run_until_idle`, `advance_clock`, `now`), with a watchdog
//! for hung tests. The [`time`] module documents the schedules with timelines.
//!
//! # Where things are
//!
//! - [`ThreadPool`], [`ThreadPoolBuilder`], [`global`], [`ShutdownReport`]: the pool.
//! - [`SequencedTaskRunner`]: the sequence (optionally bounded). [`ParallelTaskRunner`]: up to
//!   N tasks at once, with `flush` barriers. [`SingleThreadTaskRunner`]: a dedicated OS thread,
//!   with a bounded queue and a [`QueuePolicy`]. [`TaskTraits`] ([`Priority`],
//!   [`ShutdownBehavior`]) belong to the runner and are fixed when it is made.
//! - [`RunnerStats`], [`PoolStats`]: statistics, read from atomics.
//! - [`TaskRunner`] (one required method) and [`TaskRunnerExt`] (the helpers, for every runner).
//! - [`TaskHandle`]: a task's result, blocking or `.await`. [`TaskError`], [`PostError`],
//!   [`WaitError`], [`BuildError`]: what can go wrong.
//! - [`current_runner`], [`SequenceToken`]: where the current task runs.
//! - [`Repeat`], [`MissedTickPolicy`], [`DelayedHandle`], [`RepeatingHandle`],
//!   [`StopReason`], [`Clock`]: delayed and repeating tasks ([`time`]); `test_util` (feature
//!   `test-util`): the mock-time test environment.
//! - [`SequenceBound`] ([`SequencedRunner`]): a value owned by a sequence.
//!   [`TaskRunnerExt::post_and_reply`]: task and reply. [`EventBus`]: typed publish/subscribe.
//! - [`observe`]: the rejected-task handler ([`RejectedReport`]), and what the `tracing` and
//!   `metrics` features record (spans per task, counters, histograms; off by default, free
//!   when off). Examples `tracing_flow` and `prometheus_metrics`.
//! - [`patterns`]: the guide.
//!
//! Internals: `time/` holds the clock, the timer heap and entry state machine, the timer
//! service thread and repeating tasks. `pool/` holds the workers, the sequence state machine, sleep and wake and the
//! shutdown tracker; its `README.md` writes the protocols down. `sync` selects `std` or `loom`
//! types so the protocols are model-checked (`RUSTFLAGS="--cfg loom"`).

#![deny(unsafe_code)]
#![warn(rust_2018_idioms)]

mod closure;
mod current;
mod error;
mod event_bus;
mod handle;
pub mod observe;
mod parallel;
mod pool;
mod reply;
mod runner;
mod sequence_bound;
mod sequenced;
mod single_thread;
mod stats;
mod sync;
mod task;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod time;

#[cfg(all(test, loom))]
mod tests;

#[doc = include_str!("../../../docs/PATTERNS.md")]
pub mod patterns {}

pub use crate::current::{current_runner, SequenceToken};
pub use crate::error::{BuildError, PostError, TaskError, WaitError};
pub use crate::event_bus::{EventBus, PublishError, SubscribeError, SubscriptionId};
pub use crate::handle::TaskHandle;
pub use crate::observe::{RejectReason, RejectedReport};
pub use crate::parallel::{ParallelRunnerBuilder, ParallelTaskRunner};
pub use crate::pool::{
    global, sequenced_runner, PanicReport, ShutdownReport, ThreadPool, ThreadPoolBuilder,
};
pub use crate::runner::{RunnerHandle, SequencedRunner, TaskRunner, TaskRunnerExt};
pub use crate::sequence_bound::SequenceBound;
pub use crate::sequenced::{SequencedRunnerBuilder, SequencedTaskRunner};
pub use crate::single_thread::{
    QueuePolicy, Rejection, SingleThreadRunnerBuilder, SingleThreadTaskRunner,
};
pub use crate::stats::{PoolStats, RunnerKind, RunnerStats};
pub use crate::task::{Priority, ShutdownBehavior, Task, TaskTraits};
pub use crate::time::{
    Clock, DelayedHandle, MissedTickPolicy, RealClock, Repeat, RepeatingHandle, StopReason,
    TimerTarget,
};
