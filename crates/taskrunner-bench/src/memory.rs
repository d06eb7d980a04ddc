//! Heap cost: bytes per idle runner, allocations per post, bytes per queued task.
//!
//! A counting allocator wraps `System`. It counts only while [`Counting`] is alive, so the
//! throughput and latency sections pay one relaxed load per allocation and nothing else.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use taskrunner::{SequenceBound, TaskRunnerExt, TaskTraits};

use crate::seq_state::SeqOwned;
use crate::variants::{pool, tokio_runtime, Variant, DRAIN_TIMEOUT};

/// The allocator of the benchmark binary.
#[derive(Debug)]
pub(crate) struct CountingAlloc;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, and only
// adds relaxed counter updates, which neither allocate nor touch the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Relaxed) {
            FREED.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ENABLED.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOCATED.fetch_add(new_size as u64, Relaxed);
            FREED.fetch_add(layout.size() as u64, Relaxed);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Counts allocations while alive. Counting is process-wide: allocations by pool workers and
/// channel threads count too, which is the point (the cost of a post includes its execution).
#[derive(Debug)]
struct Counting {
    allocs: u64,
    allocated: u64,
    freed: u64,
}

impl Counting {
    fn start() -> Self {
        ENABLED.store(true, Relaxed);
        Counting {
            allocs: ALLOCS.load(Relaxed),
            allocated: ALLOCATED.load(Relaxed),
            freed: FREED.load(Relaxed),
        }
    }

    /// Allocations since start.
    fn allocs(&self) -> u64 {
        ALLOCS.load(Relaxed) - self.allocs
    }

    /// Net heap bytes still allocated, of those allocated or freed since start.
    fn live_bytes(&self) -> i64 {
        let allocated = ALLOCATED.load(Relaxed) - self.allocated;
        let freed = FREED.load(Relaxed) - self.freed;
        allocated as i64 - freed as i64
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        ENABLED.store(false, Relaxed);
    }
}

/// The heap figures of one executor.
#[derive(Debug, Clone)]
pub(crate) struct MemoryRow {
    /// What was measured.
    pub(crate) name: &'static str,
    /// Heap bytes of one idle runner (or channel) that never ran a task, averaged over many;
    /// `None` where there is no such state (a `SequenceBound` runs its constructor).
    pub(crate) idle_bytes: Option<f64>,
    /// Heap bytes of one idle runner that has run one task (channel: carried one message),
    /// averaged over many: what a runner keeps once it has been used.
    pub(crate) used_idle_bytes: f64,
    /// Allocations per post of a 40-byte closure, including running it.
    pub(crate) allocs_small: f64,
    /// Allocations per post of a 136-byte closure, including running it.
    pub(crate) allocs_large: f64,
    /// Heap bytes per queued (not yet run) 40-byte closure.
    pub(crate) queued_bytes: f64,
}

/// A closure of 40 bytes: a pointer to the state and 32 bytes of payload.
fn small_payload() -> [u64; 4] {
    [1, 2, 3, 4]
}

/// A closure of 136 bytes: a pointer to the state and 128 bytes of payload.
fn large_payload() -> [u64; 16] {
    [1; 16]
}

type Job = Box<dyn FnOnce() + Send>;

/// Heap bytes per item, averaged over `n` items made by `make` and then `settle`d (given all
/// of them), counted while they are all alive. They are dropped after the count.
fn live_bytes_per<T>(
    n: usize,
    mut make: impl FnMut() -> Result<T, String>,
    settle: impl FnOnce(&[T]) -> Result<(), String>,
) -> Result<f64, String> {
    let mut all = Vec::with_capacity(n);
    let c = Counting::start();
    for _ in 0..n {
        all.push(make()?);
    }
    settle(&all)?;
    let bytes = per(c.live_bytes() as f64, n as u64);
    drop(c);
    drop(all);
    Ok(bytes)
}

fn post_err<E: std::fmt::Debug>(e: E) -> String {
    format!("post failed: {e:?}")
}

fn wait_err<E: std::fmt::Debug>(e: E) -> String {
    format!("wait_idle failed: {e:?}")
}

/// The baselines' job carrying the small payload (40 bytes of closure before boxing).
fn small_job() -> Job {
    let p = small_payload();
    Box::new(move || {
        std::hint::black_box(p);
    })
}

/// The baselines' job carrying the large payload.
fn large_job() -> Job {
    let p = large_payload();
    Box::new(move || {
        std::hint::black_box(p);
    })
}

