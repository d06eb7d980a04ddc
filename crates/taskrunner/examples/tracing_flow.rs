//! Tasks traced with `tracing-subscriber`: every task runs in a `task` span (runner,
//! priority, posted_from, queue_delay_us, task_id); every accepted post records a `post`
//! event with the same `task_id`, inside the span of whoever posted it, so the output shows
//! the flow from `parse` to `store`; a task over the pool's slow-task threshold records a
//! warning.
//!
//! Run: `cargo run -p taskrunner --features tracing --example tracing_flow`

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::{TaskRunnerExt, ThreadPool};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

/// Writes each line to stdout and keeps a copy for the checks at the end.
#[derive(Clone, Default)]
struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stdout().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = Tee;
    fn make_writer(&'a self) -> Tee {
        self.clone()
    }
}

/// The `task_id=N` values of the lines that contain `marker`.
fn task_ids(output: &str, marker: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| line.contains(marker))
        .filter_map(|line| {
            let at = line.rfind("task_id=")? + "task_id=".len();
            Some(line[at..].chars().take_while(char::is_ascii_digit).collect())
        })
        .collect()
}

fn main() {
    let tee = Tee::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(tee.clone())
        .init();

    let pool = ThreadPool::builder()
        .name("app")
        .workers(2)
        .slow_task_threshold(Duration::from_millis(5))
        .build()
        .expect("pool");
    let parse = pool.sequenced_runner_builder().name("parse").build().expect("parse");
    let store = pool.sequenced_runner_builder().name("store").build().expect("store");

    let (done, finished) = std::sync::mpsc::channel();
    for record in ["a=1", "b=2", "c=3"] {
        let store = store.clone();
        let done = done.clone();
        parse
            .post(move || {
                let (key, value) = record.split_once('=').expect("key=value");
                tracing::info!(key, "parsed");
                let (key, value) = (key.to_owned(), value.to_owned());
                // This post's `post` event is recorded inside the `parse` task's span.
                store
                    .post(move || {
                        if key == "c" {
                            // Stands for an expensive write: over the 5 ms threshold.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        tracing::info!(key, value, "stored");
                        done.send(()).expect("main waits");
                    })
                    .expect("store is open");
            })
            .expect("parse is open");
    }
    drop(done);
    assert_eq!(finished.iter().count(), 3, "every record stored");
    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0);

    let output = String::from_utf8(tee.0.lock().unwrap().clone()).expect("utf-8 output");
    // Six tasks (three parse, three store), each posted once and run once in its own span.
    let posts = task_ids(&output, " post ");
    let mut spans = task_ids(&output, " close ");
    assert_eq!(posts.len(), 6, "post events:\n{output}");
    spans.sort();
    let mut sorted_posts = posts.clone();
    sorted_posts.sort();
    assert_eq!(spans, sorted_posts, "each post event's task_id names one task span");
    assert!(output.matches("runner=\"store\"").count() >= 3, "spans name their runner");
    assert_eq!(output.matches("slow task").count(), 1, "one slow task:\n{output}");
    println!("ok: 6 posts linked to 6 task spans, 1 slow-task warning");
}
