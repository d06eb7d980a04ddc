//! Observability: the rejected-task hook, `tracing` spans and `metrics` counters.
//!
//! The runners call a handful of functions of this module: when a post is accepted
//! (`posted`), when a task starts (`start`) and ends (`finish`), at batch boundaries
//! (`queue_depth`), and when a post is rejected (`rejected`, on the error path only). With
//! the `tracing` and `metrics` features off, every one of them is an empty `#[inline(always)]`
//! function taking zero-sized values: the default build has no clock read, no branch and no
//! field more on the post and run paths (a [`Task`] stays 64 bytes).
//!
//! # Hooks (always there)
//!
//! [`ThreadPoolBuilder::panic_handler`](crate::ThreadPoolBuilder::panic_handler) receives a
//! [`PanicReport`](crate::PanicReport) (runner name, message, posted-from location); its default
//! writes one line to stderr. [`ThreadPoolBuilder::rejected_handler`](crate::ThreadPoolBuilder::rejected_handler) receives a
//! [`RejectedReport`] (runner name, priority, [`RejectReason`], posted-from location) for every
//! post refused by one of the pool's runners: sequenced, parallel and the pool's own one-off
//! tasks, including delayed tasks whose runner closed before they were due. Its default does
//! nothing: the caller already gets the task back in the [`PostError`](crate::PostError).
//! Neither default ever writes to stdout. Both handlers run on the thread that saw the event (a
//! worker, the poster, or the timer thread); a panic in a handler is caught and dropped.
//!
//! # Feature `tracing`
//!
//! - Each task runs inside a span `task` (level `DEBUG`, target `taskrunner`) with the fields
//!   `runner`, `priority`, `posted_from` (`file:line:column`), `queue_delay_us` (from the
//!   accepted post to the start) and `task_id`.
//! - Each accepted post records an event `post` (level `TRACE`, target `taskrunner::post`) with
//!   the same `task_id`, `runner` and `posted_from`, inside whatever span the poster is in.
//!   The id is unique per process, so a viewer draws the flow arrow by joining the `post` event
//!   and the `task` span on `task_id` (for example a Perfetto or Jaeger query, or a custom
//!   `Layer` that emits flow events).
//! - A task that ran at least the pool's `ThreadPoolBuilder::slow_task_threshold` (default
//!   1 s; the method exists with the feature)
//!   records a `WARN` event `slow task` with its duration, inside its span; a panicking task an
//!   `ERROR` event `task panicked`; a rejected post a `DEBUG` event `post rejected`.
//!
//! # Feature `metrics`
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so any recorder (Prometheus,
//! StatsD, …) receives them:
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `task_duration_seconds` | histogram | runner, priority |
//! | `queue_delay_seconds` (accepted post → start) | histogram | runner, priority |
//! | `queue_depth` | gauge | runner |
//! | `tasks_total` (tasks that ran, panicked or not) | counter | runner, priority |
//! | `task_panics_total` | counter | runner, priority |
//! | `tasks_rejected_total` | counter | runner, priority, reason |
//!
//! `priority` is `best_effort`, `user_visible` or `user_blocking`; `reason` is
//! [`RejectReason::as_str`]. `queue_depth` is set by the thread that runs a sequenced or
//! parallel runner's tasks at the end of each batch (never by posts), so it is a sample, not
//! an exact count. A pool's one-off tasks use the pool's name as `runner`.
//!
//! With either feature on, a task also carries the instant its post was accepted (and, with
//! `tracing`, its id), and each post reads the clock once.
//!
//! # Decisions
//!
//! - Every refusal is reported once, where the runner refuses it, as `closed` or `full`. A
//!   blocking post that turns a full queue into `PostError::WouldDeadlock`, and a `wait_idle`
//!   that timed out waiting for room, were refused as `full` first and are reported so (as
//!   they are counted in `RunnerStats::rejected`).
//! - A [`SingleThreadTaskRunner`](crate::SingleThreadTaskRunner) has no pool: its `full`
//!   refusals go to its own `on_rejected`, and its tasks and refusals still get the spans,
//!   events and metrics above (with the default slow-task threshold).
//! - Each runner builds the keys (name and labels) of its series once, when it first runs a
//!   task or samples its queue depth, and looks the series up by key on every update, as the
//!   `metrics` macros do, so a recorder installed later, or one that drops idle series, sees
//!   every update. Rejections build their labels per call. With the feature off nothing is
//!   built or kept.

use std::fmt;
use std::panic::Location;

use crate::{Priority, Task};

#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "tracing")]
mod tracing;

/// Why a post was rejected, as reported to
/// [`rejected_handler`](crate::ThreadPoolBuilder::rejected_handler) and in the
/// `tasks_rejected_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The runner, or its pool, has shut down ([`PostError::Closed`](crate::PostError::Closed)).
    Closed,
    /// The runner's bounded queue was full ([`PostError::Full`](crate::PostError::Full)).
    Full,
}

