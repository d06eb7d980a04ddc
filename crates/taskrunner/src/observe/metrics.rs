//! The `metrics` feature: the metric names and labels are listed in the parent module.
//!
//! Labels are built per call (the runner name is copied into each label set): a recorder keys
//! its handles by them, so the same runner always lands in the same series.

use std::time::Duration;

use super::{priority_label, RejectedReport};
use crate::Priority;

#[inline]
pub(super) fn queue_delay(runner: &str, priority: Priority, delay: Option<Duration>) {
    if let Some(delay) = delay {
        metrics::histogram!(
            "queue_delay_seconds",
            "runner" => runner.to_owned(),
            "priority" => priority_label(priority)
        )
        .record(delay.as_secs_f64());
    }
}

#[inline]
pub(super) fn finished(runner: &str, priority: Priority, duration: Duration, panicked: bool) {
    let labels = [("runner", runner.to_owned()), ("priority", priority_label(priority).to_owned())];
    metrics::histogram!("task_duration_seconds", &labels).record(duration.as_secs_f64());
    metrics::counter!("tasks_total", &labels).increment(1);
    if panicked {
        metrics::counter!("task_panics_total", &labels).increment(1);
    }
}

#[inline]
pub(super) fn queue_depth(runner: &str, depth: usize) {
    metrics::gauge!("queue_depth", "runner" => runner.to_owned()).set(depth as f64);
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
