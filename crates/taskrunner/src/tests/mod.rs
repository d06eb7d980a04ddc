//! loom models of the core protocols. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p taskrunner --lib --release`.

mod loom_event_bus;
mod loom_exclusive;
mod loom_handle;
mod loom_parallel;
mod loom_queue;
mod loom_sequence;
mod loom_shutdown;
mod loom_timer;

/// A model builder with a preemption bound that keeps each model within seconds while still
/// covering every interleaving with up to that many forced preemptions (the
/// `LOOM_MAX_PREEMPTIONS` environment variable overrides it for a deeper run).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}
