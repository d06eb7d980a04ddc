//! A recorder that forgets series (feature `metrics`): exporters may drop a series that stayed
//! idle (metrics-exporter-prometheus's idle timeout), and an update through a handle kept from
//! before would then be lost. The runners keep only their series' keys and look the series up
//! on every update, so a runner that goes on after its series was dropped is counted again.
//! (Its own binary: the recorder is process-wide.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use taskrunner::{TaskRunnerExt, ThreadPool};

/// Counts `tasks_total` per runner label; `forget` reads and drops every series.
#[derive(Default)]
struct Forgetful {
    tasks: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Forgetful {
    fn forget(&self) -> HashMap<String, u64> {
        let series = std::mem::take(&mut *self.tasks.lock().unwrap());
        series.into_iter().map(|(runner, n)| (runner, n.load(Ordering::SeqCst))).collect()
    }
}

impl Recorder for &'static Forgetful {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != "tasks_total" {
            return Counter::noop();
        }
        let runner = key.labels().find(|l| l.key() == "runner").map(|l| l.value().to_owned());
        let cell =
            self.tasks.lock().unwrap().entry(runner.unwrap_or_default()).or_default().clone();
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn a_runner_is_counted_again_after_the_recorder_dropped_its_series() {
    let recorder: &'static Forgetful = Box::leak(Box::default());
    metrics::set_global_recorder(recorder).unwrap();
    let pool = ThreadPool::builder().workers(2).build().unwrap();
    let seq = pool.sequenced_runner_builder().name("forgotten").build().unwrap();
    let run_five = || {
        for _ in 0..4 {
            seq.post(|| {}).unwrap();
        }
        seq.post_with_result(|| ()).unwrap().join().unwrap();
    };
    run_five();
    // Each task's metrics are recorded after it returns: the fifth may still be on its way.
    // A sixth task, joined, runs after the fifth was recorded.
    seq.post_with_result(|| ()).unwrap().join().unwrap();
    let first = recorder.forget().get("forgotten").copied().unwrap_or(0);
    assert!((5..=6).contains(&first), "first read {first}");
    run_five();
    // Shutdown joins the workers: every task's metrics are recorded by then.
    pool.shutdown();
    let second = recorder.forget().get("forgotten").copied().unwrap_or(0);
    assert_eq!(first + second, 11, "first read {first}, second {second}");
}