impl RejectReason {
    /// The label value: `"closed"` or `"full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Closed => "closed",
            RejectReason::Full => "full",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A post refused by one of a pool's runners, as handed to the pool's
/// [`rejected_handler`](crate::ThreadPoolBuilder::rejected_handler).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskrunner::{RejectReason, TaskRunnerExt, TaskTraits, ThreadPool};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let pool = ThreadPool::builder()
///     .workers(1)
///     .rejected_handler(move |r| log.lock().unwrap().push((r.runner().to_owned(), r.reason())))
///     .build()
///     .unwrap();
/// let seq = pool.sequenced_runner_builder().name("db").build().unwrap();
/// seq.shutdown();
/// assert!(seq.post(|| {}).is_err());
/// assert_eq!(*seen.lock().unwrap(), [("db".to_owned(), RejectReason::Closed)]);
/// ```
#[derive(Debug)]
pub struct RejectedReport<'a> {
    runner: &'a str,
    priority: Priority,
    reason: RejectReason,
    location: &'static Location<'static>,
}

impl<'a> RejectedReport<'a> {
    pub(crate) fn new(
        runner: &'a str,
        priority: Priority,
        reason: RejectReason,
        location: &'static Location<'static>,
    ) -> RejectedReport<'a> {
        RejectedReport { runner, priority, reason, location }
    }

    /// The name of the runner that refused the post (the pool's name for its one-off tasks).
    pub fn runner(&self) -> &str {
        self.runner
    }

    /// The runner's priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Why the post was refused.
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// Where the rejected task was posted from.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }
}

impl fmt::Display for RejectedReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "taskrunner: post to runner '{}' from {} rejected: {}",
            self.runner, self.location, self.reason
        )
    }
}

/// The label value of a priority.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn priority_label(priority: Priority) -> &'static str {
    match priority {
        Priority::BestEffort => "best_effort",
        Priority::UserVisible => "user_visible",
        Priority::UserBlocking => "user_blocking",
    }
}

/// A runner as the observability calls see it: its name, its priority and (with `metrics`)
/// its metric keys.
#[derive(Clone, Copy)]
pub(crate) struct Runner<'a> {
    pub(crate) name: &'a str,
    #[cfg_attr(not(any(feature = "tracing", feature = "metrics")), allow(dead_code))]
    priority: Priority,
    #[cfg(feature = "metrics")]
    metrics: &'a RunnerMetrics,
}

