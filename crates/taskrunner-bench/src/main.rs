//! `taskrunner-bench`: what replacing a mutex with a taskrunner sequence costs or gains.
//!
//! `cargo run --release -p taskrunner-bench` runs every section and prints a markdown report
//! (also written, with an SVG plot, under `target/taskrunner-bench/`). Every figure is
//! measured in the same run as the baselines it is compared with — `std::sync::Mutex`,
//! `parking_lot::Mutex`, a thread fed by `crossbeam-channel` and a tokio mpsc actor — and the
//! runs are interleaved (repetition, then writer count, then variant) so that the noise of a
//! shared machine spreads over all of them. `--help` lists the flags.
//!
//! Layout: `args` (flags), `workload` (the state and the operation), `variants` (throughput
//! runs), `ideal` (the ideal FIFO hand-off, a bound on any sequence), `round_trip` (what a
//! cache line costs between two cores at the moment), `latency`, `memory` (with the counting
//! allocator), `pingpong`, `report` (markdown) and `svg` (the plot).

mod args;
mod games;
mod ideal;
mod latency;
mod memory;
mod pingpong;
mod report;
mod round_trip;
mod seq_state;
mod svg;
mod variants;
mod workload;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use args::{Command, Config};
use pingpong::Pair;
use report::{Results, Throughput};
use variants::Variant;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let config = match args::parse(raw.clone()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            println!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\nRun with --help to see the flags.");
            return ExitCode::from(2);
        }
    };
    let command = if raw.is_empty() {
        "cargo run --release -p taskrunner-bench".to_string()
    } else {
        format!("cargo run --release -p taskrunner-bench -- {}", raw.join(" "))
    };

    let machine = machine();
    let trip_before = round_trip::line_round_trip_ns(ROUND_TRIP_LIMIT);
    let started = Instant::now();
    let mut progress = Progress::new(&config, started);
    let results = run(&config, &mut progress);
    progress.finish();
    let wall = started.elapsed();
    let trip_after = round_trip::line_round_trip_ns(ROUND_TRIP_LIMIT);
    let machine = format!(
        "{machine}; one cache line's round trip between two threads at start / end {} / {} ns",
        round_trip::describe(trip_before),
        round_trip::describe(trip_after)
    );

    let text = report::render(&config, &results, &command, &machine, wall);
    println!("{text}");
    if let Err(e) = write_files(&config, &results, &text) {
        eprintln!("error: could not write the report: {e}");
        return ExitCode::FAILURE;
    }
    if results.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} run(s) failed; see the report.", results.errors.len());
        ExitCode::FAILURE
    }
}

fn run(config: &Config, progress: &mut Progress) -> Results {
    let mut results = Results::default();
    let s = config.sections;
    if s.throughput {
        results.throughput = Some(throughput(config, progress, &mut results.errors));
    }
    if s.latency {
        results.latency = Some(latency(config, progress, &mut results.errors));
    }
    if s.memory {
        progress.step("memory");
        match memory::measure(config.idle_runners, config.memory_posts, config.workers) {
            Ok(rows) => results.memory = Some(rows),
            Err(e) => results.errors.push(format!("memory: {e}")),
        }
    }
    if s.pingpong {
        results.pingpong = Some(pingpong(config, progress, &mut results.errors));
    }
    results
}

fn throughput(config: &Config, progress: &mut Progress, errors: &mut Vec<String>) -> Throughput {
    let variants = Variant::ALL.to_vec();
    let mut samples = vec![vec![Vec::new(); config.writers.len()]; variants.len()];
    for rep in 0..config.reps {
        for (w, &writers) in config.writers.iter().enumerate() {
            for v in rotated(variants.len(), rep) {
                let variant = &variants[v];
                progress.step(&format!(
                    "throughput rep {}/{} W={writers} {}",
                    rep + 1,
                    config.reps,
                    variant.name()
                ));
                match variant.run_throughput(writers, config.ops, config.workers) {
                    Ok(d) => samples[v][w].push(config.ops as f64 / d.as_secs_f64() / 1e6),
                    Err(e) => {
                        errors.push(format!("throughput {} W={writers}: {e}", variant.name()))
                    }
                }
            }
        }
    }
    Throughput { writers: config.writers.clone(), variants, samples }
}

