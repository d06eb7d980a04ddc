//! loom models of the core protocols. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p taskrunner --lib --release`.

mod loom_handle;
mod loom_sequence;
mod loom_shutdown;

/// A model builder with a preemption bound that keeps each model within seconds while still
/// covering every interleaving with up to that many forced preemptions.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}