impl<'a> Runner<'a> {
    #[inline(always)]
    #[allow(unused_variables)]
    pub(crate) fn new(name: &'a str, priority: Priority, metrics: &'a RunnerMetrics) -> Self {
        Runner {
            name,
            priority,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }
}

/// A runner's metric keys, built on first use (see the module docs); zero-sized without the
/// `metrics` feature.
#[derive(Default)]
pub(crate) struct RunnerMetrics {
    #[cfg(feature = "metrics")]
    keys: std::sync::OnceLock<Box<metrics::Keys>>,
}

impl RunnerMetrics {
    #[cfg(feature = "metrics")]
    #[inline]
    fn keys(&self, runner: &str, priority: Priority) -> &metrics::Keys {
        self.keys.get_or_init(|| Box::new(metrics::Keys::new(runner, priority)))
    }
}

/// What a task carries from its accepted post to its start: nothing without the features.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stamp {
    /// When the post was accepted (`None` until then).
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    posted: Option<std::time::Instant>,
    /// The id that links the `post` event to the `task` span.
    #[cfg(feature = "tracing")]
    id: u64,
}

/// The pool's observability settings.
pub(crate) struct Settings {
    /// A task running longer than this records a warning.
    #[cfg(feature = "tracing")]
    pub(crate) slow_task: std::time::Duration,
}

#[allow(clippy::derivable_impls)] // empty without `tracing`
impl Default for Settings {
    fn default() -> Settings {
        Settings {
            #[cfg(feature = "tracing")]
            slow_task: std::time::Duration::from_secs(1),
        }
    }
}

/// A post of `task` to `runner` was accepted: stamps the task, records the `post` event.
/// Called just before the task is queued.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn posted(task: &mut Task, runner: &str) {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    {
        let stamp = task.stamp_mut();
        stamp.posted = Some(std::time::Instant::now());
        #[cfg(feature = "tracing")]
        {
            stamp.id = tracing::next_id();
            tracing::post(stamp.id, runner, task.location());
        }
    }
}

/// A task that started: its span and start time, while the features are on.
pub(crate) struct Running<'a> {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    started: std::time::Instant,
    #[cfg(feature = "tracing")]
    span: ::tracing::span::EnteredSpan,
    #[cfg(feature = "metrics")]
    metrics: &'a metrics::Keys,
    #[cfg(not(feature = "metrics"))]
    _runner: std::marker::PhantomData<&'a str>,
}

/// `task` of `runner` starts on this thread: enters its span, records its queue delay.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn start<'a>(task: &Task, runner: Runner<'a>) -> Running<'a> {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    let started = std::time::Instant::now();
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    let delay = task.stamp().posted.map(|p| started.saturating_duration_since(p));
    #[cfg(feature = "metrics")]
    let keys = runner.metrics.keys(runner.name, runner.priority);
    #[cfg(feature = "metrics")]
    metrics::queue_delay(keys, delay);
    Running {
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        started,
        #[cfg(feature = "tracing")]
        span: tracing::task_span(
            task.stamp().id,
            runner.name,
            runner.priority,
            task.location(),
            delay,
        ),
        #[cfg(feature = "metrics")]
        metrics: keys,
        #[cfg(not(feature = "metrics"))]
        _runner: std::marker::PhantomData,
    }
}

/// The task started by `running` returned (or panicked): records its duration, leaves its span.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn finish(running: Running<'_>, panicked: bool, settings: &Settings) {
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    let duration = running.started.elapsed();
    #[cfg(feature = "metrics")]
    metrics::finished(running.metrics, duration, panicked);
    #[cfg(feature = "tracing")]
    tracing::finished(running.span, duration, panicked, settings.slow_task);
}

/// A batch of `runner` ended: samples its queue depth (`depth` is only called with `metrics`).
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn queue_depth(runner: Runner<'_>, depth: impl FnOnce() -> usize) {
    #[cfg(feature = "metrics")]
    metrics::queue_depth(runner.metrics.keys(runner.name, runner.priority), depth());
}

/// A post was rejected: records the metric and the event. (The pool calls its handler.)
#[inline]
#[allow(unused_variables)]
pub(crate) fn rejected(report: &RejectedReport<'_>) {
    #[cfg(feature = "metrics")]
    metrics::rejected(report);
    #[cfg(feature = "tracing")]
    tracing::rejected(report);
}
