//! Observability: the rejected-task handler, `tracing` spans and events, `metrics` values
//! (features `tracing` and `metrics`).
//!
//! The tracing subscriber and the metrics recorder are process-wide (the tasks run on worker
//! threads), installed once for this binary; each test uses its own runner names and looks
//! only at what carries them.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use taskrunner::{
    Priority, RejectReason, ShutdownBehavior, TaskRunnerExt, TaskTraits, ThreadPool,
    ThreadPoolBuilder,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

// ---- tracing capture -------------------------------------------------------------------

type Fields = HashMap<String, String>;

#[derive(Debug, Clone)]
struct Record {
    /// `span` or `event`.
    kind: &'static str,
    /// The span name, or the event's message.
    name: String,
    level: tracing::Level,
    fields: Fields,
    /// The fields of the span the event was recorded in.
    parent: Option<Fields>,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct Capture(Arc<Mutex<Vec<Record>>>);

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields.clone());
        }
        self.0.lock().unwrap().push(Record {
            kind: "span",
            name: attrs.metadata().name().to_owned(),
            level: *attrs.metadata().level(),
            fields,
            parent: None,
        });
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let parent = ctx.event_span(event).and_then(|s| s.extensions().get::<Fields>().cloned());
        self.0.lock().unwrap().push(Record {
            kind: "event",
            name: fields.remove("message").unwrap_or_default(),
            level: *event.metadata().level(),
            fields,
            parent,
        });
    }
}

fn records() -> &'static Arc<Mutex<Vec<Record>>> {
    static RECORDS: OnceLock<Arc<Mutex<Vec<Record>>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let records = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(records.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
        records
    })
}

/// The captured records whose fields (or whose span's fields) name `runner`.
fn records_of(runner: &str) -> Vec<Record> {
    let of = |fields: &Fields| fields.get("runner").map(String::as_str) == Some(runner);
    records()
        .lock()
        .unwrap()
        .iter()
        .filter(|r| of(&r.fields) || r.parent.as_ref().is_some_and(of))
        .cloned()
        .collect()
}

// ---- metrics capture -------------------------------------------------------------------

/// Accumulated metric values: counters summed, histogram sample counts summed, gauges last.
/// (A snapshot of the debugging recorder resets what it read, so it is taken in one place.)
#[derive(Default)]
struct Metrics {
    snapshotter: Option<Snapshotter>,
    values: HashMap<(String, Vec<(String, String)>), f64>,
}

fn metrics_state() -> &'static Mutex<Metrics> {
    static METRICS: OnceLock<Mutex<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("one recorder per binary");
        Mutex::new(Metrics { snapshotter: Some(snapshotter), values: HashMap::new() })
    })
}

