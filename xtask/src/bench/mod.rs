//! `cargo xtask bench`: paired ABBA benchmarks that stay trustworthy on a
//! noisy 2-core machine.
//!
//! # Method
//!
//! * The target server is `httpclient-testserver`, built in release mode by
//!   the harness and run as a **child process** with one thread, so it has
//!   its own core and its own allocator, and the client's CPU accounting
//!   (see [`cpu`]) only sees the client.
//! * The client side runs on a fixed runtime shape, printed at the top of
//!   every report ([`RUNTIME_SHAPE`]): a tokio multi-thread runtime with
//!   **one** worker thread; each scenario is spawned as a task on it, so all
//!   client work happens on that worker (plus whatever threads a client owns,
//!   e.g. isahc's agent).
//! * A comparison ([`BenchCtx::compare`]) runs a candidate `A` and a
//!   baseline `B` alternately in short slices, in ABBA order
//!   ([`crate::stats::abba_order`]), after one warm-up slice per side. Each
//!   pair gives the ratios `rps(A)/rps(B)` and `cpu(A)/cpu(B)` per request;
//!   the report gives their median and a bootstrap 95 % interval over pairs
//!   ([`crate::stats`]).
//! * Every run includes the A/A control `control/reqwest/c64` (plain reqwest
//!   against an identically built plain reqwest). If its interval is wider
//!   than ±2 %, every other comparison of the run is `inconclusive`.
//! * Verdicts are taken on the interval (see
//!   [`crate::stats::Threshold::judge`]), and need at least
//!   [`crate::stats::MIN_GATED_PAIRS`] pairs: `--quick` (12 pairs, small
//!   slices) is indicative only.
//! * Every load loop is bounded in count (slices × requests) and in time
//!   (per-request timeouts, a per-slice timeout, a per-comparison time limit
//!   after which no new pair starts, and a hard per-scenario cap —
//!   60 s with `--quick`, 900 s otherwise — past which the scenario is
//!   dropped and reported as failed); all traffic goes to 127.0.0.1.
//!
//! Output: a table on stdout, `<target>/bench/report.json` (a list of
//! [`Record`]s) and `<target>/bench/report.md` (runtime shape and date, then
//! the table), where `<target>` is the workspace's target directory as
//! `cargo metadata` reports it (so `CARGO_TARGET_DIR` is honoured).
//!
//! # Adding a scenario
//!
//! Scenarios live in one module per area: [`driver`], [`batch`],
//! [`ratelimit`], [`pool`], [`chain`] (plus [`control`] and [`plain`] which
//! exercise the harness with plain clients). Each exposes
//! `pub fn scenarios() -> Vec<Scenario>`, and [`registry`] concatenates
//! them; the harness code never needs to change.
//!
//! 1. Add the crates you measure to `xtask/Cargo.toml` as **optional**
//!    dependencies and list them in the `bench` feature
//!    (`bench = [..., "dep:httpclient-batch"]`), so `cargo test --workspace`
//!    does not compile them for xtask.
//! 2. In your area's module, push a [`Scenario`] whose id is
//!    `area/what/variant` (e.g. `batch/executor/c64`):
//!
//!    ```ignore
//!    pub fn scenarios() -> Vec<Scenario> {
//!        vec![Scenario::new("batch/executor/c64", |ctx| async move {
//!            let url = ctx.url("/");
//!            let plain = load::plain_reqwest_client()?;
//!            let exec = /* your candidate, built on the same settings */;
//!            let cmp = Comparison::new("batch/executor/c64", "plain reqwest + buffered(64)")
//!                .rps_threshold(Threshold::AtLeast(0.97));
//!            ctx.compare(
//!                &cmp,
//!                |n| async { /* run n requests through `exec` */
//!                    load::measure(async { /* ... */ (ok, errors) }).await },
//!                |n| load::reqwest_slice(&plain, &url, n, 64),
//!            )
//!            .await
//!        })]
//!    }
//!    ```
//!
//!    A side is any `FnMut(usize) -> impl Future<Output = Result<SliceResult, BenchError>>`
//!    that performs exactly `n` requests; [`load::run_slice`] (a bounded
//!    `buffered(C)` loop) and [`load::measure`] (wall clock + process CPU
//!    around any future) build a [`SliceResult`] for you. Futures must be
//!    `Send` (the scenario runs as a task on the bench runtime).
//! 3. For absolute metrics (e.g. `peak_rss_mib`, `ns`, an `achieved_ratio`
//!    with a bound) return [`Record::absolute`] records, optionally
//!    `.with_value_threshold(Threshold::AtMost(64.0))`; their
//!    `ratio`/`baseline` stay `null` and the control gate leaves them alone.
//!    [`BenchCtx::measure_absolute`] gives rps and CPU per request of a single
//!    side over `ctx.config().absolute_requests` requests.
//! 4. A brand-new area module: create `xtask/src/bench/<area>.rs` with
//!    `pub fn scenarios() -> Vec<Scenario>`, declare it below and add one
//!    `all.extend(<area>::scenarios());` line to [`registry`].
//!
//! Run `cargo xtask bench --quick --filter batch/` while developing, and a
//! full `cargo xtask bench` (50 pairs) before quoting a ratio.

