//! Per-batch options: cancellation, deadline, fail-fast and a default
//! per-request timeout.
//!
//! Options are validated once, when built ([`BatchOptionsBuilder::build`]),
//! so a running batch never meets a value it cannot honour.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use httpclient_core::http::StatusCode;
use httpclient_core::{ConfigError, Error, Response};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type ErrorPredicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
type StatusPredicate = Arc<dyn Fn(StatusCode) -> bool + Send + Sync>;

/// When a batch stops scheduling new requests because of how one ended.
///
/// A policy is a predicate over errors, over response statuses, or both
/// (either matching triggers it). When it triggers, the batch stops taking
/// inputs: the rest are reported as
/// [`crate::Outcome::NotStarted`]`(`[`crate::StopReason::FailFast`]`)`.
/// Requests already in flight **finish normally** by default — they may
/// already have reached the server, and their results are worth keeping; use
/// [`FailFast::cancel_in_flight`] to drop them instead (they then end with
/// [`Error::Cancelled`]).
///
/// Invalid inputs (a URL that does not parse) are errors too, so
/// [`FailFast::any_error`] stops on them. Errors the batch itself produces
/// when it is stopped (cancelled or deadline-exceeded in flight) never
/// trigger it.
///
/// ```
/// use httpclient_batch::FailFast;
/// // Stop on the first connect failure or on a 401/403 (bad credentials
/// // will not get better for the next 10,000 requests).
/// let policy = FailFast::on_error(|e| e.is_connect())
///     .or_status(|s| s == 401 || s == 403);
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct FailFast {
    on_error: Option<ErrorPredicate>,
    on_status: Option<StatusPredicate>,
    cancel_in_flight: bool,
}

impl FailFast {
    /// Stop after the first error of any kind (driver error, panic, invalid
    /// input). Responses never trigger it, whatever their status.
    pub fn any_error() -> Self {
        FailFast::on_error(|_| true)
    }

    /// Stop after the first error for which `pred` is true, e.g.
    /// `|e| e.is_connect()` or `|e| e.kind_name() == "timeout"`.
    pub fn on_error(pred: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        FailFast {
            on_error: Some(Arc::new(pred)),
            on_status: None,
            cancel_in_flight: false,
        }
    }

    /// Stop after the first response whose status satisfies `pred`, e.g.
    /// `|s| s == 401` or `|s| s.is_server_error()`.
    pub fn on_status(pred: impl Fn(StatusCode) -> bool + Send + Sync + 'static) -> Self {
        FailFast {
            on_error: None,
            on_status: Some(Arc::new(pred)),
            cancel_in_flight: false,
        }
    }

    /// Also stop on errors satisfying `pred` (an existing error predicate is
    /// kept: either one triggers).
    pub fn or_error(mut self, pred: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.on_error = Some(match self.on_error.take() {
            Some(old) => Arc::new(move |e: &Error| old(e) || pred(e)),
            None => Arc::new(pred),
        });
        self
    }

    /// Also stop on responses whose status satisfies `pred`.
    pub fn or_status(mut self, pred: impl Fn(StatusCode) -> bool + Send + Sync + 'static) -> Self {
        self.on_status = Some(match self.on_status.take() {
            Some(old) => Arc::new(move |s: StatusCode| old(s) || pred(s)),
            None => Arc::new(pred),
        });
        self
    }

    /// When the policy triggers, also cancel the requests in flight (they end
    /// with [`Error::Cancelled`] and their connections are dropped). Off by
    /// default.
    pub fn cancel_in_flight(mut self, yes: bool) -> Self {
        self.cancel_in_flight = yes;
        self
    }

    /// Whether the policy cancels in-flight requests when it triggers.
    pub fn cancels_in_flight(&self) -> bool {
        self.cancel_in_flight
    }

    /// Whether this result triggers the policy.
    pub fn triggers(&self, result: &Result<Response, Error>) -> bool {
        match result {
            Ok(r) => self.on_status.as_ref().is_some_and(|p| p(r.status())),
            Err(e) => self.triggers_on_error(e),
        }
    }

    pub(crate) fn triggers_on_outcome(&self, outcome: &crate::Outcome) -> bool {
        match outcome {
            crate::Outcome::Response(r) => self.on_status.as_ref().is_some_and(|p| p(r.status())),
            crate::Outcome::Error(e) => self.triggers_on_error(e),
            crate::Outcome::NotStarted(_) => false,
        }
    }

