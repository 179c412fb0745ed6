//! The whole chain: batch → retry pool → rate limiter → reqwest, with
//! warm-up, health checks, a flaky target, and the three stats blocks of the
//! Go package's "Chained Executors" example — with true numbers, and the
//! server's own count beside them.
//!
//! ```text
//! cargo run --release --example chained                 # embedded flaky server, 1,000 GETs
//! cargo run --release --example chained -- --short      # 200 GETs, about 1.5 s
//! cargo run --release --example chained -- http://127.0.0.1:8080 --rate 50
//! cargo run --release --example chained -- --go-order   # the Go example's order, to compare
//! ```
//!
//! # Why this order
//!
//! ```text
//! BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>
//! ```
//!
//! The limiter sits *inside* the retry pool, so every request that can
//! reach the server — each attempt, each retry, each warm-up request, each
//! health probe — first spends a permit. The server therefore never sees
//! more than the quota allows, whatever fails and is retried. That is what
//! a rate limit is for: the server you call counts requests on the wire,
//! not your calls to `execute`.
//!
//! The Go example builds `Batch<RateLimited<Pool<driver>>>`: one permit
//! buys one *call*, and the pool behind the limiter may turn that call into
//! up to four requests (and its warm-up and probes pass no limiter at all).
//! Under failures the server then sees more than the quota — exactly when
//! it is least able to take it. Run with `--go-order` to watch the
//! "Accounting" block show it.
//!
//! The batch layer is outermost because it is the one that knows about
//! *many* requests: it bounds how many are in flight (workers), keeps every
//! result in input order, and owns cancellation and the batch deadline.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use batchclient_examples::{
    Block, Cli, Opt, ServerConfig, Spec, Target, count, dur, error_line, pct, report_error, share,
    target_or_embedded_with,
};
use httpclient_batch::{BatchExecutor, BatchOptions, BatchStats, Outcome};
use httpclient_core::{Driver, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_pool::{ConnectionPool, PoolStats, RetryPolicy};
use httpclient_ratelimit::{Quota, RateLimitedExecutor, RateLimiterStats};

const SPEC: Spec = Spec {
    name: "chained",
    about: "Batch → retry pool → rate limiter → reqwest, against a flaky server: warm-up, health \
            checks,\nthe Go example's three stats blocks and the server's own request count.",
    options: &[
        Opt::value(
            "requests",
            "N",
            "GETs in the batch (default 1000; 200 with --short)",
        ),
        Opt::value(
            "rate",
            "R",
            "permits per second (default 500; 2000 with --short)",
        ),
        Opt::value(
            "burst",
            "B",
            "permits back to back after a quiet spell (default 10)",
        ),
        Opt::value("workers", "W", "requests in flight at once (default 50)"),
        Opt::value(
            "retries",
            "N",
            "retries per request after the first attempt (default 3)",
        ),
        Opt::value("warmup", "N", "warm-up requests (default 8)"),
        Opt::flag(
            "go-order",
            "build Batch<RateLimited<Pool<driver>>> as the Go example does",
        ),
    ],
};

/// The embedded server's fault mix, applied per request (so per attempt):
/// resets before and in the middle of the response, 503s asking to come
/// back in a second, and a few answers slower than the attempt timeout.
const FAULTS: &str =
    "faults=reset_mid_body:5,reset_before:2,status503:2,slow:1&slow_ms=1500&body_size=512";
const FAULTS_TEXT: &str = "5 % reset mid-body, 2 % reset before the response, 2 % 503 with \
                           Retry-After: 1, 1 % slower (1.5 s) than the attempt timeout";
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);

struct Config {
    requests: usize,
    quota: Quota,
    workers: usize,
    policy: RetryPolicy,
    warmup: usize,
    go_order: bool,
}

/// Everything the report needs, read once the batch is over.
struct Snapshot {
    batch: BatchStats,
    limiter: RateLimiterStats,
    pool: PoolStats,
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
    // Every value is checked by the layer that owns it: a rate of 0, a
    // burst of 0 or 0 workers come back as a ConfigError naming the field.
    let config = Config {
        requests: cli.get("requests", cli.pick(1_000, 200)),
        quota: Quota::per_second(cli.get("rate", cli.pick(500.0, 2_000.0)))?
            .burst(cli.get("burst", 10))?,
        workers: cli.get("workers", 50),
        policy: RetryPolicy::builder()
            .max_retries(cli.get("retries", 3))
            .base_delay(Duration::from_millis(100))
            .attempt_timeout(ATTEMPT_TIMEOUT)
            .total_deadline(Duration::from_secs(15))
            .build()?,
        warmup: cli.get("warmup", 8),
        go_order: cli.flag("go-order"),
    };

