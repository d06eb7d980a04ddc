//! `unsubscribe` racing a delivery: once `deactivate` returns, no call of the handler starts and
//! none is still running; from inside the handler it returns without waiting for itself.

use crate::event_bus::Subscriber;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::{PostError, Task, TaskRunner};

/// A runner that is never posted to: the models call `deliver` directly.
struct Nowhere;

impl TaskRunner for Nowhere {
    fn post_task(&self, task: Task) -> Result<(), PostError> {
        Err(PostError::Closed(task))
    }
}

#[test]
fn no_call_runs_after_deactivate_returns() {
    super::model(|| {
        let returned = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (r, l, c) = (returned.clone(), late.clone(), calls.clone());
        let subscriber = std::sync::Arc::new(Subscriber::new(
            1,
            Box::new(Nowhere),
            Box::new(move |_: u8| {
                c.fetch_add(1, Ordering::SeqCst);
                if r.load(Ordering::SeqCst) {
                    l.fetch_add(1, Ordering::SeqCst);
                }
            }),
        ));
        subscriber.events.push(1);
        let s = subscriber.clone();
        let delivery = thread::spawn(move || s.deliver());
        subscriber.deactivate();
        returned.store(true, Ordering::SeqCst);
        delivery.join().unwrap();
        assert_eq!(late.load(Ordering::SeqCst), 0, "the handler ran after deactivate returned");
        assert!(calls.load(Ordering::SeqCst) <= 1);
    });
}

#[test]
fn deactivate_from_inside_the_handler_does_not_wait_for_itself() {
    super::model(|| {
        let calls = Arc::new(AtomicUsize::new(0));
        let slot: Arc<crate::sync::Mutex<Option<std::sync::Arc<Subscriber<u8>>>>> =
            Arc::new(crate::sync::Mutex::new(None));
        let (c, me) = (calls.clone(), slot.clone());
        let subscriber = std::sync::Arc::new(Subscriber::new(
            1,
            Box::new(Nowhere),
            Box::new(move |_: u8| {
                c.fetch_add(1, Ordering::SeqCst);
                let me = me.lock().take();
                if let Some(me) = me {
                    me.deactivate(); // would deadlock if it waited for this very call
                }
            }),
        ));
        *slot.lock() = Some(subscriber.clone());
        subscriber.events.push(1);
        subscriber.events.push(2);
        let s = subscriber.clone();
        let delivery = thread::spawn(move || s.deliver());
        delivery.join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "called once, never after unsubscribing");
    });
}
