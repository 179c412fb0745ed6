//! What to retry and how long to wait: [`RetryPolicy`] and [`Jitter`].
//!
//! # Why exponential backoff with full jitter
//!
//! A constant delay (the Go package's) makes every client that failed at the
//! same moment retry at the same moment, so an overloaded server sees the
//! same spike again and again. Doubling the delay spreads retries over time;
//! drawing each delay uniformly from `[0, ceiling]` ("full jitter", the AWS
//! architecture blog's recommendation) de-synchronises clients completely.
//! The ceiling is capped by [`RetryPolicy::max_delay`] and computed in
//! floating point with a clamped exponent, so attempt 10 000 (or
//! `u32::MAX`) gives the cap, never an overflow or a zero (Polly#2163).
//!
//! # Why `Retry-After` wins over backoff, up to a cap
//!
//! When a server says how long to wait (429/503 + `Retry-After`), waiting
//! exactly that long is both the fastest and the politest schedule. Waiting
//! an hour inside a request is rarely what a caller wants, so above
//! [`RetryPolicy::max_retry_after`] the pool fails fast with
//! [`httpclient_core::Error::HttpStatus`] carrying the status and the delay,
//! and the caller decides. Garbage or past values fall back to backoff.
//!
//! # Validation
//!
//! A [`RetryPolicy`] can only be made valid: [`RetryPolicyBuilder::build`]
//! checks every field, so a nonsensical policy (minimum above maximum, NaN
//! multiplier, zero deadline) is a [`ConfigError`] at construction, never a
//! panic and never silently fixed, and installing a policy at run time
//! ([`crate::ConnectionPool::set_policy`]) cannot fail.

use std::time::Duration;

use httpclient_core::http::StatusCode;
use httpclient_core::{ConfigError, Error, MAX_RETRY_AFTER};

/// The most retries a policy may ask for. Beyond a handful, the retry
/// budget and the total deadline decide anyway; a larger number is almost
/// certainly a unit mistake.
pub const MAX_RETRIES_LIMIT: u32 = 1_000;

/// How a backoff delay is randomised around its exponential ceiling `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[0, c]` (default): best at spreading synchronised
    /// clients.
    #[default]
    Full,
    /// Uniform in `[c/2, c]`: keeps a guaranteed minimum wait.
    Equal,
    /// Exactly `c`: deterministic, for tests and single clients.
    Off,
}

/// Retry policy of a [`crate::ConnectionPool`].
///
/// Defaults: 3 retries (4 attempts), base delay 100 ms doubling up to 10 s,
/// full jitter, no total deadline, no per-attempt timeout of its own (the
/// driver's applies), retryable statuses 429/502/503/504, and
/// `Retry-After` honoured up to 30 s.
///
/// ```
/// use std::time::Duration;
/// use httpclient_pool::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_retries(5)
///     .base_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(2))
///     .jitter(Jitter::Equal)
///     .total_deadline(Duration::from_secs(10))
///     .attempt_timeout(Duration::from_secs(3))
///     .retry_statuses([429, 503])
///     .build()?;
/// assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(50));
/// assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(200));
/// assert_eq!(policy.backoff_ceiling(10_000), Duration::from_secs(2));
///
/// let bad = RetryPolicy::builder().base_delay(Duration::from_secs(5)).max_delay(Duration::from_secs(1));
/// assert_eq!(bad.build().unwrap_err().field, "base_delay");
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryPolicy(RetryPolicyBuilder);

/// Builds a validated [`RetryPolicy`]; see [`RetryPolicy::builder`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a builder does nothing until `build()`"]
pub struct RetryPolicyBuilder {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    multiplier: f64,
    jitter: Jitter,
    total_deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
    retry_statuses: Vec<u16>,
    max_retry_after: Duration,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        RetryPolicyBuilder {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: Jitter::Full,
            total_deadline: None,
            attempt_timeout: None,
            retry_statuses: vec![429, 502, 503, 504],
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicyBuilder {
    /// Retries after the first attempt (`0` = one attempt). At most
    /// [`MAX_RETRIES_LIMIT`].
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Ceiling of the first retry's delay; later ceilings grow by
    /// [`RetryPolicy::multiplier`]. Zero means immediate retries (still
    /// bounded by the retry budget).
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }

    /// Cap on any backoff delay (not on `Retry-After`, which has its own
    /// cap). Must be at least the base delay and at most one year.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Growth factor between consecutive ceilings (default 2). Must be
    /// finite and at least 1.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = m;
        self
    }

