//! [`EventBus<E>`]: a typed publish/subscribe bus whose handlers run on their subscribers'
//! runners.
//!
//! The guarantees are documented on [`EventBus`]; this is how they are kept.
//!
//! # How
//!
//! The subscriber list is a copy-on-write `Arc<[..]>` behind a short lock: `publish` takes the
//! lock only to clone the `Arc`, then, for each subscriber, pushes the event on the subscriber's
//! lock-free queue and posts a delivery task to its runner. A delivery takes the subscriber's
//! handler lock (uncontended on a sequenced runner), then pops and handles every queued event,
//! checking the `active` flag before each call. `unsubscribe` clears the flag, then takes and
//! drops the handler under the same lock, which is how it waits for a call in flight. A
//! thread-local marks the subscriber whose handler is running, so an `unsubscribe` from inside
//! it does not wait for itself.

// loom's `thread_local!` has no `const { .. }` form, and the model needs loom's.
#![allow(clippy::missing_const_for_thread_local)]

use std::cell::Cell;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{thread_local, Queue, RawMutex};
use crate::{current_runner, Task, TaskRunner};

/// The id of one subscription, unique within its bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The bus is closed.
    Closed,
    /// [`subscribe`](EventBus::subscribe) was called from a thread that is not running a task of
    /// any runner; use [`subscribe_on`](EventBus::subscribe_on) to name one.
    NoCurrentRunner,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubscribeError::Closed => "the event bus is closed",
            SubscribeError::NoCurrentRunner => {
                "no current runner to deliver on: subscribe from a task, or use subscribe_on"
            }
        })
    }
}

impl std::error::Error for SubscribeError {}

/// The bus was closed: the event is handed back, undelivered.
pub struct PublishError<E>(pub E);

impl<E> PublishError<E> {
    /// The undelivered event.
    pub fn into_event(self) -> E {
        self.0
    }
}

impl<E> fmt::Debug for PublishError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublishError(..)")
    }
}

impl<E> fmt::Display for PublishError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event not published: the event bus is closed")
    }
}

impl<E> std::error::Error for PublishError<E> {}

type Handler<E> = Box<dyn FnMut(E) + Send>;

/// One subscription. The protocol between `deliver` (on the subscriber's runner) and
/// `deactivate` (from `unsubscribe`, on any thread) is model-checked in
/// `tests/loom_event_bus.rs`: once `deactivate` returns, no call of the handler starts, and a
/// call in flight has finished (unless `deactivate` runs inside that very call).
pub(crate) struct Subscriber<E> {
    id: SubscriptionId,
    runner: Box<dyn TaskRunner>,
    /// Cleared by `deactivate`; read under `handler`'s lock before each call.
    active: AtomicBool,
    pub(crate) events: Queue<E>,
    handler: RawMutex<Option<Handler<E>>>,
}

thread_local! {
    /// The subscriber whose handler runs on this thread (its address), or 0.
    static DELIVERING: Cell<usize> = Cell::new(0);
}

/// Marks `subscriber` as running on this thread until dropped (also on unwind).
struct Delivering(usize);

impl Delivering {
    fn enter<E>(subscriber: &Subscriber<E>) -> Delivering {
        Delivering(DELIVERING.with(|d| d.replace(subscriber as *const Subscriber<E> as usize)))
    }

    fn is_current<E>(subscriber: &Subscriber<E>) -> bool {
        DELIVERING.with(|d| d.get()) == subscriber as *const Subscriber<E> as usize
    }
}

impl Drop for Delivering {
    fn drop(&mut self) {
        DELIVERING.with(|d| d.set(self.0));
    }
}

impl<E> Subscriber<E> {
    pub(crate) fn new(id: u64, runner: Box<dyn TaskRunner>, handler: Handler<E>) -> Subscriber<E> {
        Subscriber {
            id: SubscriptionId(id),
            runner,
            active: AtomicBool::new(true),
            events: Queue::new(),
            handler: RawMutex::new(Some(handler)),
        }
    }

    fn lock_handler(&self) -> crate::sync::MutexGuard<'_, Option<Handler<E>>> {
        // A handler that panicked leaves nothing half-done in the slot itself.
        self.handler.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the handler: no call starts after this returns. Waits for a call in flight on
    /// another thread; from inside the handler itself, returns at once (`deliver` then drops
    /// the handler when the call returns). Otherwise the handler is dropped before returning.
    pub(crate) fn deactivate(&self) {
        self.active.store(false, Ordering::Release);
        if Delivering::is_current(self) {
            return;
        }
        // Waits for a call in flight, if any; later deliveries see `active` cleared.
        let handler = self.lock_handler().take();
        drop(handler);
    }

