//! A pool of reusable resources (connections, buffers) owned by a sequence: acquire, release,
//! statistics, and an acquire that waits, with a timeout, while the pool is empty.
//!
//! The waiting caller blocks on its own channel, never on a lock: the sequence hands it a
//! resource when one is released. A waiter that timed out has dropped its receiver; the
//! sequence notices (the send fails) and gives the resource to the next waiter instead.
//!
//! Run: `cargo run -p taskrunner --example resource_pool`

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{SequenceBound, SequencedTaskRunner, TaskTraits, ThreadPool};

#[derive(Debug)]
struct Connection {
    id: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stats {
    acquired: u64,
    released: u64,
    waited: u64,
    idle: usize,
}

#[derive(Default)]
struct Inner {
    idle: Vec<Connection>,
    waiters: VecDeque<mpsc::SyncSender<Connection>>,
    stats: Stats,
}

impl Inner {
    /// Gives `conn` to the first waiter still waiting, or keeps it.
    fn put_back(&mut self, mut conn: Connection) {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.try_send(conn) {
                Ok(()) => {
                    self.stats.acquired += 1;
                    return;
                }
                Err(mpsc::TrySendError::Disconnected(c) | mpsc::TrySendError::Full(c)) => conn = c,
            }
        }
        self.idle.push(conn);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum AcquireError {
    Timeout,
    Closed,
}

#[derive(Clone)]
struct Pool(SequenceBound<Inner>);

/// A connection on loan: released back to the pool when dropped.
struct Lease {
    conn: Option<Connection>,
    pool: Pool,
}

impl Lease {
    fn id(&self) -> usize {
        self.conn.as_ref().map_or(usize::MAX, |c| c.id)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.pool.0.post(move |inner| {
                inner.stats.released += 1;
                inner.put_back(conn);
            });
        }
    }
}

impl Pool {
    fn new(seq: &SequencedTaskRunner, size: usize) -> Pool {
        Pool(SequenceBound::new(seq, move || Inner {
            idle: (0..size).map(|id| Connection { id }).collect(),
            ..Inner::default()
        }))
    }

    /// Takes a connection, waiting at most `timeout` for one to be released.
    fn acquire(&self, timeout: Duration) -> Result<Lease, AcquireError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.0
            .post(move |inner| match inner.idle.pop() {
                Some(conn) => {
                    inner.stats.acquired += 1;
                    let _ = tx.send(conn);
                }
                None => {
                    inner.stats.waited += 1;
                    inner.waiters.push_back(tx);
                }
            })
            .map_err(|_| AcquireError::Closed)?;
        match rx.recv_timeout(timeout) {
            Ok(conn) => Ok(Lease { conn: Some(conn), pool: self.clone() }),
            Err(RecvTimeoutError::Timeout) => Err(AcquireError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(AcquireError::Closed),
        }
    }

    fn stats(&self) -> Stats {
        let handle = self.0.call(|inner| Stats { idle: inner.idle.len(), ..inner.stats });
        handle.expect("the pool's sequence is open").join().expect("stats")
    }
}

const SIZE: usize = 3;
const THREADS: usize = 8;
const ROUNDS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = ThreadPool::builder().name("pool").workers(2).build()?;
    let pool = Pool::new(&threads.sequenced_runner(TaskTraits::default()), SIZE);

    // Eight threads share three connections; never more than three are out at once.
    let in_use = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (pool, in_use, peak, start) =
                (pool.clone(), in_use.clone(), peak.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..ROUNDS {
                    let lease = pool.acquire(Duration::from_secs(10)).expect("a connection");
                    assert!(lease.id() < SIZE);
                    let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    in_use.fetch_sub(1, Ordering::SeqCst);
                    drop(lease);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread");
    }
    assert!(peak.load(Ordering::SeqCst) <= SIZE);

    let stats = pool.stats();
    println!("{stats:?}, peak {} in use", peak.load(Ordering::SeqCst));
    let total = (THREADS * ROUNDS) as u64;
    assert_eq!(stats.acquired, total);
    assert_eq!(stats.released, total);
    assert_eq!(stats.idle, SIZE);

    // An empty pool: a waiting acquire times out...
    let held: Vec<Lease> = (0..SIZE)
        .map(|_| pool.acquire(Duration::from_secs(30)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(pool.acquire(Duration::from_millis(20)).err(), Some(AcquireError::Timeout));
    // ...and one that waits gets the next connection released.
    let p = pool.clone();
    let waiter = std::thread::spawn(move || p.acquire(Duration::from_secs(10)).map(|l| l.id()));
    while pool.stats().waited < stats.waited + 2 {
        // The waiter has registered once `waited` counts it (polling the sequence, not sleeping).
        std::thread::yield_now();
    }
    let released_id = held[0].id();
    drop(held);
    assert_eq!(waiter.join().expect("waiter thread"), Ok(released_id));
    let end = pool.stats();
    assert_eq!(end.idle, SIZE, "the timed-out waiter's turn was skipped, nothing leaked");
    Ok(())
}