    /// How delays are randomised (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Deadline across all attempts of one request, backoff included
    /// (`None` = none, the default). An attempt still running when it passes
    /// is dropped and the request fails with
    /// [`httpclient_core::Error::DeadlineExceeded`]; a backoff that would end
    /// after it is not slept — the last outcome is returned at once.
    pub fn total_deadline(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.total_deadline = d.into();
        self
    }

    /// Per-attempt timeout applied to requests that carry none of their own
    /// (a request's own [`httpclient_core::RequestOptions::timeout`] always
    /// wins, per the workspace's timeout precedence). `None` (default)
    /// leaves the driver's default in charge.
    pub fn attempt_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.attempt_timeout = d.into();
        self
    }

    /// Response statuses that are retried (for retry-safe requests).
    /// Default 429, 502, 503, 504; each must be in 400..=599.
    pub fn retry_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        let mut v: Vec<u16> = statuses.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        self.retry_statuses = v;
        self
    }

    /// The longest `Retry-After` the pool will sleep for (default 30 s).
    /// A longer one fails fast with
    /// [`httpclient_core::Error::HttpStatus`] `{ status, retry_after }`
    /// (inside `RetriesExhausted` when earlier attempts were made).
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Check every field and make the policy.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad field: more than
    /// [`MAX_RETRIES_LIMIT`] retries, `base_delay > max_delay`, a
    /// `max_delay` over one year, a multiplier that is NaN, infinite or
    /// below 1, a zero total deadline or attempt timeout, a retry status
    /// outside 400..=599, or a `max_retry_after` over one year.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(ConfigError::new(
                "max_retries",
                format!(
                    "{} is more than the limit of {MAX_RETRIES_LIMIT}",
                    self.max_retries
                ),
            ));
        }
        if self.max_delay > MAX_RETRY_AFTER {
            return Err(ConfigError::new(
                "max_delay",
                format!("{:?} is longer than one year", self.max_delay),
            ));
        }
        if self.base_delay > self.max_delay {
            return Err(ConfigError::new(
                "base_delay",
                format!(
                    "{:?} is greater than max_delay {:?}",
                    self.base_delay, self.max_delay
                ),
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ConfigError::new(
                "multiplier",
                format!("must be finite and at least 1, got {}", self.multiplier),
            ));
        }
        if self.total_deadline.is_some_and(|d| d > MAX_RETRY_AFTER) {
            return Err(ConfigError::new(
                "total_deadline",
                "must be at most one year (use None for no deadline)",
            ));
        }
        if self.attempt_timeout.is_some_and(|d| d > MAX_RETRY_AFTER) {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be at most one year (use None for the driver's default)",
            ));
        }
        if self.total_deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "total_deadline",
                "must be greater than zero (use None for no deadline)",
            ));
        }
        if self.attempt_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be greater than zero (use None for the driver's default)",
            ));
        }
        if let Some(bad) = self
            .retry_statuses
            .iter()
            .find(|s| !(400..=599).contains(*s))
        {
            return Err(ConfigError::new(
                "retry_statuses",
                format!("{bad} is not an error status (400..=599)"),
            ));
        }
        if self.max_retry_after > MAX_RETRY_AFTER {
            return Err(ConfigError::new(
                "max_retry_after",
                format!("{:?} is longer than one year", self.max_retry_after),
            ));
        }
        Ok(RetryPolicy(self))
    }
}

impl RetryPolicy {
    /// Start from the defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// A builder holding this policy's values, to change a few.
    pub fn to_builder(&self) -> RetryPolicyBuilder {
        self.0.clone()
    }

    /// A policy that never retries (one attempt per request). Health
    /// checks, outlier detection and per-host limits still apply.
    pub fn never() -> Self {
        RetryPolicy(RetryPolicyBuilder {
            max_retries: 0,
            ..RetryPolicyBuilder::default()
        })
    }

