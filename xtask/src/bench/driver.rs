//! Driver overhead scenarios: `driver/reqwest/c{16,64,256}` (ReqwestDriver vs
//! plain reqwest) and `driver/isahc/c{16,64,256}` (IsahcDriver vs plain
//! isahc), metric `rps` with threshold ratio >= 0.97, plus CPU per request.
//!
//! Fairness rules: both sides of a comparison use a client built with the
//! *same* settings (the driver is built over an identically configured
//! client where its crate allows it), both read every response body fully
//! and check for a 200, and both run the same `buffered(C)` loop; the only
//! difference is the driver layer (building an `httpclient_core::Request`,
//! `Driver::execute`, error mapping, body collection).

use std::time::Duration;

use httpclient_core::{Driver, Request};
use isahc::config::{Configurable, ExpectContinue, RedirectPolicy, VersionNegotiation};

use super::load::{REQUEST_TIMEOUT, run_slice};
use super::{BenchError, Comparison, Scenario, SliceResult};
use crate::stats::Threshold;

/// Concurrencies measured.
pub const CONCURRENCIES: [usize; 3] = [16, 64, 256];

/// Minimum `rps(driver) / rps(plain client)` ratio a driver must keep.
pub const RPS_THRESHOLD: Threshold = Threshold::AtLeast(0.97);

/// The driver scenarios.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = reqwest_driver_scenarios();
    all.extend(isahc_driver_scenarios());
    all
}

/// One driver GET through `Driver::execute`; `true` on a 200 with its body.
pub async fn driver_get<D: Driver + ?Sized>(driver: &D, url: &str) -> bool {
    let Ok(request) = Request::get(url).build() else {
        return false;
    };
    matches!(driver.execute(request).await, Ok(resp) if resp.status() == http_ok())
}

fn http_ok() -> httpclient_core::http::StatusCode {
    httpclient_core::http::StatusCode::OK
}

/// A slice of `n` driver GETs at concurrency `c`.
pub async fn driver_slice<D: Driver + ?Sized>(
    driver: &D,
    url: &str,
    n: usize,
    c: usize,
) -> Result<SliceResult, BenchError> {
    run_slice(n, c, |_| driver_get(driver, url)).await
}

/// The plain reqwest client of the `driver/reqwest/*` baselines: exactly
/// the client settings `ReqwestDriverBuilder::build` uses (reqwest retries
/// off, its default connect timeout, redirect limit and user agent, no
/// `Referer`; connection counting is off by default, so neither side has the
/// counting connector layer).
pub fn reqwest_baseline_client() -> Result<reqwest::Client, BenchError> {
    use httpclient_driver_reqwest::{
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_USER_AGENT,
    };
    Ok(reqwest::Client::builder()
        .retry(reqwest::retry::never())
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(DEFAULT_MAX_REDIRECTS))
        .referer(false)
        .user_agent(DEFAULT_USER_AGENT)
        .build()?)
}

/// One baseline reqwest GET with the per-request timeout the driver sets,
/// reading the whole body; `true` on a 200.
pub async fn reqwest_baseline_get(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).timeout(REQUEST_TIMEOUT).send().await {
        Ok(resp) => {
            let ok = resp.status() == reqwest::StatusCode::OK;
            resp.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// `driver/reqwest/c{16,64,256}`: `ReqwestDriver` as its builder makes it
/// (timeout = the bench's request timeout) vs a plain reqwest client with
/// the same settings ([`reqwest_baseline_client`]).
pub fn reqwest_driver_scenarios() -> Vec<Scenario> {
    CONCURRENCIES
        .into_iter()
        .map(|c| {
            let id = format!("driver/reqwest/c{c}");
            Scenario::new(id.clone(), move |ctx| async move {
                let url = ctx.url("/");
                let driver = httpclient_driver_reqwest::ReqwestDriver::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build()?;
                let plain = reqwest_baseline_client()?;
                let cmp = Comparison::new(&id, "plain reqwest (same client settings)")
                    .slice_requests(ctx.config().slice_for(c))
                    .rps_threshold(RPS_THRESHOLD)
                    .notes(format!(
                        "GET / -> 200 \"ok\", buffered({c}), bodies read fully"
                    ));
                ctx.compare(
                    &cmp,
                    |n| driver_slice(&driver, &url, n, c),
                    |n| run_slice(n, c, |_| reqwest_baseline_get(&plain, &url)),
                )
                .await
            })
        })
        .collect()
}

/// The plain isahc client both isahc sides use: the settings of
/// `IsahcDriverBuilder::build` (HTTP/1.1, no redirects, no decompression,
/// no `Expect: 100-continue`) with the bench's timeouts.
pub fn plain_isahc_client() -> Result<isahc::HttpClient, BenchError> {
    Ok(isahc::HttpClient::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(REQUEST_TIMEOUT)
        .redirect_policy(RedirectPolicy::None)
        .automatic_decompression(false)
        .expect_continue(ExpectContinue::disabled())
        .version_negotiation(VersionNegotiation::http11())
        .build()?)
}

/// One plain isahc GET that reads the whole body; `true` on a 200.
pub async fn isahc_get(client: &isahc::HttpClient, url: &str) -> bool {
    use isahc::AsyncReadResponseExt as _;
    match client.get_async(url).await {
        Ok(mut resp) => {
            let ok = resp.status() == isahc::http::StatusCode::OK;
            resp.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

/// `driver/isahc/c{16,64,256}`: `IsahcDriver` (built over an identically
/// configured `HttpClient`) vs plain isahc.
pub fn isahc_driver_scenarios() -> Vec<Scenario> {
    CONCURRENCIES
        .into_iter()
        .map(|c| {
            let id = format!("driver/isahc/c{c}");
            Scenario::new(id.clone(), move |ctx| async move {
                let url = ctx.url("/");
                let driver = httpclient_driver_isahc::IsahcDriver::builder()
                    .timeout(REQUEST_TIMEOUT)
                    .build_with_client(plain_isahc_client()?)?;
                let plain = plain_isahc_client()?;
                let cmp = Comparison::new(&id, "plain isahc (same HttpClient settings)")
                    .slice_requests(ctx.config().slice_for(c))
                    .rps_threshold(RPS_THRESHOLD)
                    .notes(format!(
                        "GET / -> 200 \"ok\", buffered({c}), bodies read fully"
                    ));
                ctx.compare(
                    &cmp,
                    |n| driver_slice(&driver, &url, n, c),
                    |n| run_slice(n, c, |_| isahc_get(&plain, &url)),
                )
                .await
            })
        })
        .collect()
}
