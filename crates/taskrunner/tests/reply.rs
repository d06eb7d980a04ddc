//! Task and reply: where the reply runs, panics, where captured state is dropped, errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::{
    current_runner, PostError, SequenceToken, SequencedTaskRunner, TaskRunner, TaskRunnerExt,
    TaskTraits, ThreadPool,
};

const LONG: Duration = Duration::from_secs(30);

type DropLog = Arc<Mutex<Vec<(&'static str, Option<SequenceToken>)>>>;

/// Records the sequence it was dropped on.
struct DropSpy {
    name: &'static str,
    log: DropLog,
}

impl Drop for DropSpy {
    fn drop(&mut self) {
        self.log.lock().unwrap().push((self.name, SequenceToken::current()));
    }
}

fn spy(name: &'static str, log: &DropLog) -> DropSpy {
    DropSpy { name, log: log.clone() }
}

fn dropped_on(log: &DropLog, name: &str) -> Vec<Option<SequenceToken>> {
    log.lock().unwrap().iter().filter(|(n, _)| *n == name).map(|(_, t)| *t).collect()
}

fn counting_pool(workers: usize) -> (ThreadPool, Arc<AtomicUsize>) {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let pool = ThreadPool::builder()
        .workers(workers)
        .panic_handler(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    (pool, panics)
}

fn two_sequences(pool: &ThreadPool) -> (SequencedTaskRunner, SequencedTaskRunner) {
    (pool.sequenced_runner(TaskTraits::default()), pool.sequenced_runner(TaskTraits::default()))
}

#[test]
fn reply_runs_on_the_posting_sequence_after_the_task() {
    let (pool, _) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    let (tx, rx) = mpsc::channel();
    let target_token = target.sequence_token();
    origin
        .post(move || {
            let task_tx = tx.clone();
            target
                .post_and_reply(
                    move || {
                        task_tx.send(("task", SequenceToken::current())).unwrap();
                        21
                    },
                    move |n: i32| {
                        tx.send(("reply", SequenceToken::current().filter(|_| n == 21))).unwrap()
                    },
                )
                .unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ("task", target_token));
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ("reply", origin.sequence_token()));
}

#[test]
fn with_result_passes_the_value_to_the_reply() {
    let (pool, _) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    let h = origin
        .post_with_result(move || {
            let (tx, rx) = mpsc::channel();
            target
                .post_and_reply_with_result(
                    || vec![1, 2, 3],
                    move |v: Vec<i32>| tx.send(v.iter().sum::<i32>()).unwrap(),
                )
                .unwrap();
            rx
        })
        .unwrap();
    let rx = h.join().unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), 6);
}

#[test]
fn unit_task_reply_takes_unit() {
    let (pool, _) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    let (tx, rx) = mpsc::channel();
    origin
        .post(move || target.post_and_reply(|| {}, move |()| tx.send("done").unwrap()).unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "done");
}

#[test]
fn outside_any_runner_post_and_reply_is_an_error_and_nothing_is_posted() {
    let (pool, _) = counting_pool(1);
    let target = pool.sequenced_runner(TaskTraits::default());
    assert!(current_runner().is_none());
    let ran = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let err = target
        .post_and_reply(
            move || {
                r1.fetch_add(1, Ordering::SeqCst);
                5
            },
            move |n| {
                r2.fetch_add(n, Ordering::SeqCst);
            },
        )
        .unwrap_err();
    assert!(err.is_no_current_runner());
    assert!(matches!(err, PostError::NoCurrentRunner(_)));
    assert!(err.to_string().contains("no current runner"));
    target.wait_idle(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "nothing was posted");
    // The handed-back task runs the task and then the reply, where it is run.
    err.into_task().run();
    assert_eq!(ran.load(Ordering::SeqCst), 6);
}

