//! The markdown report: what was measured, in tables, with the goals of DESIGN.md §6.

use std::fmt::Write as _;
use std::time::Duration;

use crate::args::Config;
use crate::latency::LatencySummary;
use crate::memory::MemoryRow;
use crate::pingpong::Pair;
use crate::variants::Variant;

/// Throughput samples of every variant at every writer count.
#[derive(Debug, Clone)]
pub(crate) struct Throughput {
    /// Writer counts, ascending.
    pub(crate) writers: Vec<usize>,
    /// Variants, in table order.
    pub(crate) variants: Vec<Variant>,
    /// `samples[v][w]`: M ops/s of every repetition of variant `v` at `writers[w]`.
    pub(crate) samples: Vec<Vec<Vec<f64>>>,
}

impl Throughput {
    /// Median M ops/s of variant `v` at writer index `w`, if any repetition succeeded.
    pub(crate) fn median(&self, v: usize, w: usize) -> Option<f64> {
        stats(&self.samples[v][w]).map(|s| s.0)
    }

    fn index(&self, variant: Variant) -> Option<usize> {
        self.variants.iter().position(|&v| v == variant)
    }

    /// min/max of the medians over the writer counts (1.0 is perfectly flat).
    pub(crate) fn flatness(&self, v: usize) -> Option<f64> {
        let medians: Vec<f64> =
            (0..self.writers.len()).map(|w| self.median(v, w)).collect::<Option<_>>()?;
        let max = medians.iter().copied().fold(f64::MIN, f64::max);
        let min = medians.iter().copied().fold(f64::MAX, f64::min);
        (max > 0.0).then(|| min / max)
    }
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Throughput section.
    pub(crate) throughput: Option<Throughput>,
    /// Latency section: one summary per executor.
    pub(crate) latency: Option<Vec<LatencySummary>>,
    /// Memory section.
    pub(crate) memory: Option<Vec<MemoryRow>>,
    /// Ping-pong section: nanoseconds per round trip of every repetition.
    pub(crate) pingpong: Option<Vec<(Pair, Vec<f64>)>>,
    /// Runs that failed, with why.
    pub(crate) errors: Vec<String>,
}

/// (median, min, max) of the samples, or `None` when there are none.
pub(crate) fn stats(samples: &[f64]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some((median, s[0], s[n - 1]))
}

/// A number with about three significant digits.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn header(out: &mut String, first: &str, columns: &[&str]) {
    let _ = writeln!(out, "| {first} | {} |", columns.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
}

/// Renders the report. `command` is the command line that produced it, `machine` a short
/// description of the machine, `wall` how long the whole run took.
pub(crate) fn render(
    config: &Config,
    results: &Results,
    command: &str,
    machine: &str,
    wall: Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# taskrunner-bench report\n");
    let _ = writeln!(out, "Command: `{command}`  ");
    let _ = writeln!(out, "Machine: {machine}  ");
    let _ = writeln!(
        out,
        "Pool and tokio runtime threads: {}; whole run took {:.1} s{}.\n",
        config.workers,
        wall.as_secs_f64(),
        if config.quick {
            " (`--quick`: smoke-run sizes, figures are indicative only)"
        } else {
            ""
        }
    );
    if let Some(t) = &results.throughput {
        throughput(&mut out, config, t);
    }
    if let Some(l) = &results.latency {
        latency(&mut out, config, l);
    }
    if let Some(m) = &results.memory {
        memory(&mut out, config, m);
    }
    if let Some(p) = &results.pingpong {
        pingpong(&mut out, config, p);
    }
    goals(&mut out, results);
    bounds(&mut out, results);
    if !results.errors.is_empty() {
        let _ = writeln!(out, "## Failed runs\n");
        for e in &results.errors {
            let _ = writeln!(out, "- {e}");
        }
        let _ = writeln!(out);
    }
    out
}

