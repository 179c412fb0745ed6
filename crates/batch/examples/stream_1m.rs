//! A million-request streamed job in a few MiB.
//!
//! Streams `N` requests (default 1,000,000) through a [`BatchExecutor`] over
//! a no-op driver, consuming each result as it arrives, and prints one JSON
//! line with the counts, the time taken and the process's peak resident set
//! size (`VmHWM` from `/proc/self/status`, Linux only). `cargo xtask bench`
//! runs it as a child process for the `batch/stream-1m` figure, so nothing
//! else in the process inflates the peak.
//!
//! ```text
//! cargo run --release -p httpclient-batch --example stream_1m -- [N] [WORKERS] [ordered:WINDOW]
//! ```

use std::time::Instant;

use futures::StreamExt;
use httpclient_batch::BatchExecutor;
use httpclient_core::Request;
use httpclient_core::testkit::NoopDriver;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let workers: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let window: Option<usize> = match args.next() {
        None => None,
        Some(a) => match a.strip_prefix("ordered:") {
            Some(w) => Some(w.parse()?),
            None => return Err(format!("unknown argument `{a}` (expected ordered:WINDOW)").into()),
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rss_before_kib = status_kib("VmRSS:").unwrap_or(0);
    let exec = BatchExecutor::new(NoopDriver, workers)?;
    let t0 = Instant::now();
    let (ok, other, last_index) = rt.block_on(async {
        // A lazy source: each request is built only when a worker is free.
        let inputs = (0..n).map(|i| Request::get(format!("http://127.0.0.1/items/{i}")));
        let mut ok = 0u64;
        let mut other = 0u64;
        let mut last = 0usize;
        let mut consume = |item: httpclient_batch::BatchItem| {
            match item.outcome.response() {
                Some(r) if r.status() == 200 => ok += 1,
                _ => other += 1,
            }
            last = last.max(item.index);
        };
        match window {
            None => {
                let mut stream = exec.execute_iter(inputs);
                while let Some(item) = stream.next().await {
                    consume(item);
                }
            }
            Some(w) => {
                let mut stream = exec.execute_stream_ordered(futures::stream::iter(inputs), w)?;
                while let Some(item) = stream.next().await {
                    consume(item);
                }
            }
        }
        Ok::<_, httpclient_core::ConfigError>((ok, other, last))
    })?;
    let elapsed = t0.elapsed();
    let stats = exec.stats();
    let peak_kib = status_kib("VmHWM:").ok_or("no VmHWM in /proc/self/status")?;
    println!(
        "{{\"requests\":{n},\"ok\":{ok},\"other\":{other},\"last_index\":{last_index},\"workers\":{workers},\"ordered_window\":{},\"elapsed_s\":{:.4},\"rps\":{:.0},\"stats_completed\":{},\"rss_before_mib\":{:.2},\"peak_rss_mib\":{:.2}}}",
        window.map_or("null".to_string(), |w| w.to_string()),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.completed,
        rss_before_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
    );
    Ok(())
}