#[test]
fn explicit_reply_runner_from_a_plain_thread() {
    let (pool, _) = counting_pool(2);
    let (home, target) = two_sequences(&pool);
    let (tx, rx) = mpsc::channel();
    let home_token = home.sequence_token();
    std::thread::spawn(move || {
        target.post_and_reply_to(
            &home,
            || 7,
            move |n| tx.send((n, SequenceToken::current())).unwrap(),
        )
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (7, home_token));
}

#[test]
fn panicking_task_skips_the_reply_and_is_reported_once() {
    let (pool, panics) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    let log = DropLog::default();
    let replied = Arc::new(AtomicUsize::new(0));
    let (reply_spy, flag) = (spy("reply", &log), replied.clone());
    let t = target.clone();
    origin
        .post_with_result(move || {
            t.post_and_reply(
                || -> u32 { panic!("task failed") },
                move |_| {
                    let _keep = &reply_spy;
                    flag.fetch_add(1, Ordering::SeqCst);
                },
            )
            .unwrap()
        })
        .unwrap()
        .join()
        .unwrap();
    // The task ran (and its unwind posted the reply's drop to `origin`) before this marker.
    target.wait_idle(LONG).unwrap();
    origin.wait_idle(LONG).unwrap();
    assert_eq!(replied.load(Ordering::SeqCst), 0, "the reply must not run");
    assert_eq!(panics.load(Ordering::SeqCst), 1, "reported exactly once");
    assert_eq!(dropped_on(&log, "reply"), vec![origin.sequence_token()]);
    // Both runners go on.
    assert_eq!(origin.post_with_result(|| 1).unwrap().join().unwrap(), 1);
    assert_eq!(target.post_with_result(|| 2).unwrap().join().unwrap(), 2);
}

#[test]
fn captured_state_is_dropped_on_its_own_runner() {
    let (pool, _) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    let log = DropLog::default();
    let (task_spy, reply_spy, value_spy) =
        (spy("task", &log), spy("reply", &log), spy("value", &log));
    let (tx, rx) = mpsc::channel();
    let t = target.clone();
    origin
        .post(move || {
            t.post_and_reply(
                move || {
                    let _keep = &task_spy; // captured by the task
                    value_spy // moved into the result, dropped by the reply
                },
                move |value| {
                    let _keep = &reply_spy;
                    drop(value);
                    tx.send(()).unwrap();
                },
            )
            .unwrap();
        })
        .unwrap();
    rx.recv_timeout(LONG).unwrap();
    origin.wait_idle(LONG).unwrap();
    assert_eq!(dropped_on(&log, "task"), vec![target.sequence_token()]);
    assert_eq!(dropped_on(&log, "value"), vec![origin.sequence_token()]);
    assert_eq!(dropped_on(&log, "reply"), vec![origin.sequence_token()]);
}

#[test]
fn rejected_task_is_handed_back_and_the_reply_state_still_goes_home() {
    let (pool, _) = counting_pool(2);
    let (origin, target) = two_sequences(&pool);
    target.shutdown();
    let log = DropLog::default();
    let (task_spy, reply_spy) = (spy("task", &log), spy("reply", &log));
    let t = target.clone();
    let rejected = origin
        .post_with_result(move || {
            let err =
                t.post_and_reply(move || drop(task_spy), move |()| drop(reply_spy)).unwrap_err();
            assert!(err.is_closed());
            drop(err); // drops the task here; the reply is sent home to be dropped
            true
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(rejected);
    origin.wait_idle(LONG).unwrap();
    assert_eq!(dropped_on(&log, "task"), vec![origin.sequence_token()]);
    assert_eq!(dropped_on(&log, "reply"), vec![origin.sequence_token()]);
}

#[test]
fn reply_to_a_closed_runner_is_dropped_not_run() {
    let (pool, _) = counting_pool(2);
    let (home, target) = two_sequences(&pool);
    home.shutdown();
    let replied = Arc::new(AtomicUsize::new(0));
    let flag = replied.clone();
    target
        .post_and_reply_to(
            &home,
            || 1,
            move |_| {
                flag.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
    target.wait_idle(LONG).unwrap();
    assert_eq!(replied.load(Ordering::SeqCst), 0);
}

#[test]
fn works_with_the_pool_and_runner_handles() {
    let (pool, _) = counting_pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let seq_token = seq.sequence_token();
    // Task on the pool (no sequence), reply on the sequence that posted.
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    seq.post(move || {
        p.post_and_reply(SequenceToken::current, move |on| {
            tx.send((on, SequenceToken::current())).unwrap()
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (None, seq_token));

    // Reply on the pool itself; task on a `RunnerHandle`.
    let (tx, rx) = mpsc::channel();
    let handle = seq.post_with_result(|| current_runner().unwrap()).unwrap().join().unwrap();
    handle
        .post_and_reply_to(&pool, SequenceToken::current, move |on| {
            tx.send((on, SequenceToken::current())).unwrap()
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (seq_token, None));

    // A one-off pool task runs in no runner: no current runner to reply on.
    let other = pool.sequenced_runner(TaskTraits::default());
    let err = pool
        .post_with_result(move || {
            other.post_and_reply(|| 1, |_| {}).unwrap_err().is_no_current_runner()
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(err);
}

#[test]
fn ping_pong_between_two_sequences() {
    let (pool, _) = counting_pool(2);
    let (a, b) = two_sequences(&pool);
    let (tx, rx) = mpsc::channel();

    fn volley(n: u32, a: SequencedTaskRunner, b: SequencedTaskRunner, tx: mpsc::Sender<u32>) {
        if n == 0 {
            tx.send(0).unwrap();
            return;
        }
        let (a2, b2) = (a.clone(), b.clone());
        let expected = a.sequence_token();
        b.post_and_reply(
            move || n - 1,
            move |m| {
                assert_eq!(SequenceToken::current(), expected);
                volley(m, a2, b2, tx)
            },
        )
        .unwrap();
    }

    let (a2, b2) = (a.clone(), b.clone());
    a.post(move || volley(1000, a2, b2, tx)).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), 0);
}

#[test]
fn works_across_parallel_and_single_thread_runners() {
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let par = pool.parallel_runner(TaskTraits::default(), 2.try_into().unwrap());
    let single = taskrunner::SingleThreadTaskRunner::builder().name("ui").build().unwrap();
    let thread_name = || std::thread::current().name().map(str::to_owned);

    // Posted from a single-thread runner's task to a parallel runner: the reply comes back
    // on the single-thread runner's own thread.
    let (tx, rx) = mpsc::channel();
    let target = par.clone();
    single
        .post(move || {
            target
                .post_and_reply(|| 2 + 2, move |four| tx.send((four, thread_name())).unwrap())
                .unwrap();
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (4, Some("ui".to_owned())));

    // Posted from a parallel runner's task to the single-thread runner: the task runs on the
    // runner's thread, the reply on the parallel runner (no sequence token there).
    let (tx, rx) = mpsc::channel();
    let target = single.clone();
    par.post(move || {
        target
            .post_and_reply(thread_name, move |ran_on| {
                tx.send((ran_on, SequenceToken::current(), current_runner().is_some())).unwrap()
            })
            .unwrap();
    })
    .unwrap();
    let (ran_on, reply_token, reply_in_runner) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(ran_on.as_deref(), Some("ui"));
    assert_eq!(reply_token, None, "the reply ran on the parallel runner, not in a sequence");
    assert!(reply_in_runner);
    drop(single.stop());
}
