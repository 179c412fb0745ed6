//! Scenarios for `httpclient-ratelimit`: rate accuracy against governor,
//! and the limiter's own overhead.
//!
//! * `ratelimit/1000-b1`, `ratelimit/100-b1` — 64 callers loop "take a
//!   permit, then GET `/` on the test server" for 5 s (10 s at 100/s; 2 s
//!   each with `--quick`). Each caller notes the instant it is released (its
//!   permit future returned). From those instants:
//!   `achieved_ratio` = releases after the burst ÷ (rate × time from the
//!   first to the last release), `max_100ms` = most releases in any sliding
//!   100 ms window (bound: rate·0.1 s + burst + rate·max release lag), and the
//!   release lag (release − grant instant) percentiles. governor
//!   (`RateLimiter::direct(Quota::per_second(r).allow_burst(1))`,
//!   `until_ready`) runs the same loop in the same run and is the baseline;
//!   our limiter is also run with `Precision::Fine` (`fine_*` metrics).
//!   `cpu_pct` is process CPU over wall time (the server is a child process,
//!   not counted).
//! * `ratelimit/20000-b1` — the same at 20,000/s with no I/O after the
//!   permit (the loopback server cannot take 20k/s here).
//! * `ratelimit/1000-b1-strict`, `ratelimit/100-b1-strict` —
//!   `Spacing::Strict` with each precision: the rate it keeps and the
//!   smallest gap between releases.
//! * `ratelimit/acquire` — uncontended `Limiter::acquire` with permits
//!   always available: CPU ns per call, median of runs (wall-clock in the
//!   notes; see `acquire_overhead` below for why CPU time).
//! * `ratelimit/noop` — `RateLimitedExecutor` over a no-op driver with
//!   permits always available: permits per CPU-second, sequential calls
//!   (wall-clock rate in the notes).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use httpclient_ratelimit::httpclient_core::{self as core, Driver, async_trait};
use httpclient_ratelimit::{Limiter, Precision, Quota, RateLimitedExecutor, Spacing};

use super::cpu::process_cpu_time;
use super::load::{plain_reqwest_client, reqwest_get};
use super::{BenchCtx, BenchError, Record, Scenario};
use crate::stats::{Threshold, median, quantile_sorted};

const CALLERS: usize = 64;
const WINDOW_NS: u64 = 100_000_000;

/// The rate-limit scenarios.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        paced("ratelimit/1000-b1", 1_000, Duration::from_secs(5), true),
        paced("ratelimit/100-b1", 100, Duration::from_secs(10), true),
        paced("ratelimit/20000-b1", 20_000, Duration::from_secs(5), false),
        strict("ratelimit/1000-b1-strict", 1_000),
        strict("ratelimit/100-b1-strict", 100),
        Scenario::new("ratelimit/acquire", acquire_overhead),
        Scenario::new("ratelimit/noop", noop_throughput),
    ]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours(Precision, Spacing),
    Governor,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours(Precision::Timer, Spacing::Scheduled) => "ours (Precision::Timer)",
            Side::Ours(_, Spacing::Scheduled) => "ours (Precision::Fine)",
            Side::Ours(Precision::Timer, _) => "ours (Spacing::Strict, Precision::Timer)",
            Side::Ours(..) => "ours (Spacing::Strict, Precision::Fine)",
            Side::Governor => "governor until_ready",
        }
    }
}

/// What one paced run (one slice) measured.
struct Slice {
    /// Release instants, ns since the slice's start, sorted.
    releases: Vec<u64>,
    /// Release lags in ns (ours only).
    lags: Vec<u64>,
    /// Release instants as the limiter itself took them (grant + lag, on
    /// its clock; ours only), sorted.
    commits: Vec<u64>,
    errors: u64,
    cpu: Duration,
    wall: Duration,
}

