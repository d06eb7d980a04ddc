//! Priorities order sources in the pool; lower priorities still make progress.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::block;
use taskrunner::{Priority, SequencedTaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};

const LONG: Duration = Duration::from_secs(30);

fn runner(pool: &ThreadPool, priority: Priority) -> SequencedTaskRunner {
    pool.sequenced_runner(TaskTraits::default().with_priority(priority))
}

#[test]
fn user_blocking_sources_start_first_under_saturation() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    // Saturate the only worker.
    let gate = runner(&pool, Priority::UserVisible);
    let release_tx = block(&gate);

    let log = Arc::new(Mutex::new(Vec::new()));
    let mut runners = Vec::new();
    // Interleave the posts so posting order alone would mix the priorities.
    for i in 0..4 {
        for priority in [Priority::BestEffort, Priority::UserVisible, Priority::UserBlocking] {
            let seq = runner(&pool, priority);
            let log = log.clone();
            seq.post(move || log.lock().unwrap().push((priority, i))).unwrap();
            runners.push(seq);
        }
    }
    release_tx.send(()).unwrap();
    for seq in &runners {
        seq.wait_idle(LONG).unwrap();
    }
    let order: Vec<Priority> = log.lock().unwrap().iter().map(|(p, _)| *p).collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "sources must start by priority, highest first");
}

#[test]
fn best_effort_progresses_under_sustained_user_blocking_load() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let busy = runner(&pool, Priority::UserBlocking);
    let background = runner(&pool, Priority::BestEffort);
    let background_ran = Arc::new(AtomicBool::new(false));
    let busy_tasks = Arc::new(AtomicUsize::new(0));
    // Bound on the busy tasks that may run before the best-effort one: the aging limit (8
    // passes) times the batch size (64), with a wide margin. The load stops there, so a
    // starvation bug fails the assertion below instead of hanging.
    const CAP: usize = 100_000;

    fn keep_busy(seq: SequencedTaskRunner, stop: Arc<AtomicBool>, count: Arc<AtomicUsize>) {
        if stop.load(Ordering::SeqCst) || count.fetch_add(1, Ordering::SeqCst) >= CAP {
            return;
        }
        let next = seq.clone();
        seq.post(move || keep_busy(next, stop, count)).unwrap();
    }
    // Several chains keep the user-blocking sequence permanently non-empty.
    for _ in 0..4 {
        let (seq, stop, count) = (busy.clone(), background_ran.clone(), busy_tasks.clone());
        busy.post(move || keep_busy(seq, stop, count)).unwrap();
    }
    let (tx, rx) = mpsc::channel();
    {
        let (flag, count) = (background_ran.clone(), busy_tasks.clone());
        background
            .post(move || {
                flag.store(true, Ordering::SeqCst);
                tx.send(count.load(Ordering::SeqCst)).unwrap();
            })
            .unwrap();
    }
    let busy_before = rx.recv_timeout(LONG).expect("best-effort task never ran");
    assert!(busy_before < CAP, "best-effort starved: {busy_before} user-blocking tasks ran first");
    busy.wait_idle(LONG).unwrap();
}
