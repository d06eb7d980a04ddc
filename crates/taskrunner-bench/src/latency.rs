//! Latency from post to start of execution at a paced load.
//!
//! Each paced writer sends on a fixed schedule; each operation carries the `Instant` at which
//! it was posted, and the executor records `now - posted` as soon as it starts the operation.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use taskrunner::{SequenceBound, TaskRunnerExt, TaskTraits};

use crate::seq_state::SeqOwned;
use crate::variants::{earliest, pool, tokio_runtime, Variant, DRAIN_TIMEOUT};
use crate::workload::share;

/// Percentiles of one variant's post-to-start latency, in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct LatencySummary {
    /// The variant measured.
    pub(crate) variant: Variant,
    /// Number of operations recorded.
    pub(crate) count: u64,
    /// The rate the writers actually reached, in operations per second.
    pub(crate) achieved_rate: f64,
    /// Median.
    pub(crate) p50: f64,
    /// 90th percentile.
    pub(crate) p90: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// 99.9th percentile.
    pub(crate) p999: f64,
    /// Largest value seen.
    pub(crate) max: f64,
    /// The 99th percentile of each repetition on its own: one stalled repetition can own the
    /// tail of the merged histogram, and this shows whether it did.
    pub(crate) p99_per_rep: Vec<f64>,
}

/// A histogram of nanoseconds, from 1 ns to 60 s at three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

#[inline]
fn record(h: &mut Histogram<u64>, posted: Instant) {
    record_ns(h, u64::try_from(posted.elapsed().as_nanos()).unwrap_or(u64::MAX));
}

/// Records a latency of `ns` nanoseconds (at least 1, the histogram's lowest value).
#[inline]
pub(crate) fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.max(1));
}

/// One paced run: `ops` operations from `writers` threads at `rate` operations per second in
/// total. Returns the histogram and how long the posting took.
pub(crate) fn run(
    variant: Variant,
    writers: usize,
    ops: u64,
    rate: u64,
    workers: usize,
) -> Result<(Histogram<u64>, Duration), String> {
    match variant {
        Variant::Sequence => {
            let pool = pool(workers)?;
            let seq = pool.sequenced_runner(TaskTraits::default());
            let owned = SeqOwned::new(histogram());
            let hist = owned.handle();
            let posting = paced(writers, ops, rate, |posted| {
                seq.post(move || {
                    // SAFETY: a task of `seq`, the one sequence `hist` belongs to; `owned` is
                    // taken back only after the final task below has run.
                    unsafe { hist.with(|h| record(h, posted)) }
                })
                .map_err(|e| format!("post failed: {e:?}"))
            })?;
            seq.wait_idle(DRAIN_TIMEOUT).map_err(|e| format!("wait_idle failed: {e:?}"))?;
            seq.post_with_result(|| ())
                .map_err(|e| format!("post failed: {e:?}"))?
                .join()
                .map_err(|e| format!("final task failed: {e:?}"))?;
            // SAFETY: the sequence went idle and its final task was joined, so no task that
            // holds `hist` remains.
            let h = unsafe { owned.into_inner() };
            let _report = pool.shutdown();
            Ok((h, posting))
        }
        Variant::SequenceBound => {
            let pool = pool(workers)?;
            let seq = pool.sequenced_runner(TaskTraits::default());
            let bound = SequenceBound::new(&seq, histogram);
            let posting = paced(writers, ops, rate, |posted| {
                bound.post(move |h| record(h, posted)).map_err(|e| format!("post failed: {e:?}"))
            })?;
            seq.wait_idle(DRAIN_TIMEOUT).map_err(|e| format!("wait_idle failed: {e:?}"))?;
            let h = bound
                .call(|h| std::mem::replace(h, histogram()))
                .map_err(|e| format!("call failed: {e:?}"))?
                .join()
                .map_err(|e| format!("final task failed: {e:?}"))?;
            drop(bound);
            let _report = pool.shutdown();
            Ok((h, posting))
        }
        Variant::CrossbeamThread => {
            let (tx, rx) = crossbeam_channel::unbounded::<Instant>();
            let owner = std::thread::spawn(move || {
                let mut h = histogram();
                for posted in rx {
                    record(&mut h, posted);
                }
                h
            });
            let posting = paced(writers, ops, rate, |p| tx.send(p).map_err(|e| e.to_string()))?;
            drop(tx);
            let h = owner.join().map_err(|_| "owner thread panicked".to_string())?;
            Ok((h, posting))
        }
        Variant::TokioActor => {
            let rt = tokio_runtime(workers)?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
            let actor = rt.spawn(async move {
                let mut h = histogram();
                while let Some(posted) = rx.recv().await {
                    record(&mut h, posted);
                }
                h
            });
            let posting = paced(writers, ops, rate, |p| tx.send(p).map_err(|e| e.to_string()))?;
            drop(tx);
            let h = rt.block_on(actor).map_err(|e| e.to_string())?;
            Ok((h, posting))
        }
        Variant::IdealWord => crate::ideal::latency(writers, ops, rate),
        Variant::StdMutex | Variant::ParkingLot | Variant::IdealLine | Variant::IdealTask => {
            Err(format!("{} is not measured for post-to-start latency", variant.name()))
        }
    }
}

/// Summarises a (merged) histogram.
pub(crate) fn summarise(
    variant: Variant,
    h: &Histogram<u64>,
    posting: Duration,
    p99_per_rep: Vec<f64>,
) -> LatencySummary {
    let us = |ns: u64| ns as f64 / 1000.0;
    LatencySummary {
        variant,
        count: h.len(),
        achieved_rate: h.len() as f64 / posting.as_secs_f64().max(1e-9),
        p50: us(h.value_at_quantile(0.50)),
        p90: us(h.value_at_quantile(0.90)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
        p99_per_rep,
    }
}

/// Paced writers: writer `w` of `writers` sends its operations on a fixed schedule, one every
/// `writers / rate` seconds, staggered so the writers together send at `rate` per second.
/// `submit` gets the instant of the post. Returns the time from release to the last post.
///
/// Pacing sleeps until the next send time. On Linux a short sleep overshoots by up to the
/// timer slack (about 50 µs), so a writer that woke late sends the operations it owes back to
/// back: the schedule, and so the average rate, is kept, and the latency each operation
/// records starts at its real post. Sleeping rather than spinning keeps eight writers from
/// starving the executors of a two-core machine.
pub(crate) fn paced<F>(writers: usize, ops: u64, rate: u64, submit: F) -> Result<Duration, String>
where
    F: Fn(Instant) -> Result<(), String> + Sync,
{
    let period = Duration::from_secs_f64(writers as f64 / rate.max(1) as f64);
    let barrier = Barrier::new(writers);
    let (first, last) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (barrier, submit) = (&barrier, &submit);
                scope.spawn(move || {
                    barrier.wait();
                    let released = Instant::now();
                    let start = released + period.mul_f64(w as f64 / writers as f64);
                    for i in 0..share(ops, writers, w) {
                        let due = start + period.mul_f64(i as f64);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        submit(Instant::now())?;
                    }
                    Ok::<Instant, String>(released)
                })
            })
            .collect();
        Ok::<_, String>((earliest(handles)?, Instant::now()))
    })?;
    Ok(last - first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_executor_records_every_operation() {
        for v in Variant::EXECUTORS {
            let (h, _) =
                run(v, 3, 200, 1_000_000, 2).unwrap_or_else(|e| panic!("{}: {e}", v.name()));
            assert_eq!(h.len(), 200, "{}", v.name());
        }
        assert!(run(Variant::ParkingLot, 1, 1, 1, 1).is_err());
    }
}
