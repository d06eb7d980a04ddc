//! The two sequence ping-pong games, shared by the benchmark binary (`pingpong.rs`) and the
//! criterion benches (`benches/runner.rs`, which include this file by path).

use std::time::{Duration, Instant};

use taskrunner::{SequencedTaskRunner, TaskRunnerExt};

/// The ball of the `post` game: both runners, the rounds left, and where to report.
struct Ball {
    a: SequencedTaskRunner,
    b: SequencedTaskRunner,
    left: u64,
    done: crossbeam_channel::Sender<()>,
}

// A rejected post drops the ball with the task it is in, and with it the only `done` sender:
// the waiting side then sees the channel close and reports the failure.
fn on_a(ball: Ball) {
    if ball.left == 0 {
        let _ = ball.done.send(());
        return;
    }
    let b = ball.b.clone();
    let _ = b.post(move || on_b(ball));
}

fn on_b(mut ball: Ball) {
    ball.left -= 1;
    let a = ball.a.clone();
    let _ = a.post(move || on_a(ball));
}

/// One round of the `post_and_reply` game, run on A: B runs an empty task, and the reply,
/// back on A, starts the next round. A rejected post drops `done` with the task.
fn reply_round(b: SequencedTaskRunner, left: u64, done: crossbeam_channel::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
        return;
    }
    let next = b.clone();
    let _ = b.post_and_reply(|| (), move |()| reply_round(next, left - 1, done));
}

/// Plays `rounds` round trips of a task on `a` posting to `b`, whose task posts back, and
/// returns how long they took.
pub(crate) fn post_rounds(
    a: &SequencedTaskRunner,
    b: &SequencedTaskRunner,
    rounds: u64,
) -> Result<Duration, String> {
    let (a2, b) = (a.clone(), b.clone());
    play(a, move |done| move || on_a(Ball { a: a2, b, left: rounds, done }))
}

/// Plays `rounds` rounds of the `post_and_reply` game from `a` to `b` and returns how long
/// they took.
pub(crate) fn reply_rounds(
    a: &SequencedTaskRunner,
    b: &SequencedTaskRunner,
    rounds: u64,
) -> Result<Duration, String> {
    let b = b.clone();
    play(a, move |done| move || reply_round(b, rounds, done))
}

/// Starts a game with the first task `start(done)` on `a` and times it until a task sends on
/// `done` (or every sender is dropped, which means a post was rejected).
fn play<S, F>(a: &SequencedTaskRunner, start: S) -> Result<Duration, String>
where
    S: FnOnce(crossbeam_channel::Sender<()>) -> F,
    F: FnOnce() + Send + 'static,
{
    let (done, finished) = crossbeam_channel::bounded(1);
    let first = start(done);
    let started = Instant::now();
    a.post(first).map_err(|e| format!("post failed: {e:?}"))?;
    finished.recv().map_err(|_| "a post was rejected mid-game".to_string())?;
    Ok(started.elapsed())
}