    /// The configured number of retries.
    pub fn max_retries(&self) -> u32 {
        self.0.max_retries
    }
    /// The configured base delay.
    pub fn base_delay(&self) -> Duration {
        self.0.base_delay
    }
    /// The configured delay cap.
    pub fn max_delay(&self) -> Duration {
        self.0.max_delay
    }
    /// The configured multiplier.
    pub fn multiplier(&self) -> f64 {
        self.0.multiplier
    }
    /// The configured jitter.
    pub fn jitter(&self) -> Jitter {
        self.0.jitter
    }
    /// The configured total deadline.
    pub fn total_deadline(&self) -> Option<Duration> {
        self.0.total_deadline
    }
    /// The configured default per-attempt timeout.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.0.attempt_timeout
    }
    /// The retryable statuses, sorted.
    pub fn retry_statuses(&self) -> &[u16] {
        &self.0.retry_statuses
    }
    /// The `Retry-After` cap.
    pub fn max_retry_after(&self) -> Duration {
        self.0.max_retry_after
    }

    /// Whether an error is worth retrying under this policy: core's
    /// [`Error::is_retryable`], except that a status an inner layer turned
    /// into [`Error::HttpStatus`] is judged by this policy's retryable
    /// statuses, exactly as the same status in a response would be.
    pub(crate) fn is_retry_error(&self, err: &Error) -> bool {
        match err {
            Error::HttpStatus { status, .. } => self.is_retry_status(*status),
            _ => err.is_retryable(),
        }
    }

    /// Whether `status` is one of the retryable statuses.
    pub fn is_retry_status(&self, status: StatusCode) -> bool {
        // Every retry status is in 400..=599 (checked by the builder), so a
        // success is answered without a look at the list, which is sorted
        // and deduplicated (by the builder, and so is the default).
        status.as_u16() >= 400
            && self
                .0
                .retry_statuses
                .binary_search(&status.as_u16())
                .is_ok()
    }

    /// The un-jittered delay before retry number `retry` (1 = the first
    /// retry): `min(max_delay, base_delay × multiplier^(retry-1))`. Never
    /// overflows: the exponent is clamped and infinity becomes the cap.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let base = self.0.base_delay.as_nanos() as f64;
        let cap = self.0.max_delay.as_nanos() as f64;
        if base == 0.0 {
            return Duration::ZERO;
        }
        // 2^1100 is already infinite in f64; clamping keeps powi cheap.
        let exponent = retry.saturating_sub(1).min(1100) as i32;
        let ceiling = base * self.0.multiplier.powi(exponent);
        // `!(x <= cap)` also catches NaN and infinity.
        let nanos = if ceiling <= cap { ceiling } else { cap };
        Duration::from_nanos(nanos as u64)
    }

    /// The range `[low, high]` the jittered delay before retry number
    /// `retry` is drawn from: `[0, c]` (full), `[c/2, c]` (equal) or
    /// `[c, c]` (off), where `c` is [`RetryPolicy::backoff_ceiling`].
    pub fn backoff_bounds(&self, retry: u32) -> (Duration, Duration) {
        let c = self.backoff_ceiling(retry);
        match self.0.jitter {
            Jitter::Full => (Duration::ZERO, c),
            Jitter::Equal => (c / 2, c),
            Jitter::Off => (c, c),
        }
    }

    /// One jittered delay before retry number `retry`, drawn from `rng`
    /// within [`RetryPolicy::backoff_bounds`].
    pub(crate) fn backoff(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let (lo, hi) = self.backoff_bounds(retry);
        if lo == hi {
            return lo;
        }
        // Both fit in u64 nanoseconds: max_delay is at most one year.
        let lo_n = lo.as_nanos() as u64;
        let hi_n = hi.as_nanos() as u64;
        Duration::from_nanos(rng.u64(lo_n..=hi_n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps_without_overflow() {
        let p = RetryPolicy::builder()
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(10))
            .build()
            .unwrap();
        let expect = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000];
        for (i, ms) in expect.iter().enumerate() {
            assert_eq!(
                p.backoff_ceiling(i as u32 + 1),
                Duration::from_millis(*ms),
                "retry {}",
                i + 1
            );
        }
        for retry in [64, 1_000, 2_049, 10_000, u32::MAX] {
            assert_eq!(p.backoff_ceiling(retry), Duration::from_secs(10));
        }
        // retry 0 is treated like the first retry, not a panic.
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn zero_base_and_unit_multiplier() {
        let p = RetryPolicy::builder()
            .base_delay(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(p.backoff_ceiling(10_000), Duration::ZERO);
        let p = RetryPolicy::builder()
            .multiplier(1.0)
            .base_delay(Duration::from_millis(30))
            .build()
            .unwrap();
        assert_eq!(p.backoff_ceiling(10_000), Duration::from_millis(30));
        let p = RetryPolicy::builder()
            .multiplier(1.5)
            .base_delay(Duration::from_millis(100))
            .build()
            .unwrap();
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(225));
    }

    #[test]
    fn jittered_delays_stay_within_bounds_after_thousands_of_retries() {
        let mut rng = fastrand::Rng::with_seed(7);
        for jitter in [Jitter::Full, Jitter::Equal, Jitter::Off] {
            let p = RetryPolicy::builder()
                .jitter(jitter)
                .base_delay(Duration::from_millis(10))
                .max_delay(Duration::from_secs(3))
                .build()
                .unwrap();
            for retry in (1..=10_000).step_by(7).chain([u32::MAX]) {
                let (lo, hi) = p.backoff_bounds(retry);
                let d = p.backoff(retry, &mut rng);
                assert!(lo <= d && d <= hi, "{jitter:?} retry {retry}: {d:?}");
                assert!(hi <= Duration::from_secs(3));
            }
        }
        let eq = RetryPolicy::builder()
            .jitter(Jitter::Equal)
            .build()
            .unwrap();
        assert_eq!(
            eq.backoff_bounds(2),
            (Duration::from_millis(100), Duration::from_millis(200))
        );
    }

    #[test]
    fn retry_statuses_are_matched_whatever_order_they_were_given_in() {
        let p = RetryPolicy::builder()
            .retry_statuses([503, 429, 500, 503, 418])
            .build()
            .unwrap();
        assert_eq!(p.retry_statuses(), &[418, 429, 500, 503]);
        for s in [418, 429, 500, 503] {
            assert!(p.is_retry_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 404, 502, 504] {
            assert!(!p.is_retry_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        let d = RetryPolicy::default();
        assert!(
            [429, 502, 503, 504]
                .into_iter()
                .all(|s| d.is_retry_status(StatusCode::from_u16(s).unwrap()))
        );
        assert!(!d.is_retry_status(StatusCode::OK));
    }

    #[test]
    fn validation_names_the_field() {
        let cases: Vec<(RetryPolicyBuilder, &str)> = vec![
            (RetryPolicy::builder().max_retries(1_001), "max_retries"),
            (
                RetryPolicy::builder()
                    .base_delay(Duration::from_secs(2))
                    .max_delay(Duration::from_secs(1)),
                "base_delay",
            ),
            (
                RetryPolicy::builder().max_delay(Duration::from_secs(400 * 86_400)),
                "max_delay",
            ),
            (RetryPolicy::builder().multiplier(f64::NAN), "multiplier"),
            (RetryPolicy::builder().multiplier(-2.0), "multiplier"),
            (RetryPolicy::builder().multiplier(0.5), "multiplier"),
            (
                RetryPolicy::builder().multiplier(f64::INFINITY),
                "multiplier",
            ),
            (
                RetryPolicy::builder().total_deadline(Duration::ZERO),
                "total_deadline",
            ),
            (
                RetryPolicy::builder().attempt_timeout(Duration::ZERO),
                "attempt_timeout",
            ),
            (
                RetryPolicy::builder().retry_statuses([200]),
                "retry_statuses",
            ),
            (
                RetryPolicy::builder().max_retry_after(Duration::from_secs(400 * 86_400)),
                "max_retry_after",
            ),
        ];
        for (p, field) in cases {
            let err = p.build().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        assert_eq!(
            RetryPolicy::builder().build().unwrap(),
            RetryPolicy::default()
        );
        assert_eq!(RetryPolicy::never().max_retries(), 0);
        let p = RetryPolicy::builder()
            .base_delay(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(p.to_builder().build().unwrap(), p);
    }
}