pub mod batch;
pub mod chain;
pub mod control;
pub mod cpu;
pub mod driver;
pub mod load;
pub mod plain;
pub mod pool;
pub mod ratelimit;

use std::future::Future;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::report::Record;
use crate::report::{CONTROL_ID, apply_control_gate, render_markdown, render_table};
use crate::stats::{self, Side, Threshold, Verdict};
pub use load::SliceResult;

/// Any error a scenario can return; `?` converts most errors into it and
/// `"text".into()` makes one from a message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// What a scenario produces.
pub type ScenarioResult = Result<Vec<Record>, BenchError>;

type ScenarioFuture = Pin<Box<dyn Future<Output = ScenarioResult> + Send>>;

/// The client runtime shape, printed at the top of every report.
pub const RUNTIME_SHAPE: &str = "client: tokio multi-thread runtime with 1 worker thread \
     (each scenario runs as one task on it; clients' own threads such as isahc's agent come on top); \
     server: child process `httpclient-testserver --threads 1`, HTTP/1.1 keep-alive on 127.0.0.1";

/// One named benchmark: an async function of the context that returns
/// records.
pub struct Scenario {
    id: String,
    run: Box<dyn FnOnce(Arc<BenchCtx>) -> ScenarioFuture + Send>,
}

impl Scenario {
    /// A scenario with id `area/what/variant` running `run`.
    pub fn new<F, Fut>(id: impl Into<String>, run: F) -> Self
    where
        F: FnOnce(Arc<BenchCtx>) -> Fut + Send + 'static,
        Fut: Future<Output = ScenarioResult> + Send + 'static,
    {
        Scenario {
            id: id.into(),
            run: Box::new(move |ctx| Box::pin(run(ctx))),
        }
    }