/// One side's slices, aggregated.
#[derive(Default)]
struct Paced {
    /// Releases after the burst, summed over slices.
    after_burst: f64,
    /// Ideal releases over the same spans: rate × (last − first release).
    ideal: f64,
    releases: usize,
    max_100ms: u64,
    /// Smallest gap between two consecutive releases, ns: as the callers
    /// saw them, and as the limiter released them.
    min_gap: Option<u64>,
    min_commit_gap: Option<u64>,
    /// Pooled release lags in ns, sorted.
    lags: Vec<u64>,
    errors: u64,
    cpu: Duration,
    wall: Duration,
}

impl Paced {
    fn add(&mut self, s: Slice, rate: u32, burst: u32) {
        if let (Some(first), Some(last)) = (s.releases.first(), s.releases.last()) {
            self.after_burst += s.releases.len() as f64 - f64::from(burst);
            self.ideal += f64::from(rate) * (last - first) as f64 / 1e9;
        }
        self.releases += s.releases.len();
        let r = &s.releases;
        let (mut best, mut i) = (0usize, 0usize);
        for j in 0..r.len() {
            while r[j] - r[i] >= WINDOW_NS {
                i += 1;
            }
            best = best.max(j - i + 1);
        }
        self.max_100ms = self.max_100ms.max(best as u64);
        let min_gap =
            |v: &[u64], acc: Option<u64>| v.windows(2).map(|w| w[1] - w[0]).chain(acc).min();
        self.min_gap = min_gap(r, self.min_gap);
        self.min_commit_gap = min_gap(&s.commits, self.min_commit_gap);
        self.lags.extend(s.lags);
        self.lags.sort_unstable();
        self.errors += s.errors;
        self.cpu += s.cpu;
        self.wall += s.wall;
    }

    fn achieved_ratio(&self) -> f64 {
        if self.ideal > 0.0 {
            self.after_burst / self.ideal
        } else {
            0.0
        }
    }

    fn cpu_pct(&self) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            100.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64()
        }
    }

    fn lag_us(&self, q: f64) -> f64 {
        let v: Vec<f64> = self.lags.iter().map(|&l| l as f64 / 1e3).collect();
        quantile_sorted(&v, q).unwrap_or(0.0)
    }

    fn max_lag_us(&self) -> f64 {
        self.lags.last().map_or(0.0, |&l| l as f64 / 1e3)
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "achieved {:.4}, max_100ms {}, {} releases, cpu {:.1}%",
            self.achieved_ratio(),
            self.max_100ms,
            self.releases,
            self.cpu_pct()
        );
        if !self.lags.is_empty() {
            s.push_str(&format!(
                ", lag p50 {:.0} us / p99 {:.0} us / max {:.0} us",
                self.lag_us(0.5),
                self.lag_us(0.99),
                self.max_lag_us()
            ));
        }
        if self.errors > 0 {
            s.push_str(&format!(", {} failed requests", self.errors));
        }
        s
    }
}

