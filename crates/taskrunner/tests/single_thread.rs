//! Single-thread runner: one named thread for every task, queue policies, shutdown, stop,
//! no leaked thread, bad input.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::block;
use taskrunner::{
    current_runner, PostError, QueuePolicy, ShutdownBehavior, SingleThreadTaskRunner, TaskRunner,
    TaskRunnerExt, TaskTraits, WaitError,
};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn every_task_runs_on_the_same_named_thread() {
    let runner = SingleThreadTaskRunner::builder().name("io").build().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..200 {
        let tx = tx.clone();
        runner
            .post(move || {
                let me = std::thread::current();
                tx.send((i, me.id(), me.name().map(String::from))).unwrap();
            })
            .unwrap();
    }
    runner.wait_idle(LONG).unwrap();
    let seen: Vec<_> = rx.try_iter().collect();
    assert_eq!(seen.len(), 200);
    assert_ne!(seen[0].1, std::thread::current().id());
    for (i, (n, id, name)) in seen.iter().enumerate() {
        assert_eq!(*n, i, "posting order");
        assert_eq!(*id, seen[0].1, "same thread");
        assert_eq!(name.as_deref(), Some("io"));
    }
}

#[test]
fn current_runner_and_sequence_inside_its_tasks() {
    let runner = SingleThreadTaskRunner::builder().name("ui").build().unwrap();
    let inner = runner.clone();
    let (name, in_sequence, own_wait, own_join) = runner
        .post_with_result(move || {
            let current = current_runner().unwrap();
            let later = inner.post_with_result(|| 1).unwrap();
            (
                current.as_single_thread().map(|r| r.name().to_owned()),
                inner.runs_tasks_in_current_sequence(),
                inner.wait_idle(LONG),
                later.join().unwrap_err().is_would_deadlock(),
            )
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(name.as_deref(), Some("ui"));
    assert!(in_sequence);
    assert_eq!(own_wait, Err(WaitError::WouldDeadlock));
    assert!(own_join, "joining a later task of the same thread is refused");
    assert!(!runner.runs_tasks_in_current_sequence());
}

#[test]
fn zero_capacity_is_an_error() {
    let err = SingleThreadTaskRunner::builder().capacity(0).build().unwrap_err();
    assert!(err.to_string().contains("capacity of at least 1"), "{err}");
}

#[test]
fn default_policy_rejects_counts_and_calls_back() {
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let seen = rejected.clone();
    let runner = SingleThreadTaskRunner::builder()
        .name("small")
        .capacity(1)
        .on_rejected(move |r| seen.lock().unwrap().push((r.runner().to_owned(), r.capacity())))
        .build()
        .unwrap();
    assert_eq!(runner.queue_policy(), QueuePolicy::Reject, "the documented default");
    let release = block(&runner);
    runner.post(|| {}).unwrap();
    let (tx, rx) = mpsc::channel();
    let err = runner.post(move || tx.send(()).unwrap()).unwrap_err();
    assert!(matches!(err, PostError::Full(_)));
    err.into_task().run();
    rx.try_recv().unwrap();
    assert!(runner.try_post(|| {}).unwrap_err().is_full());
    assert_eq!(runner.stats().rejected, 2);
    assert_eq!(*rejected.lock().unwrap(), vec![("small".to_owned(), 1), ("small".to_owned(), 1)]);
    release.send(()).unwrap();
    runner.wait_idle(LONG).unwrap();
}

#[test]
fn block_policy_waits_for_room() {
    let runner = SingleThreadTaskRunner::builder()
        .capacity(1)
        .queue_policy(QueuePolicy::Block)
        .build()
        .unwrap();
    let release = block(&runner);
    runner.post(|| {}).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let poster = {
        let runner = runner.clone();
        std::thread::spawn(move || runner.post(move || done_tx.send(()).unwrap()))
    };
    // try_post never waits, whatever the policy; post_timeout gives up.
    assert!(runner.try_post(|| {}).unwrap_err().is_full());
    assert!(runner.post_timeout(|| {}, Duration::from_millis(10)).unwrap_err().is_full());
    release.send(()).unwrap();
    poster.join().unwrap().unwrap();
    done_rx.recv_timeout(LONG).unwrap();
}

#[test]
fn block_policy_from_its_own_thread_would_deadlock() {
    let runner = SingleThreadTaskRunner::builder()
        .capacity(1)
        .queue_policy(QueuePolicy::Block)
        .build()
        .unwrap();
    let inner = runner.clone();
    let refused = runner
        .post_with_result(move || {
            inner.post(|| {}).unwrap(); // fills the queue
            inner.post(|| {}).unwrap_err().is_would_deadlock()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(refused);
}

#[test]
fn shutdown_runs_block_shutdown_tasks_and_drops_the_others() {
    for (behavior, expect_ran) in
        [(ShutdownBehavior::BlockShutdown, 3), (ShutdownBehavior::SkipOnShutdown, 0)]
    {
        let runner = SingleThreadTaskRunner::builder()
            .traits(TaskTraits::default().with_shutdown_behavior(behavior))
            .build()
            .unwrap();
        let release = block(&runner);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = ran.clone();
            runner
                .post(move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        runner.shutdown();
        assert!(runner.is_closed());
        assert!(runner.post(|| {}).unwrap_err().is_closed(), "no post after shutdown");
        release.send(()).unwrap();
        let report = runner.stop();
        assert_eq!(ran.load(Ordering::SeqCst), expect_ran, "{behavior:?}");
        assert_eq!(report.skipped(), 3 - expect_ran as u64, "{behavior:?}");
    }
}

#[test]
fn stop_joins_and_drop_joins_no_thread_is_leaked() {
    // A thread-local whose destructor reports: it runs when the runner's thread exits.
    struct OnExit(mpsc::Sender<()>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static GUARD: RefCell<Option<OnExit>> = const { RefCell::new(None) };
    }
    let arm = |runner: &SingleThreadTaskRunner| {
        let (tx, rx) = mpsc::channel();
        runner
            .post_with_result(move || GUARD.with(|g| *g.borrow_mut() = Some(OnExit(tx))))
            .unwrap()
            .join()
            .unwrap();
        rx
    };

    // stop() joins: once it returns the thread is gone.
    let runner = SingleThreadTaskRunner::builder().build().unwrap();
    let exited = arm(&runner);
    assert!(exited.try_recv().is_err(), "the thread is still alive");
    runner.stop();
    exited.try_recv().expect("stop() returned before the thread exited");

    // Dropping the last handle (of two) joins too.
    let runner = SingleThreadTaskRunner::builder().build().unwrap();
    let other = runner.clone();
    let exited = arm(&runner);
    drop(runner);
    assert!(exited.try_recv().is_err(), "a clone is still alive");
    drop(other);
    exited.try_recv().expect("dropping the last handle did not join the thread");
}

#[test]
fn stop_from_inside_its_own_task_does_not_deadlock() {
    let runner = SingleThreadTaskRunner::builder().build().unwrap();
    let inner = runner.clone();
    let report = runner.post_with_result(move || inner.stop()).unwrap().join().unwrap();
    assert_eq!(report.still_running(), 1, "its own task was still running");
    assert!(runner.is_closed());
    runner.stop(); // from outside: joins the thread, which exited after that task
                   // Dropping the last handle from inside its own task does not deadlock either.
    let runner = SingleThreadTaskRunner::builder().build().unwrap();
    let (tx, rx) = mpsc::channel();
    let inner = runner.clone();
    drop(runner);
    // `inner` is now the last owning handle; hand it to the thread and drop it there.
    let keep = inner.clone();
    keep.post(move || {
        drop(inner);
        tx.send(()).unwrap();
    })
    .unwrap();
    drop(keep);
    rx.recv_timeout(LONG).unwrap();
}

#[test]
fn a_panic_is_reported_to_the_handler_and_the_thread_goes_on() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let runner = SingleThreadTaskRunner::builder()
        .name("fragile")
        .panic_handler(move |r| seen.lock().unwrap().push(r.to_string()))
        .build()
        .unwrap();
    let id = runner.post_with_result(|| std::thread::current().id()).unwrap().join().unwrap();
    runner.post(|| panic!("oops")).unwrap();
    let after = runner.post_with_result(|| std::thread::current().id()).unwrap().join().unwrap();
    assert_eq!(id, after, "same thread after the panic");
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].contains("fragile") && reports[0].contains("oops"), "{}", reports[0]);
}

#[test]
fn wait_idle_after_shutdown_is_shut_down() {
    let runner = SingleThreadTaskRunner::builder().build().unwrap();
    runner.shutdown();
    assert_eq!(runner.wait_idle(LONG), Err(WaitError::ShutDown));
    assert!(matches!(runner.post(|| {}), Err(PostError::Closed(_))));
}
