//! SequenceBound<T>: created, used and dropped only on its sequence.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use taskrunner::{
    SequenceBound, SequenceToken, SequencedTaskRunner, ShutdownBehavior, TaskRunner, TaskRunnerExt,
    TaskTraits, ThreadPool,
};

const LONG: Duration = Duration::from_secs(30);

type Log = Arc<Mutex<Vec<(&'static str, Option<SequenceToken>)>>>;

/// A value that records where it was created and dropped.
struct Tracked {
    log: Log,
    n: u64,
}

impl Tracked {
    fn new(log: &Log) -> Tracked {
        log.lock().unwrap().push(("created", SequenceToken::current()));
        Tracked { log: log.clone(), n: 0 }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.log.lock().unwrap().push(("dropped", SequenceToken::current()));
    }
}

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().workers(workers).panic_handler(|_| {}).build().unwrap()
}

#[test]
fn value_is_created_used_and_dropped_on_its_sequence() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let token = seq.sequence_token();
    let log = Log::default();
    let l = log.clone();
    let bound = SequenceBound::new(&seq, move || Tracked::new(&l));
    assert_eq!(bound.sequence_token(), token);
    bound.post(|t| t.n += 1).unwrap();
    let (n, on) = bound.call(|t| (t.n, SequenceToken::current())).unwrap().join().unwrap();
    assert_eq!((n, on), (1, token));
    let clone = bound.clone();
    drop(bound);
    assert_eq!(clone.call(|t| t.n).unwrap().join().unwrap(), 1, "a clone keeps the value");
    drop(clone);
    seq.wait_idle(LONG).unwrap();
    assert_eq!(*log.lock().unwrap(), vec![("created", token), ("dropped", token)]);
}

#[test]
fn many_threads_update_without_a_lock_in_sight() {
    const THREADS: usize = 8;
    const EACH: u64 = 2_000;
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    // Not Sync: only ever touched by one closure at a time.
    let bound = SequenceBound::new(&seq, || (Cell::new(0u64), Cell::new(false)));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (bound, overlaps, start) = (bound.clone(), overlaps.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..EACH {
                    let overlaps = overlaps.clone();
                    bound
                        .post(move |(n, busy)| {
                            if busy.replace(true) {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            n.set(n.get() + 1);
                            busy.set(false);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = bound.call(|(n, _)| n.get()).unwrap().join().unwrap();
    assert_eq!(total, THREADS as u64 * EACH);
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn the_value_is_dropped_after_every_closure_posted_before() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let log = Log::default();
    let l = log.clone();
    let bound = SequenceBound::new(&seq, move || Tracked::new(&l));
    for _ in 0..100 {
        let l = log.clone();
        bound
            .post(move |t| {
                t.n += 1;
                l.lock().unwrap().push(("used", None));
            })
            .unwrap();
    }
    drop(bound);
    seq.wait_idle(LONG).unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 102);
    assert_eq!(log.first().unwrap().0, "created");
    assert_eq!(log.last().unwrap().0, "dropped");
}

#[test]
fn a_closed_sequence_rejects_and_never_builds() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    seq.shutdown();
    let built = Arc::new(AtomicUsize::new(0));
    let b = built.clone();
    let bound = SequenceBound::new(&seq, move || {
        b.fetch_add(1, Ordering::SeqCst);
        0u32
    });
    assert!(bound.is_closed());
    assert!(bound.post(|n| *n += 1).unwrap_err().is_closed());
    assert!(bound.call(|n| *n).unwrap_err().is_closed());
    drop(bound);
    assert_eq!(built.load(Ordering::SeqCst), 0);
}

/// A bound whose value was built, on a sequence that has shut down since (and terminated).
fn bound_on_a_finished_sequence() -> (ThreadPool, SequencedTaskRunner, Log, SequenceBound<Tracked>)
{
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let log = Log::default();
    let l = log.clone();
    let bound = SequenceBound::new(&seq, move || Tracked::new(&l));
    bound.call(|t| t.n).unwrap().join().unwrap();
    seq.shutdown();
    seq.wait_shutdown(LONG).unwrap();
    (pool, seq, log, bound)
}

/// How many entries of the log are `what`.
fn count(log: &Log, what: &str) -> usize {
    log.lock().unwrap().iter().filter(|(entry, _)| *entry == what).count()
}

#[test]
fn value_is_dropped_exactly_once_when_the_sequence_shuts_down_first() {
    let (_pool, _seq, log, bound) = bound_on_a_finished_sequence();
    drop(bound); // the drop task is rejected: the last holder (this thread) drops it
    assert_eq!(count(&log, "dropped"), 1);
}

/// A post to the crate's sequenced runner carries the slot's address, not a reference count:
/// the task a rejected post hands back must not carry it out (it would outlive the slot).
#[test]
fn a_rejected_post_hands_back_a_task_that_outlives_the_bound_safely() {
    let (pool, seq, log, bound) = bound_on_a_finished_sequence();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let task = bound
        .post(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap_err()
        .into_task();
    drop(bound);
    drop(seq);
    drop(pool);
    // The handed-back task holds the slot (the sequence's drop task was rejected): the value is
    // still there, the closure runs with it where the task is run, and the value goes with it.
    assert_eq!(count(&log, "dropped"), 0);
    task.run();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(count(&log, "dropped"), 1);
    assert_eq!(log.lock().unwrap().last().unwrap().0, "dropped");
}

/// The last handle goes while closures are still queued on a sequence that no longer accepts
/// posts: the value must outlive them (they run, or are dropped, first) and then be dropped
/// exactly once, when the sequence has finished, even though the value holds a handle to its
/// own runner (so waiting for the sequence itself to be dropped would wait for ever).
#[test]
fn closures_queued_on_a_closed_sequence_outlive_the_last_handle() {
    /// Says when it is dropped (after the `Tracked` before it, which logs first).
    struct Signal(mpsc::Sender<()>);
    impl Drop for Signal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    for behavior in [ShutdownBehavior::BlockShutdown, ShutdownBehavior::SkipOnShutdown] {
        let pool = pool(1);
        let seq = pool.sequenced_runner(TaskTraits::default().with_shutdown_behavior(behavior));
        let log = Log::default();
        let l = log.clone();
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let own = seq.clone();
        let bound = SequenceBound::new(&seq, move || (Tracked::new(&l), Signal(dropped_tx), own));
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        seq.post(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        })
        .unwrap();
        started_rx.recv().unwrap();
        for _ in 0..100 {
            let l = log.clone();
            bound
                .post(move |(t, _, _)| {
                    t.n += 1;
                    l.lock().unwrap().push(("used", None));
                })
                .unwrap();
        }
        seq.shutdown();
        drop(bound); // its drop task is rejected, with 100 closures queued behind a running task
        release_tx.send(()).unwrap();
        dropped_rx.recv_timeout(LONG).expect("the value was never dropped");
        seq.wait_shutdown(LONG).unwrap();
        let used = if behavior == ShutdownBehavior::BlockShutdown { 100 } else { 0 };
        assert_eq!(count(&log, "used"), used, "{behavior:?}");
        assert_eq!(count(&log, "dropped"), 1, "{behavior:?}");
        assert_eq!(log.lock().unwrap().last().unwrap().0, "dropped", "{behavior:?}");
    }
}

#[test]
fn a_panicking_closure_is_an_error_and_the_value_lives_on() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, || vec![1]);
    let err = bound
        .call(|v| {
            v.push(2);
            panic!("half-way")
        })
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("half-way"));
    assert_eq!(bound.call(|v| v.clone()).unwrap().join().unwrap(), vec![1, 2]);
}