/// `CALLERS` tasks: permit, note the release instant, then the request
/// (a GET on `url`, or nothing). Every wait is bounded by the slice's end.
async fn paced_slice(
    side: Side,
    rate: u32,
    run_for: Duration,
    target: Option<(reqwest::Client, String)>,
) -> Result<Slice, BenchError> {
    let burst = 1;
    let nz = |n: u32| NonZeroU32::new(n).ok_or("zero rate");
    let ours = match side {
        Side::Ours(p, spacing) => Some(
            Limiter::builder(Quota::per_second(rate)?.burst(burst)?)
                .precision(p)
                .spacing(spacing)
                .build(),
        ),
        Side::Governor => None,
    };
    let gov = Arc::new(governor::RateLimiter::direct(
        governor::Quota::per_second(nz(rate)?).allow_burst(nz(burst)?),
    ));
    let target = Arc::new(target);
    let cpu0 = process_cpu_time();
    let start = Instant::now();
    let end = tokio::time::Instant::from_std(start + run_for);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let ours = ours.clone();
            let gov = gov.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let (mut rel, mut lags, mut commits, mut errors) =
                    (Vec::new(), Vec::new(), Vec::new(), 0u64);
                while tokio::time::Instant::now() < end {
                    match &ours {
                        Some(l) => match tokio::time::timeout_at(end, l.acquire()).await {
                            Ok(Ok(p)) => {
                                let now = l.clock().now();
                                rel.push(start.elapsed());
                                lags.push(now.saturating_sub(p.granted_at()));
                                let lag = p.release_lag().as_nanos() as u64;
                                commits.push(p.granted_at() + lag);
                            }
                            _ => break,
                        },
                        None => match tokio::time::timeout_at(end, gov.until_ready()).await {
                            Ok(()) => rel.push(start.elapsed()),
                            Err(_) => break,
                        },
                    }
                    if let Some((client, url)) = &*target
                        && !reqwest_get(client, url).await
                    {
                        errors += 1;
                    }
                }
                (rel, lags, commits, errors)
            })
        })
        .collect();
    let mut out = Slice {
        releases: Vec::new(),
        lags: Vec::new(),
        commits: Vec::new(),
        errors: 0,
        cpu: Duration::ZERO,
        wall: Duration::ZERO,
    };
    for t in tasks {
        let (rel, lags, commits, errors) = t.await?;
        out.releases.extend(rel.iter().map(|d| d.as_nanos() as u64));
        out.lags.extend(lags);
        out.commits.extend(commits);
        out.errors += errors;
    }
    out.wall = start.elapsed();
    out.cpu = process_cpu_time().saturating_sub(cpu0);
    out.releases.retain(|&r| r <= run_for.as_nanos() as u64);
    out.releases.sort_unstable();
    out.commits.sort_unstable();
    Ok(out)
}

