//! Serves the pool's metrics on `http://127.0.0.1:PORT/metrics` (Prometheus text format) with
//! `metrics-exporter-prometheus`, runs some load, scrapes the endpoint with a plain HTTP
//! request and checks that the counters match the tasks it ran.
//!
//! Run: `cargo run -p taskrunner --features metrics --example prometheus_metrics [PORT]`
//! (without a port it picks a free one). The integration test `tests/prometheus.rs` includes
//! this file and calls the same functions.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use taskrunner::{ParallelTaskRunner, Priority, TaskRunnerExt, TaskTraits, ThreadPool};

/// What [`run_load`] did, to compare with what the endpoint reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Tasks run on the sequenced runner `ingest`.
    pub ingest: u64,
    /// Tasks run on the parallel runner `render`.
    pub render: u64,
    /// Posts rejected by `ingest` after it was shut down.
    pub rejected: u64,
}

/// A free loopback address: bind port 0, read the port, let it go.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Installs the Prometheus recorder (process-wide) with its HTTP listener on `addr`.
pub fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    PrometheusBuilder::new().with_http_listener(addr).install()?;
    Ok(())
}

/// Runs `ingest` tasks on a sequenced runner and `render` tasks on a parallel runner, then
/// rejects `rejected` posts, and shuts the pool down: every task's metrics are recorded when
/// this returns.
pub fn run_load(ingest: u64, render: u64, rejected: u64) -> Load {
    let pool = ThreadPool::builder().name("metrics-demo").workers(2).build().expect("pool");
    let seq = pool
        .sequenced_runner_builder()
        .name("ingest")
        .traits(TaskTraits::default().with_priority(Priority::UserBlocking))
        .build()
        .expect("sequenced runner");
    let par: ParallelTaskRunner = pool
        .parallel_runner_builder()
        .name("render")
        .max_concurrency(2)
        .build()
        .expect("parallel runner");
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..ingest {
        let tx = tx.clone();
        seq.post(move || tx.send(i).unwrap()).expect("post to ingest");
    }
    for i in 0..render {
        let tx = tx.clone();
        par.post(move || tx.send(i).unwrap()).expect("post to render");
    }
    drop(tx);
    assert_eq!(rx.iter().count() as u64, ingest + render, "every task ran");
    seq.shutdown();
    let refused = (0..rejected).filter(|_| seq.post(|| {}).is_err()).count() as u64;
    assert_eq!(refused, rejected, "a shut-down runner refuses every post");
    // Shutdown joins the workers: each task's metrics are recorded after it returns.
    let report = pool.shutdown();
    assert_eq!(report.skipped(), 0, "{report:?}");
    assert!(!report.timed_out(), "{report:?}");
    Load { ingest, render, rejected }
}

/// `GET /metrics` over a plain TCP connection; the response body.
pub fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of HTTP headers"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("unexpected response: {head}")));
    }
    Ok(body.to_owned())
}

/// Scrapes until the endpoint answers, at most `attempts` times (no sleeping: a refused
/// connection fails at once, and the listener is bound before `serve` returns anyway).
pub fn scrape_with_retries(addr: SocketAddr, attempts: usize) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    for _ in 0..attempts {
        match scrape(addr) {
            Ok(body) => return Ok(body),
            Err(error) if Instant::now() < deadline => {
                last = Some(error);
                std::thread::yield_now();
            }
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no attempt made")))
}

/// The value of the sample `name{..}` whose labels include every `key="value"` of `labels`.
/// A body without it reads as 0.
pub fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let rest = if rest.is_empty() { "" } else { rest.strip_prefix('{')? };
            labels
                .iter()
                .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Checks the scraped body against the load.
pub fn check(body: &str, load: Load) -> Result<(), String> {
    let expect = [
        ("tasks_total", vec![("runner", "ingest"), ("priority", "user_blocking")], load.ingest),
        ("tasks_total", vec![("runner", "render"), ("priority", "user_visible")], load.render),
        ("task_duration_seconds_count", vec![("runner", "ingest")], load.ingest),
        ("queue_delay_seconds_count", vec![("runner", "render")], load.render),
        ("task_panics_total", vec![("runner", "ingest")], 0),
        (
            "tasks_rejected_total",
            vec![("runner", "ingest"), ("reason", "closed"), ("priority", "user_blocking")],
            load.rejected,
        ),
    ];
    for (name, labels, want) in expect {
        let got = sample(body, name, &labels);
        if got != want as f64 {
            return Err(format!("{name}{labels:?}: expected {want}, scraped {got}\n{body}"));
        }
    }
    Ok(())
}

#[allow(dead_code)] // the test includes this file and calls the functions above
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = match std::env::args().nth(1) {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?)),
        None => free_loopback_addr()?,
    };
    serve(addr)?;
    println!("serving http://{addr}/metrics");
    let load = run_load(1_000, 500, 3);
    let body = scrape_with_retries(addr, 1_000)?;
    check(&body, load)?;
    for line in body.lines().filter(|l| l.starts_with("tasks_") || l.starts_with("queue_depth")) {
        println!("{line}");
    }
    println!(
        "ok: the endpoint reports {} + {} tasks and {} rejections",
        load.ingest, load.render, load.rejected
    );
    Ok(())
}
