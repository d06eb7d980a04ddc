//! Ping-pong: a message bounces between two executors; the figure is time per round trip.

use std::time::{Duration, Instant};

use taskrunner::{SequencedTaskRunner, TaskRunnerExt, TaskTraits};
use tokio::sync::oneshot;

use crate::variants::{pool, tokio_runtime};

/// One of the ping-pong pairs measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pair {
    /// Two sequences of one pool: a task on A posts to B, whose task posts back to A.
    Sequences,
    /// Two sequences of one pool: a task on A calls `b.post_and_reply(..)`; the reply runs on
    /// A and starts the next round.
    SequencesReply,
    /// Two tokio tasks bouncing through oneshot channels.
    TokioOneshot,
    /// Two OS threads bouncing through a pair of crossbeam channels.
    CrossbeamThreads,
}

impl Pair {
    /// Every pair, in the order of the table.
    pub(crate) const ALL: [Pair; 4] =
        [Pair::Sequences, Pair::SequencesReply, Pair::TokioOneshot, Pair::CrossbeamThreads];

    /// The name used in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pair::Sequences => "two taskrunner sequences (post)",
            Pair::SequencesReply => "two taskrunner sequences (post_and_reply)",
            Pair::TokioOneshot => "two tokio tasks (oneshot)",
            Pair::CrossbeamThreads => "two threads (crossbeam-channel)",
        }
    }

    /// Runs `rounds` round trips and returns the time they took.
    pub(crate) fn run(self, rounds: u64, workers: usize) -> Result<Duration, String> {
        match self {
            Pair::Sequences => sequences(rounds, workers),
            Pair::SequencesReply => sequences_reply(rounds, workers),
            Pair::TokioOneshot => tokio_oneshot(rounds, workers),
            Pair::CrossbeamThreads => crossbeam_threads(rounds),
        }
    }
}

/// The ball of the sequence ping-pong: both runners, the rounds left, and where to report.
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

fn sequences(rounds: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let (done, finished) = crossbeam_channel::bounded(1);
    let ball = Ball { a: a.clone(), b, left: rounds, done };
    let start = Instant::now();
    a.post(move || on_a(ball)).map_err(|e| format!("post failed: {e:?}"))?;
    finished.recv().map_err(|_| "a post was rejected mid-game".to_string())?;
    let elapsed = start.elapsed();
    let _report = pool.shutdown();
    Ok(elapsed)
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

fn sequences_reply(rounds: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let (done, finished) = crossbeam_channel::bounded(1);
    let start = Instant::now();
    a.post(move || reply_round(b, rounds, done)).map_err(|e| format!("post failed: {e:?}"))?;
    finished.recv().map_err(|_| "a post was rejected mid-game".to_string())?;
    let elapsed = start.elapsed();
    let _report = pool.shutdown();
    Ok(elapsed)
}

/// What task A sends to task B: where B should send its answer.
struct Serve(oneshot::Sender<Serve>);

fn tokio_oneshot(rounds: u64, workers: usize) -> Result<Duration, String> {
    let rt = tokio_runtime(workers)?;
    let (to_b, mut from_a) = oneshot::channel::<Serve>();
    let b = rt.spawn(async move {
        for _ in 0..rounds {
            let Ok(Serve(reply)) = from_a.await else { return Err("A hung up") };
            let (next_tx, next_rx) = oneshot::channel();
            reply.send(Serve(next_tx)).map_err(|_| "A hung up")?;
            from_a = next_rx;
        }
        Ok(())
    });
    let a = rt.spawn(async move {
        let start = Instant::now();
        let mut to_b = to_b;
        for _ in 0..rounds {
            let (reply_tx, reply_rx) = oneshot::channel();
            to_b.send(Serve(reply_tx)).map_err(|_| "B hung up")?;
            let Ok(Serve(next)) = reply_rx.await else { return Err("B hung up") };
            to_b = next;
        }
        Ok(start.elapsed())
    });
    let elapsed = rt.block_on(a).map_err(|e| e.to_string())??;
    rt.block_on(b).map_err(|e| e.to_string())??;
    Ok(elapsed)
}

fn crossbeam_threads(rounds: u64) -> Result<Duration, String> {
    let (to_b, from_a) = crossbeam_channel::bounded::<u64>(1);
    let (to_a, from_b) = crossbeam_channel::bounded::<u64>(1);
    let b = std::thread::spawn(move || {
        for x in from_a {
            if to_a.send(x).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    for i in 0..rounds {
        to_b.send(i).map_err(|e| e.to_string())?;
        let back = from_b.recv().map_err(|e| e.to_string())?;
        if back != i {
            return Err(format!("crossbeam ping-pong: sent {i}, got {back}"));
        }
    }
    let elapsed = start.elapsed();
    drop(to_b);
    b.join().map_err(|_| "echo thread panicked".to_string())?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_completes() {
        for p in Pair::ALL {
            p.run(50, 2).unwrap_or_else(|e| panic!("{}: {e}", p.name()));
        }
    }
}
