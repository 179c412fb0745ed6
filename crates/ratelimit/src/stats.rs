//! Counters that tell the truth, kept under the limiter's lock (which every
//! acquisition takes anyway), so they cost a few additions and nothing when
//! unread.
//!
//! Accounting identity, at any instant:
//! `requests = granted + rejected + cancelled + stopped + queue_len`.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::Quota;

/// How late waiting requests were released after their grant instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LagStats {
    /// Releases measured (requests that waited and then went).
    pub samples: u64,
    /// Mean lag (zero when there are no samples).
    pub mean: Duration,
    /// Median lag; `None` without samples or where percentiles are not
    /// tracked (per-key limiters keep only mean and max, to bound memory).
    pub p50: Option<Duration>,
    /// 99th-percentile lag (same conditions as `p50`).
    pub p99: Option<Duration>,
    /// Largest lag.
    pub max: Duration,
}

/// A snapshot of a limiter's counters. All rates are 0, never NaN, before
/// anything happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimiterStats {
    /// The quota in force.
    #[doc(alias = "RequestsPerSecond")]
    pub quota: Quota,
    /// Permit requests received (`acquire`, `try_acquire`, `execute`, …).
    #[doc(alias = "TotalRequests")]
    pub requests: u64,
    /// Permits granted (at once or after waiting). A permit is spent when
    /// granted, even if its caller then gives up.
    #[doc(alias = "TotalExecuted")]
    pub granted: u64,
    /// Granted permits that had to wait (the request queued).
    #[doc(alias = "TotalThrottled")]
    pub throttled: u64,
    /// Refused because the wait queue was full (`max_queue`).
    pub rejected_queue_full: u64,
    /// Refused because the caller would not wait (`try_acquire`,
    /// `try_execute`) or not that long (`acquire_within`).
    pub rejected_would_wait: u64,
    /// Waiters that gave up (their future was dropped, e.g. by a timeout)
    /// before a permit was granted; their place went to those behind them.
    pub cancelled: u64,
    /// Ended by [`crate::Limiter::stop`]: waiters woken and calls refused.
    pub stopped: u64,
    /// Waiters now.
    #[doc(alias = "QueueSize")]
    pub queue_len: usize,
    /// Most waiters at once.
    pub peak_queue_len: usize,
    /// The queue bound, if any.
    #[doc(alias = "QueueCapacity")]
    pub max_queue: Option<usize>,
    /// Total time granted requests spent waiting.
    pub total_wait: Duration,
    /// Longest wait of a granted request.
    pub max_wait: Duration,
    /// Release lag: actual release − grant instant, over waiting requests.
    pub release_lag: LagStats,
}

impl LimiterStats {
    /// Requests refused for any reason other than [`crate::Limiter::stop`].
    pub fn rejected(&self) -> u64 {
        self.rejected_queue_full + self.rejected_would_wait
    }

    /// Fraction of granted permits that had to wait (0 when none granted).
    #[doc(alias = "ThrottleRate")]
    pub fn throttle_rate(&self) -> f64 {
        if self.granted == 0 {
            0.0
        } else {
            self.throttled as f64 / self.granted as f64
        }
    }

    /// Mean wait per granted permit (zero when none granted).
    pub fn mean_wait(&self) -> Duration {
        if self.granted == 0 {
            Duration::ZERO
        } else {
            let n = u32::try_from(self.granted).unwrap_or(u32::MAX);
            self.total_wait / n
        }
    }
}

/// Highest lag the histogram resolves (longer lags are clamped for the
/// percentiles; `max` stays exact).
const LAG_HIST_MAX_NS: u64 = 60_000_000_000;

#[derive(Debug)]
pub(crate) struct LagAcc {
    samples: u64,
    sum_ns: u128,
    max_ns: u64,
    track_percentiles: bool,
    hist: Option<Box<Histogram<u32>>>,
}

impl LagAcc {
    pub(crate) fn new(track_percentiles: bool) -> Self {
        LagAcc {
            samples: 0,
            sum_ns: 0,
            max_ns: 0,
            track_percentiles,
            hist: None,
        }
    }

    pub(crate) fn tracks_percentiles(&self) -> bool {
        self.track_percentiles
    }

