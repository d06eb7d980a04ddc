//! The mock-time test environment: what each call runs, mock time across the pool's threads,
//! and the watchdog.
#![cfg(feature = "test-util")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::test_util::TestEnvironment;
use taskrunner::{Repeat, TaskRunner, TaskRunnerExt, TaskTraits};

const MS: Duration = Duration::from_millis(1);

#[test]
fn advance_clock_moves_time_without_running_tasks() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    seq.post_delayed(10 * MS, move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let start = env.now();
    env.advance_clock(20 * MS);
    assert_eq!(env.now() - start, 20 * MS);
    assert_eq!(env.pool().now(), env.now());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(env.pending_delayed_tasks(), 1);
    env.run_until_idle(); // due now: runs, without moving time
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(env.now() - start, 20 * MS);
}

#[test]
fn run_until_idle_runs_chains_of_tasks_but_not_future_ones() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let other = env.sequenced_runner(TaskTraits::default());
    let count = Arc::new(AtomicUsize::new(0));
    let (c, o, s) = (count.clone(), other.clone(), seq.clone());
    seq.post(move || {
        let c2 = c.clone();
        o.post(move || {
            let c3 = c2.clone();
            s.post_delayed(Duration::ZERO, move || {
                c3.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
            c2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let c = count.clone();
    seq.post_delayed(MS, move || {
        c.fetch_add(100, Ordering::SeqCst);
    })
    .unwrap();
    env.run_until_idle();
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(env.next_delayed_deadline(), Some(env.now() + MS));
}

#[test]
fn fast_forward_runs_due_tasks_in_deadline_order_across_runners_and_threads() {
    let env = TestEnvironment::builder().workers(4).build().unwrap();
    let t0 = env.now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for r in 0..8u64 {
        let seq = env.sequenced_runner(TaskTraits::default());
        for k in 0..20u64 {
            let delay = Duration::from_millis((k * 8 + r) % 37 + 1);
            let clock = env.clock();
            let seen = seen.clone();
            seq.post_delayed(delay, move || {
                // Mock time seen from a worker thread is the task's own deadline.
                seen.lock().unwrap().push((clock.now() - t0, delay));
            })
            .unwrap();
        }
    }
    env.fast_forward_by(40 * MS);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 160);
    for (now, delay) in seen.iter() {
        assert_eq!(now, delay);
    }
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "deadline order");
    assert_eq!(env.now() - t0, 40 * MS);
}

#[test]
fn fast_forward_until_no_tasks_remain_jumps_to_the_last_deadline() {
    let env = TestEnvironment::new();
    let seq = env.sequenced_runner(TaskTraits::default());
    let h = seq.post_delayed_with_result(Duration::from_secs(90), || "done").unwrap();
    seq.post_delayed(Duration::from_secs(30), || {}).unwrap();
    assert_eq!(env.fast_forward_until_no_tasks_remain(), Duration::from_secs(90));
    assert_eq!(h.join().unwrap(), "done");
}

#[test]
fn the_watchdog_fails_a_hung_wait_and_names_the_pending_tasks() {
    let env = TestEnvironment::builder().watchdog(Duration::from_millis(200)).build().unwrap();
    let seq = env.sequenced_runner(TaskTraits::default());
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let blocking_line = line!() + 1;
    seq.post(move || {
        let _ = blocked.recv(); // hangs until the test lets go
    })
    .unwrap();
    let queued_line = line!() + 1;
    seq.post(|| {}).unwrap();
    let pending = seq.post_delayed(Duration::from_secs(5), || {}).unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| env.run_until_idle())).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted message").clone();
    drop(release);
    assert!(message.contains("watchdog"), "{message}");
    assert!(message.contains(&pending.location().to_string()), "{message}");
    assert!(message.contains("due in 5s"), "{message}");
    // The running task and the one queued behind it, with the lines that posted them.
    assert!(message.contains("Tasks queued or running (2)"), "{message}");
    for line in [blocking_line, queued_line] {
        assert!(message.contains(&format!("{}:{line}:", file!())), "{message}");
    }
    env.run_until_idle(); // unblocked: idle again
}

#[test]
fn repeating_task_with_mock_time_over_an_hour() {
    let env = TestEnvironment::new();
    let pool = env.pool().clone();
    let handle = pool.post_repeating(Repeat::every(Duration::from_secs(1)), || {}).unwrap();
    env.fast_forward_by(Duration::from_secs(3600));
    assert_eq!(handle.runs(), 3600);
    assert!(!pool.is_closed());
}
