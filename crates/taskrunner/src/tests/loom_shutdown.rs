//! A post racing pool shutdown: the task runs, or is handed back, or is counted as skipped;
//! never leaked.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{thread, Arc};
use crate::{ShutdownBehavior, TaskRunnerExt, TaskTraits, ThreadPool};

fn post_racing_shutdown(behavior: ShutdownBehavior) {
    super::model(move || {
        let pool = ThreadPool::builder().workers(1).build().unwrap();
        let seq = pool.sequenced_runner(TaskTraits::default().with_shutdown_behavior(behavior));
        let ran = Arc::new(AtomicUsize::new(0));

        let poster = {
            let seq = seq.clone();
            let ran = ran.clone();
            thread::spawn(move || {
                seq.post(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .is_err()
            })
        };
        let first = pool.shutdown();
        let returned = usize::from(poster.join().unwrap());
        // A second report counts what was dropped after the first one was made.
        let last = pool.shutdown();
        assert!(first.skipped() <= last.skipped());
        let ran = ran.load(Ordering::Relaxed);
        let skipped = last.skipped() as usize;
        assert_eq!(
            ran + returned + skipped,
            1,
            "ran {ran}, returned {returned}, skipped {skipped}"
        );
    });
}

#[test]
fn post_racing_shutdown_skip() {
    post_racing_shutdown(ShutdownBehavior::SkipOnShutdown);
}

#[test]
fn post_racing_shutdown_block() {
    post_racing_shutdown(ShutdownBehavior::BlockShutdown);
}