fn paced(id: &'static str, rate: u32, full: Duration, server: bool) -> Scenario {
    Scenario::new(id, move |ctx: Arc<BenchCtx>| async move {
        // Each side runs `run_for` in total, in slices alternating
        // A B C, C B A, … so machine-load drift hits every side alike.
        let quick = ctx.config().quick;
        // Two slices (A B C, C B A): enough to even out drift, long enough
        // that the last release's own lag barely weighs on the ratio.
        let (run_for, slices) = if quick {
            (Duration::from_secs(2), 2u32)
        } else {
            (full, 2)
        };
        let slice = run_for / slices;
        let target = || -> Result<_, BenchError> {
            Ok(if server {
                Some((plain_reqwest_client()?, ctx.url("/")))
            } else {
                None
            })
        };
        let sides = [
            Side::Ours(Precision::Timer, Spacing::Scheduled),
            Side::Governor,
            Side::Ours(Precision::Fine, Spacing::Scheduled),
        ];
        let burst = 1;
        let mut agg: [Paced; 3] = Default::default();
        for k in 0..slices {
            let order: Vec<usize> = if k % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            for i in order {
                ctx.progress(&format!(
                    "slice {}/{slices}: {} for {slice:?}",
                    k + 1,
                    sides[i].name()
                ));
                let s = paced_slice(sides[i], rate, slice, target()?).await?;
                agg[i].add(s, rate, burst);
            }
        }
        let [ours, gov, fine] = &agg;
        let bound = |p: &Paced| {
            f64::from(rate) * 0.1 + f64::from(burst) + f64::from(rate) * p.max_lag_us() / 1e6
        };
        let what = format!(
            "{rate}/s burst 1, {CALLERS} callers, {run_for:?} per side in {slices} alternating slices of {slice:?}{}{}",
            if server {
                ", GET / on the test server after each permit"
            } else {
                ", no I/O (no-op)"
            },
            if quick {
                " (--quick: shortened from the full run)"
            } else {
                ""
            }
        );
        let notes = format!(
            "{what}; load average {}; ours: {}; governor: {}; ours with Precision::Fine: {}",
            loadavg(),
            ours.summary(),
            gov.summary(),
            fine.summary()
        );
        let with_gov = |mut r: Record, g: f64| {
            r.baseline = Some(g);
            r.baseline_name = Some("governor until_ready".to_string());
            r
        };
        let runs_n = slices;
        let mut records = vec![
            with_gov(
                Record::absolute(id, "achieved_ratio", "ratio", ours.achieved_ratio(), runs_n)
                    .with_value_threshold(Threshold::AtLeast(0.995)),
                gov.achieved_ratio(),
            )
            .note(&notes),
            with_gov(
                Record::absolute(id, "max_100ms", "releases", ours.max_100ms as f64, runs_n)
                    .with_value_threshold(Threshold::AtMost(bound(ours).floor()))
                    .note(format!(
                        "bound = rate*0.1s + burst + rate*max_lag = {:.0} + 1 + {:.2} = {:.2}",
                        f64::from(rate) * 0.1,
                        f64::from(rate) * ours.max_lag_us() / 1e6,
                        bound(ours)
                    )),
                gov.max_100ms as f64,
            ),
            Record::absolute(id, "lag_p50_us", "us", ours.lag_us(0.5), runs_n),
            Record::absolute(id, "lag_p99_us", "us", ours.lag_us(0.99), runs_n),
            Record::absolute(id, "lag_max_us", "us", ours.max_lag_us(), runs_n),
            with_gov(
                Record::absolute(id, "cpu_pct", "%", ours.cpu_pct(), runs_n),
                gov.cpu_pct(),
            ),
            with_gov(
                Record::absolute(
                    id,
                    "fine_achieved_ratio",
                    "ratio",
                    fine.achieved_ratio(),
                    runs_n,
                )
                .with_value_threshold(Threshold::AtLeast(0.995)),
                gov.achieved_ratio(),
            ),
            with_gov(
                Record::absolute(
                    id,
                    "fine_max_100ms",
                    "releases",
                    fine.max_100ms as f64,
                    runs_n,
                )
                .with_value_threshold(Threshold::AtMost(bound(fine).floor())),
                gov.max_100ms as f64,
            ),
            Record::absolute(id, "fine_lag_p50_us", "us", fine.lag_us(0.5), runs_n),
            Record::absolute(id, "fine_lag_p99_us", "us", fine.lag_us(0.99), runs_n),
            Record::absolute(id, "fine_lag_max_us", "us", fine.max_lag_us(), runs_n),
            with_gov(
                Record::absolute(id, "fine_cpu_pct", "%", fine.cpu_pct(), runs_n),
                gov.cpu_pct(),
            ),
        ];
        if ours.errors + fine.errors + gov.errors > 0 {
            for r in &mut records {
                r.add_note(format!(
                    "failed requests: ours {} / fine {} / governor {}",
                    ours.errors, fine.errors, gov.errors
                ));
            }
        }
        Ok(records)
    })
}

/// `Spacing::Strict`: the rate it keeps with each precision, and the
/// smallest gap between two releases (its promise: at least one period).
fn strict(id: &'static str, rate: u32) -> Scenario {
    Scenario::new(id, move |ctx: Arc<BenchCtx>| strict_run(ctx, id, rate))
}

async fn strict_run(
    ctx: Arc<BenchCtx>,
    id: &'static str,
    rate: u32,
) -> Result<Vec<Record>, BenchError> {
    let period_us = 1e6 / f64::from(rate);
    let (slice, slices) = if ctx.config().quick {
        (Duration::from_secs(1), 1)
    } else {
        (Duration::from_secs(2), 3)
    };
    let sides = [
        Side::Ours(Precision::Timer, Spacing::Strict),
        Side::Ours(Precision::Fine, Spacing::Strict),
    ];
    let mut agg: [Paced; 2] = Default::default();
    for k in 0..slices {
        for i in if k % 2 == 0 { [0, 1] } else { [1, 0] } {
            ctx.progress(&format!("slice {}/{slices}: {}", k + 1, sides[i].name()));
            let target = Some((plain_reqwest_client()?, ctx.url("/")));
            agg[i].add(paced_slice(sides[i], rate, slice, target).await?, rate, 1);
        }
    }
    let note = format!(
        "{rate}/s burst 1, {CALLERS} callers, GET / after each permit, {slices} slice(s) of {slice:?} per side, \
         load average {}; \
         Timer: {}; Fine: {}",
        loadavg(),
        agg[0].summary(),
        agg[1].summary()
    );
    let us = |g: Option<u64>| g.map_or(f64::NAN, |g| g as f64 / 1e3);
    let gap = |p: &Paced, fine: bool| {
        Record::absolute(
            id,
            if fine { "fine_min_gap_us" } else { "min_gap_us" },
            "us",
            us(p.min_commit_gap),
            slices,
        )
        .with_value_threshold(Threshold::AtLeast(period_us))
        .note(format!(
            "smallest gap between two releases as the limiter made them (grant + lag on its clock); \
             as the callers noted them just after: {:.0} us (that one also counts the OS preempting the \
             bench thread in between)",
            us(p.min_gap)
        ))
    };
    Ok(vec![
        Record::absolute(
            id,
            "achieved_ratio",
            "ratio",
            agg[0].achieved_ratio(),
            slices,
        )
        .note(note),
        gap(&agg[0], false),
        Record::absolute(
            id,
            "fine_achieved_ratio",
            "ratio",
            agg[1].achieved_ratio(),
            slices,
        ),
        gap(&agg[1], true),
    ])
}

