//! Executor-wide statistics that stay true under concurrency.
//!
//! # What is counted
//!
//! * `requests` — requests handed to the driver (single `execute` calls and
//!   batch items alike). A driver future does nothing before its first
//!   poll, so a call dropped unpolled is taken back out of `requests` and
//!   reported as not started. Inputs that could not be built or were never
//!   started are not requests; they have their own counters.
//! * `completed` — of those, how many came back with a response (**any
//!   status**: a 503 is a completed request; see [`StatusClasses`]).
//! * `errors` — of those, how many ended with an error: a driver error, a
//!   caught panic, or cancelled while in flight (by a batch's token,
//!   deadline or fail-fast, by an aborted shutdown, or because the future
//!   running it was dropped). [`BatchStats::errors_by_kind`] splits them by
//!   [`httpclient_core::Error::kind_name`].
//! * So at any quiet moment `requests == completed + errors`. While a
//!   batch runs, its counts arrive in bursts (see below), so
//!   `requests - completed - errors` then only approximates what is in
//!   flight (the `in_flight` gauge says it exactly).
//! * `latency` — a real histogram (hdrhistogram, 2 significant digits,
//!   1 ns to 1 hour, so percentiles are within 1 %; max and mean are exact)
//!   of driver-call times of requests that ran to an end
//!   (responses and errors); requests cancelled in flight are left out,
//!   their time says nothing about the target.
//! * `throughput` — finished requests (completed + errors) per second over
//!   the active span: from the earliest start to the latest finish among the
//!   requests counted in this window. Idle time before the first request
//!   does not dilute it; gaps between batches do.
//!
//! Every rate is `0.0`, never NaN, when there is nothing to divide.
//!
//! # Reset
//!
//! [`crate::BatchExecutor::reset_stats`] opens a new window: every counter
//! and the histogram restart from zero, and **requests in flight at the
//! reset belong to the old window** — when they finish they are not counted
//! at all. So `requests >= completed + errors` holds in every window, at
//! every moment. The live gauge `in_flight` is not a counter and is never
//! reset: it says how many requests are handed to the driver and not yet
//! finished, whichever window they started in — including, for an instant,
//! one handed over in the poll that yielded an earlier result and not yet
//! polled, and a batch's finished request whose worker slot the batch
//! keeps for its next one: it leaves the gauge when that request takes its
//! place — once the batch has taken the next input from its source — or
//! when the batch waits, yields to a stream's consumer or stops. That is
//! microseconds, unless the source blocks the thread in `next()` (which
//! holds the worker slot all the same); a shutdown waits for it.
//!
//! # Cost, and when numbers appear
//!
//! A single `execute` costs one atomic increment (the `requests` count)
//! and one place in the in-flight gauge. A batch's request writes no
//! shared counter on its way in: the batch counts its requests and
//! responses locally (and hands a finished request's place in the gauge,
//! with its worker slot, to the next one), and publishes them to the
//! executor (one mutex, the
//! counters and the histogram together, so a snapshot never sees a
//! half-recorded request) when 64 are buffered or a response arrives more
//! than 1 ms after the oldest unpublished one, whenever the batch waits,
//! and when it ends or is dropped; errors, single `execute` calls and
//! everything else are published at once. These checks run while the batch
//! or stream is polled: a stream whose consumer holds an item keeps up to
//! 63 responses, and the requests it started since it last waited,
//! unpublished until it is polled again. So a snapshot taken
//! while a batch runs may not yet include its last few requests and
//! responses (a batch publishes its requests first, so `requests >=
//! completed + errors` still holds); one taken after the
//! batch returned, or after a stream ended or was dropped, includes
//! everything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use httpclient_core::http::StatusCode;
use tokio::time::Instant;

const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Largest latency the histogram resolves: one hour, in nanoseconds.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Responses counted by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusClasses {
    /// 1xx.
    pub informational: u64,
    /// 2xx.
    pub success: u64,
    /// 3xx.
    pub redirection: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx.
    pub server_error: u64,
    /// Anything else (600-999).
    pub other: u64,
}

impl StatusClasses {
    #[inline]
    fn add(&mut self, status: StatusCode) {
        let slot = match status.as_u16() / 100 {
            1 => &mut self.informational,
            2 => &mut self.success,
            3 => &mut self.redirection,
            4 => &mut self.client_error,
            5 => &mut self.server_error,
            _ => &mut self.other,
        };
        *slot += 1;
    }

