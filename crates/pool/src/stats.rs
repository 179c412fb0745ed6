//! Counters that never lie, and the [`PoolStats`] snapshot.
//!
//! The Go pool counts attempts once per call but failures once per attempt,
//! so its success rate goes negative. Here every counter has one meaning:
//! `requests` counts calls to `execute`; each call ends in exactly one of
//! `succeeded`, `failed` (a panic out of the inner driver is a failure of
//! kind `"panicked"`) or `cancelled` (its future was dropped) or is still
//! `in_flight`; `attempts` counts what reached the driver, one per
//! attempt; probes and warm-up requests are counted apart, so they never
//! dilute the traffic figures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{HostHealth, RetryBudget, RetryPolicy};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) budget_exhausted: AtomicU64,
    pub(crate) retries_exhausted: AtomicU64,
    pub(crate) retry_after_too_long: AtomicU64,
    pub(crate) not_retried_unsafe: AtomicU64,
    pub(crate) deadline_exceeded: AtomicU64,
    pub(crate) unhealthy_rejected: AtomicU64,
    pub(crate) host_limit_waits: AtomicU64,
    pub(crate) backoff_nanos: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) probe_failures: AtomicU64,
    pub(crate) warmup_requests: AtomicU64,
    pub(crate) failures_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) failed_statuses: Mutex<BTreeMap<u16, u64>>,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn add_failure_kind(&self, kind: &'static str) {
        *self
            .failures_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    pub(crate) fn add_failed_status(&self, status: u16) {
        *self
            .failed_statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    /// Zero every cumulative counter; `in_flight` is a gauge and stays.
    pub(crate) fn reset(&self) {
        for c in [
            &self.requests,
            &self.attempts,
            &self.retries,
            &self.succeeded,
            &self.failed,
            &self.cancelled,
            &self.budget_exhausted,
            &self.retries_exhausted,
            &self.retry_after_too_long,
            &self.not_retried_unsafe,
            &self.deadline_exceeded,
            &self.unhealthy_rejected,
            &self.host_limit_waits,
            &self.backoff_nanos,
            &self.probes,
            &self.probe_failures,
            &self.warmup_requests,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.failures_by_kind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.failed_statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// A snapshot of a pool's counters, host health and configuration
/// ([`crate::ConnectionPool::stats`]).
///
/// Invariant (between resets, once nothing is in flight):
/// `requests == succeeded + failed + cancelled`, and
/// `attempts == requests that reached the driver + retries`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Calls to `execute` (every call, including those failed fast).
    pub requests: u64,
    /// Attempts that reached the inner driver (one per attempt).
    pub attempts: u64,
    /// Retries made (attempts after the first of a request).
    pub retries: u64,
    /// Requests that ended with a response whose status is neither 5xx nor
    /// one of the policy's retryable statuses. A 404 counts here: the
    /// server answered definitively.
    pub succeeded: u64,
    /// Requests that ended with an error, or with a 5xx / retryable status.
    pub failed: u64,
    /// Requests whose future was dropped before they ended (a panic out of
    /// the inner driver counts in `failed` instead, kind `"panicked"`).
    pub cancelled: u64,
    /// Requests running now (a gauge; not reset).
    pub in_flight: u64,
    /// Failed requests by the kind of the last attempt's error
    /// ([`httpclient_core::Error::kind_name`], e.g. `"reset_mid_body"`).
    pub failures_by_kind: BTreeMap<&'static str, u64>,
    /// Failed requests that ended with a response, by status.
    pub failed_statuses: BTreeMap<u16, u64>,
    /// Retries refused because the retry budget was spent.
    pub budget_exhausted: u64,
    /// Requests that used all `max_retries` and still failed.
    pub retries_exhausted: u64,
    /// Retries refused because `Retry-After` exceeded the policy's cap.
    pub retry_after_too_long: u64,
    /// Failures returned without a retry because resending was not safe:
    /// a maybe-sent failure or a retryable status of a request that is not
    /// retry-safe, or any retryable failure of a request whose body cannot
    /// be replayed (a stream).
    pub not_retried_unsafe: u64,
    /// Requests ended by the total deadline (during an attempt, or because
    /// the next backoff would have ended past it).
    pub deadline_exceeded: u64,
    /// Requests (or retries) refused because their host was marked down.
    pub unhealthy_rejected: u64,
    /// Attempts that had to wait for a per-host in-flight slot.
    pub host_limit_waits: u64,
    /// Total time requests spent sleeping between attempts.
    pub backoff: Duration,
    /// Health probes whose verdict was recorded. A probe dropped in flight
    /// (health checks reconfigured, disabled or stopped mid-round) or given
    /// up on as inconclusive (held by inner layers past ten times the larger
    /// of the probe timeout and the interval, or ended by an error that says
    /// nothing about the host, such as a panic) is not counted.
    pub probes: u64,
    /// Health probes that came back unhealthy.
    pub probe_failures: u64,
    /// Warm-up requests sent.
    pub warmup_requests: u64,
    /// Connections the inner driver opened since the pool was built (or its
    /// stats reset); `None` when the driver cannot count them.
    pub connections_opened: Option<u64>,
    /// Per-host health and load, for every host the pool tracks.
    pub hosts: Vec<HostHealth>,
    /// The retry policy in force.
    pub retry_policy: RetryPolicy,
    /// The retry budget in force.
    pub retry_budget: RetryBudget,
    /// The per-host in-flight limit, if any.
    pub per_host_limit: Option<usize>,
    /// Health-checked hosts and interval, when health checks are on.
    pub health_check: Option<(usize, Duration)>,
    /// Whether `stop()` was called.
    pub stopped: bool,
}

impl PoolStats {
    /// `succeeded / (succeeded + failed)`, always in `[0, 1]`. When no
    /// request has ended yet it is `1.0`: nothing has failed, and a rate
    /// that is never NaN can go straight into a dashboard or an `assert!`.
    /// Cancelled requests are left out (they have no verdict).
    pub fn success_rate(&self) -> f64 {
        let ended = self.succeeded + self.failed;
        if ended == 0 {
            1.0
        } else {
            self.succeeded as f64 / ended as f64
        }
    }

    /// Attempts per request (`1.0` when no request ran).
    pub fn attempts_per_request(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.attempts as f64 / self.requests as f64
        }
    }
}
