//! Scenarios for `httpclient-batch`.
//!
//! * `batch/reqwest/c{16,64,256}` — `BatchExecutor::execute_batch` (an
//!   ordered batch, results collected in input order) over `ReqwestDriver`
//!   vs plain reqwest with the driver's client settings in a `buffered(C)`
//!   loop. Each slice is one batch of `n` GETs; both sides read every body,
//!   **keep every result in input order** (the batch its `BatchItem`s, the
//!   baseline `(status, headers, body)` collected into a `Vec` — an ordered
//!   batch holds its results, and dropping them is part of the job) and
//!   count 200s. Threshold: `rps` ratio >= 0.97. A slice is the issue's
//!   batch of N = 20,000 GETs ([`super::BenchConfig::issue_slice`]).
//! * `batch/isahc/c{16,64,256}` — the same over `IsahcDriver` vs plain isahc
//!   (identically configured `HttpClient`).
//! * `batch/over-driver/reqwest-c64` — informative, no threshold: the batch
//!   over `ReqwestDriver` vs the *same driver* in a bare `buffered(64)` loop
//!   collecting its results, so the executor's own share of the
//!   `batch/reqwest/*` ratios can be told apart from the driver's
//!   (`driver/reqwest/*`).
//! * `batch/noop` — executor overhead: `execute_batch` over a no-op driver
//!   vs the bare `stream::iter(..).map(|r| driver.execute(r)).buffered(64)`
//!   over the same driver, both collecting their results in input order, both
//!   fed the same requests (clones of one template). Thresholds: ratio >= 0.8,
//!   and (record `rps_absolute`) >= 1,000,000 requests/s on the harness's
//!   runtime shape ([`super::RUNTIME_SHAPE`]).
//! * `batch/stream-1m` — the `stream_1m` example of `httpclient-batch`
//!   (1,000,000 requests streamed through a 256-worker executor over a no-op
//!   driver, each result consumed as it arrives) run as a child process, so
//!   its `VmHWM` is its own: `peak_rss_mib` <= 64.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use httpclient_batch::BatchExecutor;
use httpclient_core::http::StatusCode;
use httpclient_core::{Driver, Error, Request, Response, async_trait};

use super::driver::{plain_isahc_client, reqwest_baseline_client};
use super::load::{REQUEST_TIMEOUT, measure};
use super::{BenchError, Comparison, Record, Scenario};
use crate::stats::{self, Threshold};

/// Worker counts (= the baseline's `buffered(C)`).
pub const CONCURRENCIES: [usize; 3] = [16, 64, 256];

/// Minimum `rps(batch) / rps(plain client)` over a real driver.
pub const DRIVER_RPS_THRESHOLD: Threshold = Threshold::AtLeast(0.97);

/// The batch scenarios.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();
    for c in CONCURRENCIES {
        all.push(reqwest_scenario(c));
    }
    for c in CONCURRENCIES {
        all.push(isahc_scenario(c));
    }
    all.push(over_driver_scenario());
    all.push(noop_scenario());
    all.push(stream_1m_scenario());
    all
}

fn over_driver_scenario() -> Scenario {
    let id = "batch/over-driver/reqwest-c64";
    let c = 64;
    Scenario::new(id, move |ctx| async move {
        let url = ctx.url("/");
        let build = || {
            httpclient_driver_reqwest::ReqwestDriver::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
        };
        let exec = BatchExecutor::new(build()?, c)?;
        let bare = build()?;
        let cmp = Comparison::new(
            id,
            "the same ReqwestDriver, bare buffered(64), results collected",
        )
        .issue_job(ctx.config(), c)
        .notes("informative: the executor's own cost over a real driver");
        ctx.compare(
            &cmp,
            |n| measure(batch_slice(&exec, &url, n)),
            |n| {
                let bare = &bare;
                let url = &url;
                measure(async move {
                    let results: Vec<Result<Response, Error>> = futures::stream::iter(0..n)
                        .map(|_| async move {
                            match Request::get(url.as_str()).build() {
                                Ok(r) => bare.execute(r).await,
                                Err(e) => Err(e),
                            }
                        })
                        .buffered(c)
                        .collect()
                        .await;
                    let ok = results
                        .iter()
                        .filter(|r| matches!(r, Ok(r) if r.status() == StatusCode::OK))
                        .count() as u64;
                    (ok, n as u64 - ok)
                })
            },
        )
        .await
    })
}

