//! # httpclient-core
//!
//! The shared vocabulary of the batchclient workspace: the [`Driver`] trait,
//! [`Request`], [`Response`], [`Error`] and [`Origin`]. Drivers
//! (`httpclient-driver-reqwest`, `httpclient-driver-isahc`) implement
//! [`Driver`] over a real client; layers (`httpclient-batch`,
//! `httpclient-ratelimit`, `httpclient-pool`) implement it by wrapping
//! another driver, so they chain in any order and each depends on this crate
//! only.
//!
//! ## Timeout precedence
//!
//! Written once here and obeyed by every crate:
//!
//! 1. A request's own timeout ([`RequestOptions::timeout`]) bounds **one
//!    attempt**.
//! 2. When a request has none, the **driver's default** timeout applies to
//!    the attempt.
//! 3. The retry layer's **total deadline** spans all attempts of one request,
//!    including backoff sleeps.
//! 4. A **batch deadline** spans the whole batch; requests still in flight
//!    when it passes end with [`Error::DeadlineExceeded`], and those not yet
//!    started are reported as not started.
//!
//! ## Features
//!
//! * `json` — `Response::json` and `RequestBuilder::json` through serde.
//! * `test-util` — `testkit`: a scriptable `testkit::MockDriver` that works
//!   under tokio's paused clock, and a `testkit::NoopDriver` for overhead
//!   benchmarks.
//!
//! ## Example
//!
//! ```
//! use httpclient_core::{Request, Error};
//! let req = Request::get("https://api.example.com/v1/items").header("accept", "application/json").build()?;
//! assert_eq!(req.origin().to_string(), "https://api.example.com");
//! # Ok::<(), Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod error;
pub mod ext;
mod origin;
mod request;
mod response;
mod retry_after;
#[cfg(feature = "test-util")]
pub mod testkit;

pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use http;

pub use driver::{Driver, DriverExt};
pub use error::{
    BoxError, ConfigError, ConnectKind, Error, RateLimitReason, TimeoutPhase, find_io_error,
    source_chain,
};
pub use origin::{Origin, Scheme};
pub use request::{
    BodyStream, IntoRequest, Request, RequestBody, RequestBuilder, RequestOptions, RequestParts,
    request,
};
pub use response::{Response, ResponseBody, ResponseStream};
pub use retry_after::{MAX_RETRY_AFTER, parse_retry_after, retry_after_from_headers};
