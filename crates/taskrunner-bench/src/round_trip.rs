//! What a hand-off between two cores costs at the moment: one cache line bounced between two
//! threads, each waiting for the other's store before it stores (`docs/tools/line_pingpong.c`
//! does the same with the threads pinned).
//!
//! A sequence's figures follow this cost closely. On some virtual machines it changes by
//! several times within seconds (docs/PERFORMANCE.md, "This machine": 30–80 ns or 310–360 ns on
//! one of them), so the report gives it at the start and at the end of a run, which tells the
//! reader what state the machine was in. The threads are not pinned: on a machine with more than
//! two CPUs the figure is for whichever two the OS chose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Round trips per batch, and batches per measurement (fewer if the limit runs out first).
const ROUND_TRIPS: u64 = 2_000;
const BATCHES: usize = 9;

/// The line's value that tells the other thread to stop.
const STOP: u64 = u64::MAX;

/// Nanoseconds per round trip of one cache line between two threads: the median over up to
/// `BATCHES` batches of `ROUND_TRIPS` (a batch in which either thread was descheduled comes out
/// long, and the median leaves it out), measured for about `limit` at most. `None` with fewer
/// than two CPUs, where each hand-off would wait for a context switch.
pub(crate) fn line_round_trip_ns(limit: Duration) -> Option<f64> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let line = CachePadded::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        let line = &line;
        // The other thread answers each odd value with the next even one.
        scope.spawn(move || loop {
            let value = line.load(Ordering::Acquire);
            if value == STOP {
                return;
            }
            if value % 2 == 1 {
                line.store(value + 1, Ordering::Release);
            }
            std::hint::spin_loop();
        });
        let start = Instant::now();
        let mut sent = 0;
        let mut batches = Vec::with_capacity(BATCHES);
        while batches.len() < BATCHES && (batches.is_empty() || start.elapsed() < limit) {
            let batch = Instant::now();
            let mut trips = 0;
            while trips < ROUND_TRIPS {
                line.store(2 * sent + 1, Ordering::Release);
                while line.load(Ordering::Acquire) != 2 * sent + 2 {
                    std::hint::spin_loop();
                }
                sent += 1;
                trips += 1;
                // A first batch cut short still gives a figure, if a slow one.
                if trips % 64 == 0 && start.elapsed() > limit {
                    break;
                }
            }
            batches.push(batch.elapsed().as_nanos() as f64 / trips as f64);
        }
        line.store(STOP, Ordering::Release);
        batches.sort_by(f64::total_cmp);
        Some(batches[batches.len() / 2])
    })
}

/// The header's phrase for one measurement.
pub(crate) fn describe(ns: Option<f64>) -> String {
    ns.map_or_else(|| "n/a".to_string(), |ns| format!("{ns:.0}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_is_measured_and_stops_at_its_limit() {
        let started = Instant::now();
        let ns = line_round_trip_ns(Duration::from_millis(1));
        // 64 round trips at most past the limit: well below the bound even when the two
        // threads share one CPU of a busy test machine.
        assert!(started.elapsed() < Duration::from_secs(30));
        if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
            let ns = ns.expect("two CPUs: a figure");
            assert!(ns.is_finite() && ns > 0.0, "{ns}");
        } else {
            assert_eq!(ns, None);
        }
        assert_eq!(describe(None), "n/a");
        assert_eq!(describe(Some(61.6)), "62");
    }
}