    /// The scenario id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Every scenario except the control, in run order. Add one line per area
/// module here.
pub fn registry() -> Vec<Scenario> {
    let mut all = Vec::new();
    all.extend(plain::scenarios());
    all.extend(driver::scenarios());
    all.extend(batch::scenarios());
    all.extend(ratelimit::scenarios());
    all.extend(pool::scenarios());
    all.extend(chain::scenarios());
    all
}

/// Requests per job in the issues' figures (`N=20,000`): the slice size of
/// [`BenchConfig::issue_slice`].
pub const ISSUE_JOB_REQUESTS: usize = 20_000;

/// At most this many ABBA pairs for comparisons with
/// [`ISSUE_JOB_REQUESTS`]-request slices (the verdict minimum), so each
/// stays near a minute or two.
pub const ISSUE_JOB_PAIRS: usize = crate::stats::MIN_GATED_PAIRS;

/// Sizes and bounds of a run, derived from the command line.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `--quick` was given.
    pub quick: bool,
    /// ABBA pairs per comparison.
    pub pairs: usize,
    /// Default requests per slice of a comparison.
    pub slice_requests: usize,
    /// Requests per measurement run of an absolute scenario.
    pub absolute_requests: usize,
    /// A comparison stops adding pairs after this long (noted in the record).
    pub scenario_time_limit: Duration,
    /// A single slice that takes longer than this fails the scenario.
    pub slice_timeout: Duration,
    /// Hard wall-clock cap on a whole scenario (any kind): past it the
    /// scenario's future is dropped and the scenario reported as failed.
    pub scenario_hard_limit: Duration,
}

impl BenchConfig {
    /// The configuration for the given command line.
    pub fn from_args(args: &crate::cli::BenchArgs) -> Self {
        let quick = args.quick;
        BenchConfig {
            quick,
            pairs: args.pairs.unwrap_or(if quick { 12 } else { 100 }),
            slice_requests: if quick { 1_000 } else { 2_000 },
            absolute_requests: if quick { 5_000 } else { 20_000 },
            scenario_time_limit: Duration::from_secs(if quick { 8 } else { 180 }),
            slice_timeout: Duration::from_secs(30),
            scenario_hard_limit: Duration::from_secs(if quick { 60 } else { 900 }),
        }
    }

    /// Slice size for a given concurrency: at least 4 waves of `C` in
    /// flight, so ramp-up and drain stay a small part of a slice.
    pub fn slice_for(&self, concurrency: usize) -> usize {
        self.slice_requests.max(concurrency * 4)
    }

    /// Slice size of the scenarios whose issue names a job size: one slice
    /// is the issue's [`ISSUE_JOB_REQUESTS`]-request job (`--quick`:
    /// [`BenchConfig::slice_for`]). Such comparisons run at most
    /// [`ISSUE_JOB_PAIRS`] pairs. Why it matters: with 2,000-request slices
    /// a 256-worker batch is only 8 waves long, and the ramp-up and drain at
    /// each end dominated — the same code measured 0.89-0.91 of
    /// `buffered(256)` with 2,000-request slices and 0.99-1.06 with 8,000
    /// in a scratch harness that alternates the two sides like this one (the
    /// batch keeps every worker busy until its input runs out, while
    /// `buffered` stalls behind its oldest request; we did not pin down why
    /// that favours the baseline in short slices).
    pub fn issue_slice(&self, concurrency: usize) -> usize {
        if self.quick {
            self.slice_for(concurrency)
        } else {
            ISSUE_JOB_REQUESTS
        }
    }
}

/// What a scenario gets: the server's address, the configuration and the
/// progress line.
pub struct BenchCtx {
    base_url: String,
    config: BenchConfig,
    progress: Mutex<Progress>,
    raw: Mutex<Vec<serde_json::Value>>,
}

struct Progress {
    label: String,
    tty: bool,
    last_line: Option<Instant>,
}

impl BenchCtx {
    /// The configuration of this run.
    pub fn config(&self) -> &BenchConfig {
        &self.config
    }