fn latency(
    config: &Config,
    progress: &mut Progress,
    errors: &mut Vec<String>,
) -> Vec<latency::LatencySummary> {
    let executors = Variant::EXECUTORS;
    let mut merged: Vec<_> =
        executors.iter().map(|_| (latency::histogram(), Duration::ZERO, Vec::new())).collect();
    let per_rep = (config.latency_ops / config.reps as u64).max(1);
    for rep in 0..config.reps {
        for i in rotated(executors.len(), rep) {
            let variant = &executors[i];
            progress.step(&format!("latency rep {}/{} {}", rep + 1, config.reps, variant.name()));
            match latency::run(
                *variant,
                config.latency_writers,
                per_rep,
                config.rate,
                config.workers,
            ) {
                Ok((h, posting)) => {
                    if let Err(e) = merged[i].0.add(&h) {
                        errors.push(format!("latency {}: {e:?}", variant.name()));
                    }
                    merged[i].1 += posting;
                    merged[i].2.push(h.value_at_quantile(0.99) as f64 / 1000.0);
                }
                Err(e) => errors.push(format!("latency {}: {e}", variant.name())),
            }
        }
    }
    executors
        .iter()
        .zip(&merged)
        .map(|(v, (h, posting, p99s))| latency::summarise(*v, h, *posting, p99s.clone()))
        .collect()
}

fn pingpong(
    config: &Config,
    progress: &mut Progress,
    errors: &mut Vec<String>,
) -> Vec<(Pair, Vec<f64>)> {
    let mut rows: Vec<(Pair, Vec<f64>)> = Pair::ALL.iter().map(|&p| (p, Vec::new())).collect();
    for rep in 0..config.reps {
        for i in rotated(rows.len(), rep) {
            let (pair, ns) = &mut rows[i];
            progress.step(&format!("ping-pong rep {}/{} {}", rep + 1, config.reps, pair.name()));
            match pair.run(config.rounds, config.workers) {
                Ok(d) => ns.push(d.as_nanos() as f64 / config.rounds as f64),
                Err(e) => errors.push(format!("ping-pong {}: {e}", pair.name())),
            }
        }
    }
    rows
}

/// The indices `0..n` in the order repetition `rep` runs them: starting at `rep % n`, so that
/// no variant always runs first, right after the previous section or the last variant of the
/// previous repetition (whose threads may have just spun on both cores).
fn rotated(n: usize, rep: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + rep) % n)
}

/// Writes report.md and, when there is a throughput section, throughput.svg.
fn write_files(config: &Config, results: &Results, text: &str) -> std::io::Result<()> {
    let dir = config.out.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), text)?;
    if let Some(t) = &results.throughput {
        std::fs::write(dir.join("throughput.svg"), svg::render(t))?;
    }
    eprintln!("report written to {}", dir.join("report.md").display());
    Ok(())
}

/// `$CARGO_TARGET_DIR/taskrunner-bench` when that is set, else the workspace's
/// `target/taskrunner-bench`.
fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("taskrunner-bench")
}

/// The most time each cache-line round-trip measurement takes (`round_trip`).
const ROUND_TRIP_LIMIT: Duration = Duration::from_millis(50);

/// A short description of the machine: logical CPUs, CPU model, memory, and the load
/// average (other work on a shared machine is the main source of noise).
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let mem = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or("unknown memory".to_string(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let load = read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let load =
        if load.is_empty() { String::new() } else { format!("; load average at start {load}") };
    format!(
        "{cpus} logical CPUs, {model}, {mem}, {} {}{load}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// The progress line on stderr.
#[derive(Debug)]
struct Progress {
    done: usize,
    total: usize,
    started: Instant,
    /// On a terminal the line is redrawn in place; elsewhere (CI logs) each step is a line.
    tty: bool,
}

impl Progress {
    fn new(config: &Config, started: Instant) -> Self {
        let s = config.sections;
        let total =
            usize::from(s.throughput) * config.reps * config.writers.len() * Variant::ALL.len()
                + usize::from(s.latency) * config.reps * Variant::EXECUTORS.len()
                + usize::from(s.memory)
                + usize::from(s.pingpong) * config.reps * Pair::ALL.len();
        Progress { done: 0, total, started, tty: std::io::stderr().is_terminal() }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        let mut err = std::io::stderr().lock();
        let (start, end) = if self.tty { ("\r\x1b[2K", "") } else { ("", "\n") };
        let _ = write!(
            err,
            "{start}[{:>3}/{}] {:>6.1}s  {what}{end}",
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        let start = if self.tty { "\r\x1b[2K" } else { "" };
        eprintln!(
            "{start}done: {} runs in {:.1}s",
            self.done,
            self.started.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn each_repetition_starts_one_variant_later_and_runs_them_all() {
        let orders: Vec<Vec<usize>> = (0..4).map(|rep| rotated(3, rep).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
    }
}