    // Arrival times let us check the quota where it matters: at the server.
    let target = target_or_embedded_with(
        cli.target.as_deref(),
        ServerConfig::default().record_arrivals(true),
    )
    .await?;

    // The driver's own timeout is a backstop; the pool's attempt timeout
    // (500 ms) is the one that bounds each attempt.
    let driver = ReqwestDriver::builder()
        .timeout(Duration::from_secs(10))
        .count_connections(true)
        .build()?;

    let chain = if config.go_order {
        "BatchExecutor<RateLimitedExecutor<ConnectionPool<ReqwestDriver>>>  (the Go example's order)"
    } else {
        "BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>  (recommended)"
    };
    let mut head = Block::new("chained");
    head.row("chain", chain)
        .row("target", target.describe())
        .row(
            "fault mix",
            if target.is_embedded() {
                FAULTS_TEXT
            } else {
                "none added (your server)"
            },
        )
        .row("quota", config.quota)
        .row("workers", config.workers)
        .row(
            "retries",
            format!(
                "up to {} per request, backoff from {} with full jitter, {} per attempt",
                config.policy.max_retries(),
                dur(config.policy.base_delay()),
                dur(ATTEMPT_TIMEOUT)
            ),
        );
    println!("{head}");

    let snapshot = if !config.go_order {
        // The recommended order: every attempt, warm-up request and health
        // probe passes the limiter, so the server never sees more than the
        // quota.
        let limiter = RateLimitedExecutor::new(driver, config.quota);
        let pool = ConnectionPool::builder(limiter)
            .retry_policy(config.policy.clone())
            .build()?;
        let batch = BatchExecutor::new(pool, config.workers)?;
        let (pool, limiter) = (batch.driver(), batch.driver().inner());
        execute(&config, &target, &batch, pool, limiter).await?
    } else {
        // The Go example's order: the limiter outside the pool.
        let pool = ConnectionPool::builder(driver)
            .retry_policy(config.policy.clone())
            .build()?;
        let limiter = RateLimitedExecutor::new(pool, config.quota);
        let batch = BatchExecutor::new(limiter, config.workers)?;
        let (limiter, pool) = (batch.driver(), batch.driver().inner());
        execute(&config, &target, &batch, pool, limiter).await?
    };

    print_stats(&snapshot);
    print_server_and_accounting(&config, &target, &snapshot);
    target.shutdown().await;
    Ok(())
}