    /// The test server's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A URL on the test server: `ctx.url("/?delay_ms=5")`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), path_and_query)
    }

    /// Shows `what` on the progress line (stderr) after the scenario label.
    ///
    /// On a terminal the line is rewritten in place; otherwise (CI logs) at
    /// most one line per second is printed.
    pub fn progress(&self, what: &str) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.tty {
            eprint!("\r\x1b[2K{} {what}", p.label);
        } else if p
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            p.last_line = Some(Instant::now());
            eprintln!("{} {what}", p.label);
        }
        let _ = std::io::stderr().flush();
    }

    /// Runs candidate `a` against baseline `b` in ABBA slices and returns an
    /// `rps` and a `cpu_per_req` record, both with paired-ratio medians and
    /// bootstrap intervals.
    ///
    /// `a` and `b` are called with the number of requests to perform and
    /// must report what they did in a [`SliceResult`].
    pub async fn compare<A, FA, B, FB>(
        &self,
        cmp: &Comparison,
        mut a: A,
        mut b: B,
    ) -> ScenarioResult
    where
        A: FnMut(usize) -> FA,
        FA: Future<Output = Result<SliceResult, BenchError>>,
        B: FnMut(usize) -> FB,
        FB: Future<Output = Result<SliceResult, BenchError>>,
    {
        let n = cmp.slice_requests.unwrap_or(self.config.slice_requests);
        let timeout = self.config.slice_timeout;
        let bounded = |side: &'static str, fut| bounded_slice(timeout, side, n, fut);
        let bounded_b = |side: &'static str, fut| bounded_slice(timeout, side, n, fut);

        // Warm-up B then A, so that the first pair's first A follows an A
        // like every later pair's (see `stats::abba_order`).
        self.progress("warm-up");
        let warm_b: SliceResult = bounded_b("B", b(n)).await?;
        let warm_a: SliceResult = bounded("A", a(n)).await?;
        if warm_a.requests == 0 || warm_b.requests == 0 {
            return Err(format!(
                "warm-up completed no request (A: {} ok / {} errors, B: {} ok / {} errors)",
                warm_a.requests, warm_a.errors, warm_b.requests, warm_b.errors
            )
            .into());
        }

        let started = Instant::now();
        let pairs = cmp
            .max_pairs
            .map_or(self.config.pairs, |m| m.min(self.config.pairs));
        let order = stats::abba_order(pairs);
        // Per pair: each side's slices of that pair, summed.
        let mut a_res = Vec::with_capacity(order.len());
        let mut b_res = Vec::with_capacity(order.len());
        let mut a_raw = Vec::with_capacity(order.len() * 2);
        let mut b_raw = Vec::with_capacity(order.len() * 2);
        let mut stopped_early = false;
        for (i, pair) in order.iter().enumerate() {
            if started.elapsed() > self.config.scenario_time_limit {
                stopped_early = true;
                break;
            }
            self.progress(&format!("pair {}/{}", i + 1, order.len()));
            let (mut pa, mut pb) = (Vec::with_capacity(2), Vec::with_capacity(2));
            for side in pair {
                match side {
                    Side::A => pa.push(bounded("A", a(n)).await?),
                    Side::B => pb.push(bounded_b("B", b(n)).await?),
                }
            }
            a_res.push(SliceResult::sum(&pa));
            b_res.push(SliceResult::sum(&pb));
            a_raw.extend(pa);
            b_raw.extend(pb);
        }
        let mut notes = Vec::new();
        if stopped_early {
            notes.push(format!(
                "time limit {:?} hit after {} of {} pairs",
                self.config.scenario_time_limit,
                a_res.len(),
                order.len()
            ));
        }
        self.keep_raw(&cmp.scenario, &a_raw, &b_raw);
        Ok(paired_records(cmp, &a_res, &b_res, n, notes))
    }

    /// Keeps the per-slice data of a scenario for `raw.json`.
    fn keep_raw(&self, scenario: &str, a: &[SliceResult], b: &[SliceResult]) {
        let slices = |v: &[SliceResult]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|s| {
                    serde_json::json!({
                        "requests": s.requests,
                        "errors": s.errors,
                        "elapsed_s": s.elapsed.as_secs_f64(),
                        "cpu_s": s.cpu_time.as_secs_f64(),
                    })
                })
                .collect()
        };
        let entry = serde_json::json!({ "scenario": scenario, "a": slices(a), "b": slices(b) });
        self.raw
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
    }

    /// Runs one side alone over `total` requests in slices of `slice`
    /// (after one warm-up slice) and returns absolute `rps` and
    /// `cpu_per_req` records; the notes carry the median slice throughput
    /// and its bootstrap interval.
    pub async fn measure_absolute<S, F>(
        &self,
        scenario: &str,
        total: usize,
        slice: usize,
        mut side: S,
    ) -> ScenarioResult
    where
        S: FnMut(usize) -> F,
        F: Future<Output = Result<SliceResult, BenchError>>,
    {
        let slice = slice.max(1);
        let slices = total.div_ceil(slice);
        let timeout = self.config.slice_timeout;
        let mut bounded = |n: usize| bounded_slice(timeout, "", n, side(n));
        self.progress("warm-up");
        bounded(slice).await?;
        let started = Instant::now();
        let mut results = Vec::with_capacity(slices);
        for i in 0..slices {
            if started.elapsed() > self.config.scenario_time_limit {
                break;
            }
            self.progress(&format!("slice {}/{slices}", i + 1));
            let n = slice.min(total - i * slice);
            results.push(bounded(n).await?);
        }
        self.keep_raw(scenario, &results, &[]);
        let sum = SliceResult::sum(&results);
        let per_slice: Vec<f64> = results.iter().map(SliceResult::rps).collect();
        let runs = results.len() as u32;
        let mut rps = Record::absolute(scenario, "rps", "req/s", sum.rps(), runs);
        if let (Some(m), Some((lo, hi))) = (
            stats::median(&per_slice),
            stats::bootstrap_median_ci(
                &per_slice,
                stats::BOOTSTRAP_RESAMPLES,
                stats::seed_for(scenario),
            ),
        ) {
            rps.add_note(format!(
                "{} requests in {runs} slices of {slice}; median slice {m:.0} req/s, 95% CI [{lo:.0}, {hi:.0}]",
                sum.requests
            ));
        }
        let mut cpu = Record::absolute(
            scenario,
            "cpu_per_req",
            "us/req",
            sum.cpu_us_per_req(),
            runs,
        );
        if sum.errors > 0 {
            let e = format!("{} failed requests", sum.errors);
            rps.add_note(&e);
            cpu.add_note(&e);
            rps.verdict = Some(Verdict::Fail);
        }
        Ok(vec![rps, cpu])
    }
}

