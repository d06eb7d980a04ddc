//! A cache with hit and miss statistics, owned by a sequence: no lock around the map, the
//! statistics are exact, and readers get their answer through a `TaskHandle`.
//!
//! Run: `cargo run -p taskrunner --example lock_free_cache`

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use taskrunner::{
    PostError, SequenceBound, SequencedTaskRunner, TaskHandle, TaskTraits, ThreadPool,
};

const THREADS: usize = 6;
const KEYS_PER_THREAD: usize = 500;

#[derive(Default)]
struct Cache {
    map: HashMap<String, String>,
    hits: u64,
    misses: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    entries: usize,
    hits: u64,
    misses: u64,
}

/// The cache's public face: a cheap, cloneable handle. Every method posts to the sequence.
#[derive(Clone)]
struct CacheHandle(SequenceBound<Cache>);

impl CacheHandle {
    fn new(seq: &SequencedTaskRunner) -> Self {
        CacheHandle(SequenceBound::new(seq, Cache::default))
    }

    fn set(&self, key: String, value: String) -> Result<(), PostError> {
        self.0.post(move |c| {
            c.map.insert(key, value);
        })
    }

    fn get(&self, key: String) -> Result<TaskHandle<Option<String>>, PostError> {
        self.0.call(move |c| {
            let found = c.map.get(&key).cloned();
            match found {
                Some(_) => c.hits += 1,
                None => c.misses += 1,
            }
            found
        })
    }

    fn stats(&self) -> Result<TaskHandle<Stats>, PostError> {
        self.0.call(|c| Stats { entries: c.map.len(), hits: c.hits, misses: c.misses })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("cache").workers(2).build()?;
    let cache = CacheHandle::new(&pool.sequenced_runner(TaskTraits::default()));

    let start = Arc::new(Barrier::new(THREADS));
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, start) = (cache.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..KEYS_PER_THREAD {
                    // A miss: nobody ever sets this key.
                    let miss = cache.get(format!("absent-{t}-{i}")).expect("open").join();
                    assert_eq!(miss.expect("get"), None);
                    cache.set(format!("k-{t}-{i}"), format!("v{i}")).expect("open");
                    // A hit: this thread's own set was posted before, so it ran before.
                    let hit = cache.get(format!("k-{t}-{i}")).expect("open").join();
                    assert_eq!(hit.expect("get"), Some(format!("v{i}")));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }

    let stats = cache.stats()?.join()?;
    println!("{stats:?}");
    let expected = (THREADS * KEYS_PER_THREAD) as u64;
    assert_eq!(stats, Stats { entries: expected as usize, hits: expected, misses: expected });
    Ok(())
}
