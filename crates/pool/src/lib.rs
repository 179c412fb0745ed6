//! # httpclient-pool
//!
//! [`ConnectionPool`]: a [`Driver`](httpclient_core::Driver) layer that makes
//! any driver resilient — it retries exactly what is safe to retry, as fast
//! as the server allows and no faster, warms connections up with real
//! requests, checks host health and fails fast on hosts that are down, can
//! cap in-flight requests per host, and keeps stats that never lie. It is a
//! `Driver` itself, so it chains with the batch and rate-limit layers.
//!
//! ```no_run
//! use std::time::Duration;
//! use httpclient_core::{DriverExt, Request};
//! use httpclient_pool::{ConnectionPool, RetryPolicy};
//! # async fn demo(driver: impl httpclient_core::Driver + 'static) -> Result<(), Box<dyn std::error::Error>> {
//! let pool = ConnectionPool::builder(driver)
//!     .retry_policy(RetryPolicy::builder().max_retries(5).total_deadline(Duration::from_secs(30)).build()?)
//!     .per_host_limit(16)
//!     .build()?;
//! pool.enable_health_check(["http://127.0.0.1:8080"], Duration::from_secs(5))?;
//! let resp = pool.send(Request::get("http://127.0.0.1:8080/items")).await?;
//! let info = resp.retry_info().unwrap();
//! println!("{} after {} attempts ({:?} in backoff)", resp.status(), info.attempts, info.backoff);
//! println!("success rate {:.3}", pool.stats().success_rate());
//! # Ok(()) }
//! ```
//!
//! ## What is retried (and why)
//!
//! An attempt's outcome is retried only when all of these hold:
//!
//! 1. **It is worth retrying**: an error for which
//!    [`Error::is_retryable`](httpclient_core::Error::is_retryable) is true
//!    (connect failures except TLS, timeouts, resets, a refusing inner rate
//!    limiter), or a response whose status is in the policy's retryable set
//!    (429, 502, 503, 504 by default). An
//!    [`Error::HttpStatus`](httpclient_core::Error::HttpStatus) from an
//!    inner layer is judged like the response it stands for: by the
//!    policy's statuses, not by `is_retryable`.
//! 2. **It is safe to resend**: the request is
//!    [retry-safe](httpclient_core::Request::is_retry_safe) — an idempotent
//!    method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or marked
//!    `retry_safe(true)`, e.g. a POST carrying an idempotency key — **or**
//!    the error proves nothing was sent
//!    ([`!may_have_been_sent()`](httpclient_core::Error::may_have_been_sent):
//!    connection refused, DNS, connect timeout), in which case even a POST is
//!    retried. RFC 9110 §9.2.2 says a client should not automatically retry a
//!    non-idempotent request unless it knows the request was not applied.
//!    *A retryable status counts as "maybe applied"*: a 503 or 429 to a POST
//!    is returned as is unless the POST is marked retry-safe — a server may
//!    have done the work and then failed, and only the caller knows whether
//!    a duplicate is harmless.
//! 3. **The body can be replayed** (bytes, not a one-shot stream). A
//!    streaming body is never retried, whatever the error.
//! 4. **There is room**: fewer than `max_retries` retries so far, the
//!    [retry budget](budget) has a token, the backoff (or `Retry-After`)
//!    ends before the total deadline, the host is not marked down, and the
//!    pool is not stopped.
//!
//! A maybe-sent failure of a request that is not retry-safe is not retried —
//! its message already says "the request may have been applied" / "was
//! applied" — and is counted in `not_retried_unsafe`. It comes back bare
//! when it was the first attempt, wrapped as below when an earlier attempt
//! (say, a refused connection, which is retried even for a POST) came
//! first.
//!
//! ## What comes back
//!
//! * A response (any status) carries
//!   [`RetryInfo`](httpclient_core::ext::RetryInfo) `{ attempts, backoff }`
//!   ([`Response::retry_info`](httpclient_core::Response::retry_info)), on
//!   the first-try success path too.
//! * When the pool stops retrying for lack of room (attempts, budget,
//!   deadline, host down, stopped), the caller gets **the last attempt's
//!   outcome**: the last response as is, or the last error. An error after
//!   more than one attempt is wrapped in
//!   [`Error::RetriesExhausted`](httpclient_core::Error::RetriesExhausted)
//!   `{ attempts, last }`, so the attempt count is never lost; after a
//!   single attempt the error is returned unwrapped.
//! * When the pool would retry but the server's `Retry-After` is above the
//!   policy's cap (30 s by default), it fails fast with
//!   [`Error::HttpStatus`](httpclient_core::Error::HttpStatus)
//!   `{ status, retry_after }` instead of sleeping: the caller sees both
//!   without parsing headers and decides whether to come back later. (When
//!   no retry was possible anyway — a POST, or no retries left — the
//!   response itself is returned, `Retry-After` header included.) A `Retry-After` within the cap
//!   is waited exactly (no jitter added); garbage or a past date falls back
//!   to backoff.
//! * An attempt still running at the total deadline is dropped (the driver
//!   abandons it) and the request ends with
//!   [`Error::DeadlineExceeded`](httpclient_core::Error::DeadlineExceeded).
//! * Which error: the pool makes up only two of its own — the deadline
//!   reached *during* an attempt, and a fail-fast `Retry-After`. Every other
//!   stop (no retries or budget left, a backoff that would end past the
//!   deadline, a host marked down, a stop, a retry turned away after its
//!   backoff) returns the last attempt's real outcome. Errors after more
//!   than one attempt come wrapped in
//!   [`Error::RetriesExhausted`](httpclient_core::Error::RetriesExhausted)
//!   `{ attempts, last }`; a response comes back as is.
//!
//! ## Timeouts
//!
//! Following the workspace's precedence: a request's own timeout bounds one
//! attempt; the policy's [`attempt_timeout`](RetryPolicyBuilder::attempt_timeout)
//! is applied only to requests without one; otherwise the driver's default
//! applies; the policy's total deadline spans all attempts and backoff.
//!
//! ## Health and per-host limits
//!
//! See [`health`] for the host state machine (active probes, passive outlier
//! detection, half-open recovery) and [`PoolBuilder::per_host_limit`] for
//! the in-flight cap. Warm-up is described in [`warmup`].
//!
//! ## Cancellation and stop
//!
//! Dropping a request's future stops its backoff sleep or its attempt at
//! once and frees its per-host slot; it is counted as `cancelled`.
//! [`ConnectionPool::stop`] (or cancelling the token given to
//! [`PoolBuilder::cancellation_token`]) ends the health checker, wakes
//! sleeping retries (they return their last outcome), and makes new calls
//! fail with [`Error::Stopped`](httpclient_core::Error::Stopped).
//!
//! ## Tracing
//!
//! Each request runs in a `debug` span `request` (target `httpclient_pool`;
//! fields `method`, `host`, and once it ends `attempts` and `status`), and
//! each attempt in a child span `attempt` (field `attempt`, from 1), so
//! whatever inner layers and the driver log nests under it: the rate
//! limiter's `permit granted` event carries `wait_ms`. Each attempt's
//! outcome is an event in its span (`status`, or `error_kind` and
//! `error`); each retry's chosen delay is a `retrying after backoff` event
//! (`backoff_ms`, `from_server`). With no subscriber interested the spans
//! are disabled at their callsites: no field is formatted, nothing allocated.
//!
//! ## Coming from the Go package
//!
//! `NewConnectionPool` → [`ConnectionPool::new`]; `SetRetryPolicy` →
//! [`ConnectionPool::set_retry_policy`] (now exponential with jitter);
//! `WarmupConnections` → [`ConnectionPool::warmup_connections`] (returns a
//! per-host report with typed errors); `EnableHealthCheck` /
//! `DisableHealthCheck` → the same names in snake case (the checks now act);
//! `Stop` → [`ConnectionPool::stop`] (now really stops); `Stats` /
//! `ResetStats` → [`ConnectionPool::stats`] / [`ConnectionPool::reset_stats`]
//! (success rate always in `[0, 1]`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod budget;
pub mod health;
pub mod policy;
mod pool;
mod stats;
pub mod warmup;

pub use budget::RetryBudget;
pub use health::{
    DownCause, HealthCheck, HealthCheckBuilder, HostHealth, HostState, OutlierDetection,
};
pub use policy::{Jitter, MAX_RETRIES_LIMIT, RetryPolicy, RetryPolicyBuilder};
pub use pool::{ConnectionPool, DEFAULT_MAX_HOSTS, PoolBuilder};
pub use stats::PoolStats;
pub use tokio_util::sync::CancellationToken;
pub use warmup::{HostWarmup, MAX_WARMUP_PER_HOST, Warmup, WarmupReport};