/// Measures the sequence, a `SequenceBound<u64>`, and two channel-fed executors that run boxed closures (which is what
/// a general-purpose executor built on a channel has to send). `runners` idle runners are
/// created to average the idle cost; `posts` closures are posted for the per-post figures.
pub(crate) fn measure(
    runners: usize,
    posts: u64,
    workers: usize,
) -> Result<Vec<MemoryRow>, String> {
    Ok(vec![
        sequence(runners, posts, workers)?,
        sequence_bound(runners, posts, workers)?,
        crossbeam(runners, posts)?,
        tokio(runners, posts, workers)?,
    ])
}

/// Posts a task that holds the sequence (its later tasks stay queued) until the returned
/// sender sends; returns once that task is running.
fn hold(seq: &taskrunner::SequencedTaskRunner) -> Result<crossbeam_channel::Sender<()>, String> {
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    seq.post(move || {
        let _ = started_tx.send(());
        let _ = gate_rx.recv();
    })
    .map_err(|e| format!("post failed: {e:?}"))?;
    started_rx.recv().map_err(|e| e.to_string())?;
    Ok(gate_tx)
}

fn per(n: impl Into<f64>, d: u64) -> f64 {
    n.into() / d.max(1) as f64
}

fn sequence(runners: usize, posts: u64, workers: usize) -> Result<MemoryRow, String> {
    let pool = pool(workers)?;

    // Idle runners.
    let idle_bytes =
        live_bytes_per(runners, || Ok(pool.sequenced_runner(TaskTraits::default())), |_| Ok(()))?;

    // Idle runners that have each run one task.
    let used_idle_bytes = live_bytes_per(
        runners,
        || {
            let seq = pool.sequenced_runner(TaskTraits::default());
            seq.post(|| {}).map_err(post_err)?;
            Ok(seq)
        },
        |all| all.iter().try_for_each(|seq| seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)),
    )?;

    let seq = pool.sequenced_runner(TaskTraits::default());
    let owned = SeqOwned::new(0u64);
    let state = owned.handle();

    // Allocations per post, small and large closures, including their execution.
    let c = Counting::start();
    for _ in 0..posts {
        let p = small_payload();
        // SAFETY: a task of `seq`, the one sequence `state` belongs to.
        seq.post(move || unsafe { state.with(|s| *s += p[3]) }).map_err(post_err)?;
    }
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    let allocs_small = per(c.allocs() as f64, posts);
    drop(c);

    let c = Counting::start();
    for _ in 0..posts {
        let p = large_payload();
        // SAFETY: as above.
        seq.post(move || unsafe { state.with(|s| *s += p[15]) }).map_err(post_err)?;
    }
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    let allocs_large = per(c.allocs() as f64, posts);
    drop(c);

    // Bytes per queued task: a first task holds the sequence until every post is counted.
    let gate_tx = hold(&seq)?;
    let c = Counting::start();
    for _ in 0..posts {
        let p = small_payload();
        // SAFETY: as above.
        seq.post(move || unsafe { state.with(|s| *s += p[3]) }).map_err(post_err)?;
    }
    let queued_bytes = per(c.live_bytes() as f64, posts);
    drop(c);
    gate_tx.send(()).map_err(|e| e.to_string())?;
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    seq.post_with_result(|| ()).map_err(post_err)?.join().map_err(|e| format!("{e:?}"))?;
    // SAFETY: the sequence is idle and its last task was joined; no task holds `state`.
    let total = unsafe { owned.into_inner() };
    let expected = posts * (4 + 1 + 4);
    if total != expected {
        return Err(format!("sequence memory run: expected {expected}, found {total}"));
    }
    let _report = pool.shutdown();
    Ok(MemoryRow {
        name: Variant::Sequence.name(),
        idle_bytes: Some(idle_bytes),
        used_idle_bytes,
        allocs_small,
        allocs_large,
        queued_bytes,
    })
}

