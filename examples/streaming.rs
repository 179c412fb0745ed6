//! A million-request job in bounded memory, with a live progress line.
//!
//! `BatchExecutor::execute_iter` pulls inputs from a lazy iterator only as
//! worker slots free up and yields each result as it finishes, so the job
//! holds about `workers` requests at a time however long it is: memory is
//! `O(workers)`, not `O(requests)`. The program consumes each result as it
//! arrives (counting statuses), shows a progress bar on stderr while it
//! runs, and prints the process's peak resident set size at the end.
//!
//! Where the requests go:
//!
//! * by default, to `InProcessApi` (`crates/examples/src/in_process.rs`), a
//!   driver that answers in the same process with no I/O: one million
//!   requests take a second or two, and the figure shows the executor's
//!   own memory and speed, not the network's;
//! * with `--embedded`, to the embedded loopback server over reqwest (real
//!   sockets; lower `--requests`, a loopback million takes about a minute);
//! * with a URL, to your server over reqwest.
//!
//! ```text
//! cargo run --release --example streaming                          # 1,000,000 in-process
//! cargo run --release --example streaming -- --embedded --requests 100000
//! cargo run --release --example streaming -- http://127.0.0.1:8080 --requests 50000 --workers 64
//! ```

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use batchclient_examples::in_process::InProcessApi;
use batchclient_examples::{
    Block, Cli, Opt, Spec, count, dur, mib, peak_rss_bytes, report_error, rss_bytes,
    target_or_embedded,
};
use futures_util::StreamExt;
use httpclient_batch::{BatchExecutor, BatchItem, Outcome};
use httpclient_core::{Driver, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const SPEC: Spec = Spec {
    name: "streaming",
    about: "A million-request job streamed through BatchExecutor in bounded memory, with a live progress line\n\
            and the peak RSS at the end. Without a URL the requests go to an in-process driver.",
    options: &[
        Opt::value(
            "requests",
            "N",
            "requests in the job (default 1000000; 20000 with --short)",
        ),
        Opt::value("workers", "W", "requests in flight at once (default 256)"),
        Opt::flag(
            "embedded",
            "send to the embedded loopback server over reqwest instead",
        ),
    ],
};

/// Running counts, updated as each result arrives.
#[derive(Default)]
struct Tally {
    done: u64,
    ok: u64,
    other_status: u64,
    errors: u64,
    last_error: Option<String>,
}

impl Tally {
    fn add(&mut self, item: BatchItem) {
        self.done += 1;
        match item.outcome {
            Outcome::Response(resp) if resp.status().is_success() => self.ok += 1,
            Outcome::Response(_) => self.other_status += 1,
            Outcome::Error(err) => {
                self.errors += 1;
                self.last_error = Some(format!("#{}: {err}", item.index));
            }
            Outcome::NotStarted(_) => self.errors += 1,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse(SPEC);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report_error(e.as_ref()),
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let requests: u64 = cli.get("requests", cli.pick(1_000_000, 20_000));
    let workers: usize = cli.get("workers", 256);
    let over_network = cli.target.is_some() || cli.flag("embedded");
    let rss_before = rss_bytes();

    println!("streaming — BatchExecutor::execute_iter, results consumed as they finish");
    if over_network {
        let target = target_or_embedded(cli.target.as_deref()).await?;
        println!("target    {} over reqwest", target.describe());
        println!(
            "job       {} requests, {workers} workers\n",
            count(requests)
        );
        let executor = BatchExecutor::new(ReqwestDriver::new()?, workers)?;
        let tally = stream_job(&executor, |i| target.url(&format!("/items/{i}")), requests).await;
        let server = target.server_stats().map(|s| s.requests);
        report(
            &executor,
            &tally,
            requests,
            rss_before,
            server,
            "server's own count",
        );
        target.shutdown().await;
    } else {
        println!("target    in-process driver (no I/O: this measures the executor, not a network)");
        println!(
            "job       {} requests, {workers} workers\n",
            count(requests)
        );
        let executor = BatchExecutor::new(InProcessApi::default(), workers)?;
        let tally = stream_job(
            &executor,
            |i| format!("http://in-process.invalid/items/{i}"),
            requests,
        )
        .await;
        let served = executor.driver().served();
        report(
            &executor,
            &tally,
            requests,
            rss_before,
            Some(served),
            "driver's own count",
        );
    }
    Ok(())
}

/// Stream `requests` GETs through `executor`, drawing progress as results
/// arrive. The inputs are a lazy iterator: a request is built only when a
/// worker slot is free for it.
async fn stream_job<D: Driver>(
    executor: &BatchExecutor<D>,
    url_of: impl Fn(u64) -> String,
    requests: u64,
) -> Tally {
    let progress = progress_bar(requests);
    let inputs = (0..requests).map(|i| Request::get(url_of(i)));
    let mut stream = executor.execute_iter(inputs);
    let mut tally = Tally::default();
    let mut next_plain = requests / 10;
    while let Some(item) = stream.next().await {
        tally.add(item);
        // Keep the per-item work short: requests only progress while the
        // stream is polled. Drawing is throttled by indicatif itself; the
        // counters are pushed every 1,024 results.
        if tally.done % 1_024 == 0 || tally.done == requests {
            progress.set_position(tally.done);
            progress.set_message(format!(
                "ok {}  non-2xx {}  errors {}",
                count(tally.ok),
                count(tally.other_status),
                count(tally.errors)
            ));
            if progress.is_hidden() && tally.done >= next_plain && next_plain > 0 {
                // Not a terminal (a pipe, a CI log): a plain line per 10 %.
                println!(
                    "progress  {:>9} / {} ({:.0} %)",
                    count(tally.done),
                    count(requests),
                    tally.done as f64 * 100.0 / requests as f64
                );
                next_plain += requests / 10;
            }
        }
    }
    progress.finish_and_clear();
    tally
}

fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    // `rate` is our own key: indicatif's `{per_sec}` prints every decimal.
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:32}] {human_pos}/{human_len}  {rate:>13}  eta {eta:>3}  {msg}",
    ) {
        bar.set_style(
            style
                .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                    let _ = write!(w, "{}/s", count(state.per_sec() as u64));
                })
                .progress_chars("=> "),
        );
    }
    bar
}

