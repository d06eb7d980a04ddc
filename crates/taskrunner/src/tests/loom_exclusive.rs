//! `sync::Exclusive`: the try-lock that holds a `SequenceBound`'s value.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{thread, Arc, Exclusive};

/// Three threads each try once to take the value and, if they get it, add one to it in two
/// steps (read, then write). Whoever got it did so alone (loom's cell reports any access that
/// overlaps another or misses the write before it), and the value counts every holder.
#[test]
fn holders_of_an_exclusive_value_never_overlap_and_see_each_others_writes() {
    super::model(|| {
        let cell = Arc::new(Exclusive::new(0usize));
        let holders = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (cell, holders) = (cell.clone(), holders.clone());
                thread::spawn(move || {
                    if let Some(mut guard) = cell.try_take() {
                        guard.with(|v| {
                            let read = *v;
                            *v = read + 1;
                        });
                        holders.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        if let Some(mut guard) = cell.try_take() {
            guard.with(|v| *v += 1);
            holders.fetch_add(1, Ordering::Relaxed);
        }
        for t in threads {
            t.join().unwrap();
        }
        let value = cell.try_take().expect("every holder gave it back").with(|v| *v);
        assert_eq!(value, holders.load(Ordering::Relaxed));
        assert!(value >= 1, "the first to try always gets it");
    });
}