/// The same figures for a `SequenceBound<u64>`: idle bytes count the runner and the bound
/// together; each post hands the bound a closure of 32 bytes (the bound adds its own pointer).
fn sequence_bound(runners: usize, posts: u64, workers: usize) -> Result<MemoryRow, String> {
    let pool = pool(workers)?;

    let used_idle_bytes = live_bytes_per(
        runners,
        || {
            let seq = pool.sequenced_runner(TaskTraits::default());
            let bound = SequenceBound::new(&seq, || 0u64);
            Ok((seq, bound))
        },
        |all| all.iter().try_for_each(|(seq, _)| seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)),
    )?;

    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, || 0u64);
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    let c = Counting::start();
    for _ in 0..posts {
        let p = small_payload();
        bound.post(move |s| *s += p[3]).map_err(post_err)?;
    }
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    let allocs_small = per(c.allocs() as f64, posts);
    drop(c);

    let c = Counting::start();
    for _ in 0..posts {
        let p = large_payload();
        bound.post(move |s| *s += p[15]).map_err(post_err)?;
    }
    seq.wait_idle(DRAIN_TIMEOUT).map_err(wait_err)?;
    let allocs_large = per(c.allocs() as f64, posts);
    drop(c);

    let gate_tx = hold(&seq)?;
    let c = Counting::start();
    for _ in 0..posts {
        let p = small_payload();
        bound.post(move |s| *s += p[3]).map_err(post_err)?;
    }
    let queued_bytes = per(c.live_bytes() as f64, posts);
    drop(c);
    gate_tx.send(()).map_err(|e| e.to_string())?;
    let total = bound.call(|s| *s).map_err(post_err)?.join().map_err(|e| format!("{e:?}"))?;
    let expected = posts * (4 + 1 + 4);
    if total != expected {
        return Err(format!("SequenceBound memory run: expected {expected}, found {total}"));
    }
    drop(bound);
    let _report = pool.shutdown();
    Ok(MemoryRow {
        name: Variant::SequenceBound.name(),
        idle_bytes: None,
        used_idle_bytes,
        allocs_small,
        allocs_large,
        queued_bytes,
    })
}

fn crossbeam(runners: usize, posts: u64) -> Result<MemoryRow, String> {
    let idle_bytes =
        live_bytes_per(runners, || Ok(crossbeam_channel::unbounded::<Job>()), |_| Ok(()))?;
    let used_idle_bytes = live_bytes_per(
        runners,
        || {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            tx.send(Box::new(|| {})).map_err(|e| e.to_string())?;
            rx.recv().map_err(|e| e.to_string())?();
            Ok((tx, rx))
        },
        |_| Ok(()),
    )?;

    let run_posts = |make: &dyn Fn() -> Job| -> Result<f64, String> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let owner = std::thread::spawn(move || rx.into_iter().for_each(|job| job()));
        let c = Counting::start();
        for _ in 0..posts {
            tx.send(make()).map_err(|e| e.to_string())?;
        }
        drop(tx);
        owner.join().map_err(|_| "owner thread panicked".to_string())?;
        Ok(per(c.allocs() as f64, posts))
    };
    let allocs_small = run_posts(&small_job)?;
    let allocs_large = run_posts(&large_job)?;

    // Nothing drains this channel while the jobs are counted.
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    let c = Counting::start();
    for _ in 0..posts {
        tx.send(small_job()).map_err(|e| e.to_string())?;
    }
    let queued_bytes = per(c.live_bytes() as f64, posts);
    drop(c);
    drop((tx, rx));
    Ok(MemoryRow {
        name: "crossbeam-channel thread (Box<dyn FnOnce>)",
        idle_bytes: Some(idle_bytes),
        used_idle_bytes,
        allocs_small,
        allocs_large,
        queued_bytes,
    })
}

fn tokio(runners: usize, posts: u64, workers: usize) -> Result<MemoryRow, String> {
    let rt = tokio_runtime(workers)?;
    let idle_bytes =
        live_bytes_per(runners, || Ok(tokio::sync::mpsc::unbounded_channel::<Job>()), |_| Ok(()))?;
    let used_idle_bytes = live_bytes_per(
        runners,
        || {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            tx.send(Box::new(|| {})).map_err(|e| e.to_string())?;
            rx.try_recv().map_err(|e| e.to_string())?();
            Ok((tx, rx))
        },
        |_| Ok(()),
    )?;

    let run_posts = |make: &dyn Fn() -> Job| -> Result<f64, String> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let actor = rt.spawn(async move {
            while let Some(job) = rx.recv().await {
                job();
            }
        });
        let c = Counting::start();
        for _ in 0..posts {
            tx.send(make()).map_err(|e| e.to_string())?;
        }
        drop(tx);
        rt.block_on(actor).map_err(|e| e.to_string())?;
        Ok(per(c.allocs() as f64, posts))
    };
    let allocs_small = run_posts(&small_job)?;
    let allocs_large = run_posts(&large_job)?;

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let c = Counting::start();
    for _ in 0..posts {
        tx.send(small_job()).map_err(|e| e.to_string())?;
    }
    let queued_bytes = per(c.live_bytes() as f64, posts);
    drop(c);
    drop((tx, rx));
    Ok(MemoryRow {
        name: "tokio mpsc actor (Box<dyn FnOnce>)",
        idle_bytes: Some(idle_bytes),
        used_idle_bytes,
        allocs_small,
        allocs_large,
        queued_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_memory_run_completes_and_checks_its_state() {
        let rows = measure(10, 200, 2).expect("memory runs");
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().any(|r| r.name == Variant::Sequence.name()));
    }
}