/// Whether this run's `--filter` (if any) selects scenario `id`, using the
/// harness's rule (`id.contains(filter)`).
fn selected(id: &str) -> bool {
    let mut args = std::env::args().skip_while(|a| a != "bench");
    let mut filter = None;
    while let Some(a) = args.next() {
        if a == "--filter" {
            filter = args.next();
        } else if let Some(f) = a.strip_prefix("--filter=") {
            filter = Some(f.to_string());
        }
    }
    filter.is_none_or(|f| id.contains(f.as_str()))
}

/// One ordered batch of `n` GETs of `url`; counts 200s.
async fn batch_slice<D: Driver>(exec: &BatchExecutor<D>, url: &str, n: usize) -> (u64, u64) {
    let result = exec.execute_batch((0..n).map(|_| Request::get(url))).await;
    let ok = result
        .successes()
        .filter(|(_, r)| r.status() == StatusCode::OK)
        .count() as u64;
    (ok, n as u64 - ok)
}

/// Plain reqwest as an ordered batch: `n` GETs through `buffered(c)`, each
/// result kept (status, headers, body) in input order; counts 200s.
async fn reqwest_ordered_slice(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    c: usize,
) -> (u64, u64) {
    let results: Vec<
        Option<(
            reqwest::StatusCode,
            reqwest::header::HeaderMap,
            httpclient_core::Bytes,
        )>,
    > = futures::stream::iter(0..n)
        .map(|_| async move {
            let resp = client.get(url).timeout(REQUEST_TIMEOUT).send().await.ok()?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.ok()?;
            Some((status, headers, body))
        })
        .buffered(c)
        .collect()
        .await;
    let ok = results
        .iter()
        .filter(|r| matches!(r, Some((s, _, _)) if *s == reqwest::StatusCode::OK))
        .count() as u64;
    (ok, n as u64 - ok)
}

/// Plain isahc as an ordered batch, like [`reqwest_ordered_slice`].
async fn isahc_ordered_slice(
    client: &isahc::HttpClient,
    url: &str,
    n: usize,
    c: usize,
) -> (u64, u64) {
    use isahc::AsyncReadResponseExt as _;
    let results: Vec<Option<(isahc::http::StatusCode, isahc::http::HeaderMap, Vec<u8>)>> =
        futures::stream::iter(0..n)
            .map(|_| async move {
                let mut resp = client.get_async(url).await.ok()?;
                let body = resp.bytes().await.ok()?;
                Some((resp.status(), resp.headers().clone(), body))
            })
            .buffered(c)
            .collect()
            .await;
    let ok = results
        .iter()
        .filter(|r| matches!(r, Some((s, _, _)) if *s == isahc::http::StatusCode::OK))
        .count() as u64;
    (ok, n as u64 - ok)
}

fn reqwest_scenario(c: usize) -> Scenario {
    let id = format!("batch/reqwest/c{c}");
    Scenario::new(id.clone(), move |ctx| async move {
        let url = ctx.url("/");
        let driver = httpclient_driver_reqwest::ReqwestDriver::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let exec = BatchExecutor::new(driver, c)?;
        let plain = reqwest_baseline_client()?;
        let cmp = Comparison::new(&id, "plain reqwest (driver's client settings) + buffered(C)")
            .issue_job(ctx.config(), c)
            .rps_threshold(DRIVER_RPS_THRESHOLD)
            .notes(format!(
                "each slice is one ordered execute_batch of n GETs / -> 200 \"ok\" over ReqwestDriver, {c} workers; baseline buffered({c}) collecting (status, headers, body) in order; bodies read fully"
            ));
        ctx.compare(
            &cmp,
            |n| measure(batch_slice(&exec, &url, n)),
            |n| measure(reqwest_ordered_slice(&plain, &url, n, c)),
        )
        .await
    })
}