    /// Runs on the subscriber's runner: handles every queued event, in queue order.
    pub(crate) fn deliver(&self) {
        let mut slot = self.lock_handler();
        while let Some(event) = self.events.pop() {
            if !self.active.load(Ordering::Acquire) {
                break;
            }
            let Some(handler) = slot.as_mut() else { break };
            let _delivering = Delivering::enter(self);
            handler(event);
        }
        if !self.active.load(Ordering::Acquire) {
            // Unsubscribed (maybe from inside the handler, which could not drop itself): drop
            // it now, under the lock, so a concurrent `unsubscribe` returns only after it.
            *slot = None;
        }
    }
}

struct State<E> {
    closed: bool,
    subscribers: Arc<[Arc<Subscriber<E>>]>,
}

struct Bus<E> {
    state: Mutex<State<E>>,
    next_id: AtomicU64,
}

impl<E> Bus<E> {
    fn state(&self) -> MutexGuard<'_, State<E>> {
        // No user code runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remove(&self, id: SubscriptionId) -> Option<Arc<Subscriber<E>>> {
        let mut state = self.state();
        let index = state.subscribers.iter().position(|s| s.id == id)?;
        let removed = state.subscribers[index].clone();
        state.subscribers = state.subscribers.iter().filter(|s| s.id != id).cloned().collect();
        Some(removed)
    }
}

/// A typed publish/subscribe bus. Cheap to clone; every clone is the same bus.
///
/// ```
/// use std::sync::mpsc;
/// use taskrunner::{EventBus, TaskTraits, ThreadPool};
///
/// let pool = ThreadPool::builder().workers(2).build()?;
/// let ui = pool.sequenced_runner(TaskTraits::default());
/// let bus: EventBus<String> = EventBus::new();
///
/// let (tx, rx) = mpsc::channel();
/// let id = bus.subscribe_on(&ui, move |event: String| tx.send(event).unwrap())?;
/// bus.publish("saved".to_owned())?;
/// assert_eq!(rx.recv()?, "saved");
///
/// assert!(bus.unsubscribe(id)); // exactly that subscriber; never called again
/// bus.close();
/// assert!(bus.publish("late".to_owned()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Guarantees
///
/// - **Where.** A handler runs on the runner it was subscribed on: the calling task's runner for
///   [`subscribe`](EventBus::subscribe), or the one given to
///   [`subscribe_on`](EventBus::subscribe_on). A handler is `FnMut`, and its calls never overlap,
///   even on a runner that runs tasks in parallel.
/// - **Order.** Each subscriber sees the events of one publisher in publish order, whatever the
///   runner kind (events are queued per subscriber and popped under the subscriber's handler
///   lock, so even tasks run in parallel deliver them in queue order).
/// - **Unsubscribe.** [`unsubscribe(id)`](EventBus::unsubscribe) removes exactly that subscriber.
///   Once it returns, the handler is never called again and its captured state has been
///   dropped. If the handler is running on another thread at that moment, `unsubscribe` waits
///   for that one call to finish. Called from inside the handler itself, it returns at once,
///   and the handler is dropped as soon as the current call returns. (Consequence: two handlers
///   that unsubscribe *each other* while both are running on different threads wait for each
///   other; unsubscribe another handler from outside handlers, or post the unsubscribe.)
/// - **Closing.** After [`close`](EventBus::close), `publish` returns the event in a
///   [`PublishError`] and `subscribe` fails; events published before are still delivered.
/// - **Runners that shut down.** A subscriber whose runner rejects a delivery because it has
///   shut down is removed (its handler could never run again); `publish` returns how many
///   subscribers the event was queued for, so that is visible to the publisher.
///
pub struct EventBus<E: Clone + Send + 'static> {
    bus: Arc<Bus<E>>,
}

impl<E: Clone + Send + 'static> Clone for EventBus<E> {
    fn clone(&self) -> Self {
        EventBus { bus: self.bus.clone() }
    }
}

impl<E: Clone + Send + 'static> Default for EventBus<E> {
    fn default() -> Self {
        EventBus::new()
    }
}