/// The value of `name` summed over the series whose labels include all of `labels`.
fn metric(name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut state = metrics_state().lock().unwrap();
    let snapshot = state.snapshotter.as_ref().unwrap().snapshot();
    for (key, _, _, value) in snapshot.into_vec() {
        let (_, key) = key.into_parts();
        let mut series: Vec<(String, String)> =
            key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
        series.sort();
        let slot = state.values.entry((key.name().to_owned(), series)).or_insert(0.0);
        match value {
            DebugValue::Counter(n) => *slot += n as f64,
            DebugValue::Histogram(samples) => *slot += samples.len() as f64,
            DebugValue::Gauge(v) => *slot = v.into_inner(),
        }
    }
    state
        .values
        .iter()
        .filter(|((n, series), _)| {
            n == name
                && labels.iter().all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// A pool with the subscriber and the recorder installed.
fn pool(builder: ThreadPoolBuilder) -> ThreadPool {
    records();
    metrics_state();
    builder.workers(2).build().unwrap()
}

// ---- rejected handler ------------------------------------------------------------------

type Rejections = Arc<Mutex<Vec<(String, RejectReason, Priority, u32)>>>;

fn rejecting_pool() -> (ThreadPool, Rejections) {
    let seen: Rejections = Arc::default();
    let log = seen.clone();
    let pool = pool(ThreadPool::builder().name("rejecting").rejected_handler(move |r| {
        assert_eq!(r.location().file(), file!());
        log.lock().unwrap().push((
            r.runner().to_owned(),
            r.reason(),
            r.priority(),
            r.location().line(),
        ))
    }));
    (pool, seen)
}

#[test]
fn the_rejected_handler_sees_every_refused_post_with_its_reason_and_location() {
    let (pool, seen) = rejecting_pool();
    let traits = TaskTraits::default().with_priority(Priority::UserBlocking);
    let seq = pool.sequenced_runner_builder().name("rej-seq").traits(traits).build().unwrap();
    let bounded = pool.sequenced_runner_builder().name("rej-bounded").capacity(1).build().unwrap();
    let par = pool.parallel_runner_builder().name("rej-par").build().unwrap();

    // Accepted posts never reach the handler.
    seq.post(|| {}).unwrap();
    seq.wait_idle(Duration::from_secs(10)).unwrap();
    assert!(seen.lock().unwrap().is_empty());

    // Full: block the bounded runner's only place with a task that waits for us.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    bounded
        .post(move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
        })
        .unwrap();
    running.recv().unwrap();
    bounded.post(|| {}).unwrap(); // takes the one place
    let full_line = line!() + 1;
    assert!(bounded.try_post(|| {}).unwrap_err().is_full());
    release.send(()).unwrap();

    seq.shutdown();
    par.shutdown();
    let seq_line = line!() + 1;
    assert!(seq.post(|| {}).unwrap_err().is_closed());
    let par_line = line!() + 1;
    assert!(par.post(|| {}).unwrap_err().is_closed());
    let delayed_line = line!() + 1;
    assert!(seq.post_delayed(Duration::from_secs(60), || {}).unwrap_err().is_closed());

    let seen_now = seen.lock().unwrap().clone();
    assert_eq!(
        seen_now,
        [
            ("rej-bounded".to_owned(), RejectReason::Full, Priority::UserVisible, full_line),
            ("rej-seq".to_owned(), RejectReason::Closed, Priority::UserBlocking, seq_line),
            ("rej-par".to_owned(), RejectReason::Closed, Priority::UserVisible, par_line),
            ("rej-seq".to_owned(), RejectReason::Closed, Priority::UserBlocking, delayed_line),
        ]
    );

    // The pool's own one-off tasks, after the pool shut down, carry the pool's name.
    pool.shutdown();
    let pool_line = line!() + 1;
    assert!(pool.post(|| {}).unwrap_err().is_closed());
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last,
        ("rejecting".to_owned(), RejectReason::Closed, Priority::UserVisible, pool_line)
    );

    // The metric counts the same rejections, by reason.
    assert_eq!(metric("tasks_rejected_total", &[("runner", "rej-seq"), ("reason", "closed")]), 2.0);
    assert_eq!(
        metric("tasks_rejected_total", &[("runner", "rej-bounded"), ("reason", "full")]),
        1.0
    );
    assert_eq!(
        metric("tasks_rejected_total", &[("runner", "rej-par"), ("priority", "user_visible")]),
        1.0
    );
}

#[test]
fn a_panicking_rejected_handler_does_not_take_the_poster_down() {
    let pool = pool(ThreadPool::builder().rejected_handler(|_| panic!("handler")));
    let seq = pool.sequenced_runner(TaskTraits::default());
    seq.shutdown();
    assert!(seq.post(|| {}).unwrap_err().is_closed());
}

// ---- tracing ---------------------------------------------------------------------------

#[test]
fn each_task_runs_in_a_span_linked_to_its_post_event() {
    let pool = pool(ThreadPool::builder());
    let seq = pool.sequenced_runner_builder().name("traced").build().unwrap();
    let lines: Vec<u32> = (0..3)
        .map(|_| {
            let line = line!() + 1;
            seq.post(|| tracing::info!("inside")).unwrap();
            line
        })
        .collect();
    seq.wait_idle(Duration::from_secs(10)).unwrap();

    let records = records_of("traced");
    let spans: Vec<&Record> =
        records.iter().filter(|r| r.kind == "span" && r.name == "task").collect();
    let posts: Vec<&Record> =
        records.iter().filter(|r| r.kind == "event" && r.name == "post").collect();
    // wait_idle posts one more task of its own.
    assert_eq!(spans.len(), 4, "{records:#?}");
    assert_eq!(posts.len(), 4, "{records:#?}");
    for (span, line) in spans.iter().zip(&lines) {
        assert_eq!(span.level, tracing::Level::DEBUG);
        let from = &span.fields["posted_from"];
        assert!(from.starts_with(&format!("{}:{line}:", file!())), "{from} vs line {line}");
        assert_eq!(span.fields["priority"], "user_visible");
        assert!(span.fields["queue_delay_us"].parse::<u64>().is_ok(), "{span:?}");
    }
    // The flow: each span's task_id is the task_id of exactly one post event, in order.
    let span_ids: Vec<&String> = spans.iter().map(|s| &s.fields["task_id"]).collect();
    let post_ids: Vec<&String> = posts.iter().map(|p| &p.fields["task_id"]).collect();
    assert_eq!(span_ids, post_ids);
    assert!(span_ids.windows(2).all(|w| w[0] != w[1]));
    // Events of the task are recorded inside its span.
    let inside = records.iter().filter(|r| r.kind == "event" && r.name == "inside").count();
    assert_eq!(inside, 3);
}

/// Runners that share a name count into one series, and the pool's own one-off tasks count
/// under the pool's name. (A recorder that drops series: `tests/metrics_recency.rs`.)
#[test]
fn runners_sharing_a_name_count_into_one_series() {
    let pool = pool(ThreadPool::builder().name("one-off-pool"));
    let twins: Vec<_> =
        (0..2).map(|_| pool.sequenced_runner_builder().name("twin").build().unwrap()).collect();
    for twin in &twins {
        for _ in 0..4 {
            twin.post(|| {}).unwrap();
        }
        twin.post_with_result(|| ()).unwrap().join().unwrap();
    }
    for _ in 0..3 {
        pool.post_with_result(|| ()).unwrap().join().unwrap();
    }
    // Shutdown joins the workers: every task's metrics are recorded by then.
    pool.shutdown();
    let twin = [("runner", "twin"), ("priority", "user_visible")];
    assert_eq!(metric("tasks_total", &twin), 10.0);
    assert_eq!(metric("task_duration_seconds", &twin), 10.0);
    let one_off = [("runner", "one-off-pool"), ("priority", "user_visible")];
    assert_eq!(metric("tasks_total", &one_off), 3.0);
    assert_eq!(metric("queue_delay_seconds", &one_off), 3.0);
}

#[test]
fn parallel_and_single_thread_tasks_get_spans_too() {
    let pool = pool(ThreadPool::builder());
    let par = pool.parallel_runner_builder().name("traced-par").build().unwrap();
    par.post_with_result(|| ()).unwrap().join().unwrap();
    let single =
        taskrunner::SingleThreadTaskRunner::builder().name("traced-single").build().unwrap();
    single.post_with_result(|| ()).unwrap().join().unwrap();
    single.stop();
    pool.shutdown();
    for runner in ["traced-par", "traced-single"] {
        let spans =
            records_of(runner).iter().filter(|r| r.kind == "span" && r.name == "task").count();
        assert_eq!(spans, 1, "{runner}");
        assert_eq!(metric("tasks_total", &[("runner", runner)]), 1.0, "{runner}");
    }
}

#[test]
fn a_task_longer_than_the_threshold_records_a_warning_in_its_span() {
    let slow = pool(ThreadPool::builder().slow_task_threshold(Duration::ZERO));
    let seq = slow.sequenced_runner_builder().name("slow").build().unwrap();
    seq.post_with_result(|| std::hint::black_box(0)).unwrap().join().unwrap();
    let fast = pool(ThreadPool::builder().slow_task_threshold(Duration::from_secs(3600)));
    let seq = fast.sequenced_runner_builder().name("not-slow").build().unwrap();
    seq.post_with_result(|| ()).unwrap().join().unwrap();
    slow.shutdown();
    fast.shutdown();

    let warnings = |runner| {
        records_of(runner)
            .into_iter()
            .filter(|r| r.name == "slow task" && r.level == tracing::Level::WARN)
            .count()
    };
    assert_eq!(warnings("slow"), 1);
    assert_eq!(warnings("not-slow"), 0);
}

// ---- metrics ---------------------------------------------------------------------------

#[test]
fn metrics_count_tasks_panics_and_delays_per_runner_and_priority() {
    let pool = pool(ThreadPool::builder().panic_handler(|_| {}));
    let traits = TaskTraits::default()
        .with_priority(Priority::BestEffort)
        .with_shutdown_behavior(ShutdownBehavior::BlockShutdown);
    let seq = pool.sequenced_runner_builder().name("measured").traits(traits).build().unwrap();
    for _ in 0..10 {
        seq.post(|| {}).unwrap();
    }
    seq.post(|| panic!("counted")).unwrap();
    // Shutdown joins the workers: every task's metrics are recorded by then.
    pool.shutdown();

    let labels = [("runner", "measured"), ("priority", "best_effort")];
    assert_eq!(metric("tasks_total", &labels), 11.0);
    assert_eq!(metric("task_panics_total", &labels), 1.0);
    assert_eq!(metric("task_duration_seconds", &labels), 11.0, "one sample per task");
    assert_eq!(metric("queue_delay_seconds", &labels), 11.0, "one sample per task");
    assert_eq!(metric("queue_depth", &[("runner", "measured")]), 0.0);
    assert_eq!(metric("tasks_total", &[("runner", "measured"), ("priority", "user_visible")]), 0.0);
}

#[test]
fn the_post_location_type_is_static() {
    // The report hands out `&'static Location`, so a handler may keep it.
    fn keep(_: &'static Location<'static>) {}
    let pool = pool(ThreadPool::builder().rejected_handler(|r| keep(r.location())));
    pool.shutdown();
    assert!(pool.post(|| {}).is_err());
}