    pub(crate) fn record(&mut self, lag_ns: u64) {
        self.samples += 1;
        self.sum_ns += u128::from(lag_ns);
        self.max_ns = self.max_ns.max(lag_ns);
        if self.track_percentiles {
            if self.hist.is_none() {
                self.hist = Histogram::new_with_bounds(1, LAG_HIST_MAX_NS, 2)
                    .ok()
                    .map(Box::new);
            }
            if let Some(h) = &mut self.hist {
                h.saturating_record(lag_ns.clamp(1, LAG_HIST_MAX_NS));
            }
        }
    }

    pub(crate) fn snapshot(&self) -> LagStats {
        if self.samples == 0 {
            return LagStats::default();
        }
        let mean = u64::try_from(self.sum_ns / u128::from(self.samples)).unwrap_or(u64::MAX);
        // Percentiles never exceed the exact max (the histogram rounds up
        // within its precision).
        let pct = |q: f64| {
            self.hist
                .as_ref()
                .map(|h| Duration::from_nanos(h.value_at_quantile(q).min(self.max_ns)))
        };
        LagStats {
            samples: self.samples,
            mean: Duration::from_nanos(mean),
            p50: pct(0.5),
            p99: pct(0.99),
            max: Duration::from_nanos(self.max_ns),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) requests: u64,
    pub(crate) granted: u64,
    pub(crate) throttled: u64,
    pub(crate) rejected_queue_full: u64,
    pub(crate) rejected_would_wait: u64,
    pub(crate) cancelled: u64,
    pub(crate) stopped: u64,
    pub(crate) peak_queue: usize,
    pub(crate) total_wait_ns: u128,
    pub(crate) max_wait_ns: u64,
    pub(crate) lag: LagAcc,
}

impl Counters {
    pub(crate) fn new(track_percentiles: bool) -> Self {
        Counters {
            requests: 0,
            granted: 0,
            throttled: 0,
            rejected_queue_full: 0,
            rejected_would_wait: 0,
            cancelled: 0,
            stopped: 0,
            peak_queue: 0,
            total_wait_ns: 0,
            max_wait_ns: 0,
            lag: LagAcc::new(track_percentiles),
        }
    }

    pub(crate) fn record_wait(&mut self, wait_ns: u64) {
        self.total_wait_ns += u128::from(wait_ns);
        self.max_wait_ns = self.max_wait_ns.max(wait_ns);
    }

    pub(crate) fn snapshot(
        &self,
        quota: Quota,
        queue_len: usize,
        max_queue: Option<usize>,
    ) -> LimiterStats {
        LimiterStats {
            quota,
            requests: self.requests,
            granted: self.granted,
            throttled: self.throttled,
            rejected_queue_full: self.rejected_queue_full,
            rejected_would_wait: self.rejected_would_wait,
            cancelled: self.cancelled,
            stopped: self.stopped,
            queue_len,
            peak_queue_len: self.peak_queue,
            max_queue,
            total_wait: duration_from_u128(self.total_wait_ns),
            max_wait: Duration::from_nanos(self.max_wait_ns),
            release_lag: self.lag.snapshot(),
        }
    }
}

fn duration_from_u128(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_are_zero_not_nan() {
        let q = Quota::per_second(1).unwrap();
        let s = Counters::new(true).snapshot(q, 0, None);
        assert_eq!(s.throttle_rate(), 0.0);
        assert_eq!(s.mean_wait(), Duration::ZERO);
        assert_eq!(s.release_lag, LagStats::default());
        assert_eq!(s.rejected(), 0);
    }

    #[test]
    fn lag_percentiles_track_samples() {
        let mut lag = LagAcc::new(true);
        for i in 1..=100u64 {
            lag.record(i * 1_000);
        }
        lag.record(0);
        let s = lag.snapshot();
        assert_eq!(s.samples, 101);
        assert_eq!(s.max, Duration::from_micros(100));
        let p50 = s.p50.unwrap();
        assert!(
            p50 >= Duration::from_micros(49) && p50 <= Duration::from_micros(51),
            "{p50:?}"
        );
        let p99 = s.p99.unwrap();
        assert!(p99 >= Duration::from_micros(98), "{p99:?}");
        let light = {
            let mut l = LagAcc::new(false);
            l.record(5);
            l.snapshot()
        };
        assert_eq!(light.p50, None);
        assert_eq!(light.max, Duration::from_nanos(5));
    }
}
