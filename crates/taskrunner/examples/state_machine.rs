//! A state machine owned by a sequence: transitions are validated where the state lives, so
//! concurrent callers can never interleave a check and an update; the history is kept.
//!
//! idle → loading → ready → running → stopped, and loading/running → error.
//!
//! Run: `cargo run -p taskrunner --example state_machine`

use std::fmt;
use std::sync::{Arc, Barrier};

use taskrunner::{PostError, SequenceBound, TaskHandle, TaskTraits, ThreadPool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Loading,
    Ready,
    Running,
    Stopped,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InvalidTransition {
    from: State,
    to: State,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid transition {:?} -> {:?}", self.from, self.to)
    }
}

impl std::error::Error for InvalidTransition {}

struct Machine {
    state: State,
    history: Vec<State>,
}

impl Machine {
    fn new() -> Machine {
        Machine { state: State::Idle, history: vec![State::Idle] }
    }

    fn transition(&mut self, to: State) -> Result<State, InvalidTransition> {
        use State::*;
        let allowed = matches!(
            (self.state, to),
            (Idle, Loading)
                | (Loading, Ready)
                | (Loading, Error)
                | (Ready, Running)
                | (Running, Stopped)
                | (Running, Error)
        );
        if !allowed {
            return Err(InvalidTransition { from: self.state, to });
        }
        self.state = to;
        self.history.push(to);
        Ok(to)
    }
}

/// A handle any thread can use; the machine itself never leaves its sequence.
#[derive(Clone)]
struct Service(SequenceBound<Machine>);

type Transition = TaskHandle<Result<State, InvalidTransition>>;

impl Service {
    fn transition(&self, to: State) -> Result<Transition, PostError> {
        self.0.call(move |m| m.transition(to))
    }

    fn history(&self) -> Result<TaskHandle<Vec<State>>, PostError> {
        self.0.call(|m| m.history.clone())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use State::*;
    let pool = ThreadPool::builder().name("fsm").workers(2).build()?;
    let service =
        Service(SequenceBound::new(&pool.sequenced_runner(TaskTraits::default()), Machine::new));

    // Eight threads race through the whole life cycle: each transition is won by exactly one
    // of them, the others get a clear error, and the machine never skips or repeats a state.
    const THREADS: usize = 8;
    let start = Arc::new(Barrier::new(THREADS));
    let racers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (service, start) = (service.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                [Loading, Ready, Running, Stopped]
                    .into_iter()
                    .filter(|&to| service.transition(to).unwrap().join().unwrap().is_ok())
                    .count()
            })
        })
        .collect();
    let won: usize = racers.into_iter().map(|r| r.join().expect("racer")).sum();
    assert_eq!(won, 4, "each transition happens exactly once");
    assert_eq!(service.history()?.join()?, vec![Idle, Loading, Ready, Running, Stopped]);

    // An invalid transition is an error and changes nothing.
    let err = service.transition(Running)?.join()?.unwrap_err();
    println!("{err}");
    assert_eq!(err, InvalidTransition { from: Stopped, to: Running });

    // The error path on a second machine.
    let other =
        Service(SequenceBound::new(&pool.sequenced_runner(TaskTraits::default()), Machine::new));
    other.transition(Loading)?.join()??;
    other.transition(Error)?.join()??;
    assert!(other.transition(Ready)?.join()?.is_err());
    let history = other.history()?.join()?;
    println!("history: {history:?}");
    assert_eq!(history, vec![Idle, Loading, Error]);
    Ok(())
}
