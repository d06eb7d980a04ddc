//! The shared workload: a counter and a small map, and how the operations are split.
//!
//! Every variant runs the same operation on the same state: increment a counter and add one to
//! one entry of a `HashMap` whose 64 keys are filled before the clock starts, so an operation
//! never allocates. A run is correct when the counter and the sum of the map both equal the
//! number of operations that were issued.

use std::collections::HashMap;

/// Number of keys in the map; operation `i` of a writer touches key `(writer + i) % KEYS`.
pub(crate) const KEYS: u64 = 64;

/// The state every variant protects (or owns) in its own way.
#[derive(Debug, Clone)]
pub(crate) struct State {
    counter: u64,
    map: HashMap<u64, u64>,
}

impl State {
    /// A state with the counter at zero and every key present with value zero.
    pub(crate) fn new() -> Self {
        let map = (0..KEYS).map(|k| (k, 0)).collect();
        State { counter: 0, map }
    }

    /// The operation under test: never allocates, touches the counter and one map entry.
    #[inline]
    pub(crate) fn apply(&mut self, key: u64) {
        self.counter += 1;
        if let Some(v) = self.map.get_mut(&key) {
            *v += 1;
        }
    }

    /// Checks that exactly `ops` operations were applied.
    pub(crate) fn check(&self, ops: u64) -> Result<(), String> {
        let sum: u64 = self.map.values().sum();
        if self.counter == ops && sum == ops {
            Ok(())
        } else {
            Err(format!(
                "expected {ops} operations, found counter {} and map sum {sum}",
                self.counter
            ))
        }
    }
}

/// The number of operations writer `index` of `writers` issues, so that the shares add up to
/// `total` exactly (the first `total % writers` writers do one more).
pub(crate) fn share(total: u64, writers: usize, index: usize) -> u64 {
    let w = writers as u64;
    total / w + u64::from((index as u64) < total % w)
}

/// The key operation `i` of writer `writer` touches.
#[inline]
pub(crate) fn key(writer: usize, i: u64) -> u64 {
    (writer as u64 + i) % KEYS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in [0, 1, 7, 100, 1001] {
            for writers in [1, 2, 3, 16] {
                let sum: u64 = (0..writers).map(|i| share(total, writers, i)).sum();
                assert_eq!(sum, total);
            }
        }
    }

    #[test]
    fn check_detects_missing_ops() {
        let mut s = State::new();
        for i in 0..10 {
            s.apply(key(0, i));
        }
        assert!(s.check(10).is_ok());
        assert!(s.check(11).is_err());
    }
}
