//! Custom handlers: a pool-wide panic handler that sees every panic once, with the runner's
//! name and the line that posted the task; and rejected posts handled at the call site, where
//! `PostError` hands the task back to be run elsewhere.
//!
//! Run: `cargo run -p taskrunner --example custom_handlers`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use taskrunner::{PostError, TaskRunner, TaskRunnerExt, TaskTraits, ThreadPool};

const THREADS: usize = 4;
const EACH: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The pool's handler reports every panic; silence the standard hook's duplicate message.
    std::panic::set_hook(Box::new(|_| {}));
    // The panic handler: called once per panic, on the worker, after the task unwound.
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let pool = ThreadPool::builder()
        .name("handlers")
        .workers(2)
        .panic_handler(move |report| {
            sink.lock().unwrap().push((report.runner().to_owned(), report.location().line()));
        })
        .build()?;
    let parser = pool.sequenced_runner_builder().name("parser").build()?;

    let parsed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (parser, parsed, start) = (parser.clone(), parsed.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut failures = 0;
                let mut panic_line = 0;
                for i in 0..EACH {
                    let input = if i % 10 == 0 { format!("bad{t}") } else { i.to_string() };
                    let parsed = parsed.clone();
                    panic_line = line!() + 1;
                    let handle = parser.post_with_result(move || {
                        let n: usize = input.parse().expect("not a number");
                        parsed.fetch_add(1, Ordering::SeqCst);
                        n
                    });
                    if let Err(e) = handle.unwrap().join() {
                        assert_eq!(
                            e.panic_message(),
                            Some("not a number: ParseIntError { kind: InvalidDigit }")
                        );
                        failures += 1;
                    }
                }
                (failures, panic_line)
            })
        })
        .collect();
    let results: Vec<(usize, u32)> =
        threads.into_iter().map(|t| t.join().expect("thread")).collect();
    let failures: usize = results.iter().map(|r| r.0).sum();
    let panic_line = results[0].1;
    parser.wait_idle(Duration::from_secs(30))?; // the handler runs before the next task
    let reports = reports.lock().unwrap().clone();
    println!("{} panics reported, e.g. {:?}", reports.len(), reports.first());
    assert_eq!(failures, THREADS * EACH / 10);
    assert_eq!(reports.len(), failures, "each panic reported exactly once");
    assert!(reports.iter().all(|(runner, line)| runner == "parser" && *line == panic_line));
    assert_eq!(parsed.load(Ordering::SeqCst), THREADS * EACH - failures, "the runner went on");

    // Rejections, handled where the post is made: the error hands the task back.
    let primary = pool.sequenced_runner(TaskTraits::default());
    let fallback = pool.sequenced_runner(TaskTraits::default());
    primary.shutdown();
    let ran_on_fallback = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let r = ran_on_fallback.clone();
        match primary.post(move || {
            r.fetch_add(1, Ordering::SeqCst);
        }) {
            Ok(()) => unreachable!("primary is shut down"),
            Err(rejected @ PostError::Closed(_)) => {
                eprintln!("rejected: {rejected}; running it on the fallback");
                fallback.post_task(rejected.into_task())?;
            }
            Err(other) => return Err(other.into()),
        }
    }
    fallback.wait_idle(Duration::from_secs(30))?;
    assert_eq!(ran_on_fallback.load(Ordering::SeqCst), 10);
    assert!(primary.is_closed());
    Ok(())
}