fn isahc_scenario(c: usize) -> Scenario {
    let id = format!("batch/isahc/c{c}");
    Scenario::new(id.clone(), move |ctx| async move {
        let url = ctx.url("/");
        let driver = httpclient_driver_isahc::IsahcDriver::builder()
            .timeout(REQUEST_TIMEOUT)
            .build_with_client(plain_isahc_client()?)?;
        let exec = BatchExecutor::new(driver, c)?;
        let plain = plain_isahc_client()?;
        let cmp = Comparison::new(&id, "plain isahc (same HttpClient settings) + buffered(C)")
            .issue_job(ctx.config(), c)
            .rps_threshold(DRIVER_RPS_THRESHOLD)
            .notes(format!(
                "each slice is one ordered execute_batch of n GETs / -> 200 \"ok\" over IsahcDriver, {c} workers; baseline buffered({c}) collecting (status, headers, body) in order; bodies read fully"
            ));
        ctx.compare(
            &cmp,
            |n| measure(batch_slice(&exec, &url, n)),
            |n| measure(isahc_ordered_slice(&plain, &url, n, c)),
        )
        .await
    })
}

/// A driver that answers 200 at once without I/O (the same as
/// `httpclient_core::testkit::NoopDriver`, which needs core's `test-util`
/// feature).
#[derive(Debug, Clone, Copy)]
struct Noop;

#[async_trait]
impl Driver for Noop {
    async fn execute(&self, _request: Request) -> Result<Response, Error> {
        Ok(Response::new(StatusCode::OK))
    }
}

/// Concurrency of `batch/noop`.
const NOOP_C: usize = 64;
/// Requests per slice of `batch/noop` (a few tens of ms per slice).
const NOOP_SLICE: usize = 20_000;

fn noop_scenario() -> Scenario {
    let id = "batch/noop";
    Scenario::new(id, move |ctx| async move {
        let template = Request::get(ctx.url("/")).build()?;
        let exec = BatchExecutor::new(Noop, NOOP_C)?;
        let inputs = |n: usize| (0..n).map(|_| template.try_clone());
        let cmp = Comparison::new(id, "bare stream::iter(..).map(|r| driver.execute(r)).buffered(64)")
            .slice_requests(NOOP_SLICE)
            .rps_threshold(Threshold::AtLeast(0.8))
            .notes(format!(
                "no-op driver, {NOOP_C} workers vs buffered({NOOP_C}); both collect results in input order; inputs: clones of one request"
            ));
        let mut records = ctx
            .compare(
                &cmp,
                |n| {
                    let exec = &exec;
                    let inputs = inputs(n);
                    measure(async move {
                        let result = exec
                            .execute_batch(
                                inputs.map(|r| r.ok_or_else(|| Error::invalid_request("clone"))),
                            )
                            .await;
                        let ok = result
                            .responses()
                            .filter(|r| r.status() == StatusCode::OK)
                            .count() as u64;
                        (ok, result.len() as u64 - ok)
                    })
                },
                |n| {
                    let inputs = inputs(n);
                    measure(async move {
                        let results: Vec<Result<Response, Error>> = futures::stream::iter(inputs)
                            .map(|r| async move {
                                match r {
                                    Some(r) => Noop.execute(r).await,
                                    None => Err(Error::invalid_request("clone")),
                                }
                            })
                            .buffered(NOOP_C)
                            .collect()
                            .await;
                        let ok = results
                            .iter()
                            .filter(|r| matches!(r, Ok(r) if r.status() == StatusCode::OK))
                            .count() as u64;
                        (ok, results.len() as u64 - ok)
                    })
                },
            )
            .await?;
        if let Some(rps) = records.iter().find(|r| r.metric == "rps") {
            let abs = Record::absolute(id, "rps_absolute", "req/s", rps.value, rps.runs)
                .note(format!(
                    "execute_batch over a no-op driver, {NOOP_C} workers, summed over the compared slices"
                ))
                .with_value_threshold(Threshold::AtLeast(1_000_000.0));
            records.push(abs);
        }
        Ok(records)
    })
}