fn throughput(out: &mut String, config: &Config, t: &Throughput) {
    let names: Vec<&str> = t.variants.iter().map(|v| v.name()).collect();
    let _ = writeln!(
        out,
        "## Throughput\n\nM ops/s, median (min–max) of {} repetitions, {} operations per run split \
         across the writer threads; a run ends when every operation has executed and the state \
         checks out. The plain sequence's tasks reach the state through a pointer only they \
         use (no lock, no reference count); the SequenceBound variant keeps it in a \
         `SequenceBound<State>`. The three ideal FIFO queues are not executors but a bound: \
         preallocated slots claimed by compare-and-swap (a writer that keeps losing yields its \
         core, as a sequence's poster does), and a consumer that never parks (`ideal.rs`). The \
         first two carry the key and apply it inline, as the channel baselines do; the queue of \
         tasks carries what the sequence variant posts, a closure, and runs it by an indirect \
         call, as an executor must.\n",
        config.reps, config.ops
    );
    header(out, "writers", &names);
    for (w, writers) in t.writers.iter().enumerate() {
        let cells: Vec<String> = (0..t.variants.len())
            .map(|v| match stats(&t.samples[v][w]) {
                Some((med, min, max)) => format!("{} ({}–{})", num(med), num(min), num(max)),
                None => "failed".to_string(),
            })
            .collect();
        let _ = writeln!(out, "| {writers} | {} |", cells.join(" | "));
    }
    let flat: Vec<String> = (0..t.variants.len())
        .map(|v| t.flatness(v).map_or("–".to_string(), |f| format!("{f:.2}")))
        .collect();
    let _ = writeln!(out, "| flatness (min/max of medians) | {} |\n", flat.join(" | "));

    if let Some(pl) = t.index(Variant::ParkingLot) {
        let _ = writeln!(
            out,
            "Ratio of each median to the `parking_lot::Mutex` median at the same writer count \
             (above 1 is faster):\n"
        );
        header(out, "writers", &names);
        for (w, writers) in t.writers.iter().enumerate() {
            let cells: Vec<String> = (0..t.variants.len())
                .map(|v| match (t.median(v, w), t.median(pl, w)) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{}×", num(a / b)),
                    _ => "–".to_string(),
                })
                .collect();
            let _ = writeln!(out, "| {writers} | {} |", cells.join(" | "));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "![throughput against writers](throughput.svg)\n");
}

fn latency(out: &mut String, config: &Config, rows: &[LatencySummary]) {
    let _ = writeln!(
        out,
        "## Latency, post to start of execution\n\n{} paced writers, {} ops/s in total, {} \
         operations per executor over {} repetitions (histograms merged); µs.\n",
        config.latency_writers, config.rate, config.latency_ops, config.reps
    );
    header(
        out,
        "executor",
        &[
            "ops",
            "reached ops/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "p99 of each rep: median (min–max)",
        ],
    );
    for r in rows {
        let per_rep = match stats(&r.p99_per_rep) {
            Some((med, min, max)) => format!("{} ({}–{})", num(med), num(min), num(max)),
            None => "–".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {per_rep} |",
            r.variant.name(),
            r.count,
            r.achieved_rate,
            num(r.p50),
            num(r.p90),
            num(r.p99),
            num(r.p999),
            num(r.max)
        );
    }
    let _ = writeln!(out);
}

fn memory(out: &mut String, config: &Config, rows: &[MemoryRow]) {
    let _ = writeln!(
        out,
        "## Memory\n\nHeap bytes per idle runner (channel pair for the baselines), averaged over \
         {} of them, fresh and after running one task (carrying one message): a used sequence \
         may keep its queue's block, and a `SequenceBound` always runs its constructor; \
         allocations per post of a 40-byte and a 136-byte closure, counted over {} \
         posts including their execution on every thread; heap bytes per queued 40-byte \
         closure. The baselines send `Box<dyn FnOnce()>`, which is what a general-purpose \
         executor on a channel must do.\n",
        config.idle_runners, config.memory_posts
    );
    header(
        out,
        "executor",
        &[
            "idle bytes",
            "idle bytes after one task",
            "allocs/post (40 B)",
            "allocs/post (136 B)",
            "bytes/queued task",
        ],
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.3} | {:.3} | {:.1} |",
            r.name,
            r.idle_bytes.map_or("–".to_string(), |b| format!("{b:.1}")),
            r.used_idle_bytes,
            r.allocs_small,
            r.allocs_large,
            r.queued_bytes
        );
    }
    let _ = writeln!(out);
}