/// Runs one slice future under the slice timeout.
async fn bounded_slice<F>(
    timeout: Duration,
    side: &str,
    n: usize,
    fut: F,
) -> Result<SliceResult, BenchError>
where
    F: Future<Output = Result<SliceResult, BenchError>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("{side} slice of {n} requests exceeded {timeout:?}")
            .trim_start()
            .to_string()
            .into()),
    }
}

/// Describes one A-vs-B comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Scenario id.
    pub scenario: String,
    /// What `B` is, e.g. `plain reqwest`.
    pub baseline_name: String,
    /// Requests per slice; `None` uses the configured default.
    pub slice_requests: Option<usize>,
    /// At most this many ABBA pairs (for slices so long that the configured
    /// count would take too long); `None`: the configured count.
    pub max_pairs: Option<usize>,
    /// Bound on the median `rps(A)/rps(B)` ratio, judged on its interval.
    pub rps_threshold: Option<Threshold>,
    /// Bound on the `cpu_per_req(A)/cpu_per_req(B)` ratio.
    pub cpu_threshold: Option<Threshold>,
    /// Extra notes for both records.
    pub notes: String,
}

impl Comparison {
    /// A comparison without thresholds, using the default slice size.
    pub fn new(scenario: impl Into<String>, baseline_name: impl Into<String>) -> Self {
        Comparison {
            scenario: scenario.into(),
            baseline_name: baseline_name.into(),
            slice_requests: None,
            max_pairs: None,
            rps_threshold: None,
            cpu_threshold: None,
            notes: String::new(),
        }
    }

