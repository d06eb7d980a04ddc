//! Delayed posts: deadlines, ordering, cancellation, closed runners and shutdown. Mock time
//! (the `test-util` test environment) except where the real clock is the point.
#![cfg(feature = "test-util")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::test_util::TestEnvironment;
use taskrunner::{
    DelayedHandle, PostError, Task, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool,
};

const MS: Duration = Duration::from_millis(1);

fn log() -> Arc<Mutex<Vec<u32>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Arc<Mutex<Vec<u32>>>, v: u32) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(v)
}

/// Sets a flag when dropped: shows when a task's captured state is released.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn runs_at_its_deadline_and_not_before() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let start = env.now();
    let clock = env.clock();
    let ran_at = Arc::new(Mutex::new(None));
    let r = ran_at.clone();
    seq.post_delayed(10 * MS, move || *r.lock().unwrap() = Some(clock.now())).unwrap();

    env.fast_forward_by(9 * MS);
    assert_eq!(*ran_at.lock().unwrap(), None);
    env.run_until_idle();
    assert_eq!(*ran_at.lock().unwrap(), None);
    env.fast_forward_by(MS);
    assert_eq!(*ran_at.lock().unwrap(), Some(start + 10 * MS));
    assert_eq!(env.pending_delayed_tasks(), 0);
}

#[test]
fn equal_deadlines_run_in_posting_order() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let order = log();
    for i in 0..100 {
        seq.post_delayed(5 * MS, push(&order, i)).unwrap();
    }
    env.fast_forward_by(5 * MS);
    assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn equal_deadlines_posted_at_different_times_run_in_posting_order() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let order = log();
    seq.post_delayed(10 * MS, push(&order, 1)).unwrap();
    env.advance_clock(5 * MS);
    seq.post_delayed(5 * MS, push(&order, 2)).unwrap(); // same deadline, posted later
    seq.post_delayed(4 * MS, push(&order, 0)).unwrap(); // earlier deadline
    env.fast_forward_by(5 * MS);
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
}

#[test]
fn many_deadlines_run_in_deadline_then_posting_order() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut expected = Vec::new();
    let mut x: u32 = 12345;
    for i in 0..500u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let delay = (x >> 16) % 50; // many ties
        expected.push((delay, i));
        let order = order.clone();
        seq.post_delayed(Duration::from_millis(u64::from(delay)), move || {
            order.lock().unwrap().push((delay, i))
        })
        .unwrap();
    }
    expected.sort();
    env.fast_forward_by(Duration::from_secs(1));
    assert_eq!(*order.lock().unwrap(), expected);
}

#[test]
fn at_expiry_it_queues_behind_tasks_already_posted() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let order = log();
    // Due at once, but only handed to the runner when the timer fires, after `1` was posted.
    seq.post_delayed(Duration::ZERO, push(&order, 2)).unwrap();
    seq.post(push(&order, 1)).unwrap();
    env.run_until_idle();
    assert_eq!(*order.lock().unwrap(), [1, 2]);
}

#[test]
fn cancel_before_the_deadline_releases_the_task_at_once() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let dropped = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let r = ran.clone();
    let handle = seq
        .post_delayed(Duration::from_secs(60), move || {
            let _flag = flag;
            r.store(true, Ordering::SeqCst);
        })
        .unwrap();
    assert!(handle.is_pending());
    assert!(handle.cancel());
    assert!(dropped.load(Ordering::SeqCst), "cancel must drop the closure before returning");
    assert!(handle.is_cancelled());
    assert!(!handle.cancel(), "a second cancel reports nothing to cancel");
    env.fast_forward_by(Duration::from_secs(120));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn cancel_after_expiry_but_before_start_still_cancels() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let victim: Arc<Mutex<Option<DelayedHandle>>> = Arc::new(Mutex::new(None));
    let cancelled = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(AtomicBool::new(false));
    // Same deadline: both are in the sequence's queue when the first runs.
    let (v, c) = (victim.clone(), cancelled.clone());
    seq.post_delayed(MS, move || {
        let handle = v.lock().unwrap().take().unwrap();
        // The timer posts the victim right after this task (same deadline, posted later);
        // it then waits in this sequence's queue behind this task.
        while handle.is_pending() {
            std::thread::yield_now();
        }
        c.store(handle.cancel(), Ordering::SeqCst);
    })
    .unwrap();
    let r = ran.clone();
    *victim.lock().unwrap() =
        Some(seq.post_delayed(MS, move || r.store(true, Ordering::SeqCst)).unwrap());
    env.fast_forward_by(MS);
    assert!(cancelled.load(Ordering::SeqCst));
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn cancel_after_the_task_ran_returns_false() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let handle = seq.post_delayed(MS, || {}).unwrap();
    env.fast_forward_by(MS);
    assert!(!handle.cancel());
    assert!(!handle.is_cancelled());
}

