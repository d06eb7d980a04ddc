//! Repeating tasks on mock time: fixed delay and fixed rate over many ticks with each
//! missed-tick policy, and every way a repeating task ends (stop, drop, shutdown, panic).
#![cfg(feature = "test-util")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use taskrunner::test_util::TestEnvironment;
use taskrunner::{
    MissedTickPolicy, PostError, Repeat, RepeatingHandle, StopReason, TaskRunnerExt, TaskTraits,
};

const MS: Duration = Duration::from_millis(1);

/// Start times of each run, in ms since the environment started.
type Starts = Arc<Mutex<Vec<u64>>>;

/// Posts a repeating task that records its start times; run number `slow_run` (1-based)
/// takes `slow_by` of mock time.
fn record(
    env: &Arc<TestEnvironment>,
    repeat: Repeat,
    slow_run: usize,
    slow_by: Duration,
) -> (RepeatingHandle, Starts) {
    let seq = env.sequenced_runner(TaskTraits::default());
    let starts: Starts = Arc::new(Mutex::new(Vec::new()));
    let t0 = env.now();
    let (e, s) = (Arc::downgrade(env), starts.clone());
    let handle = seq
        .post_repeating(repeat, move || {
            let env = e.upgrade().unwrap();
            let mut starts = s.lock().unwrap();
            starts.push((env.now() - t0).as_millis() as u64);
            if starts.len() == slow_run {
                env.advance_clock(slow_by); // this run "takes" slow_by
            }
        })
        .unwrap();
    (handle, starts)
}

fn starts(s: &Starts) -> Vec<u64> {
    s.lock().unwrap().clone()
}

#[test]
fn fixed_delay_runs_one_interval_after_each_end() {
    let env = Arc::new(TestEnvironment::new());
    // Every run takes 3 ms (the first one here; see below for all), interval 10 ms.
    let (handle, s) = record(&env, Repeat::every(10 * MS), 1, 3 * MS);
    env.fast_forward_by(100 * MS);
    // First at 10, ends 13; then 23, 33, ... (only the first run was slow).
    assert_eq!(starts(&s), [10, 23, 33, 43, 53, 63, 73, 83, 93]);
    assert_eq!(handle.runs(), 9);
    assert_eq!(handle.stop_reason(), None);
}

#[test]
fn fixed_delay_over_many_ticks() {
    let env = Arc::new(TestEnvironment::new());
    let (handle, s) = record(&env, Repeat::every(7 * MS), 0, Duration::ZERO);
    env.fast_forward_by(Duration::from_secs(7));
    let expected: Vec<u64> = (1..=1000).map(|k| 7 * k).collect();
    assert_eq!(starts(&s), expected);
    assert_eq!(handle.runs(), 1000);
}

fn fixed_rate(policy: MissedTickPolicy) -> Vec<u64> {
    let env = Arc::new(TestEnvironment::new());
    // Interval 10 ms; the third run (at 30) takes 25 ms and ends at 55.
    let (handle, s) = record(&env, Repeat::at_fixed_rate(10 * MS, policy), 3, 25 * MS);
    env.fast_forward_by(Duration::from_secs(1));
    assert!(handle.stop());
    starts(&s)
}

#[test]
fn fixed_rate_burst_runs_missed_ticks_back_to_back() {
    let got = fixed_rate(MissedTickPolicy::Burst);
    // Ticks 40 and 50 run late, at 55; then the grid resumes at 60.
    let mut expected = vec![10, 20, 30, 55, 55];
    expected.extend((6..=100).map(|k| 10 * k));
    assert_eq!(got, expected);
}

#[test]
fn fixed_rate_skip_drops_missed_ticks_and_keeps_the_grid() {
    let got = fixed_rate(MissedTickPolicy::Skip);
    let mut expected = vec![10, 20, 30];
    expected.extend((6..=100).map(|k| 10 * k));
    assert_eq!(got, expected);
}

#[test]
fn fixed_rate_delay_shifts_the_grid() {
    let got = fixed_rate(MissedTickPolicy::Delay);
    let mut expected = vec![10, 20, 30];
    expected.extend((0..94).map(|k| 65 + 10 * k)); // 65, 75, ..., 995
    assert_eq!(got, expected);
}

/// The runner (not the task) was late: time jumped past several ticks before the first ran.
fn late_runner(policy: MissedTickPolicy) -> Vec<u64> {
    let env = Arc::new(TestEnvironment::new());
    let (_handle, s) = record(&env, Repeat::at_fixed_rate(10 * MS, policy), 0, Duration::ZERO);
    env.advance_clock(35 * MS); // nothing runs
    assert!(starts(&s).is_empty());
    env.fast_forward_by(25 * MS); // to 60
    starts(&s)
}

#[test]
fn missed_ticks_of_a_late_runner_follow_the_policy() {
    assert_eq!(late_runner(MissedTickPolicy::Burst), [35, 35, 35, 40, 50, 60]);
    assert_eq!(late_runner(MissedTickPolicy::Skip), [35, 40, 50, 60]);
    assert_eq!(late_runner(MissedTickPolicy::Delay), [35, 45, 55]);
}

