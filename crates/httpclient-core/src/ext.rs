//! Typed records layers attach to [`crate::Response::extensions`], defined
//! here so a caller can read them without depending on the layer crates.
//!
//! ```
//! use httpclient_core::{ext::RetryInfo, Response};
//! # let response = Response::new(http::StatusCode::OK);
//! if let Some(info) = response.extensions().get::<RetryInfo>() {
//!     println!("took {} attempts, {:?} in backoff", info.attempts, info.backoff);
//! }
//! ```

use std::time::Duration;

/// Recorded by the retry layer (the pool) on every response it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryInfo {
    /// Attempts made, including the one that produced this response (≥ 1).
    pub attempts: u32,
    /// Total time spent sleeping between attempts.
    pub backoff: Duration,
}

/// Recorded by the rate limiter: how long this request waited for its
/// permit (zero when one was available at once). When several limiters are
/// chained, the outermost one's value is kept alongside the sum in `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermitWait {
    /// Wait in the limiter that recorded this value last (the outermost).
    pub wait: Duration,
    /// Sum over every limiter the request passed through.
    pub total: Duration,
}

impl PermitWait {
    /// Record `wait` on a response, adding to any earlier limiter's record.
    pub fn record(extensions: &mut http::Extensions, wait: Duration) {
        let total = extensions
            .get::<PermitWait>()
            .map_or(Duration::ZERO, |p| p.total)
            + wait;
        extensions.insert(PermitWait { wait, total });
    }
}