#[test]
fn delayed_post_to_a_closed_runner_is_rejected() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    seq.shutdown();
    let line = line!() + 1;
    let err = seq.post_delayed(MS, || {}).unwrap_err();
    assert!(err.is_closed());
    assert_eq!(err.location().line(), line);
    let err = seq.post_delayed_with_result(MS, || 1).unwrap_err();
    assert!(err.is_closed());
}

#[test]
fn delayed_task_of_a_runner_shut_down_meanwhile_never_runs_and_is_counted() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let line = line!() + 1;
    seq.post_delayed(10 * MS, move || r.store(true, Ordering::SeqCst)).unwrap();
    seq.shutdown();
    env.fast_forward_by(10 * MS);
    assert!(!ran.load(Ordering::SeqCst));
    let report = env.pool().shutdown();
    assert_eq!(report.skipped(), 1);
    assert_eq!(report.skipped_by_location()[0].0.line(), line);
}

#[test]
fn pool_shutdown_drops_pending_delayed_tasks_and_counts_them_by_location() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..3 {
        let flag = DropFlag(Arc::new(AtomicBool::new(false)));
        let d = dropped.clone();
        handles.push(
            seq.post_delayed(Duration::from_secs(3600), move || {
                let _flag = flag;
                d.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    let report = env.pool().shutdown();
    assert_eq!(report.skipped(), 3);
    assert_eq!(report.skipped_by_location().len(), 1);
    assert_eq!(report.skipped_by_location()[0].0, handles[0].location());
    assert_eq!(report.skipped_by_location()[0].0.file(), file!());
    assert_eq!(report.skipped_by_location()[0].1, 3);
    assert!(handles.iter().all(|h| !h.cancel() && !h.is_pending()));
    assert_eq!(dropped.load(Ordering::SeqCst), 0, "none ran");
    assert!(seq.post_delayed(MS, || {}).unwrap_err().is_closed());
}

#[test]
fn delayed_post_with_result_resolves_after_the_task_ran() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let handle = seq.post_delayed_with_result(5 * MS, || 6 * 7).unwrap();
    env.fast_forward_by(4 * MS);
    assert!(!handle.is_finished());
    env.fast_forward_by(MS);
    assert!(handle.is_finished());
    assert_eq!(handle.join().unwrap(), 42);
}

#[test]
fn delayed_post_with_result_can_be_cancelled_and_reports_a_panic() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let cancelled =
        seq.post_delayed_with_result(5 * MS, move || r.store(true, Ordering::SeqCst)).unwrap();
    assert!(cancelled.cancel());
    let panics = seq.post_delayed_with_result(5 * MS, || -> u32 { panic!("late boom") }).unwrap();
    env.fast_forward_by(5 * MS);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(cancelled.join().unwrap_err().is_cancelled());
    assert_eq!(panics.join().unwrap_err().panic_message(), Some("late boom"));
}

#[test]
fn delayed_tasks_on_the_pool_itself_and_through_a_runner_handle() {
    let env = TestEnvironment::new();
    let pool = env.pool().clone();
    let on_pool = pool.post_delayed_with_result(3 * MS, || "pool").unwrap();
    let seq = env.sequenced_runner(TaskTraits::default());
    let via_handle = seq
        .post_with_result(|| {
            let me = taskrunner::current_runner().unwrap();
            me.post_delayed_with_result(2 * MS, || "handle").unwrap()
        })
        .unwrap();
    env.run_until_idle();
    let via_handle = via_handle.join().unwrap();
    env.fast_forward_by(3 * MS);
    assert_eq!(on_pool.join().unwrap(), "pool");
    assert_eq!(via_handle.join().unwrap(), "handle");
}

/// A runner from outside the crate: only the required method.
struct Inline;

impl TaskRunner for Inline {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        std::thread::spawn(move || task.run());
        Ok(())
    }
}

