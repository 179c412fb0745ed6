//! Load-generation building blocks shared by the scenario modules.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::BenchError;
use super::cpu::process_cpu_time;

/// Per-request timeout of the plain clients (bounds every request in time).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one slice did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SliceResult {
    /// Requests that completed with the expected status and a fully read
    /// body.
    pub requests: u64,
    /// Requests that failed (transport error, unexpected status, body error).
    pub errors: u64,
    /// Wall-clock time of the slice.
    pub elapsed: Duration,
    /// Process CPU time spent during the slice (see [`super::cpu`]).
    pub cpu_time: Duration,
}

impl SliceResult {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.requests as f64 / s
        } else {
            f64::NAN
        }
    }

    /// Process CPU microseconds per successful request.
    pub fn cpu_us_per_req(&self) -> f64 {
        if self.requests > 0 {
            self.cpu_time.as_secs_f64() * 1e6 / self.requests as f64
        } else {
            f64::NAN
        }
    }

    /// Field-wise sum of several slices.
    pub fn sum(slices: &[SliceResult]) -> SliceResult {
        slices
            .iter()
            .fold(SliceResult::default(), |acc, s| SliceResult {
                requests: acc.requests + s.requests,
                errors: acc.errors + s.errors,
                elapsed: acc.elapsed + s.elapsed,
                cpu_time: acc.cpu_time + s.cpu_time,
            })
    }
}

/// Measures wall-clock and process CPU time around `work`, which returns
/// `(successful, failed)` request counts.
pub async fn measure<F>(work: F) -> Result<SliceResult, BenchError>
where
    F: Future<Output = (u64, u64)>,
{
    let cpu0 = process_cpu_time();
    let t0 = Instant::now();
    let (requests, errors) = work.await;
    let elapsed = t0.elapsed();
    let cpu_time = process_cpu_time().saturating_sub(cpu0);
    Ok(SliceResult {
        requests,
        errors,
        elapsed,
        cpu_time,
    })
}

/// Performs exactly `requests` calls of `request(i)` with at most
/// `concurrency` in flight (`futures::stream::iter(..).buffered(C)`), and
/// measures them. `request` resolves to `true` on success.
pub async fn run_slice<F, Fut>(
    requests: usize,
    concurrency: usize,
    request: F,
) -> Result<SliceResult, BenchError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    measure(
        futures::stream::iter(0..requests)
            .map(request)
            .buffered(concurrency.max(1))
            .fold((0u64, 0u64), |(ok, err), success| async move {
                if success {
                    (ok + 1, err)
                } else {
                    (ok, err + 1)
                }
            }),
    )
    .await
}

/// The plain reqwest client every reqwest scenario uses as its baseline:
/// HTTP/1.1, no proxy lookup, a per-request timeout, default pool.
pub fn plain_reqwest_client() -> Result<reqwest::Client, BenchError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// One plain reqwest GET that reads the whole body; `true` on a 200.
pub async fn reqwest_get(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(resp) => {
            let ok = resp.status() == reqwest::StatusCode::OK;
            resp.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// A slice of `n` plain reqwest GETs of `url` at concurrency `c`.
pub async fn reqwest_slice(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    c: usize,
) -> Result<SliceResult, BenchError> {
    run_slice(n, c, |_| reqwest_get(client, url)).await
}
