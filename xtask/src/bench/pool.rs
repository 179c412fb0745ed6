//! Scenarios for `httpclient-pool`.
//!
//! * `pool/reqwest/c64` — `ConnectionPool` (retries on: 5 retries, default
//!   budget) over `ReqwestDriver` vs the bare `ReqwestDriver` built with the
//!   same settings, against a healthy server (`GET /` → 200), both in the
//!   same `buffered(64)` loop reading every body. The pool's cost on the
//!   happy path: policy lookup, a request clone per attempt (kept for a
//!   possible retry), the budget deposit, counters. Metric `rps`, threshold
//!   ratio >= 0.97; slices of the issue's N = 20,000 requests.
//! * `pool/resets-20pct` — absolute: 20,000 GETs at concurrency 64 through
//!   the pool (5 retries, budget ratio 0.5, backoff 10 ms doubling up to
//!   200 ms, full jitter) against `/?fault=reset_mid_body&fault_pct=20`
//!   (the server resets 20 % of responses mid-body). Metrics: `lost`
//!   (requests without exactly one outcome; must be 0), `success_ratio`
//!   (>= 0.999), `attempts_per_request` (<= 1.3) and `rps` (successful
//!   requests per second). The server's request count is read from
//!   `/__stats` and compared with the pool's attempt count in the notes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use httpclient_core::http::StatusCode;
use httpclient_core::{Driver, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_pool::{ConnectionPool, RetryBudget, RetryPolicy};
use httpclient_testserver::ServerStats;

use super::driver::driver_slice;
use super::load::{REQUEST_TIMEOUT, plain_reqwest_client};
use super::{BenchError, Comparison, Record, Scenario};
use crate::stats::{self, Threshold};

/// Minimum `rps(pool) / rps(bare driver)` on the happy path.
pub const RPS_THRESHOLD: Threshold = Threshold::AtLeast(0.97);

/// Requests per run of `pool/resets-20pct`.
pub const RESET_REQUESTS: usize = 20_000;

/// The pool scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![reqwest_c64(), resets_20pct()]
}

fn driver() -> Result<ReqwestDriver, BenchError> {
    Ok(ReqwestDriver::builder().timeout(REQUEST_TIMEOUT).build()?)
}

fn reqwest_c64() -> Scenario {
    let id = "pool/reqwest/c64";
    Scenario::new(id, move |ctx| async move {
        const C: usize = 64;
        let url = ctx.url("/");
        let pool = ConnectionPool::builder(driver()?)
            .retry_policy(RetryPolicy::builder().max_retries(5).build()?)
            .seed(64)
            .build()?;
        let plain = driver()?;
        let cmp = Comparison::new(id, "bare ReqwestDriver (same settings)")
            .issue_job(ctx.config(), C)
            .rps_threshold(RPS_THRESHOLD)
            .notes(format!(
                "GET / -> 200 \"ok\", buffered({C}), bodies read fully; pool with 5 retries, default budget, no health checks"
            ));
        let mut records = ctx
            .compare(
                &cmp,
                |n| driver_slice(&pool, &url, n, C),
                |n| driver_slice(&plain, &url, n, C),
            )
            .await?;
        let st = pool.stats();
        for r in &mut records {
            r.add_note(format!(
                "pool made {} requests, {} retries, success rate {:.4}",
                st.requests,
                st.retries,
                st.success_rate()
            ));
        }
        Ok(records)
    })
}

/// The test server's counters, from its `/__stats` endpoint.
async fn server_stats(client: &reqwest::Client, base: &str) -> Result<ServerStats, BenchError> {
    let text = client
        .get(format!("{base}/__stats"))
        .send()
        .await?
        .text()
        .await?;
    ServerStats::from_json(&text).ok_or_else(|| format!("bad /__stats: {text}").into())
}

struct ResetRun {
    lost: u64,
    ok: u64,
    attempts: u64,
    server_requests: u64,
    elapsed: Duration,
}