    /// Sum over all classes.
    pub fn total(&self) -> u64 {
        self.informational
            + self.success
            + self.redirection
            + self.client_error
            + self.server_error
            + self.other
    }
}

/// Latency of requests that ran to an end. Percentiles come from the
/// histogram (within 1 %); `max` and `mean` are exact. All zero when there
/// are none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Requests in the histogram.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

/// A snapshot of an executor's statistics (see the module docs of
/// [`crate::stats`] for exact definitions).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Requests handed to the driver in this window.
    pub requests: u64,
    /// Of those, finished with a response (any status).
    pub completed: u64,
    /// Of those, finished with an error (including cancelled in flight).
    pub errors: u64,
    /// `errors` split by [`httpclient_core::Error::kind_name`].
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Inputs that could not be built into a request (never sent).
    pub invalid_inputs: u64,
    /// Inputs not started because a batch stopped, and calls refused after
    /// shutdown (never sent).
    pub not_started: u64,
    /// `completed` by status class.
    pub status: StatusClasses,
    /// Requests handed to the driver and not finished now, whichever
    /// window they started in (see the [module docs](crate::stats#reset)
    /// for the microseconds a finished request may still count).
    pub in_flight: usize,
    /// Driver-call latency of requests that ran to an end.
    pub latency: LatencySummary,
    /// Time since the window opened (executor creation or last reset).
    pub since_reset: Duration,
    /// From the earliest start to the latest finish among finished requests
    /// of this window.
    pub active: Duration,
    /// `(completed + errors) / active` in requests per second; 0 when
    /// nothing finished.
    pub throughput: f64,
    /// `errors / (completed + errors)`; 0 when nothing finished.
    pub error_rate: f64,
}

impl BatchStats {
    /// Requests finished, with a response or an error.
    pub fn finished(&self) -> u64 {
        self.completed + self.errors
    }
}

