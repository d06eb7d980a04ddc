//! EventBus: where handlers run, ordering, unsubscribe, closing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use taskrunner::{
    EventBus, SequenceToken, SubscribeError, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool,
};

const LONG: Duration = Duration::from_secs(30);

fn pool(workers: usize) -> ThreadPool {
    ThreadPool::builder().workers(workers).panic_handler(|_| {}).build().unwrap()
}

#[test]
fn handlers_run_on_their_subscribers_runners() {
    let pool = pool(2);
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u32>::new();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    bus.subscribe_on(&a, move |e| tx.send(("a", e, SequenceToken::current())).unwrap()).unwrap();
    // `subscribe` from inside a task: delivered on that task's runner.
    let inner = bus.clone();
    b.post_with_result(move || {
        inner.subscribe(move |e| tx2.send(("b", e, SequenceToken::current())).unwrap())
    })
    .unwrap()
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(bus.subscribers(), 2);
    assert_eq!(bus.publish(7).unwrap(), 2);
    let mut got: Vec<_> = (0..2).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, vec![("a", 7, a.sequence_token()), ("b", 7, b.sequence_token())]);
}

#[test]
fn subscribe_outside_any_runner_is_an_error() {
    let bus = EventBus::<u8>::new();
    assert_eq!(bus.subscribe(|_| {}).unwrap_err(), SubscribeError::NoCurrentRunner);
    assert_eq!(bus.subscribers(), 0);
}

