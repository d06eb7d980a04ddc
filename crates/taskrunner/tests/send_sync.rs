//! Auto traits of the public types.

use taskrunner::*;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<ThreadPool>();
    send_sync::<SequencedTaskRunner>();
    send_sync::<RunnerHandle>();
    send_sync::<TaskHandle<u64>>();
    send_sync::<TaskError>();
    send_sync::<WaitError>();
    send_sync::<BuildError>();
    send_sync::<ShutdownReport>();
    send_sync::<TaskTraits>();
    send_sync::<SequenceToken>();
    send_sync::<DelayedHandle>();
    send_sync::<RepeatingHandle>();
    send_sync::<Repeat>();
    send_sync::<MissedTickPolicy>();
    send_sync::<StopReason>();
    send_sync::<RealClock>();
    send_sync::<TimerTarget>();
    #[cfg(feature = "test-util")]
    {
        send_sync::<taskrunner::test_util::TestEnvironment>();
        send::<taskrunner::test_util::TestEnvironmentBuilder>();
    }
    send_sync::<Task>();
    send_sync::<PostError>();
    send::<ThreadPoolBuilder>();
    send::<SequencedRunnerBuilder>();
}

#[test]
fn runners_are_object_safe() {
    let pool = ThreadPool::builder().workers(1).build().unwrap();
    let runners: Vec<Box<dyn TaskRunner>> =
        vec![Box::new(pool.sequenced_runner(TaskTraits::default())), Box::new(pool.clone())];
    for runner in &runners {
        // The helpers work through a trait object too.
        assert_eq!(runner.post_with_result(|| 1).unwrap().join().unwrap(), 1);
    }
}