/// `/proc/loadavg`'s first three fields, or `?` (context for the figures:
/// the machine is shared).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_string())
}

/// A limiter that never makes anyone wait: ~1 ns period, a huge burst.
fn unlimited() -> Result<Quota, BenchError> {
    Ok(Quota::with_period(Duration::from_nanos(1))?.burst(u32::MAX)?)
}

/// Wall-clock and process CPU time around a synchronous-looking loop.
struct Clocked {
    wall: Duration,
    cpu: Duration,
}

fn per_op_ns(d: Duration, n: u32) -> f64 {
    d.as_nanos() as f64 / f64::from(n)
}

/// The machine these figures come from is shared (2 cores, often a load
/// of 10+), so wall time per call mostly measures how long the bench thread
/// waited for a CPU. The gated figures are therefore **CPU time** per call
/// (process CPU from `schedstat`, ns precision, the bench runtime's single
/// worker doing all the work); the wall-clock medians are in the notes.
async fn acquire_overhead(ctx: Arc<BenchCtx>) -> Result<Vec<Record>, BenchError> {
    let n: u32 = if ctx.config().quick {
        200_000
    } else {
        2_000_000
    };
    let limiter = Limiter::new(unlimited()?);
    let (mut acq_cpu, mut acq_wall, mut try_cpu, mut try_wall) = (vec![], vec![], vec![], vec![]);
    for run in 0..7 {
        ctx.progress(&format!("run {}/7", run + 1));
        let c = clocked_async(async {
            for _ in 0..n {
                limiter.acquire().await?;
            }
            Ok::<_, BenchError>(())
        })
        .await?;
        acq_cpu.push(per_op_ns(c.cpu, n));
        acq_wall.push(per_op_ns(c.wall, n));
        let c = clocked(|| {
            for _ in 0..n {
                std::hint::black_box(limiter.try_acquire())?;
            }
            Ok::<_, BenchError>(())
        })?;
        try_cpu.push(per_op_ns(c.cpu, n));
        try_wall.push(per_op_ns(c.wall, n));
        tokio::task::yield_now().await;
    }
    // What the two unavoidable steps cost here (a clock read and an
    // uncontended lock), for reading the figure above.
    let m = std::sync::Mutex::new(0u64);
    let clock = clocked(|| {
        for _ in 0..n {
            std::hint::black_box(Instant::now());
        }
        Ok::<_, BenchError>(())
    })?;
    let lock = clocked(|| {
        for _ in 0..n {
            *std::hint::black_box(&m)
                .lock()
                .unwrap_or_else(|p| p.into_inner()) += 1;
        }
        Ok::<_, BenchError>(())
    })?;
    let s = limiter.stats();
    if s.throttled > 0 {
        return Err(format!(
            "{} acquisitions waited; the quota was meant to be unlimited",
            s.throttled
        )
        .into());
    }
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(vec![
        Record::absolute("ratelimit/acquire", "ns", "ns/op", med(&acq_cpu), 7)
            .with_value_threshold(Threshold::AtMost(100.0))
            .note(format!(
                "CPU time per uncontended `acquire().await` with a permit always available, median of 7 runs \
                 of {n} (runs: {}); load average {}; wall-clock median {:.1} ns/op (the machine is shared: wall time includes \
                 waiting for a CPU); `try_acquire`: CPU {:.1} ns, wall {:.1} ns; for scale, `Instant::now()` \
                 costs {:.1} ns CPU ({:.1} wall) and an uncontended `std::sync::Mutex` lock/unlock {:.1} ns CPU \
                 ({:.1} wall) here",
                list(&acq_cpu),
                loadavg(),
                med(&acq_wall),
                med(&try_cpu),
                med(&try_wall),
                per_op_ns(clock.cpu, n),
                per_op_ns(clock.wall, n),
                per_op_ns(lock.cpu, n),
                per_op_ns(lock.wall, n),
            )),
    ])
}