#[test]
fn each_publisher_is_seen_in_order_by_every_kind_of_subscriber() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 500;
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<(usize, usize)>::new();
    let (seq_tx, seq_rx) = mpsc::channel();
    let (pool_tx, pool_rx) = mpsc::channel();
    bus.subscribe_on(&seq, move |e| seq_tx.send(e).unwrap()).unwrap();
    // On the pool, deliveries may run on two workers at once: calls must still not overlap.
    let busy = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let (b, o) = (busy.clone(), overlaps.clone());
    bus.subscribe_on(&pool, move |e| {
        if b.swap(true, Ordering::SeqCst) {
            o.fetch_add(1, Ordering::SeqCst);
        }
        pool_tx.send(e).unwrap();
        b.store(false, Ordering::SeqCst);
    })
    .unwrap();
    let start = Arc::new(Barrier::new(PUBLISHERS));
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (bus, start) = (bus.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..EACH {
                    assert_eq!(bus.publish((p, i)).unwrap(), 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for rx in [seq_rx, pool_rx] {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for _ in 0..PUBLISHERS * EACH {
            let (p, i) = rx.recv_timeout(LONG).unwrap();
            let n = next.entry(p).or_default();
            assert_eq!(i, *n, "publisher {p} out of order");
            *n += 1;
        }
        assert!(next.values().all(|&n| n == EACH));
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn unsubscribe_removes_exactly_that_subscriber() {
    let pool = pool(2);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u32>::new();
    let counts: Vec<_> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let ids: Vec<_> = counts
        .iter()
        .map(|c| {
            let c = c.clone();
            bus.subscribe_on(&seq, move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    assert!(bus.unsubscribe(ids[1]));
    assert!(!bus.unsubscribe(ids[1]), "already gone");
    assert_eq!(bus.subscribers(), 2);
    assert_eq!(bus.publish(1).unwrap(), 2);
    seq.wait_idle(LONG).unwrap();
    let got: Vec<_> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(got, vec![1, 0, 1]);
}

#[test]
fn events_already_queued_are_not_delivered_after_unsubscribe() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u32>::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let id = bus
        .subscribe_on(&seq, move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    // Hold the sequence so the deliveries stay queued.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    seq.post(move || release_rx.recv().unwrap()).unwrap();
    for i in 0..10 {
        bus.publish(i).unwrap();
    }
    assert!(bus.unsubscribe(id));
    release_tx.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Records whether it was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn once_unsubscribe_returns_the_handler_is_never_called_again() {
    for _ in 0..20 {
        let pool = pool(2);
        let bus = EventBus::<u64>::new();
        let unsubscribed = Arc::new(AtomicBool::new(false));
        let late_calls = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let (u, late, flag) = (unsubscribed.clone(), late_calls.clone(), DropFlag(dropped.clone()));
        let mut calls = 0;
        // On the pool: deliveries run on any worker, concurrently with `unsubscribe`.
        let id = bus
            .subscribe_on(&pool, move |_| {
                let _keep = &flag;
                if u.load(Ordering::SeqCst) {
                    late.fetch_add(1, Ordering::SeqCst);
                }
                calls += 1;
                if calls == 10 {
                    let _ = started_tx.send(());
                }
                std::hint::black_box(calls);
                if u.load(Ordering::SeqCst) {
                    late.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bus.clone(), stop.clone());
        let publisher = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                b.publish(i).unwrap();
                i += 1;
            }
        });
        started_rx.recv_timeout(LONG).unwrap();
        assert!(bus.unsubscribe(id));
        unsubscribed.store(true, Ordering::SeqCst);
        assert!(dropped.load(Ordering::SeqCst), "the handler is dropped when unsubscribe returns");
        // Keep publishing for a while after, then let every queued delivery run.
        for i in 0..1_000 {
            bus.publish(i).unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        publisher.join().unwrap();
        pool.shutdown();
        assert_eq!(late_calls.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn unsubscribe_from_inside_the_handler_does_not_wait_for_itself() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u32>::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let id_slot = Arc::new(Mutex::new(None));
    let (b, c, slot, flag) =
        (bus.clone(), calls.clone(), id_slot.clone(), DropFlag(dropped.clone()));
    let id = bus
        .subscribe_on(&seq, move |_| {
            let _keep = &flag;
            c.fetch_add(1, Ordering::SeqCst);
            let id = slot.lock().unwrap().unwrap();
            assert!(b.unsubscribe(id));
        })
        .unwrap();
    *id_slot.lock().unwrap() = Some(id);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    seq.post(move || release_rx.recv().unwrap()).unwrap();
    for i in 0..5 {
        bus.publish(i).unwrap();
    }
    release_tx.send(()).unwrap();
    seq.wait_idle(LONG).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "called once, then never again");
    assert!(dropped.load(Ordering::SeqCst), "dropped after its last call returned");
    assert_eq!(bus.subscribers(), 0);
}

#[test]
fn a_closed_bus_refuses_publish_and_subscribe() {
    let pool = pool(1);
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<String>::new();
    let (tx, rx) = mpsc::channel();
    bus.subscribe_on(&seq, move |e| tx.send(e).unwrap()).unwrap();
    bus.publish("before".into()).unwrap();
    bus.close();
    bus.close(); // idempotent
    assert!(bus.is_closed());
    let err = bus.publish("after".into()).unwrap_err();
    assert_eq!(err.into_event(), "after");
    assert_eq!(bus.subscribe_on(&seq, |_| {}).unwrap_err(), SubscribeError::Closed);
    // What was published before closing is still delivered.
    assert_eq!(rx.recv_timeout(LONG).unwrap(), "before");
    seq.wait_idle(LONG).unwrap();
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_subscriber_whose_runner_shut_down_is_removed() {
    let pool = pool(1);
    let live = pool.sequenced_runner(TaskTraits::default());
    let gone = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u8>::new();
    bus.subscribe_on(&live, |_| {}).unwrap();
    let gone_id = bus.subscribe_on(&gone, |_| {}).unwrap();
    gone.shutdown();
    assert_eq!(bus.publish(1).unwrap(), 1);
    assert_eq!(bus.subscribers(), 1);
    assert!(!bus.unsubscribe(gone_id));
}

#[test]
fn a_panicking_handler_is_reported_and_keeps_its_subscription() {
    let panics = Arc::new(AtomicUsize::new(0));
    let p = panics.clone();
    let pool = ThreadPool::builder()
        .workers(1)
        .panic_handler(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let seq = pool.sequenced_runner(TaskTraits::default());
    let bus = EventBus::<u32>::new();
    let (tx, rx) = mpsc::channel();
    bus.subscribe_on(&seq, move |e| {
        assert!(e != 1, "bad event");
        tx.send(e).unwrap();
    })
    .unwrap();
    bus.publish(1).unwrap();
    seq.wait_idle(LONG).unwrap();
    bus.publish(2).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), 2);
    assert_eq!(panics.load(Ordering::SeqCst), 1);
}

#[test]
fn bus_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<EventBus<std::cell::Cell<u8>>>();
    send_sync::<taskrunner::SubscriptionId>();
    send_sync::<SubscribeError>();
    send_sync::<taskrunner::PublishError<u8>>();
}
