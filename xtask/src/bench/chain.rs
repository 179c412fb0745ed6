//! Scenarios for the full layer chain.
//!
//! * `chain/reqwest/c64` — the recommended order
//!   `BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>`
//!   (pool with retries on — the default [`RetryPolicy`] —, limiter at a
//!   rate the loopback server cannot reach, 1,000,000/s with a burst of
//!   1,000, batch with 64 workers) vs plain reqwest (the driver's client
//!   settings) in a `buffered(64)` loop. Each candidate slice streams `n`
//!   GETs through [`BatchExecutor::execute_iter`] and consumes every result
//!   as it arrives (the driver has read the body); the baseline reads every
//!   body too and keeps nothing, so both sides do the same work minus the
//!   layers. Metric `rps`, threshold ratio >= 0.93: the price of batch +
//!   retries + exact rate limiting together when nothing goes wrong.
//!   Slices are 20,000 requests long, like the batch scenarios' (see
//!   [`super::BenchConfig::issue_slice`] for why short slices mismeasure a
//!   batch).
//!
//! Why the limiter cannot bind here: this scenario measures overhead, not
//! pacing (the `ratelimit/*` scenarios measure pacing). A quota the server
//! cannot reach still runs the limiter's full permit path on every attempt.

use futures::StreamExt as _;
use httpclient_batch::BatchExecutor;
use httpclient_core::http::StatusCode;
use httpclient_core::{Driver, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_pool::{ConnectionPool, RetryPolicy};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};

use super::driver::{reqwest_baseline_client, reqwest_baseline_get};
use super::load::{REQUEST_TIMEOUT, measure, run_slice};
use super::{BenchError, Comparison, Scenario};
use crate::stats::Threshold;

/// Minimum `rps(full chain) / rps(plain reqwest)` at C = 64.
pub const RPS_THRESHOLD: Threshold = Threshold::AtLeast(0.93);

/// Batch workers (= the baseline's `buffered(C)`).
pub const CONCURRENCY: usize = 64;

/// A quota the loopback server cannot reach (requests per second).
pub const UNREACHABLE_RATE: u32 = 1_000_000;

/// Burst of that quota.
pub const UNREACHABLE_BURST: u32 = 1_000;

/// The chain scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![reqwest_c64()]
}

/// The full chain in the recommended order, with the bench's settings.
pub fn full_chain(
    workers: usize,
) -> Result<BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>, BenchError> {
    let driver = ReqwestDriver::builder().timeout(REQUEST_TIMEOUT).build()?;
    let quota = Quota::per_second(UNREACHABLE_RATE)?.burst(UNREACHABLE_BURST)?;
    let limited = RateLimitedExecutor::new(driver, quota);
    let pool = ConnectionPool::builder(limited)
        .retry_policy(RetryPolicy::default())
        .build()?;
    Ok(BatchExecutor::new(pool, workers)?)
}

/// `n` GETs of `url` streamed through `exec`, each result consumed as it
/// arrives; counts 200s.
async fn chain_stream<D: Driver>(exec: &BatchExecutor<D>, url: &str, n: usize) -> (u64, u64) {
    exec.execute_iter((0..n).map(|_| Request::get(url)))
        .fold((0u64, 0u64), |(ok, err), item| async move {
            if matches!(item.outcome.response(), Some(r) if r.status() == StatusCode::OK) {
                (ok + 1, err)
            } else {
                (ok, err + 1)
            }
        })
        .await
}

fn reqwest_c64() -> Scenario {
    let id = "chain/reqwest/c64";
    Scenario::new(id, move |ctx| async move {
        const C: usize = CONCURRENCY;
        let url = ctx.url("/");
        let exec = full_chain(C)?;
        let plain = reqwest_baseline_client()?;
        let cmp = Comparison::new(
            id,
            "plain reqwest (driver's client settings) + buffered(64)",
        )
        .issue_job(ctx.config(), C)
        .rps_threshold(RPS_THRESHOLD)
        .notes(format!(
            "GET / -> 200 \"ok\", bodies read fully; candidate: BatchExecutor({C} workers, execute_iter, results consumed as they arrive) > ConnectionPool(default RetryPolicy) > RateLimitedExecutor({UNREACHABLE_RATE}/s, burst {UNREACHABLE_BURST}) > ReqwestDriver"
        ));
        let mut records = ctx
            .compare(
                &cmp,
                |n| measure(chain_stream(&exec, &url, n)),
                |n| run_slice(n, C, |_| reqwest_baseline_get(&plain, &url)),
            )
            .await?;
        let pool = exec.driver().stats();
        let limiter = exec.driver().inner().stats();
        for r in &mut records {
            r.add_note(format!(
                "pool made {} requests, {} attempts, {} retries; limiter passed {} calls",
                pool.requests, pool.attempts, pool.retries, limiter.executed
            ));
        }
        Ok(records)
    })
}
