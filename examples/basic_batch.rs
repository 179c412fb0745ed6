//! Basic batch processing: the Go README's first program, in Rust.
//!
//! A [`BatchExecutor`] over a [`ReqwestDriver`] runs 100 GETs with at most
//! 50 in flight, under a 30-second batch deadline, and prints one line per
//! request — in input order, each with exactly one outcome — then the
//! executor's stats.
//!
//! ```text
//! cargo run --release --example basic_batch                        # embedded server
//! cargo run --release --example basic_batch -- http://127.0.0.1:8080 --requests 500
//! ```
//!
//! Against the embedded server a few requests are scripted to answer 404
//! or 503 and the rest to take 0–40 ms, so the table has something to show.
//! A 404 or a 503 is a *response* (the request made the round trip); only
//! transport failures are errors — see `BatchResult::status_failures` for
//! the HTTP-level view.
//!
//! Differences from the Go program worth knowing: no request is built
//! ahead of time (inputs are pulled lazily, so a bad URL fails in its own
//! slot), bodies are read inside the workers (no `Close` to forget, no
//! connection held while results wait), and the deadline cancels requests
//! still in flight instead of leaving them running.

use std::process::ExitCode;
use std::time::Duration;

use batchclient_examples::{
    Block, Cli, Opt, Spec, count, dur, error_line, pct, report_error, target_or_embedded,
};
use httpclient_batch::{BatchExecutor, BatchOptions, Outcome};
use httpclient_core::Request;
use httpclient_driver_reqwest::ReqwestDriver;

const SPEC: Spec = Spec {
    name: "basic_batch",
    about: "A batch of GETs through BatchExecutor<ReqwestDriver>: one line per request, then the stats.",
    options: &[
        Opt::value(
            "requests",
            "N",
            "GETs in the batch (default 100; 20 with --short)",
        ),
        Opt::value("workers", "W", "requests in flight at once (default 50)"),
    ],
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse(SPEC);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report_error(e.as_ref()),
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = cli.get("requests", cli.pick(100, 20));
    let workers: usize = cli.get("workers", 50);
    let target = target_or_embedded(cli.target.as_deref()).await?;

    // The base driver, wrapped by the batch executor (0 workers would be a
    // ConfigError here, not a silent default).
    let executor = BatchExecutor::new(ReqwestDriver::new()?, workers)?;

    println!("basic_batch — BatchExecutor<ReqwestDriver>");
    println!("target   {}", target.describe());
    println!("batch    {requests} GETs, {workers} workers, 30 s deadline, 5 s per request\n");

    // Inputs are built lazily, as workers free up.
    let inputs =
        (0..requests).map(|i| Request::get(target.url_scripted(&format!("/data/{i}"), &script(i))));
    let options = BatchOptions::builder()
        .time_limit(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(5))
        .build()?;
    let result = executor.execute_batch_with(inputs, options).await;

    // The Go example's one line.
    println!(
        "Completed {}/{} requests in {}\n",
        result.succeeded,
        result.len(),
        dur(result.duration)
    );

    println!(
        "{:>5}  {:<44}  {:>9}  {:>6}",
        "#", "outcome", "time", "body"
    );
    for item in &result {
        let (outcome, body) = match &item.outcome {
            Outcome::Response(resp) => (
                format!(
                    "{} {}",
                    resp.status().as_u16(),
                    resp.status().canonical_reason().unwrap_or("")
                ),
                format!("{} B", resp.bytes().len()),
            ),
            Outcome::Error(err) => (error_line(err), "-".into()),
            Outcome::NotStarted(reason) => (format!("not started: {reason}"), "-".into()),
        };
        let outcome: String = outcome.chars().take(44).collect();
        println!(
            "{:>5}  {outcome:<44}  {:>9}  {body:>6}",
            item.index,
            dur(item.elapsed)
        );
    }

    let http_failures = result.status_failures().count();
    let stats = executor.stats();
    let mut block = Block::new("\nBatch stats");
    block
        .row("requests", count(stats.requests))
        .row("completed (a response)", count(stats.completed))
        .row("errors", count(stats.errors))
        .row("not started", count(stats.not_started))
        .row(
            "status 2xx / 4xx / 5xx",
            format!(
                "{} / {} / {}",
                count(stats.status.success),
                count(stats.status.client_error),
                count(stats.status.server_error)
            ),
        )
        .row("HTTP failures (4xx/5xx)", count(http_failures as u64))
        .row(
            "latency p50 / p99 / max",
            format!(
                "{} / {} / {}",
                dur(stats.latency.p50),
                dur(stats.latency.p99),
                dur(stats.latency.max)
            ),
        )
        .row(
            "throughput",
            format!("{} requests/s", count(stats.throughput as u64)),
        )
        .row("error rate", pct(stats.error_rate));
    print!("{block}");

    target.shutdown().await;
    Ok(())
}

/// What the embedded server is asked to do for request `i`: every tenth a
/// 404, every twenty-fifth a 503, the rest a 0–40 ms delay.
fn script(i: usize) -> String {
    if i % 10 == 7 {
        "status=404".into()
    } else if i % 25 == 13 {
        "status=503".into()
    } else {
        format!("delay_ms={}", (i * 7) % 41)
    }
}