#[test]
fn initial_delay_sets_the_first_run() {
    let env = Arc::new(TestEnvironment::new());
    let repeat = Repeat::every(10 * MS).with_initial_delay(Duration::ZERO);
    let (_a, now) = record(&env, repeat, 0, Duration::ZERO);
    let repeat = Repeat::at_fixed_rate(10 * MS, MissedTickPolicy::Skip).with_initial_delay(3 * MS);
    let (_b, late) = record(&env, repeat, 0, Duration::ZERO);
    env.run_until_idle();
    assert_eq!(starts(&now), [0]);
    env.fast_forward_by(30 * MS);
    assert_eq!(starts(&now), [0, 10, 20, 30]);
    assert_eq!(starts(&late), [3, 13, 23]);
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn stop_ends_it_and_releases_the_closure_at_once() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = seq
        .post_repeating(Repeat::every(10 * MS), move || {
            let _keep = &flag;
        })
        .unwrap();
    env.fast_forward_by(30 * MS);
    assert_eq!(handle.runs(), 3);
    assert!(handle.stop());
    assert!(dropped.load(Ordering::SeqCst), "the pending tick was cancelled and dropped");
    assert!(!handle.stop(), "already stopped");
    env.fast_forward_by(100 * MS);
    assert_eq!(handle.runs(), 3);
    assert_eq!(handle.stop_reason(), Some(StopReason::Stopped));
    assert_eq!(env.pending_delayed_tasks(), 0);
}

#[test]
fn stop_from_inside_the_task() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let me: Arc<OnceLock<RepeatingHandle>> = Arc::new(OnceLock::new());
    let m = me.clone();
    let mut n = 0;
    let handle = seq
        .post_repeating(Repeat::every(MS), move || {
            n += 1;
            if n == 5 {
                assert!(m.get().unwrap().stop());
            }
        })
        .unwrap();
    let _ = me.set(handle);
    env.fast_forward_by(50 * MS);
    let handle = me.get().unwrap();
    assert_eq!(handle.runs(), 5);
    assert_eq!(handle.stop_reason(), Some(StopReason::Stopped));
}

#[test]
fn dropping_the_handle_stops_it_unless_detached() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let t = tx.clone();
    let dropped =
        seq.post_repeating(Repeat::every(MS), move || t.send("dropped").unwrap()).unwrap();
    let detached =
        seq.post_repeating(Repeat::every(MS), move || tx.send("detached").unwrap()).unwrap();
    env.fast_forward_by(MS);
    drop(dropped);
    detached.detach();
    env.fast_forward_by(9 * MS);
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(got.iter().filter(|s| **s == "dropped").count(), 1);
    assert_eq!(got.iter().filter(|s| **s == "detached").count(), 10);
    assert_eq!(env.pending_delayed_tasks(), 1, "the detached one goes on");
}

#[test]
fn runner_shutdown_stops_it() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let handle = seq.post_repeating(Repeat::every(10 * MS), || {}).unwrap();
    env.fast_forward_by(20 * MS);
    seq.shutdown();
    env.fast_forward_by(10 * MS); // the pending tick expires on a closed runner
    assert_eq!(handle.runs(), 2);
    assert_eq!(handle.stop_reason(), Some(StopReason::ShutDown));
    assert!(!handle.stop());
    assert!(seq.post_repeating(Repeat::every(MS), || {}).unwrap_err().is_closed());
}

#[test]
fn pool_shutdown_stops_it_at_once() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let handle = seq.post_repeating(Repeat::every(10 * MS), || {}).unwrap();
    env.fast_forward_by(10 * MS);
    let report = env.pool().shutdown();
    assert_eq!(handle.stop_reason(), Some(StopReason::ShutDown));
    assert_eq!(report.skipped(), 1, "the pending tick");
    assert_eq!(report.skipped_by_location()[0].0.file(), file!());
}

#[test]
fn a_panic_stops_it_and_the_handle_says_so() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let mut n = 0;
    let handle = seq
        .post_repeating(Repeat::every(MS), move || {
            n += 1;
            if n == 3 {
                panic!("tick {n} failed");
            }
        })
        .unwrap();
    env.fast_forward_by(10 * MS);
    assert_eq!(handle.runs(), 3);
    assert_eq!(handle.stop_reason(), Some(StopReason::Panicked));
    assert!(handle.is_stopped());
    assert_eq!(env.pending_delayed_tasks(), 0);
    // The runner goes on.
    assert_eq!(seq.post_with_result(|| 1).unwrap().join().unwrap(), 1);
}

#[test]
fn zero_interval_is_refused() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = seq
        .post_repeating(Repeat::every(Duration::ZERO), move || r.store(true, Ordering::SeqCst))
        .unwrap_err();
    assert!(matches!(err, PostError::InvalidInterval(_)));
    err.into_task().run(); // the handed-back task runs the closure once
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn fixed_rate_runs_on_the_pool_itself() {
    let env = TestEnvironment::new();
    let repeat = Repeat::at_fixed_rate(5 * MS, MissedTickPolicy::Burst);
    let handle = env.pool().post_repeating(repeat, || {}).unwrap();
    env.fast_forward_by(50 * MS);
    assert_eq!(handle.runs(), 10);
}