fn report<D: Driver>(
    executor: &BatchExecutor<D>,
    tally: &Tally,
    requests: u64,
    rss_before: Option<u64>,
    far_side: Option<u64>,
    far_side_label: &str,
) {
    let stats = executor.stats();
    let elapsed = if stats.active > Duration::ZERO {
        stats.active
    } else {
        Duration::from_nanos(1)
    };
    println!(
        "Done: {} requests in {} ({} requests/s)",
        count(tally.done),
        dur(elapsed),
        count((tally.done as f64 / elapsed.as_secs_f64()) as u64)
    );
    let mut block = Block::new("\nJob");
    block
        .row("requests", count(requests))
        .row("results consumed", count(tally.done))
        .row("2xx", count(tally.ok))
        .row("other statuses", count(tally.other_status))
        .row("errors", count(tally.errors))
        .row(
            "latency p50 / p99 / max",
            format!(
                "{} / {} / {}",
                dur(stats.latency.p50),
                dur(stats.latency.p99),
                dur(stats.latency.max)
            ),
        )
        .row("batch stats: requests", count(stats.requests));
    if let Some(n) = far_side {
        block.row(far_side_label, count(n));
    }
    if let Some(e) = &tally.last_error {
        block.row("last error", e);
    }
    print!("{block}");

    let mut memory = Block::new("\nMemory");
    memory.row(
        "RSS before the job",
        rss_before.map_or("unknown (no /proc)".into(), mib),
    );
    match peak_rss_bytes() {
        Some(peak) => {
            memory.row("peak RSS (VmHWM)", mib(peak));
            if let Some(before) = rss_before {
                memory.row(
                    "growth during the job",
                    format!(
                        "{} for {} requests",
                        mib(peak.saturating_sub(before)),
                        count(requests)
                    ),
                );
            }
        }
        None => {
            memory.row("peak RSS (VmHWM)", "unknown (no /proc/self/status)");
        }
    }
    print!("{memory}");
}