/// How a request ended, for the counters.
pub(crate) enum Finish<'a> {
    Response(StatusCode),
    Error(&'a httpclient_core::Error),
    /// Cancelled in flight (by a stop or a dropped future): counted as an
    /// error of this kind, not put in the latency histogram.
    Cancelled(&'static str),
}

struct Window {
    epoch: u16,
    since: Instant,
    completed: u64,
    errors: u64,
    errors_by_kind: Vec<(&'static str, u64)>,
    invalid: u64,
    not_started: u64,
    /// Requests of this window counted as started that were dropped before
    /// their first poll: taken back out of `requests`.
    withdrawn: u64,
    status: StatusClasses,
    latency: Histogram<u64>,
    /// Exact, beside the histogram's bucketed values.
    latency_max_ns: u64,
    latency_sum_ns: u128,
    first_start: Option<Instant>,
    last_finish: Option<Instant>,
}

impl Window {
    fn new(epoch: u16) -> Self {
        Window {
            epoch,
            since: Instant::now(),
            completed: 0,
            errors: 0,
            errors_by_kind: Vec::new(),
            invalid: 0,
            not_started: 0,
            withdrawn: 0,
            status: StatusClasses::default(),
            // Bounds are constants known to be valid: 1 <= 1 ns, max >= 2,
            // 2 significant digits. `expect` cannot fire.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2)
                .expect("constant histogram bounds are valid"),
            latency_max_ns: 0,
            latency_sum_ns: 0,
            first_start: None,
            last_finish: None,
        }
    }

    fn add_latency(&mut self, started: Instant, now: Instant, ns: u64) {
        self.latency.saturating_record(ns);
        self.latency_max_ns = self.latency_max_ns.max(ns);
        self.latency_sum_ns += u128::from(ns);
        if self.first_start.is_none_or(|f| started < f) {
            self.first_start = Some(started);
        }
        if self.last_finish.is_none_or(|l| now > l) {
            self.last_finish = Some(now);
        }
    }

    fn add_error(&mut self, kind: &'static str) {
        self.errors += 1;
        match self.errors_by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.errors_by_kind.push((kind, 1)),
        }
    }
}

/// The shared, always-on statistics of one executor.
pub(crate) struct StatsCore {
    /// `epoch << 48 | requests started in that epoch`: one atomic add both
    /// counts a start and tells which window it belongs to.
    started: AtomicU64,
    in_flight: AtomicUsize,
    window: Mutex<Window>,
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StatsCore {
    pub(crate) fn new() -> Self {
        StatsCore {
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(Window::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a request handed to the driver; returns its window's epoch.
    #[inline]
    pub(crate) fn count_start(&self) -> u16 {
        (self.started.fetch_add(1, Ordering::Relaxed) >> COUNT_BITS) as u16
    }

    /// The current window's epoch.
    #[inline]
    fn epoch(&self) -> u16 {
        (self.started.load(Ordering::Relaxed) >> COUNT_BITS) as u16
    }

    /// A request of window `epoch`, counted as started, was dropped before
    /// its first poll: it sent nothing, so it is not started after all.
    pub(crate) fn record_unsent(&self, epoch: u16) {
        let mut w = self.lock();
        w.not_started += 1;
        if w.epoch == epoch {
            w.withdrawn += 1;
        }
    }

    #[inline]
    pub(crate) fn in_flight_gauge(&self) -> &AtomicUsize {
        &self.in_flight
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Record a finished request of window `epoch`.
    pub(crate) fn record_finish(
        &self,
        epoch: u16,
        started: Instant,
        now: Instant,
        how: Finish<'_>,
    ) {
        let mut w = self.lock();
        Self::finish_in(&mut w, epoch, started, now, how);
    }

    fn finish_in(w: &mut Window, epoch: u16, started: Instant, now: Instant, how: Finish<'_>) {
        if w.epoch != epoch {
            return;
        }
        match how {
            Finish::Response(status) => {
                w.completed += 1;
                w.status.add(status);
            }
            Finish::Error(e) => w.add_error(e.kind_name()),
            Finish::Cancelled(kind) => {
                w.add_error(kind);
                return;
            }
        }
        w.add_latency(
            started,
            now,
            duration_ns(now.saturating_duration_since(started)),
        );
    }

    pub(crate) fn record_invalid(&self) {
        self.lock().invalid += 1;
    }

    pub(crate) fn record_not_started(&self, n: u64) {
        if n > 0 {
            self.lock().not_started += n;
        }
    }

    pub(crate) fn reset(&self) {
        let mut w = self.lock();
        let epoch = w.epoch.wrapping_add(1);
        self.started
            .store(u64::from(epoch) << COUNT_BITS, Ordering::Relaxed);
        *w = Window::new(epoch);
    }

    pub(crate) fn snapshot(&self) -> BatchStats {
        let w = self.lock();
        // Read under the lock, after the window: every finish counted above
        // had its start counted before, so requests >= completed + errors.
        let requests =
            (self.started.load(Ordering::Relaxed) & COUNT_MASK).saturating_sub(w.withdrawn);
        let finished = w.completed + w.errors;
        let hist = &w.latency;
        let at = |q: f64| Duration::from_nanos(hist.value_at_quantile(q));
        let latency = if hist.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                count: hist.len(),
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                max: Duration::from_nanos(w.latency_max_ns),
                mean: Duration::from_nanos(
                    u64::try_from(w.latency_sum_ns / u128::from(hist.len())).unwrap_or(u64::MAX),
                ),
            }
        };
        let active = match (w.first_start, w.last_finish) {
            (Some(f), Some(l)) => l.saturating_duration_since(f),
            _ => Duration::ZERO,
        };
        let ratio = |num: u64, den: f64| if den > 0.0 { num as f64 / den } else { 0.0 };
        BatchStats {
            requests,
            completed: w.completed,
            errors: w.errors,
            errors_by_kind: w.errors_by_kind.iter().copied().collect(),
            invalid_inputs: w.invalid,
            not_started: w.not_started,
            status: w.status,
            in_flight: self.in_flight(),
            latency,
            since_reset: w.since.elapsed(),
            active,
            throughput: ratio(finished, active.as_secs_f64()),
            error_rate: ratio(w.errors, finished as f64),
        }
    }
}

/// Requests a batch has handed over and responses it has seen finish but
/// not yet published to the executor's stats (requests first, so a
/// snapshot never counts a finish whose start it lacks): a batch publishes
/// at least every
/// [`LocalStats::MAX_BUFFERED`] responses or [`LocalStats::MAX_AGE`] of
/// activity, whenever it waits, and when it ends or is dropped — one lock
/// per publication instead of one per response. Errors are rare and are
/// published at once.
pub(crate) struct LocalStats<'a> {
    core: &'a StatsCore,
    epoch: u16,
    /// Requests of window `epoch` handed to the driver, not yet added to
    /// the shared count.
    starts: u64,
    status: StatusClasses,
    latencies: Vec<u64>,
    first_start: Option<Instant>,
    last_finish: Option<Instant>,
    publish_by: Option<Instant>,
}

impl<'a> LocalStats<'a> {
    const MAX_BUFFERED: usize = 64;
    const MAX_AGE: Duration = Duration::from_millis(1);

    pub(crate) fn new(core: &'a StatsCore) -> Self {
        LocalStats {
            core,
            epoch: 0,
            starts: 0,
            status: StatusClasses::default(),
            latencies: Vec::new(),
            first_start: None,
            last_finish: None,
            publish_by: None,
        }
    }

    /// Count a request handed to the driver; returns its window's epoch.
    /// Published with the responses: before them, so a snapshot never
    /// counts a finish whose start it does not count.
    #[inline]
    pub(crate) fn start(&mut self) -> u16 {
        let epoch = self.core.epoch();
        if epoch != self.epoch {
            self.publish();
            self.epoch = epoch;
        }
        self.starts += 1;
        epoch
    }

    /// Record a request of window `epoch` that ended with an error, at
    /// once, together with the batch's starts not yet published (which
    /// must go first): one lock for both.
    pub(crate) fn error(
        &mut self,
        epoch: u16,
        started: Instant,
        now: Instant,
        e: &httpclient_core::Error,
    ) {
        let mut w = self.core.lock();
        self.publish_starts(&w);
        StatsCore::finish_in(&mut w, epoch, started, now, Finish::Error(e));
    }

    /// Add the pending starts to the shared count (if they are of the open
    /// window) — under the lock, which a reset holds while it opens the
    /// next window, so they cannot land in that one.
    fn publish_starts(&mut self, w: &Window) {
        if self.starts > 0 && w.epoch == self.epoch {
            self.core.started.fetch_add(self.starts, Ordering::Relaxed);
        }
        self.starts = 0;
    }

    /// Count a response of window `epoch` that took `latency` (from
    /// `started` to `now`).
    #[inline]
    pub(crate) fn response(
        &mut self,
        epoch: u16,
        started: Instant,
        now: Instant,
        latency: Duration,
        status: StatusCode,
    ) {
        if epoch != self.epoch {
            self.publish();
            self.epoch = epoch;
        }
        self.status.add(status);
        if self.latencies.capacity() == 0 {
            self.latencies.reserve_exact(Self::MAX_BUFFERED);
        }
        self.latencies.push(duration_ns(latency));
        if self.first_start.is_none_or(|f| started < f) {
            self.first_start = Some(started);
        }
        if self.last_finish.is_none_or(|l| now > l) {
            self.last_finish = Some(now);
        }
        match self.publish_by {
            None => self.publish_by = now.checked_add(Self::MAX_AGE),
            Some(by) if now >= by => self.publish(),
            Some(_) => {}
        }
        if self.latencies.len() >= Self::MAX_BUFFERED {
            self.publish();
        }
    }

    /// Publish what is buffered.
    pub(crate) fn publish(&mut self) {
        if self.latencies.is_empty() && self.starts == 0 {
            return;
        }
        {
            let mut w = self.core.lock();
            self.publish_starts(&w);
            if w.epoch == self.epoch {
                w.completed += self.latencies.len() as u64;
                let s = self.status;
                w.status.informational += s.informational;
                w.status.success += s.success;
                w.status.redirection += s.redirection;
                w.status.client_error += s.client_error;
                w.status.server_error += s.server_error;
                w.status.other += s.other;
                for &ns in &self.latencies {
                    w.latency.saturating_record(ns);
                    w.latency_max_ns = w.latency_max_ns.max(ns);
                    w.latency_sum_ns += u128::from(ns);
                }
                if let Some(f) = self.first_start {
                    if w.first_start.is_none_or(|x| f < x) {
                        w.first_start = Some(f);
                    }
                }
                if let Some(l) = self.last_finish {
                    if w.last_finish.is_none_or(|x| l > x) {
                        w.last_finish = Some(l);
                    }
                }
            }
        }
        self.latencies.clear();
        self.status = StatusClasses::default();
        self.first_start = None;
        self.last_finish = None;
        self.publish_by = None;
    }
}

impl Drop for LocalStats<'_> {
    fn drop(&mut self) {
        self.publish();
    }
}
