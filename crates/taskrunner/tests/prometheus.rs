//! The `prometheus_metrics` example's server, scraped over real HTTP (feature `metrics`).

#[path = "../examples/prometheus_metrics.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[test]
fn the_endpoint_reports_the_tasks_that_ran() {
    let addr = example::free_loopback_addr().unwrap();
    example::serve(addr).unwrap();

    // Before any load: the endpoint answers, and no task of these runners is counted yet.
    let before = example::scrape_with_retries(addr, 1_000).unwrap();
    assert_eq!(example::sample(&before, "tasks_total", &[("runner", "ingest")]), 0.0);

    let load = example::run_load(200, 100, 2);
    let body = example::scrape_with_retries(addr, 1_000).unwrap();
    example::check(&body, load).unwrap();

    // The checker itself catches a mismatch.
    let wrong = example::Load { ingest: load.ingest + 1, ..load };
    assert!(example::check(&body, wrong).is_err());
}