    pub(crate) fn triggers_on_error(&self, e: &Error) -> bool {
        self.on_error.as_ref().is_some_and(|p| p(e))
    }
}

impl fmt::Debug for FailFast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailFast")
            .field("on_error", &self.on_error.is_some())
            .field("on_status", &self.on_status.is_some())
            .field("cancel_in_flight", &self.cancel_in_flight)
            .finish()
    }
}

/// When a batch's deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    At(Instant),
    After(Duration),
}

/// Options for one batch or stream. Build with [`BatchOptions::builder`];
/// [`BatchOptions::default`] is "no cancellation, no deadline, no
/// fail-fast, the executor's default request timeout".
///
/// ```
/// use httpclient_batch::{BatchOptions, FailFast};
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
///
/// let token = CancellationToken::new();
/// let options = BatchOptions::builder()
///     .cancel_token(token.clone())
///     .time_limit(Duration::from_secs(30))
///     .fail_fast(FailFast::any_error())
///     .request_timeout(Duration::from_secs(5))
///     .build()?;
/// # let _ = options;
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) deadline: Option<Deadline>,
    pub(crate) fail_fast: Option<FailFast>,
    pub(crate) request_timeout: Option<Duration>,
}

impl BatchOptions {
    /// Start building options.
    pub fn builder() -> BatchOptionsBuilder {
        BatchOptionsBuilder {
            options: BatchOptions::default(),
            error: None,
        }
    }

    /// The cancellation token, if any.
    pub fn cancel_token(&self) -> Option<&CancellationToken> {
        self.cancel.as_ref()
    }

    /// The fail-fast policy, if any.
    pub fn fail_fast(&self) -> Option<&FailFast> {
        self.fail_fast.as_ref()
    }

    /// The default per-request timeout, if set for this batch.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }
}

/// Builds [`BatchOptions`]; the first invalid value is reported by
/// [`BatchOptionsBuilder::build`].
#[derive(Debug)]
#[must_use = "call `build()` to get the options"]
pub struct BatchOptionsBuilder {
    options: BatchOptions,
    error: Option<ConfigError>,
}

impl BatchOptionsBuilder {
    /// Stop the batch when `token` is cancelled: in-flight requests end with
    /// [`Error::Cancelled`] (their futures, and so their connections, are
    /// dropped) and the inputs not yet started are reported as not started.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.options.cancel = Some(token);
        self
    }

    /// Stop the batch at `deadline` (tokio's clock, so tests can pause it):
    /// in-flight requests end with [`Error::DeadlineExceeded`], the rest are
    /// not started. A deadline already past stops the batch before it sends
    /// anything. A batch has one deadline: a second call to this or to
    /// [`BatchOptionsBuilder::time_limit`] is a [`ConfigError`] (it would
    /// silently override the first).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.set_deadline(Deadline::At(deadline));
        self
    }

    /// Like [`BatchOptionsBuilder::deadline`], counted from when the batch
    /// starts running (its first poll). Zero is allowed and means "send
    /// nothing". A second call to this or to
    /// [`BatchOptionsBuilder::deadline`] is a [`ConfigError`].
    pub fn time_limit(mut self, limit: Duration) -> Self {
        self.set_deadline(Deadline::After(limit));
        self
    }

    fn set_deadline(&mut self, deadline: Deadline) {
        if self.options.deadline.is_some() {
            self.error.get_or_insert(ConfigError::new(
                "deadline",
                "set once: either `deadline` or `time_limit`",
            ));
        } else {
            self.options.deadline = Some(deadline);
        }
    }

    /// Stop scheduling after the first result `policy` matches.
    pub fn fail_fast(mut self, policy: FailFast) -> Self {
        self.options.fail_fast = Some(policy);
        self
    }

    /// Per-request timeout for requests that have none of their own (a
    /// request's own [`httpclient_core::RequestOptions::timeout`] always
    /// wins). Overrides the executor's default for this batch. Zero is a
    /// [`ConfigError`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            self.error.get_or_insert(ConfigError::new(
                "request_timeout",
                "must be greater than zero",
            ));
        } else {
            self.options.request_timeout = Some(timeout);
        }
        self
    }

    /// Finish.
    ///
    /// # Errors
    /// The first invalid value given.
    pub fn build(self) -> Result<BatchOptions, ConfigError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.options),
        }
    }
}
