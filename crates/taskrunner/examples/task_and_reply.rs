//! Task and reply: a sequence hands slow work to other runners and gets each result back on
//! itself, in a reply, without a lock and without blocking.
//!
//! A "controller" sequence owns the job table. For each request it posts the work to one of
//! several worker sequences with `post_and_reply`; the reply runs back on the controller and
//! records the result there. Requests arrive from several threads at once.
//!
//! Run: `cargo run -p taskrunner --example task_and_reply`

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use taskrunner::{
    SequenceToken, SequencedTaskRunner, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool,
};

const CLIENTS: usize = 4;
const JOBS_PER_CLIENT: u64 = 250;

/// Owned by the controller sequence (a `SequenceBound`): only its tasks touch it, so it needs
/// no lock.
struct JobTable {
    results: HashMap<u64, u64>,
    replies_on_controller: u64,
    expected: u64,
    all_done: mpsc::Sender<()>,
}

fn slow_square(n: u64) -> u64 {
    (0..n).fold(0, |acc, _| acc + n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = ThreadPool::builder().name("reply").workers(2).build()?;
    let controller = pool.sequenced_runner(TaskTraits::default());
    let workers: Arc<Vec<SequencedTaskRunner>> =
        Arc::new((0..3).map(|_| pool.sequenced_runner(TaskTraits::default())).collect());
    let total = CLIENTS as u64 * JOBS_PER_CLIENT;
    let (all_done, all_done_rx) = mpsc::channel();
    let table = taskrunner::SequenceBound::new(&controller, move || JobTable {
        results: HashMap::new(),
        replies_on_controller: 0,
        expected: total,
        all_done,
    });
    let controller_token = controller.sequence_token();

    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|c| {
            let (table, workers, start) = (table.clone(), workers.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..JOBS_PER_CLIENT {
                    let job = c * JOBS_PER_CLIENT + i;
                    let (worker, t) =
                        (workers[job as usize % workers.len()].clone(), table.clone());
                    // On the controller: hand the work out, take the answer back in a reply.
                    table
                        .post(move |_| {
                            worker
                                .post_and_reply(
                                    move || slow_square(job),
                                    move |square| {
                                        // Back on the controller sequence.
                                        let here = SequenceToken::current();
                                        t.post(move |table| {
                                            table.results.insert(job, square);
                                            if here == controller_token {
                                                table.replies_on_controller += 1;
                                            }
                                            if table.results.len() as u64 == table.expected {
                                                let _ = table.all_done.send(());
                                            }
                                        })
                                        .expect("controller open");
                                    },
                                )
                                .expect("worker open");
                        })
                        .expect("controller open");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }

    all_done_rx.recv_timeout(Duration::from_secs(10))?;
    let done = table.call(|t| t.results.len() as u64)?.join()?;
    let (correct, on_controller) = table
        .call(|t| (t.results.iter().all(|(&n, &sq)| sq == n * n), t.replies_on_controller))?
        .join()?;
    println!("{done} jobs answered; every reply ran on the controller: {}", on_controller == total);
    assert_eq!(done, total);
    assert!(correct);
    assert_eq!(on_controller, total);
    Ok(())
}