/// Warm up, start health checks, run the batch, and read every layer's
/// stats once the chain is quiet. Generic over the three layers so both
/// orders share it.
async fn execute<B, P, L>(
    config: &Config,
    target: &Target,
    batch: &BatchExecutor<B>,
    pool: &ConnectionPool<P>,
    limiter: &RateLimitedExecutor<L>,
) -> Result<Snapshot, Box<dyn std::error::Error>>
where
    B: Driver,
    P: Driver + 'static,
    L: Driver,
{
    let hosts = [target.base_url()];

    // Warm-up sends real requests (HEAD /, all at once) so the driver's
    // keep-alive pool holds connections before the batch needs them. The
    // count it prints is the driver's own: over loopback the answers come
    // back faster than new connections open, so reqwest may serve all of
    // them over one or two connections.
    if config.warmup > 0 {
        let report = pool.warmup_connections(hosts, config.warmup).await?;
        let opened = match report.connections_opened {
            Some(1) => "1 connection".to_string(),
            Some(n) => format!("{} connections", count(n)),
            None => "an unknown number of connections".to_string(),
        };
        println!(
            "Warm-up: {} HEAD requests, {} ok, {} failed, {opened} opened in {}",
            config.warmup,
            report.succeeded(),
            report.failed(),
            dur(report.elapsed)
        );
        for host in &report.hosts {
            for err in &host.errors {
                println!("  {}: {}", host.host, error_line(err));
            }
        }
    }

    // Health checks act: a host that fails its probes is failed fast
    // instead of waited on. The checker task belongs to the pool.
    pool.enable_health_check(hosts, HEALTH_INTERVAL)?;
    println!("Health checks: HEAD / every {}", dur(HEALTH_INTERVAL));

    let inputs = (0..config.requests).map(|i| {
        Request::get(target.url_scripted(&format!("/data/{i}"), FAULTS)).tag(format!("data-{i}"))
    });
    let options = BatchOptions::builder()
        .time_limit(Duration::from_secs(120))
        .build()?;
    let started = Instant::now();
    let result = batch.execute_batch_with(inputs, options).await;
    let elapsed = started.elapsed();

    // What the Go example prints first.
    println!(
        "\nExecuted {} requests in {} ({} responses, {} errors, {} not started)",
        count(result.len() as u64),
        dur(elapsed),
        count(result.succeeded as u64),
        count(result.failed as u64),
        count(result.not_started as u64),
    );
    let mut attempts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut waited = Duration::ZERO;
    let mut responses = 0u32;
    for response in result.responses() {
        responses += 1;
        if let Some(info) = response.retry_info() {
            *attempts.entry(info.attempts).or_default() += 1;
        }
        if let Some(wait) = response.permit_wait() {
            waited += wait.total;
        }
    }
    let spread: Vec<String> = attempts
        .iter()
        .map(|(a, n)| format!("{a} → {}", count(*n)))
        .collect();
    println!(
        "Attempts per response: {}   (mean permit wait: {})",
        spread.join(", "),
        dur(waited.checked_div(responses).unwrap_or_default())
    );
    let failures: Vec<_> = result.failures().collect();
    for (index, err) in failures.iter().take(5) {
        println!("  #{index}: {}", error_line(err));
    }
    if failures.len() > 5 {
        println!("  … and {} more errors", failures.len() - 5);
    }
    for item in result
        .items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::NotStarted(_)))
        .take(1)
    {
        println!(
            "  #{}: not started ({:?})",
            item.index,
            item.outcome.not_started()
        );
    }

    // Stop probing and let anything still queued at the limiter drain, so
    // the counters below describe a quiet chain.
    pool.disable_health_check();
    settle(limiter).await;
    let snapshot = Snapshot {
        batch: batch.stats(),
        limiter: limiter.stats(),
        pool: pool.stats(),
    };
    // The Go example's clean-up, for real: stop the pool (its checker task
    // ends), stop the limiter, wait for the batch executor to be idle.
    pool.stop();
    limiter.stop();
    batch.shutdown().await;
    Ok(snapshot)
}