async fn reset_run(
    url: &str,
    base: &str,
    control: &reqwest::Client,
) -> Result<ResetRun, BenchError> {
    const C: usize = 64;
    let pool = Arc::new(
        ConnectionPool::builder(driver()?)
            .retry_policy(
                RetryPolicy::builder()
                    .max_retries(5)
                    .base_delay(Duration::from_millis(10))
                    .max_delay(Duration::from_millis(200))
                    .build()?,
            )
            .retry_budget(RetryBudget::new(0.5, 10, Duration::from_secs(10))?)
            .build()?,
    );
    control.get(format!("{base}/__reset")).send().await?;
    let before = server_stats(control, base).await?.requests;
    let started = Instant::now();
    let outcomes = futures::stream::iter(0..RESET_REQUESTS)
        .map(|_| {
            let pool = Arc::clone(&pool);
            async move {
                let request = Request::get(url).build();
                match request {
                    Ok(r) => {
                        matches!(pool.execute(r).await, Ok(resp) if resp.status() == StatusCode::OK)
                    }
                    Err(_) => false,
                }
            }
        })
        .buffer_unordered(C)
        .collect::<Vec<bool>>();
    let outcomes = tokio::time::timeout(Duration::from_secs(120), outcomes)
        .await
        .map_err(|_| "20,000 requests took over 120 s")?;
    let elapsed = started.elapsed();
    let st = pool.stats();
    let server_requests = server_stats(control, base).await?.requests - before;
    // An outcome missing from the results, or a request the pool's own
    // counters did not close, is a lost request.
    let unclosed = st
        .requests
        .abs_diff(st.succeeded + st.failed + st.cancelled);
    let lost = (RESET_REQUESTS - outcomes.len()) as u64 + unclosed;
    Ok(ResetRun {
        lost,
        ok: outcomes.iter().filter(|ok| **ok).count() as u64,
        attempts: st.attempts,
        server_requests,
        elapsed,
    })
}

fn resets_20pct() -> Scenario {
    let id = "pool/resets-20pct";
    Scenario::new(id, move |ctx| async move {
        let runs = if ctx.config().quick { 3 } else { 7 };
        let url = ctx.url("/?fault=reset_mid_body&fault_pct=20");
        let base = ctx.base_url().trim_end_matches('/').to_string();
        let control = plain_reqwest_client()?;
        let mut results = Vec::with_capacity(runs);
        for i in 0..runs {
            ctx.progress(&format!("run {}/{runs}", i + 1));
            results.push(reset_run(&url, &base, &control).await?);
        }
        let total = (RESET_REQUESTS * runs) as f64;
        let lost: u64 = results.iter().map(|r| r.lost).sum();
        let ok: u64 = results.iter().map(|r| r.ok).sum();
        let attempts: u64 = results.iter().map(|r| r.attempts).sum();
        let server: u64 = results.iter().map(|r| r.server_requests).sum();
        let per_run_rps: Vec<f64> = results
            .iter()
            .map(|r| r.ok as f64 / r.elapsed.as_secs_f64())
            .collect();
        let runs_u32 = runs as u32;
        let setup = format!(
            "{runs} runs x {RESET_REQUESTS} GETs at concurrency 64, 20% reset mid-body; pool: 5 retries, budget 0.5 + 10/s, backoff 10 ms x2 up to 200 ms, full jitter"
        );
        let counts = format!(
            "server saw {server} requests, pool made {attempts} attempts ({})",
            if server == attempts {
                "equal"
            } else {
                "MISMATCH"
            }
        );
        let mut rps = Record::absolute(
            id,
            "rps",
            "req/s",
            stats::median(&per_run_rps).unwrap_or(f64::NAN),
            runs_u32,
        )
        .note("median over runs of successful requests per second")
        .note(&setup);
        if let Some((lo, hi)) = stats::bootstrap_median_ci(
            &per_run_rps,
            stats::BOOTSTRAP_RESAMPLES,
            stats::seed_for(id),
        ) {
            rps.add_note(format!("95% CI [{lo:.0}, {hi:.0}]"));
        }
        Ok(vec![
            Record::absolute(id, "lost", "requests", lost as f64, runs_u32)
                .note(&setup)
                .note(&counts)
                .with_value_threshold(Threshold::AtMost(0.0)),
            Record::absolute(id, "success_ratio", "ratio", ok as f64 / total, runs_u32)
                .note(format!("{ok} of {total} answered 200"))
                .with_value_threshold(Threshold::AtLeast(0.999)),
            Record::absolute(
                id,
                "attempts_per_request",
                "attempts/req",
                attempts as f64 / total,
                runs_u32,
            )
            .note(&counts)
            .with_value_threshold(Threshold::AtMost(1.3)),
            rps,
        ])
    })
}