/// Child-process runs of `batch/stream-1m` (5 with `--quick`).
const STREAM_RUNS: usize = 7;

fn stream_1m_scenario() -> Scenario {
    let id = "batch/stream-1m";
    // Built here, before any measurement starts (like the test server), so
    // the compile neither counts against the scenario's time limit nor
    // competes for the CPU with the other scenarios' measurements.
    let built: Option<Result<PathBuf, String>> = selected(id).then(|| {
        eprintln!("bench: building the httpclient-batch stream_1m example (release)...");
        build_stream_example().map_err(|e| e.to_string())
    });
    Scenario::new(id, move |ctx| async move {
        let bin = match built {
            Some(Ok(bin)) => bin,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("stream_1m example was not built".into()),
        };
        let runs = if ctx.config().quick { 5 } else { STREAM_RUNS };
        let mut peaks = Vec::with_capacity(runs);
        let mut secs = Vec::with_capacity(runs);
        let mut baseline_rss = Vec::with_capacity(runs);
        for i in 0..runs {
            ctx.progress(&format!("child run {}/{runs}", i + 1));
            let out = run_stream_example(&bin).await?;
            peaks.push(out.peak_rss_mib);
            secs.push(out.elapsed_s);
            baseline_rss.push(out.rss_before_mib);
        }
        let median = stats::median(&peaks).ok_or("no run")?;
        let mut rec = Record::absolute(id, "peak_rss_mib", "MiB", median, runs as u32);
        if let Some((lo, hi)) =
            stats::bootstrap_median_ci(&peaks, stats::BOOTSTRAP_RESAMPLES, stats::seed_for(id))
        {
            rec.add_note(format!(
                "median of {runs} child runs, 95% CI [{lo:.2}, {hi:.2}] MiB"
            ));
        }
        let max = peaks.iter().cloned().fold(f64::MIN, f64::max);
        rec.add_note(format!(
            "max {max:.2} MiB; RSS at start {:.2} MiB; 1,000,000 requests, 256 workers, no-op driver, unordered stream consumed as it arrives; median {:.2} s per run",
            stats::median(&baseline_rss).unwrap_or(0.0),
            stats::median(&secs).unwrap_or(0.0)
        ));
        Ok(vec![rec.with_value_threshold(Threshold::AtMost(64.0))])
    })
}

struct StreamRun {
    peak_rss_mib: f64,
    rss_before_mib: f64,
    elapsed_s: f64,
}

fn workspace_root() -> PathBuf {
    crate::workspace_root()
}

fn build_stream_example() -> Result<PathBuf, BenchError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "httpclient-batch",
            "--example",
            "stream_1m",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("building the stream_1m example failed ({})", out.status).into());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built stream_1m but reported no executable".into())
}

/// Kills the child if the scenario is dropped (hard limit) before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn run_stream_example(bin: &Path) -> Result<StreamRun, BenchError> {
    // Bounded in time: a million no-op requests take about a second.
    let mut child = KillOnDrop(
        Command::new(bin)
            .args(["1000000", "256"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("stream_1m child ran longer than 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut child = child;
    let child = &mut child.0;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read as _;
        out.read_to_string(&mut stdout)?;
    }
    if !status.success() {
        return Err(format!("stream_1m child failed ({status})").into());
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("stream_1m printed {stdout:?}: {e}"))?;
    if v["ok"].as_u64() != Some(1_000_000) {
        return Err(format!("stream_1m did not complete every request: {stdout}").into());
    }
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("stream_1m output lacks {k}"))
    };
    Ok(StreamRun {
        peak_rss_mib: num("peak_rss_mib")?,
        rss_before_mib: num("rss_before_mib")?,
        elapsed_s: num("elapsed_s")?,
    })
}