#[test]
fn a_panicking_constructor_makes_every_use_an_error() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, || -> u8 { panic!("no value") });
    let err = bound.call(|v| *v).unwrap().join().unwrap_err();
    assert!(err.is_panic());
    assert!(err.panic_message().unwrap().contains("constructor panicked"), "{err}");
}

#[test]
fn waiting_on_a_call_from_its_own_sequence_is_refused() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, || 5);
    let inner = bound.clone();
    let refused = bound
        .call(move |_| inner.call(|v| *v).unwrap().join().unwrap_err().is_would_deadlock())
        .unwrap()
        .join()
        .unwrap();
    assert!(refused);
    // Posting from inside is fine: it runs afterwards.
    let inner = bound.clone();
    bound
        .post(move |v| {
            *v += 1;
            inner.post(|v| *v *= 10).unwrap();
        })
        .unwrap();
    seq.wait_idle(LONG).unwrap();
    assert_eq!(bound.call(|v| *v).unwrap().join().unwrap(), 60);
}

#[test]
fn works_from_async_code() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bound = SequenceBound::new(&seq, String::new);
    bound.post(|s| s.push_str("hello")).unwrap();
    let len = futures::executor::block_on(bound.call(|s| s.len()).unwrap()).unwrap();
    assert_eq!(len, 5);
    assert!(format!("{bound:?}").contains("SequenceBound"));
    assert!(!seq.runs_tasks_in_current_sequence());
    assert_eq!(seq.post_with_result(|| 1).unwrap().join().unwrap(), 1);
}

#[test]
fn a_bound_non_sync_value_gives_a_send_and_sync_handle() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SequenceBound<Cell<u64>>>();
    send_sync::<SequenceBound<std::cell::RefCell<Vec<u8>>>>();
}

#[test]
fn binds_to_a_single_thread_runner_too() {
    let single = taskrunner::SingleThreadTaskRunner::builder().name("owner").build().unwrap();
    let name = || std::thread::current().name().map(str::to_owned);
    let bound = taskrunner::SequenceBound::new(&single, move || (name(), 0u32));
    for _ in 0..100 {
        bound.post(|(_, n)| *n += 1).unwrap();
    }
    let (created_on, count, used_on) =
        bound.call(move |(created, n)| (created.clone(), *n, name())).unwrap().join().unwrap();
    assert_eq!(created_on.as_deref(), Some("owner"));
    assert_eq!(used_on.as_deref(), Some("owner"));
    assert_eq!(count, 100);
    drop(bound);
    drop(single.stop());
}
