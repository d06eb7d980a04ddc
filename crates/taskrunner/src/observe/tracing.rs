//! The `tracing` feature: the `task` span, the `post` event, slow-task and panic events.
//! See the parent module for the names, levels and fields.

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::span::EnteredSpan;

use super::RejectedReport;
use crate::Priority;

/// A process-wide id for each accepted post (0 is never used: it marks an unstamped task).
pub(super) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The `post` event: the poster's side of the flow.
#[inline]
pub(super) fn post(id: u64, runner: &str, location: &'static Location<'static>) {
    tracing::trace!(
        target: "taskrunner::post",
        task_id = id,
        runner,
        posted_from = %location,
        "post"
    );
}

/// The `task` span, entered on the running thread.
#[inline]
pub(super) fn task_span(
    id: u64,
    runner: &str,
    priority: Priority,
    location: &'static Location<'static>,
    delay: Option<Duration>,
) -> EnteredSpan {
    tracing::debug_span!(
        target: "taskrunner",
        "task",
        runner,
        priority = super::priority_label(priority),
        posted_from = %location,
        queue_delay_us = delay.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        task_id = id,
    )
    .entered()
}

/// The task returned: warns if it was slow or panicked, then leaves its span.
#[inline]
pub(super) fn finished(span: EnteredSpan, duration: Duration, panicked: bool, slow: Duration) {
    if panicked {
        tracing::error!(target: "taskrunner", duration_us = micros(duration), "task panicked");
    }
    if duration >= slow {
        tracing::warn!(
            target: "taskrunner",
            duration_us = micros(duration),
            threshold_us = micros(slow),
            "slow task"
        );
    }
    drop(span);
}

/// A rejected post.
#[cold]
pub(super) fn rejected(report: &RejectedReport<'_>) {
    tracing::debug!(
        target: "taskrunner",
        runner = report.runner(),
        priority = super::priority_label(report.priority()),
        reason = report.reason().as_str(),
        posted_from = %report.location(),
        "post rejected"
    );
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