fn clocked<E>(f: impl FnOnce() -> Result<(), E>) -> Result<Clocked, E> {
    let cpu0 = process_cpu_time();
    let t0 = Instant::now();
    f()?;
    Ok(Clocked {
        wall: t0.elapsed(),
        cpu: process_cpu_time().saturating_sub(cpu0),
    })
}

async fn clocked_async<E>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> Result<Clocked, E> {
    let cpu0 = process_cpu_time();
    let t0 = Instant::now();
    f.await?;
    Ok(Clocked {
        wall: t0.elapsed(),
        cpu: process_cpu_time().saturating_sub(cpu0),
    })
}

/// A driver that answers 200 at once: only the layer's own cost remains.
struct Noop;

#[async_trait]
impl Driver for Noop {
    async fn execute(&self, _request: core::Request) -> Result<core::Response, core::Error> {
        Ok(core::Response::new(core::http::StatusCode::OK))
    }
}

async fn noop_throughput(ctx: Arc<BenchCtx>) -> Result<Vec<Record>, BenchError> {
    const CHUNK: usize = 10_000;
    let chunks = if ctx.config().quick { 20 } else { 100 };
    let exec = RateLimitedExecutor::new(Noop, unlimited()?);
    let proto = core::Request::get("http://127.0.0.1/").build()?;
    let mut limited = Clocked {
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    let mut bare = Clocked {
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    for c in 0..chunks {
        if c % 10 == 0 {
            ctx.progress(&format!("chunk {}/{chunks}", c + 1));
        }
        for (side, total) in [(true, &mut limited), (false, &mut bare)] {
            let reqs: Vec<_> = (0..CHUNK).filter_map(|_| proto.try_clone()).collect();
            let t = clocked_async(async {
                for r in reqs {
                    let resp = if side {
                        exec.execute(r).await?
                    } else {
                        Noop.execute(r).await?
                    };
                    std::hint::black_box(resp);
                }
                Ok::<_, BenchError>(())
            })
            .await?;
            total.wall += t.wall;
            total.cpu += t.cpu;
        }
    }
    let n = (CHUNK * chunks) as f64;
    let per_s = |d: Duration| n / d.as_secs_f64();
    let s = exec.stats();
    let mut r = Record::absolute("ratelimit/noop", "rps", "permits/s", per_s(limited.cpu), chunks as u32)
        .with_value_threshold(Threshold::AtLeast(1_000_000.0))
        .note(format!(
            "RateLimitedExecutor<no-op driver>: {n} sequential execute() calls with permits always available \
             (request construction excluded), per CPU-second (wall-clock: {:.0}/s on this shared machine); \
             the bare no-op driver: {:.0}/CPU-s ({:.0}/s wall); {} executed",
            per_s(limited.wall),
            per_s(bare.cpu),
            per_s(bare.wall),
            s.executed
        ));
    r.baseline = Some(per_s(bare.cpu));
    r.baseline_name = Some("bare no-op driver".to_string());
    Ok(vec![r])
}
