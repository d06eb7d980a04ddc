//! Command-line flags, parsed by hand.

use std::fmt;
use std::path::PathBuf;

/// The help text printed by `--help`.
pub(crate) const HELP: &str = "\
taskrunner-bench: what replacing a mutex with a taskrunner sequence costs or gains,
side by side with std::sync::Mutex, parking_lot::Mutex, a crossbeam-channel thread
and a tokio mpsc actor, measured in the same run.

USAGE:
    cargo run --release -p taskrunner-bench -- [FLAGS]

FLAGS:
    --quick               CI smoke run: few operations and repetitions (under 30 s)
    --sections LIST       comma-separated sections to run, of:
                          throughput,latency,memory,pingpong   [default: all]
    --writers LIST        comma-separated writer-thread counts   [default: 1,2,4,8,16]
    --reps N              repetitions of each throughput run, N >= 1   [default: 5]
    --ops N               operations per throughput run, N >= 1   [default: 1000000]
    --rate N              total paced rate of the latency writers, ops/s   [default: 200000]
    --workers N           threads of the taskrunner pool and the tokio runtime
                          [default: available parallelism]
    --out DIR             where report.md and throughput.svg go
                          [default: target/taskrunner-bench]
    -h, --help            print this help

The report is printed on stdout and written to DIR/report.md with DIR/throughput.svg;
progress goes to stderr.";

/// Which sections of the report to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sections {
    /// Throughput against writer count.
    pub(crate) throughput: bool,
    /// Post-to-start latency at a paced load.
    pub(crate) latency: bool,
    /// Heap bytes and allocations.
    pub(crate) memory: bool,
    /// Round trips between two executors.
    pub(crate) pingpong: bool,
}

/// Everything a run needs to know.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// Whether this is the `--quick` smoke run.
    pub(crate) quick: bool,
    /// Sections to run.
    pub(crate) sections: Sections,
    /// Writer-thread counts of the throughput section.
    pub(crate) writers: Vec<usize>,
    /// Repetitions of every throughput run (and of the latency and ping-pong runs).
    pub(crate) reps: usize,
    /// Operations per throughput run.
    pub(crate) ops: u64,
    /// Operations per latency run, all repetitions together.
    pub(crate) latency_ops: u64,
    /// Paced writers of the latency section.
    pub(crate) latency_writers: usize,
    /// Total paced rate of the latency writers, in operations per second.
    pub(crate) rate: u64,
    /// Round trips per ping-pong run.
    pub(crate) rounds: u64,
    /// Idle runners created to average their heap cost.
    pub(crate) idle_runners: usize,
    /// Posts counted for the per-post memory figures.
    pub(crate) memory_posts: u64,
    /// Threads of the taskrunner pool and of the tokio runtime.
    pub(crate) workers: usize,
    /// Where the report goes; `None` means the default under the target directory.
    pub(crate) out: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Print the help and exit.
    Help,
    /// Run the benchmark.
    Run(Config),
}

/// A command line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError(String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

fn positive<T>(flag: &str, value: &str) -> Result<T, ArgError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match value.trim().parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => err(format!("{flag} expects a whole number of at least 1, got {value:?}")),
    }
}

fn sections(value: &str) -> Result<Sections, ArgError> {
    let mut s = Sections { throughput: false, latency: false, memory: false, pingpong: false };
    for name in value.split(',') {
        match name.trim() {
            "throughput" => s.throughput = true,
            "latency" => s.latency = true,
            "memory" => s.memory = true,
            "pingpong" => s.pingpong = true,
            other => {
                return err(format!(
                    "--sections: unknown section {other:?} (expected throughput, latency, memory or pingpong)"
                ))
            }
        }
    }
    Ok(s)
}

fn writers(value: &str) -> Result<Vec<usize>, ArgError> {
    let mut list = Vec::new();
    for part in value.split(',') {
        let n: usize = positive("--writers", part)?;
        if n > 1024 {
            return err(format!("--writers: {n} writer threads is more than 1024"));
        }
        if !list.contains(&n) {
            list.push(n);
        }
    }
    list.sort_unstable();
    Ok(list)
}

/// Parses the flags (without the program name).
pub(crate) fn parse<I>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = String>,
{
    let mut quick = false;
    let (mut secs, mut ws, mut reps, mut ops, mut rate, mut workers, mut out) =
        (None, None, None, None, None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| match inline.clone().or_else(|| args.next()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => err(format!("{flag} expects a value")),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" if inline.is_none() => quick = true,
            "--sections" => secs = Some(sections(&value("--sections")?)?),
            "--writers" => ws = Some(writers(&value("--writers")?)?),
            "--reps" => reps = Some(positive("--reps", &value("--reps")?)?),
            "--ops" => ops = Some(positive("--ops", &value("--ops")?)?),
            "--rate" => rate = Some(positive("--rate", &value("--rate")?)?),
            "--workers" => workers = Some(positive("--workers", &value("--workers")?)?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            _ => return err(format!("unknown argument {arg:?}")),
        }
    }
    let all = Sections { throughput: true, latency: true, memory: true, pingpong: true };
    let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = if quick {
        Config {
            quick,
            sections: secs.unwrap_or(all),
            writers: ws.unwrap_or_else(|| vec![1, 2, 4, 8, 16]),
            reps: reps.unwrap_or(3),
            ops: ops.unwrap_or(100_000),
            latency_ops: 60_000,
            latency_writers: 8,
            rate: rate.unwrap_or(200_000),
            rounds: 10_000,
            idle_runners: 1_000,
            memory_posts: 10_000,
            workers: workers.unwrap_or(default_workers),
            out,
        }
    } else {
        Config {
            quick,
            sections: secs.unwrap_or(all),
            writers: ws.unwrap_or_else(|| vec![1, 2, 4, 8, 16]),
            reps: reps.unwrap_or(5),
            ops: ops.unwrap_or(1_000_000),
            latency_ops: 1_000_000,
            latency_writers: 8,
            rate: rate.unwrap_or(200_000),
            rounds: 100_000,
            idle_runners: 10_000,
            memory_posts: 100_000,
            workers: workers.unwrap_or(default_workers),
            out,
        }
    };
    Ok(Command::Run(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ArgError> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(c),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn defaults_run_everything() {
        let c = run(&[]).unwrap();
        assert_eq!(c.writers, vec![1, 2, 4, 8, 16]);
        assert!(c.reps >= 5);
        assert!(c.sections.throughput && c.sections.latency && c.sections.memory);
        assert!(c.sections.pingpong);
    }

    #[test]
    fn flags_override_quick_in_any_order() {
        let c =
            run(&["--reps", "7", "--quick", "--writers=4,1,4", "--sections", "latency"]).unwrap();
        assert!(c.quick);
        assert_eq!(c.reps, 7);
        assert_eq!(c.writers, vec![1, 4]);
        assert!(c.sections.latency && !c.sections.throughput && !c.sections.memory);
    }

    #[test]
    fn bad_input_is_rejected_with_a_message() {
        for bad in [
            &["--reps", "0"][..],
            &["--reps"],
            &["--ops", "-3"],
            &["--ops", "many"],
            &["--writers", "1,,2"],
            &["--writers", "2000"],
            &["--sections", "throughput,speed"],
            &["--quick=yes"],
            &["--frobnicate"],
            &["extra"],
        ] {
            let e = run(bad).expect_err(&format!("{bad:?} was accepted"));
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(["--ops".to_string(), "5".into(), "-h".into()]).unwrap(), Command::Help);
    }
}
