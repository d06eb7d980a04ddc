//! Ping-pong: a message bounces between two executors; the figure is time per round trip.

use std::time::{Duration, Instant};

use taskrunner::TaskTraits;
use tokio::sync::oneshot;

use crate::games;
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

fn sequences(rounds: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let elapsed = games::post_rounds(&a, &b, rounds)?;
    let _report = pool.shutdown();
    Ok(elapsed)
}

fn sequences_reply(rounds: u64, workers: usize) -> Result<Duration, String> {
    let pool = pool(workers)?;
    let a = pool.sequenced_runner(TaskTraits::default());
    let b = pool.sequenced_runner(TaskTraits::default());
    let elapsed = games::reply_rounds(&a, &b, rounds)?;
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