#[test]
fn third_party_runners_get_unsupported() {
    let err = Inline.post_delayed(MS, || {}).unwrap_err();
    assert!(matches!(err, PostError::Unsupported(_)));
    let err = Inline.post_repeating(taskrunner::Repeat::every(MS), || {}).unwrap_err();
    assert!(matches!(err, PostError::Unsupported(_)));
}

#[test]
fn real_clock_delayed_task_runs_no_earlier_than_its_delay() {
    let pool = ThreadPool::builder().name("real").workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let posted = std::time::Instant::now();
    let h = seq
        .post_delayed_with_result(20 * MS, move || {
            (std::time::Instant::now(), std::thread::current().name().map(str::to_owned))
        })
        .unwrap();
    let (ran_at, thread) = h.join().unwrap();
    assert!(ran_at - posted >= 20 * MS);
    assert_eq!(thread.as_deref(), Some("real-0"), "runs on a worker, not the timer thread");
    assert_eq!(pool.shutdown().skipped(), 0);
}

/// Reports the thread its captured state is dropped on.
struct DropReporter(std::sync::mpsc::Sender<Option<String>>);

impl Drop for DropReporter {
    fn drop(&mut self) {
        let _ = self.0.send(std::thread::current().name().map(str::to_owned));
    }
}

/// A user clock that moves only when told to (shows `ThreadPoolBuilder::clock`).
#[derive(Debug)]
struct SteppedClock {
    base: std::time::Instant,
    offset_ms: std::sync::atomic::AtomicU64,
}

impl taskrunner::Clock for SteppedClock {
    fn now(&self) -> std::time::Instant {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[test]
fn timer_thread_is_named_after_the_pool_and_drops_tasks_of_closed_runners() {
    let clock = Arc::new(SteppedClock {
        base: std::time::Instant::now(),
        offset_ms: std::sync::atomic::AtomicU64::new(0),
    });
    let pool = ThreadPool::builder().name("named").workers(1).clock(clock.clone()).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let reporter = DropReporter(tx);
    seq.post_delayed(Duration::from_secs(3600), move || drop(reporter)).unwrap();
    seq.shutdown();
    // Jump the clock past the deadline and wake the timer thread with a task that is due now.
    clock.offset_ms.store(3_600_000, Ordering::SeqCst);
    let waker = pool.post_delayed_with_result(Duration::ZERO, || "woken").unwrap();
    assert_eq!(waker.join().unwrap(), "woken");
    // The expired task was refused by its closed runner; the timer thread dropped and counted it.
    let dropped_on = rx.recv().unwrap();
    assert_eq!(dropped_on.as_deref(), Some("named-timer"));
    assert_eq!(pool.shutdown().skipped(), 1);
}

#[test]
fn dropping_the_last_pool_handle_drops_pending_delayed_tasks_at_once() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = seq
        .post_delayed(Duration::from_secs(3600), move || {
            let _flag = flag;
        })
        .unwrap();
    drop(pool);
    assert!(dropped.load(Ordering::SeqCst));
    assert!(!handle.is_pending());
    assert!(!handle.cancel());
    assert!(seq.post_delayed(MS, || {}).unwrap_err().is_closed());
}