/// Wait (at most 2 s) until nothing waits at, or runs behind, the limiter.
async fn settle<L: Driver>(limiter: &RateLimitedExecutor<L>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let s = limiter.stats();
        if (s.limiter.queue_len == 0 && s.in_flight == 0) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn print_stats(s: &Snapshot) {
    println!("\nStatistics");

    let b = &s.batch;
    let mut batch = Block::new("Batch");
    batch
        .row("requests", count(b.requests))
        .row("completed (a response)", count(b.completed))
        .row("errors", count(b.errors))
        .row(
            "status 2xx / 4xx / 5xx",
            format!(
                "{} / {} / {}",
                count(b.status.success),
                count(b.status.client_error),
                count(b.status.server_error)
            ),
        )
        .row(
            "latency p50 / p90 / p99",
            format!(
                "{} / {} / {}",
                dur(b.latency.p50),
                dur(b.latency.p90),
                dur(b.latency.p99)
            ),
        )
        .row("latency max", dur(b.latency.max))
        .row(
            "throughput",
            format!("{} requests/s", count(b.throughput as u64)),
        )
        .row("error rate", pct(b.error_rate));
    for (kind, n) in &b.errors_by_kind {
        batch.row(format!("  {kind}"), count(*n));
    }
    print!("{batch}");

    let l = &s.limiter.limiter;
    let mut limiter = Block::new("Rate limiter");
    limiter
        .row("quota", l.quota)
        .row("permits requested", count(l.requests))
        .row("granted", count(l.granted))
        .row("throttled (had to wait)", share(l.throttled, l.granted))
        .row(
            "rejected / cancelled",
            format!("{} / {}", count(l.rejected()), count(l.cancelled)),
        )
        .row("forwarded to the driver", count(s.limiter.executed))
        .row(
            "wait mean / max",
            format!("{} / {}", dur(l.mean_wait()), dur(l.max_wait)),
        )
        .row("peak queue", count(l.peak_queue_len as u64));
    if let (Some(p50), Some(p99)) = (l.release_lag.p50, l.release_lag.p99) {
        limiter.row(
            "release lag p50 / p99",
            format!("{} / {}", dur(p50), dur(p99)),
        );
    }
    print!("{limiter}");

    let p = &s.pool;
    let mut pool = Block::new("Pool");
    pool.row("requests", count(p.requests))
        .row(
            "attempts",
            format!(
                "{} ({:.3} per request)",
                count(p.attempts),
                p.attempts_per_request()
            ),
        )
        .row("retries", count(p.retries))
        .row(
            "succeeded / failed",
            format!("{} / {}", count(p.succeeded), count(p.failed)),
        )
        .row("success rate", pct(p.success_rate()))
        .row("backoff, summed over requests", dur(p.backoff))
        .row("warm-up requests", count(p.warmup_requests))
        .row(
            "health probes (failed)",
            format!("{} ({})", count(p.probes), count(p.probe_failures)),
        )
        .row(
            "connections opened",
            p.connections_opened.map_or("unknown".into(), count),
        );
    for (kind, n) in &p.failures_by_kind {
        pool.row(format!("  failed: {kind}"), count(*n));
    }
    for (status, n) in &p.failed_statuses {
        pool.row(format!("  failed: HTTP {status}"), count(*n));
    }
    if p.retries_exhausted + p.budget_exhausted + p.deadline_exceeded > 0 {
        pool.row(
            "gave up: retries / budget / deadline",
            format!(
                "{} / {} / {}",
                count(p.retries_exhausted),
                count(p.budget_exhausted),
                count(p.deadline_exceeded)
            ),
        );
    }
    print!("{pool}");
}

fn print_server_and_accounting(config: &Config, target: &Target, s: &Snapshot) {
    let Some(server) = target.server() else {
        println!(
            "\n(The server's own counts are shown only for the embedded server: compare them \
             with your server's access log.)"
        );
        return;
    };
    let stats = server.stats();
    let window = Duration::from_secs(1);
    let busiest = busiest_window(server.arrivals().iter().map(|a| a.at).collect(), window);
    let allowed = config.quota.max_in_window(window);
    let mut block = Block::new("Server (its own counters)");
    block
        .row("requests received", count(stats.requests))
        .row(
            "faults injected",
            share(stats.faults_injected, stats.requests),
        )
        .row("connections accepted", count(stats.connections_accepted))
        .row(
            "busiest 1 s window",
            format!(
                "{} requests (the quota allows {} in any 1 s)",
                count(busiest),
                count(allowed)
            ),
        );
    print!("{block}");

    // The identities each order promises, checked against the server.
    let p = &s.pool;
    let l = &s.limiter;
    let reached_driver = p.attempts + p.warmup_requests + p.probes;
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let mut acc = Block::new("Accounting");
    acc.row(
        "batch requests = pool requests",
        format!(
            "{} = {}  {}",
            count(s.batch.requests),
            count(p.requests),
            mark(s.batch.requests == p.requests)
        ),
    );
    if config.go_order {
        acc.row(
            "permits granted",
            format!("{} (one per batch request)", count(l.limiter.granted)),
        )
        .row(
            "server requests",
            format!(
                "{} = attempts {} + warm-up {} + probes {}  {}",
                count(stats.requests),
                count(p.attempts),
                count(p.warmup_requests),
                count(p.probes),
                mark(stats.requests == reached_driver)
            ),
        )
        .row(
            "requests the limiter never saw",
            format!(
                "{}: retries, warm-up and probes pass no limiter in this order",
                count(stats.requests.saturating_sub(l.limiter.granted))
            ),
        )
        .row(
            "server within the quota",
            format!(
                "{} {} {} in the busiest second  {}",
                count(busiest),
                if busiest <= allowed { "≤" } else { ">" },
                count(allowed),
                mark(busiest <= allowed)
            ),
        );
    } else {
        acc.row(
            "attempts + warm-up + probes",
            format!(
                "{} + {} + {} = {} permits requested  {}",
                count(p.attempts),
                count(p.warmup_requests),
                count(p.probes),
                count(reached_driver),
                mark(reached_driver == l.limiter.requests)
            ),
        )
        .row(
            "forwarded by the limiter",
            format!(
                "{} = {} requests at the server  {}",
                count(l.executed),
                count(stats.requests),
                mark(l.executed == stats.requests)
            ),
        )
        .row(
            "server within the quota",
            format!(
                "{} {} {} in the busiest second  {}",
                count(busiest),
                if busiest <= allowed { "≤" } else { ">" },
                count(allowed),
                mark(busiest <= allowed)
            ),
        );
    }
    print!("{acc}");
}

/// The most arrivals in any window of length `window` (two pointers over
/// the sorted arrival times).
fn busiest_window(mut at: Vec<Instant>, window: Duration) -> u64 {
    at.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..at.len() {
        while at[end].duration_since(at[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best as u64
}