impl<E: Clone + Send + 'static> fmt::Debug for EventBus<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.bus.state();
        f.debug_struct("EventBus")
            .field("event", &std::any::type_name::<E>())
            .field("subscribers", &state.subscribers.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl<E: Clone + Send + 'static> EventBus<E> {
    /// An open bus with no subscribers.
    pub fn new() -> EventBus<E> {
        EventBus {
            bus: Arc::new(Bus {
                state: Mutex::new(State { closed: false, subscribers: Arc::new([]) }),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Subscribes `handler`, to be called on the runner whose task is calling this
    /// ([`current_runner`]). Errors: [`SubscribeError::NoCurrentRunner`] outside any runner's
    /// task, [`SubscribeError::Closed`].
    pub fn subscribe<H>(&self, handler: H) -> Result<SubscriptionId, SubscribeError>
    where
        H: FnMut(E) + Send + 'static,
    {
        let runner = current_runner().ok_or(SubscribeError::NoCurrentRunner)?;
        self.add(Box::new(runner), Box::new(handler))
    }

    /// Subscribes `handler`, to be called on `runner` (any kind of runner).
    pub fn subscribe_on<R, H>(
        &self,
        runner: &R,
        handler: H,
    ) -> Result<SubscriptionId, SubscribeError>
    where
        R: TaskRunner + Clone + 'static,
        H: FnMut(E) + Send + 'static,
    {
        self.add(Box::new(runner.clone()), Box::new(handler))
    }

    fn add(
        &self,
        runner: Box<dyn TaskRunner>,
        handler: Handler<E>,
    ) -> Result<SubscriptionId, SubscribeError> {
        let id = self.bus.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let subscriber = Arc::new(Subscriber::new(id, runner, handler));
        let id = subscriber.id;
        let mut state = self.bus.state();
        if state.closed {
            return Err(SubscribeError::Closed);
        }
        state.subscribers = state.subscribers.iter().cloned().chain(Some(subscriber)).collect();
        Ok(id)
    }

    /// Removes the subscriber `id`. Returns `false` if there was none (already removed, or
    /// never of this bus).
    ///
    /// Once this returns, the handler is never called again and has been dropped; if it is
    /// running on another thread, this waits for that call to end. From inside the handler
    /// itself it returns at once and the handler is dropped when the current call returns.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let Some(subscriber) = self.bus.remove(id) else { return false };
        subscriber.deactivate();
        true
    }

    /// Publishes `event` to every subscriber: queued for each, and a delivery posted to each
    /// subscriber's runner. Returns how many subscribers it was queued for.
    ///
    /// Errors: the bus is closed; the event is handed back.
    #[track_caller]
    pub fn publish(&self, event: E) -> Result<usize, PublishError<E>> {
        let subscribers = {
            let state = self.bus.state();
            if state.closed {
                return Err(PublishError(event));
            }
            state.subscribers.clone()
        };
        let location = Location::caller();
        let mut event = Some(event);
        let mut queued = 0;
        let last = subscribers.len().saturating_sub(1);
        for (i, subscriber) in subscribers.iter().enumerate() {
            let copy = if i == last { event.take() } else { event.clone() };
            subscriber.events.push(copy.expect("the event is taken by the last subscriber only"));
            let target = subscriber.clone();
            match subscriber
                .runner
                .post_task(Task::with_location(move || target.deliver(), location))
            {
                Ok(()) => queued += 1,
                Err(rejected) if rejected.is_closed() => {
                    // The runner is gone: its handler can never run again.
                    subscriber.active.store(false, Ordering::Release);
                    self.bus.remove(subscriber.id);
                }
                // Full: the event stays queued and goes with the subscriber's next delivery.
                Err(_) => {}
            }
        }
        Ok(queued)
    }

    /// Closes the bus: later `publish` and `subscribe` calls fail. Events already published
    /// are still delivered. Idempotent.
    pub fn close(&self) {
        let subscribers = {
            let mut state = self.bus.state();
            state.closed = true;
            std::mem::replace(&mut state.subscribers, Arc::new([]))
        };
        drop(subscribers); // outside the lock: may drop handlers
    }

    /// Whether the bus is closed.
    pub fn is_closed(&self) -> bool {
        self.bus.state().closed
    }

    /// The number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.bus.state().subscribers.len()
    }
}