    /// Sets the requests per slice.
    pub fn slice_requests(mut self, n: usize) -> Self {
        self.slice_requests = Some(n.max(1));
        self
    }

    /// Caps the number of ABBA pairs (the configured count when lower).
    pub fn max_pairs(mut self, n: usize) -> Self {
        self.max_pairs = Some(n.max(2));
        self
    }

    /// One slice per job of the size the issue names
    /// ([`BenchConfig::issue_slice`]), at most [`ISSUE_JOB_PAIRS`] pairs.
    pub fn issue_job(self, config: &BenchConfig, concurrency: usize) -> Self {
        self.slice_requests(config.issue_slice(concurrency))
            .max_pairs(ISSUE_JOB_PAIRS)
    }

    /// Sets the threshold on the throughput ratio.
    pub fn rps_threshold(mut self, t: Threshold) -> Self {
        self.rps_threshold = Some(t);
        self
    }

    /// Sets the threshold on the CPU-per-request ratio.
    pub fn cpu_threshold(mut self, t: Threshold) -> Self {
        self.cpu_threshold = Some(t);
        self
    }

    /// Sets the notes.
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = notes.into();
        self
    }
}

/// Builds the `rps` and `cpu_per_req` records of a finished comparison.
fn paired_records(
    cmp: &Comparison,
    a: &[SliceResult],
    b: &[SliceResult],
    slice: usize,
    extra_notes: Vec<String>,
) -> Vec<Record> {
    let pairs = a.len().min(b.len());
    let (a, b) = (&a[..pairs], &b[..pairs]);
    let (sa, sb) = (SliceResult::sum(a), SliceResult::sum(b));
    let rps_ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.rps() / y.rps()).collect();
    let cpu_ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.cpu_us_per_req() / y.cpu_us_per_req())
        .collect();

    let mut common = vec![format!(
        "{pairs} ABBA pairs, {slice} requests per slice (4 slices per pair)"
    )];
    if !cmp.notes.is_empty() {
        common.push(cmp.notes.clone());
    }
    common.extend(extra_notes);
    if sa.errors > 0 || sb.errors > 0 {
        common.push(format!(
            "failed requests: A {} / B {}",
            sa.errors, sb.errors
        ));
    }

    let make = |metric: &str,
                unit: &str,
                value: f64,
                baseline: f64,
                ratios: &[f64],
                threshold: Option<Threshold>,
                seed_tag: &str| {
        let ratio = stats::median(ratios).unwrap_or(f64::NAN);
        let seed = stats::seed_for(&format!("{}#{seed_tag}", cmp.scenario));
        let ci = stats::bootstrap_median_ci(ratios, stats::BOOTSTRAP_RESAMPLES, seed)
            .unwrap_or((f64::NAN, f64::NAN));
        let mut verdict = stats::ratio_verdict(threshold, ci, pairs);
        let mut r = Record {
            scenario: cmp.scenario.clone(),
            metric: metric.to_string(),
            unit: unit.to_string(),
            value,
            baseline: Some(baseline),
            baseline_name: Some(cmp.baseline_name.clone()),
            ratio: Some(ratio),
            ratio_ci: Some([ci.0, ci.1]),
            runs: pairs as u32,
            verdict: None,
            notes: String::new(),
        };
        if let Some(t) = threshold {
            r.add_note(format!("threshold: ratio {}", t.describe()));
            if pairs < stats::MIN_GATED_PAIRS {
                r.add_note(format!(
                    "indicative only: {pairs} pairs < {}",
                    stats::MIN_GATED_PAIRS
                ));
            }
            if sa.errors > 0 {
                verdict = Some(Verdict::Fail);
            } else if sb.errors > 0 {
                verdict = Some(Verdict::Inconclusive);
            }
        }
        for n in &common {
            r.add_note(n);
        }
        r.verdict = verdict;
        r
    };
    vec![
        make(
            "rps",
            "req/s",
            sa.rps(),
            sb.rps(),
            &rps_ratios,
            cmp.rps_threshold,
            "rps",
        ),
        make(
            "cpu_per_req",
            "us/req",
            sa.cpu_us_per_req(),
            sb.cpu_us_per_req(),
            &cpu_ratios,
            cmp.cpu_threshold,
            "cpu",
        ),
    ]
}

