//! Typed records the layers leave on a [`Response`], defined here so a
//! caller can read them without depending on the layer crates.
//!
//! Read them with [`Response::retry_info`] and [`Response::permit_wait`].
//! They are not in [`Response::extensions`], which is left to callers' own
//! data: earlier versions inserted them there, and
//! `extensions().get::<RetryInfo>()` now finds nothing. The response keeps
//! them in one small box shared by every layer — one allocation per
//! response, where the first insert into an empty `http::Extensions` costs
//! three allocations and a hash — and the happy path's records (one attempt
//! without backoff, no wait for a permit) in a byte, with no allocation.
//!
//! ```
//! use httpclient_core::Response;
//! # let response = Response::new(http::StatusCode::OK);
//! if let Some(info) = response.retry_info() {
//!     println!("took {} attempts, {:?} in backoff", info.attempts, info.backoff);
//! }
//! if let Some(pw) = response.permit_wait() {
//!     println!("waited {:?} for a rate permit", pw.total);
//! }
//! ```

use std::time::Duration;

use crate::Response;

/// Recorded by the retry layer (the pool) on every response it returns;
/// read it with [`Response::retry_info`]. An outer retry layer replaces an
/// inner one's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryInfo {
    /// Attempts made, including the one that produced this response (≥ 1).
    pub attempts: u32,
    /// Total time spent sleeping between attempts.
    pub backoff: Duration,
}

/// Recorded by the rate limiter: how long this request waited for its
/// permit (zero when one was available at once); read it with
/// [`Response::permit_wait`]. When several limiters are chained, the
/// outermost one's value is kept alongside the sum in `total`. A limiter
/// inside a retry layer records each attempt on that attempt's response, so
/// the response returned carries its own (the last) attempt's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermitWait {
    /// Wait in the limiter that recorded this value last (the outermost).
    pub wait: Duration,
    /// Sum over every limiter the request passed through.
    pub total: Duration,
}

impl PermitWait {
    /// Record `wait` on a response, adding to any earlier (inner) limiter's
    /// record: `wait` becomes this value, `total` grows by it.
    pub fn record(response: &mut Response, wait: Duration) {
        let total = response.permit_wait().map_or(Duration::ZERO, |p| p.total) + wait;
        response.set_permit_wait(PermitWait { wait, total });
    }
}
