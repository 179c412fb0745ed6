//! Rate-limited execution: the Go README's second program, in Rust.
//!
//! A [`RateLimitedExecutor`] with a [`Quota`] of 10 requests per second and
//! bursts of 5 wraps a [`ReqwestDriver`]. Twenty GETs are fired at once;
//! the limiter lets the burst through, then releases the rest in arrival
//! order (FIFO), evenly spaced at the quota's period — computed on a
//! monotonic clock, not refilled once a second. Each response records how
//! long it waited for its permit (`Response::permit_wait`); the program
//! prints those waits, the limiter's stats, and what `try_execute` says when
//! no permit is free.
//!
//! ```text
//! cargo run --release --example rate_limited                 # embedded server
//! cargo run --release --example rate_limited -- --rate 2 --burst 1 --requests 6
//! cargo run --release --example rate_limited -- http://127.0.0.1:8080
//! ```
//!
//! Coming from Go: `NewRateLimitedExecutor(driver, 5, 10)` held a bucket of
//! `rps` tokens refilled every second, so up to twice the rate could pass
//! across a refill; `Quota::per_second(5)?.burst(5)?` is the honest
//! equivalent, and the default burst of 1 spaces requests evenly. The third
//! Go argument was never used.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use batchclient_examples::{
    Block, Cli, Opt, Spec, count, dur, error_line, pct, report_error, target_or_embedded,
};
use futures_util::future::join_all;
use httpclient_core::{Driver, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_ratelimit::{Quota, RateLimitedExecutor};

const SPEC: Spec = Spec {
    name: "rate_limited",
    about: "GETs fired at once through RateLimitedExecutor<ReqwestDriver>: per-request permit waits, then the limiter's stats.",
    options: &[
        Opt::value("requests", "N", "GETs to fire at once (default 20)"),
        Opt::value(
            "rate",
            "R",
            "permits per second (default 10; 40 with --short)",
        ),
        Opt::value(
            "burst",
            "B",
            "permits back to back after a quiet spell (default 5)",
        ),
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
    let requests: usize = cli.get("requests", 20);
    // A rate of 0, NaN or a burst of 0 is a ConfigError naming the field.
    let quota =
        Quota::per_second(cli.get("rate", cli.pick(10.0, 40.0)))?.burst(cli.get("burst", 5))?;
    let target = target_or_embedded(cli.target.as_deref()).await?;

    let limiter = RateLimitedExecutor::new(
        ReqwestDriver::builder().count_connections(true).build()?,
        quota,
    );

    println!("rate_limited — RateLimitedExecutor<ReqwestDriver>");
    println!("target   {}", target.describe());
    println!(
        "quota    {quota}: a permit every {}, {} back to back after a quiet spell",
        dur(quota.period()),
        quota.burst_size()
    );
    println!("fired    {requests} GETs at once\n");

    let start = Instant::now();
    let calls = (0..requests).map(|i| {
        let limiter = &limiter;
        let url = target.url("/limited");
        async move {
            let request = Request::get(url).timeout(Duration::from_secs(5)).build()?;
            let sent = Instant::now();
            let result = limiter.execute(request).await;
            Ok::<_, httpclient_core::Error>((i, sent.elapsed(), result))
        }
    });
    let results = join_all(calls).await;

    println!(
        "{:>4}  {:>10}  {:>10}  {:>10}  status",
        "#", "waited", "latency", "total"
    );
    for outcome in results {
        let (i, total, result) = outcome?;
        match result {
            Ok(resp) => {
                let wait = resp.permit_wait().map_or(Duration::ZERO, |p| p.wait);
                println!(
                    "{:>4}  {:>10}  {:>10}  {:>10}  {}",
                    i + 1,
                    dur(wait),
                    dur(resp.elapsed()),
                    dur(total),
                    resp.status().as_u16()
                );
            }
            Err(err) => println!("{:>4}  failed: {}", i + 1, error_line(&err)),
        }
    }
    println!("all done in {}", dur(start.elapsed()));

    // Right after the run the next permit is (most likely) a period away:
    // `try_execute` refuses at once instead of waiting, and says when to
    // come back. Nothing is sent when it refuses.
    match limiter
        .try_execute(Request::get(target.url("/limited")).build()?)
        .await
    {
        Ok(resp) => println!("try_execute now: went through at once ({})", resp.status()),
        Err(err) => println!("try_execute now: refused without sending — {err}"),
    }

    let stats = limiter.stats();
    let l = &stats.limiter;
    let mut block = Block::new("\nRate limiter stats");
    block
        .row("quota", l.quota)
        .row("requests", count(l.requests))
        .row("granted (executed)", count(l.granted))
        .row("throttled (had to wait)", count(l.throttled))
        .row("throttle rate", pct(l.throttle_rate()))
        .row("rejected (would wait)", count(l.rejected_would_wait))
        .row(
            "wait mean / max",
            format!("{} / {}", dur(l.mean_wait()), dur(l.max_wait)),
        )
        .row(
            "queue now / peak",
            format!("{} / {}", l.queue_len, l.peak_queue_len),
        )
        .row("forwarded to the driver", count(stats.executed))
        .row(
            "connections opened",
            limiter.connections_opened().map_or("unknown".into(), count),
        );
    if let (Some(p50), Some(p99)) = (l.release_lag.p50, l.release_lag.p99) {
        block.row(
            "release lag p50 / p99",
            format!("{} / {}", dur(p50), dur(p99)),
        );
    }
    print!("{block}");

    // Go's `limiter.Stop()`: waiters wake with `Stopped`, new calls fail.
    limiter.stop();
    target.shutdown().await;
    Ok(())
}
