//! What a batch gives back: one [`BatchItem`] per input, in input order,
//! each holding exactly one [`Outcome`].
//!
//! Three outcomes, never a zero value standing for "nothing happened" (the
//! Go package's cancelled slots were indistinguishable from unfilled ones):
//!
//! * [`Outcome::Response`] — the driver returned a response. **Any status**:
//!   a 404 or a 503 is a response, so it counts as *succeeded* at the
//!   transport level. Use [`BatchResult::status_failures`] or the status
//!   classes in [`crate::BatchStats`] for HTTP-level failures.
//! * [`Outcome::Error`] — the input could not be built
//!   ([`Error::InvalidRequest`]), the driver failed, panicked
//!   ([`Error::Panicked`]), or the request was **in flight** when the batch
//!   was stopped ([`Error::Cancelled`], [`Error::DeadlineExceeded`]): it may
//!   have reached the server, and its connection was dropped.
//! * [`Outcome::NotStarted`] — the batch stopped before this input was sent;
//!   nothing reached the server. The [`StopReason`] says why.

use std::time::Duration;

use httpclient_core::{Error, Response};
use tokio::time::Instant;

/// Why a batch stopped scheduling work (and so why an input was not started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The batch's cancellation token fired.
    Cancelled,
    /// The batch's deadline passed.
    DeadlineExceeded,
    /// Fail-fast: the request at input index `trigger` ended the way the
    /// batch's [`crate::FailFast`] policy stops on.
    FailFast {
        /// Input index of the request that triggered the stop.
        trigger: usize,
    },
    /// The executor was shut down ([`crate::BatchExecutor::shutdown`]).
    Shutdown,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Cancelled => f.write_str("cancelled"),
            StopReason::DeadlineExceeded => f.write_str("deadline exceeded"),
            StopReason::FailFast { trigger } => write!(f, "fail-fast after input {trigger}"),
            StopReason::Shutdown => f.write_str("executor shut down"),
        }
    }
}

/// The one outcome of one input.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the response is held inline: boxing it would cost an allocation per request"
)]
pub enum Outcome {
    /// The driver returned a response (any status, 4xx and 5xx included).
    Response(Response),
    /// The request failed, or was in flight when the batch was stopped.
    Error(Error),
    /// The batch stopped before this input was sent; nothing reached the
    /// server.
    NotStarted(StopReason),
}

impl Outcome {
    /// Whether this is a response (of any status).
    pub fn is_response(&self) -> bool {
        matches!(self, Outcome::Response(_))
    }
    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
    /// Whether the input was never started.
    pub fn is_not_started(&self) -> bool {
        matches!(self, Outcome::NotStarted(_))
    }
    /// The response, if there is one.
    pub fn response(&self) -> Option<&Response> {
        match self {
            Outcome::Response(r) => Some(r),
            _ => None,
        }
    }
    /// The error, if there is one.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Error(e) => Some(e),
            _ => None,
        }
    }
    /// Why the input was not started, if it was not.
    pub fn not_started(&self) -> Option<StopReason> {
        match self {
            Outcome::NotStarted(r) => Some(*r),
            _ => None,
        }
    }
    /// Take the response out, if there is one.
    pub fn into_response(self) -> Option<Response> {
        match self {
            Outcome::Response(r) => Some(r),
            _ => None,
        }
    }
    /// Take the error out, if there is one.
    pub fn into_error(self) -> Option<Error> {
        match self {
            Outcome::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// One input's result.
#[derive(Debug)]
pub struct BatchItem {
    /// 0-based position of the input in the batch (or the stream).
    pub index: usize,
    /// What happened to it.
    pub outcome: Outcome,
    /// How long the driver call took, from handing the request to the driver
    /// (after a worker slot was obtained) to its result; zero for inputs that
    /// never reached the driver.
    pub elapsed: Duration,
}

/// The result of [`crate::BatchExecutor::execute_batch`]: one item per
/// input, in input order, plus counts and timings.
///
/// Invariant: `items.len() == succeeded + failed + not_started`, and
/// `items[i].index == i`.
#[derive(Debug)]
pub struct BatchResult {
    /// One item per input, in input order.
    pub items: Vec<BatchItem>,
    /// Inputs that got a response (any status; see [`Outcome::Response`]).
    pub succeeded: usize,
    /// Inputs that ended with an error (including invalid inputs and
    /// requests cancelled in flight).
    pub failed: usize,
    /// Inputs that were never started.
    pub not_started: usize,
    /// Why the batch stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// When the batch started running (its first poll).
    pub start: Instant,
    /// When the batch returned.
    pub end: Instant,
    /// `end - start`.
    pub duration: Duration,
}

impl BatchResult {
    /// Number of items (= number of inputs).
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether the batch had no inputs.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// The item for input `index`.
    pub fn get(&self, index: usize) -> Option<&BatchItem> {
        self.items.get(index)
    }
    /// Every item, in input order.
    pub fn iter(&self) -> std::slice::Iter<'_, BatchItem> {
        self.items.iter()
    }
    /// Whether every input got a response (of any status).
    pub fn all_succeeded(&self) -> bool {
        self.succeeded == self.items.len()
    }
    /// `(index, response)` for every input that got a response, any status.
    pub fn successes(&self) -> impl Iterator<Item = (usize, &Response)> {
        self.items
            .iter()
            .filter_map(|i| i.outcome.response().map(|r| (i.index, r)))
    }
    /// `(index, response)` for responses with a 4xx or 5xx status: transport
    /// successes that are HTTP failures.
    pub fn status_failures(&self) -> impl Iterator<Item = (usize, &Response)> {
        self.successes()
            .filter(|(_, r)| r.status().is_client_error() || r.status().is_server_error())
    }
    /// `(index, error)` for every input that ended with an error.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &Error)> {
        self.items
            .iter()
            .filter_map(|i| i.outcome.error().map(|e| (i.index, e)))
    }
    /// `(index, reason)` for every input that was never started.
    pub fn unstarted(&self) -> impl Iterator<Item = (usize, StopReason)> {
        self.items
            .iter()
            .filter_map(|i| i.outcome.not_started().map(|r| (i.index, r)))
    }
    /// The responses in input order, skipping inputs without one.
    pub fn responses(&self) -> impl Iterator<Item = &Response> {
        self.items.iter().filter_map(|i| i.outcome.response())
    }
    /// Take the responses out, aligned with the inputs: element `i` is
    /// `Some` when input `i` got a response.
    pub fn into_responses(self) -> Vec<Option<Response>> {
        self.items
            .into_iter()
            .map(|i| i.outcome.into_response())
            .collect()
    }
    /// Responses per second of wall time: `succeeded / duration`, 0 when
    /// the duration is zero.
    pub fn throughput(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.succeeded as f64 / secs
        } else {
            0.0
        }
    }
}

impl IntoIterator for BatchResult {
    type Item = BatchItem;
    type IntoIter = std::vec::IntoIter<BatchItem>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a> IntoIterator for &'a BatchResult {
    type Item = &'a BatchItem;
    type IntoIter = std::slice::Iter<'a, BatchItem>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