fn pingpong(out: &mut String, config: &Config, rows: &[(Pair, Vec<f64>)]) {
    let _ = writeln!(
        out,
        "## Ping-pong\n\nns per round trip, median (min–max) of {} repetitions of {} round trips. \
         `post`: a task on A posts to B, whose task posts back; `post_and_reply`: a task on A \
         posts an empty task to B whose reply, back on A, starts the next round.\n",
        config.reps, config.rounds
    );
    header(out, "pair", &["ns / round trip"]);
    for (pair, ns) in rows {
        let cell = match stats(ns) {
            Some((med, min, max)) => format!("{} ({}–{})", num(med), num(min), num(max)),
            None => "failed".to_string(),
        };
        let _ = writeln!(out, "| {} | {cell} |", pair.name());
    }
    let _ = writeln!(out);
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

/// The goals of DESIGN.md §6 that this run measured, each with the figure and whether it was
/// met. Goals whose figures were not measured are left out.
fn goals(out: &mut String, results: &Results) {
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    for seq_variant in [Variant::Sequence, Variant::SequenceBound] {
        throughput_goals(&mut rows, results, seq_variant);
        latency_goals(&mut rows, results, seq_variant);
        memory_goals(&mut rows, results, seq_variant);
    }
    if let Some(p) = &results.pingpong {
        let med =
            |pair| p.iter().find(|(q, _)| *q == pair).and_then(|(_, ns)| stats(ns)).map(|s| s.0);
        for pair in [Pair::SequencesReply, Pair::Sequences] {
            if let (Some(s), Some(t)) = (med(pair), med(Pair::TokioOneshot)) {
                rows.push((
                    format!("{}: round trip ≤ two tokio tasks (oneshot)", pair.name()),
                    format!("{} ns vs {} ns", num(s), num(t)),
                    verdict(s <= t),
                ));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Goals of DESIGN.md §6, as measured in this run\n");
    goal_table(out, rows);
}

/// The throughput and latency goals applied to the ideal FIFO queues of this run: where the
/// ideal hand-off misses a goal, no sequence can meet it on this machine.
fn bounds(out: &mut String, results: &Results) {
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    for v in Variant::IDEAL {
        throughput_goals(&mut rows, results, v);
        latency_goals(&mut rows, results, v);
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## The same goals for the ideal FIFO hand-off\n\nNot goals of the library: the \
         throughput and latency goals applied to the ideal queues of this run (preallocated \
         slots, one shared compare-and-swap per operation, a consumer that never parks; \
         `ideal.rs`). Where the ideal hand-off misses a goal, a sequence built on one shared \
         position cannot be expected to meet it on this machine; the queue of tasks is the \
         closest bound, since it also moves and calls a closure per operation.\n"
    );
    goal_table(out, rows);
}

fn goal_table(out: &mut String, rows: GoalRows<'_>) {
    header(out, "goal", &["measured", "met"]);
    for (goal, measured, met) in rows {
        let _ = writeln!(out, "| {goal} | {measured} | {met} |");
    }
    let _ = writeln!(out);
}

type GoalRows<'a> = Vec<(String, String, &'a str)>;

fn throughput_goals(rows: &mut GoalRows<'_>, results: &Results, v: Variant) {
    let Some(t) = &results.throughput else { return };
    let Some(s) = t.index(v) else { return };
    if let Some(w) = t.writers.iter().position(|&w| w == 16) {
        for (other, factor) in [(Variant::ParkingLot, 1.0), (Variant::TokioActor, 10.0)] {
            let other_median = t.index(other).and_then(|o| t.median(o, w));
            if let (Some(a), Some(b)) = (t.median(s, w), other_median) {
                rows.push((
                    format!("{}: throughput at W = 16 ≥ {factor}× {}", v.name(), other.name()),
                    format!("{}×", num(a / b)),
                    verdict(a >= factor * b),
                ));
            }
        }
    }
    // ≥ 2× the crossbeam thread at every W: the smallest ratio decides.
    if let Some(cb) = t.index(Variant::CrossbeamThread) {
        let ratios: Option<Vec<(usize, f64)>> = t
            .writers
            .iter()
            .enumerate()
            .map(|(w, &writers)| Some((writers, t.median(s, w)? / t.median(cb, w)?)))
            .collect();
        let worst = ratios.and_then(|r| r.into_iter().min_by(|a, b| a.1.total_cmp(&b.1)));
        if let Some((writers, ratio)) = worst {
            rows.push((
                format!(
                    "{}: throughput ≥ 2× {} at every W = {:?}",
                    v.name(),
                    Variant::CrossbeamThread.name(),
                    t.writers
                ),
                format!("{}× (smallest, at W = {writers})", num(ratio)),
                verdict(ratio >= 2.0),
            ));
        }
    }
    if t.writers.len() > 1 {
        if let Some(f) = t.flatness(s) {
            rows.push((
                format!("{}: flatness over W = {:?} ≥ 0.7", v.name(), t.writers),
                format!("{f:.2}"),
                verdict(f >= 0.7),
            ));
        }
    }
}

fn latency_goals(rows: &mut GoalRows<'_>, results: &Results, v: Variant) {
    let Some(l) = &results.latency else { return };
    let Some(s) = l.iter().find(|r| r.variant == v) else { return };
    rows.push((
        format!("{}: latency p50 ≤ 2 µs", v.name()),
        format!("{} µs", num(s.p50)),
        verdict(s.p50 <= 2.0),
    ));
    rows.push((
        format!("{}: latency p99 ≤ 15 µs", v.name()),
        format!("{} µs", num(s.p99)),
        verdict(s.p99 <= 15.0),
    ));
    for o in
        l.iter().filter(|r| matches!(r.variant, Variant::CrossbeamThread | Variant::TokioActor))
    {
        let better = s.p50 < o.p50 && s.p99 < o.p99 && s.p999 < o.p999;
        rows.push((
            format!("{}: latency below {} at p50, p99, p99.9", v.name(), o.variant.name()),
            format!(
                "{} / {} / {} µs vs {} / {} / {}",
                num(s.p50),
                num(s.p99),
                num(s.p999),
                num(o.p50),
                num(o.p99),
                num(o.p999)
            ),
            verdict(better),
        ));
    }
}

fn memory_goals(rows: &mut GoalRows<'_>, results: &Results, v: Variant) {
    let Some(m) = &results.memory else { return };
    let Some(s) = m.iter().find(|r| r.name == v.name()) else { return };
    if let Some(idle) = s.idle_bytes {
        rows.push((
            format!("{}: idle runner ≤ 128 heap bytes", v.name()),
            format!("{idle:.1}"),
            verdict(idle <= 128.0),
        ));
    }
    rows.push((
        format!("{}: 0 allocations per post, closure ≤ 48 B (amortised: under 0.05)", v.name()),
        format!("{:.3}", s.allocs_small),
        verdict(s.allocs_small < 0.05),
    ));
    rows.push((
        format!("{}: ≤ 1 allocation per post, larger closure (amortised: under 1.05)", v.name()),
        format!("{:.3}", s.allocs_large),
        verdict(s.allocs_large < 1.05),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle() {
        assert_eq!(stats(&[]), None);
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
    }
}
