//! `cancel()` racing the task's start: exactly one wins; a cancelled task never runs.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::{TaskRunnerExt, TaskTraits, ThreadPool};

#[test]
fn cancel_races_start() {
    super::model(|| {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let handle = seq
            .post_with_result(move || {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        let canceller = thread::spawn(move || {
            let cancelled = handle.cancel();
            (cancelled, handle.join())
        });
        let (cancelled, result) = canceller.join().unwrap();
        drop(pool.shutdown());
        let ran = ran.load(Ordering::Relaxed);
        if cancelled {
            assert_eq!(ran, 0, "a cancelled task ran");
            assert!(result.unwrap_err().is_cancelled());
        } else {
            assert_eq!(ran, 1);
            assert!(result.is_ok());
        }
    });
}
