//! Helpers shared by the integration tests.

use std::sync::mpsc;

use taskrunner::{TaskRunner, TaskRunnerExt};

/// Posts a task that occupies `runner` until the returned sender sends (or is dropped);
/// returns once the task runs.
pub(crate) fn block<R: TaskRunner + ?Sized>(runner: &R) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    runner
        .post(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .unwrap();
    started_rx.recv().unwrap();
    release_tx
}
