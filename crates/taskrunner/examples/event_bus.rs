//! A typed event bus: publishers on several threads, subscribers on their own sequences, a
//! subscriber removed by id, and a closed bus that refuses events.
//!
//! Run: `cargo run -p taskrunner --example event_bus`

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{EventBus, SequenceBound, TaskTraits, ThreadPool};

const PUBLISHERS: usize = 4;
const ORDERS: u64 = 1_000;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct OrderPlaced {
    shop: usize,
    seq_no: u64,
    cents: u64,
}

#[derive(Debug, Default)]
struct Revenue {
    orders: u64,
    cents: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("bus").workers(2).build()?;
    let accounting = pool.sequenced_runner(TaskTraits::default());
    let audit = pool.sequenced_runner(TaskTraits::default());
    let bus: EventBus<OrderPlaced> = EventBus::new();

    // Subscriber 1: revenue, kept on the accounting sequence.
    let revenue = SequenceBound::new(&accounting, Revenue::default);
    let r = revenue.clone();
    bus.subscribe_on(&accounting, move |order: OrderPlaced| {
        r.post(move |rev| {
            rev.orders += 1;
            rev.cents += order.cents;
        })
        .expect("accounting is open");
    })?;

    // Subscriber 2: an audit that checks each shop's orders arrive in order. The handler owns
    // its state outright: it is only ever called on `audit`, one call at a time.
    let mut next_by_shop: HashMap<usize, u64> = HashMap::new();
    let audited = SequenceBound::new(&audit, || 0u64);
    let a = audited.clone();
    let audit_id = bus.subscribe_on(&audit, move |order: OrderPlaced| {
        let next = next_by_shop.entry(order.shop).or_default();
        assert_eq!(order.seq_no, *next, "shop {} out of order", order.shop);
        *next += 1;
        a.post(|n| *n += 1).expect("audit is open");
    })?;

    let start = Arc::new(Barrier::new(PUBLISHERS));
    let shops: Vec<_> = (0..PUBLISHERS)
        .map(|shop| {
            let (bus, start) = (bus.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for seq_no in 0..ORDERS {
                    let delivered_to =
                        bus.publish(OrderPlaced { shop, seq_no, cents: 100 }).expect("bus open");
                    assert_eq!(delivered_to, 2);
                }
            })
        })
        .collect();
    for shop in shops {
        shop.join().expect("publisher thread");
    }

    // Deliveries were posted before these markers; each posted its update before finishing.
    accounting.wait_idle(WAIT)?;
    audit.wait_idle(WAIT)?;
    let total = PUBLISHERS as u64 * ORDERS;
    assert_eq!(audited.call(|n| *n)?.join()?, total);

    // Remove exactly the audit subscriber; revenue keeps receiving.
    assert!(bus.unsubscribe(audit_id));
    assert_eq!(bus.publish(OrderPlaced { shop: 0, seq_no: ORDERS, cents: 250 })?, 1);
    accounting.wait_idle(WAIT)?;
    audit.wait_idle(WAIT)?;
    let (orders, cents) = revenue.call(|r| (r.orders, r.cents))?.join()?;
    println!("revenue: {orders} orders, {cents} cents; audit saw {total}");
    assert_eq!((orders, cents), (total + 1, total * 100 + 250));
    assert_eq!(audited.call(|n| *n)?.join()?, total, "unsubscribed: never called again");

    bus.close();
    let refused = bus.publish(OrderPlaced { shop: 9, seq_no: 0, cents: 1 }).unwrap_err();
    assert_eq!(refused.into_event().shop, 9);
    Ok(())
}