/// The target directory as cargo sees it (honours `CARGO_TARGET_DIR` and
/// `build.target-dir`).
fn target_dir(root: &Path, cargo: &str) -> Result<PathBuf, String> {
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `cargo metadata`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`cargo metadata` failed ({})", out.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`cargo metadata` printed invalid JSON: {e}"))?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "`cargo metadata` has no target_directory".to_string())
}

/// Builds the test server in release mode and returns its binary's path.
fn build_testserver(root: &Path, cargo: &str) -> Result<PathBuf, String> {
    eprintln!("bench: building httpclient-testserver (release)...");
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "httpclient-testserver",
            "--bin",
            "httpclient-testserver",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `cargo build` for the test server: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building httpclient-testserver failed ({})",
            out.status
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built httpclient-testserver but reported no executable".to_string())
}

/// Entry point of `cargo xtask bench`.
pub fn main(root: &Path, args: &crate::cli::BenchArgs) -> ExitCode {
    match run(root, args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("bench: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, args: &crate::cli::BenchArgs) -> Result<ExitCode, String> {
    let config = BenchConfig::from_args(args);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let target = target_dir(root, &cargo)?;
    let server_bin = build_testserver(root, &cargo)?;

    let mut scenarios = vec![control::scenario()];
    scenarios.extend(
        registry()
            .into_iter()
            .filter(|s| args.filter.as_deref().is_none_or(|f| s.id.contains(f))),
    );
    if let Some(f) = &args.filter
        && scenarios.len() == 1
    {
        eprintln!("bench: note: no scenario matches `{f}`; running the control only");
    }

    let server = server::spawn(&server_bin)?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = vec![
        format!("date: {}", crate::report::utc_datetime(unix_now())),
        format!("runtime shape: {RUNTIME_SHAPE}"),
        format!(
            "machine: {cpus} CPUs visible; test server binary {}",
            server_bin.display()
        ),
        format!("client CPU time: {}", cpu::cpu_time_method()),
        format!(
            "mode: {}; {} ABBA pairs per comparison (verdicts need >= {}), {} requests per slice (at least 4x concurrency), {} requests per absolute run",
            if config.quick {
                "--quick (ratios indicative only)"
            } else {
                "full"
            },
            config.pairs,
            stats::MIN_GATED_PAIRS,
            config.slice_requests,
            config.absolute_requests
        ),
        format!(
            "control: {CONTROL_ID} must have its rps-ratio 95% CI within [0.98, 1.02], else every comparison is inconclusive"
        ),
    ];
    for h in &header {
        eprintln!("bench: {h}");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(|e| format!("could not build the tokio runtime: {e}"))?;
    let ctx = Arc::new(BenchCtx {
        base_url: server.base_url(),
        config: config.clone(),
        progress: Mutex::new(Progress {
            label: String::new(),
            tty: std::io::stderr().is_terminal(),
            last_line: None,
        }),
        raw: Mutex::new(Vec::new()),
    });

    let total = scenarios.len();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (i, scenario) in scenarios.into_iter().enumerate() {
        let id = scenario.id.clone();
        {
            let mut p = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            p.label = format!("bench: [{}/{total}] {id}", i + 1);
            p.last_line = None;
        }
        let t0 = Instant::now();
        let fut = (scenario.run)(ctx.clone());
        let hard_limit = config.scenario_hard_limit;
        let outcome = rt.block_on(rt.spawn(async move {
            match tokio::time::timeout(hard_limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(BenchError::from(format!(
                    "stopped at the hard limit of {hard_limit:?} per scenario \
                     (size --quick runs with ctx.config().quick)"
                ))),
            }
        }));
        let tty = std::io::stderr().is_terminal();
        let clear = if tty { "\r\x1b[2K" } else { "" };
        match outcome {
            Ok(Ok(mut recs)) => {
                eprintln!(
                    "{clear}bench: [{}/{total}] {id} done in {:.1?}",
                    i + 1,
                    t0.elapsed()
                );
                records.append(&mut recs);
            }
            Ok(Err(e)) => {
                eprintln!("{clear}bench: [{}/{total}] {id} FAILED: {e}", i + 1);
                errors.push(format!("{id}: {e}"));
            }
            Err(e) => {
                eprintln!("{clear}bench: [{}/{total}] {id} PANICKED: {e}", i + 1);
                errors.push(format!("{id}: panicked: {e}"));
            }
        }
    }
    drop(rt);
    drop(server);

    // The run-wide control gate.
    let control = records
        .iter()
        .find(|r| r.scenario == CONTROL_ID && r.metric == "rps")
        .and_then(|r| r.ratio_ci);
    let (tight, why) = match control {
        Some([lo, hi]) if stats::control_is_tight(lo, hi) => (true, String::new()),
        Some([lo, hi]) => (
            false,
            format!("A/A control CI [{lo:.3}, {hi:.3}] wider than ±2%"),
        ),
        None => (false, "A/A control missing".to_string()),
    };
    apply_control_gate(&mut records, tight, &why);

    let table = render_table(&records);
    println!("{table}");
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(&records).map_err(|e| e.to_string())?;
    let json_path = dir.join("report.json");
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    let mut md_header = header;
    if !tight {
        md_header.push(format!("**comparisons inconclusive**: {why}"));
    }
    for e in &errors {
        md_header.push(format!("**scenario error**: {e}"));
    }
    let raw = std::mem::take(&mut *ctx.raw.lock().unwrap_or_else(|e| e.into_inner()));
    let raw_path = dir.join("raw.json");
    let raw = serde_json::to_string(&raw).map_err(|e| e.to_string())?;
    std::fs::write(&raw_path, raw + "\n")
        .map_err(|e| format!("writing {}: {e}", raw_path.display()))?;
    let mut md = render_markdown("batchclient benchmark report", &md_header, &records);
    let charts = crate::charts::report_charts(&records);
    if !charts.is_empty() {
        md.push_str("\n## Charts\n\n");
    }
    for (file, caption, svg) in &charts {
        let path = dir.join(file);
        std::fs::write(&path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
        md.push_str(&format!("![{caption}]({file})\n\n"));
        eprintln!("bench: wrote {}", path.display());
    }
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, md).map_err(|e| format!("writing {}: {e}", md_path.display()))?;
    eprintln!(
        "bench: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    if !tight {
        eprintln!("bench: every comparison is inconclusive: {why}");
    }

    let failed: Vec<&Record> = records
        .iter()
        .filter(|r| !r.is_control() && r.verdict == Some(Verdict::Fail))
        .collect();
    for r in &failed {
        eprintln!("bench: FAIL {} {}: {}", r.scenario, r.metric, r.notes);
    }
    for e in &errors {
        eprintln!("bench: ERROR {e}");
    }
    Ok(if failed.is_empty() && errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

mod server {
    //! Spawning the test server child process.

    use std::path::Path;

    pub(super) use httpclient_testserver::ChildServer;

    /// Starts the child server from `bin` with one worker thread and a
    /// lifetime bound (it exits by itself even if we are killed).
    pub(super) fn spawn(bin: &Path) -> Result<ChildServer, String> {
        ChildServer::spawn_from(bin, &["--threads", "1", "--max-lifetime-secs", "3600"])
            .map_err(|e| format!("could not start the test server {}: {e}", bin.display()))
    }
}
