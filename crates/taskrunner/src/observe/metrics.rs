//! The `metrics` feature: the metric names and labels are listed in the parent module.
//!
//! Each runner builds the keys of its series (name and labels) once, on its first task or
//! queue-depth sample, and every update looks its series up in the recorder by that key, as
//! the `metrics` macros do. Building the labels per task (copying the runner name, collecting
//! the label list) had cost more than the task itself (see docs/PERFORMANCE.md). The handles
//! the recorder returns are not kept, though that would be faster still: a recorder may drop
//! a series that stayed idle (the Prometheus exporter's idle timeout), and an update through a
//! kept handle would then go nowhere, where a fresh lookup registers the series again
//! (`tests/metrics_recency.rs`).
//! Rejections are rare and build their labels per call.

use std::time::Duration;

use metrics::{Key, Level, Metadata};

use super::{priority_label, RejectedReport};
use crate::Priority;

/// What the `metrics` macros would pass as the call site's metadata.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One runner's series keys.
pub(crate) struct Keys {
    queue_delay: Key,
    duration: Key,
    tasks: Key,
    panics: Key,
    depth: Key,
}

impl Keys {
    pub(super) fn new(runner: &str, priority: Priority) -> Keys {
        let labels =
            [("runner", runner.to_owned()), ("priority", priority_label(priority).to_owned())];
        Keys {
            queue_delay: Key::from_parts("queue_delay_seconds", &labels),
            duration: Key::from_parts("task_duration_seconds", &labels),
            tasks: Key::from_parts("tasks_total", &labels),
            panics: Key::from_parts("task_panics_total", &labels),
            depth: Key::from_parts("queue_depth", &[("runner", runner.to_owned())]),
        }
    }
}

fn counter(key: &Key) -> metrics::Counter {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

fn histogram(key: &Key) -> metrics::Histogram {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

fn gauge(key: &Key) -> metrics::Gauge {
    metrics::with_recorder(|recorder| recorder.register_gauge(key, &METADATA))
}

#[inline]
pub(super) fn queue_delay(keys: &Keys, delay: Option<Duration>) {
    if let Some(delay) = delay {
        histogram(&keys.queue_delay).record(delay.as_secs_f64());
    }
}

#[inline]
pub(super) fn finished(keys: &Keys, duration: Duration, panicked: bool) {
    histogram(&keys.duration).record(duration.as_secs_f64());
    counter(&keys.tasks).increment(1);
    if panicked {
        counter(&keys.panics).increment(1);
    }
}

#[inline]
pub(super) fn queue_depth(keys: &Keys, depth: usize) {
    gauge(&keys.depth).set(depth as f64);
}

#[cold]
pub(super) fn rejected(report: &RejectedReport<'_>) {
    metrics::counter!(
        "tasks_rejected_total",
        "runner" => report.runner().to_owned(),
        "priority" => priority_label(report.priority()),
        "reason" => report.reason().as_str()
    )
    .increment(1);
}
