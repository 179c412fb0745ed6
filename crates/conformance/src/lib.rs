//! # httpclient-conformance
//!
//! The behaviours every batchclient [`Driver`] must have, as a library a
//! driver author calls from their own tests. The batch, rate-limit and pool
//! layers make decisions from what a driver reports — retry or not, count a
//! connection, give a permit back — so a driver that calls a reset a timeout,
//! retries on its own or keeps a connection after its future was dropped
//! silently breaks every layer above it. This suite pins those behaviours
//! down against a real loopback server ([`httpclient_testserver`]) that can
//! misbehave on purpose.
//!
//! ## Running it for your driver
//!
//! Add the crate as a dev-dependency and write one test file:
//!
//! ```ignore
//! // tests/conformance.rs
//! use httpclient_conformance::ConformanceConfig;
//! use my_driver::MyDriver;
//!
//! httpclient_conformance::conformance_tests!(|cfg: ConformanceConfig| {
//!     MyDriver::builder()
//!         .connect_timeout(cfg.connect_timeout)
//!         .timeout(cfg.timeout)
//!         .max_body_bytes(cfg.max_body_bytes)
//!         .build()
//! });
//! ```
//!
//! The macro expands to one `#[test]` per behaviour (named after the
//! functions in [`checks`], so `cargo test reset_mid_body` runs one), each on
//! its own multi-thread tokio runtime with two workers; your crate needs no
//! tokio dependency for it. The factory is called with a
//! [`ConformanceConfig`] — the settings a check needs — and returns
//! `Result<YourDriver, httpclient_core::Error>`; most checks use
//! [`ConformanceConfig::default`], a few lower the default timeout or the
//! body limit to test exactly that setting. Every check builds its own driver
//! and its own server, so checks are independent and may run in parallel.
//!
//! Not using `cargo test`? [`run_all`] runs every check in sequence and
//! returns a [`Report`]; [`checks`] exposes each check as an `async fn` for
//! a hand-picked subset.
//!
//! ## When your driver cannot pass a check
//!
//! Say so in your docs, and keep the gap honest in code: run the suite with
//! [`run_all`], require every check to pass except a named list of known
//! gaps, and require each known gap to still *fail* — so the day a new
//! version of your client fixes it, the test tells you to drop the entry.
//! [`check_names`] lets that test notice a check that was renamed or added.
//!
//! ```no_run
//! # use httpclient_conformance::{run_all, check_names, ConformanceConfig};
//! # use httpclient_core::{async_trait, Driver, Error, Request, Response};
//! # struct MyDriver;
//! # #[async_trait] impl Driver for MyDriver {
//! #     async fn execute(&self, _r: Request) -> Result<Response, Error> { Err(Error::invalid_request("example")) }
//! # }
//! # fn make(_cfg: ConformanceConfig) -> Result<MyDriver, Error> { Ok(MyDriver) }
//! const KNOWN_GAPS: &[&str] = &["dropped_future_frees_connection"];
//! # async fn demo() {
//! let report = run_all(make).await;
//! assert_eq!(report.outcomes.len(), check_names().len());
//! for o in &report.outcomes {
//!     let gap = KNOWN_GAPS.contains(&o.name);
//!     assert!(o.result.is_ok() != gap, "{}: {:?}", o.name, o.result);
//! }
//! # }
//! ```
//!
//! `httpclient-driver-isahc`'s `tests/conformance.rs` does exactly this;
//! `httpclient-driver-reqwest`'s `tests/conformance.rs` is the plain macro
//! form.
//!
//! ## What a driver must do
//!
//! The list, with the exact expectation of each, is the documentation of
//! [`checks`]. In short:
//!
//! * methods (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `PATCH`), headers and
//!   bodies (empty, all 256 byte values, 1 MiB, a streamed request body) make
//!   the round trip intact; the status, version, headers and final URL are
//!   reported and `elapsed` is measured;
//! * 4xx and 5xx are `Ok(Response)`, never errors;
//! * redirects are followed by default, up to [`DEFAULT_MAX_REDIRECTS`];
//!   a `303` turns a `POST` into a `GET` without body, a `307` keeps both;
//! * a request's own timeout bounds the attempt and beats the driver's
//!   default, which applies when the request has none;
//! * every failure maps to its precise [`Error`] kind: connection refused,
//!   DNS failure and TLS failure are `Connect { kind }` with
//!   `may_have_been_sent() == false`; a reset or close before the response
//!   head is `ResetBeforeResponse`; a reset after it is `ResetMidBody`; a
//!   server that never answers, or drips the body past the deadline, is
//!   `Timeout { phase: Request }`; garbage is `InvalidResponse`; a body over
//!   the limit is `BodyTooLarge`;
//! * the driver never retries on its own: the server counts exactly one
//!   request per failed attempt;
//! * 200 concurrent requests each get their own response; keep-alive reuses
//!   connections (server-side accepts ≤ 1.25 × concurrency) and
//!   [`Driver::connections_opened`], when it is `Some`, equals the server's
//!   count exactly;
//! * dropping an in-flight future closes its connection (the server sees the
//!   close within 2 s), and so does a timeout;
//! * the response body limit applies to buffered bodies (a `HEAD` whose
//!   `Content-Length` is over the limit is fine); a body requested as a
//!   stream (`stream_response`) is the caller's to bound.
//!
//! ## Shared driver defaults
//!
//! The workspace's drivers (`httpclient-driver-reqwest`,
//! `httpclient-driver-isahc`) agree on these defaults so that swapping one
//! for the other changes nothing a caller can observe; a third-party driver
//! should document its own:
//!
//! | setting | default |
//! |---|---|
//! | redirects | followed, at most [`DEFAULT_MAX_REDIRECTS`] (10) hops; the 11th is an error |
//! | per-attempt timeout (when the request sets none) | 30 s |
//! | connect timeout | 10 s |
//! | buffered response body limit | 64 MiB |
//! | client-internal retries | none, ever |
//!
//! The suite tests the redirect default (it cannot be configured through
//! [`ConformanceConfig`]), so a driver that passes it follows 10 hops and
//! refuses the 11th.
//!
//! ## Limits of the suite
//!
//! Everything runs over HTTP/1.1 on 127.0.0.1. A connect *timeout* is not
//! tested: provoking one needs an address that swallows SYNs, and this
//! suite sends traffic only to loopback. HTTPS is exercised only as a
//! failing handshake (a TLS client talking to a plain-HTTP port).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
mod report;
mod support;

use std::time::Duration;

pub use httpclient_core::{Driver, Error};
pub use report::{CheckOutcome, Report, check_names, run_all};

/// Redirect hops the workspace's drivers follow by default; the next one is
/// an error. Tested by [`checks::redirect_limit`].
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// How long one check may take before it is reported as a hang.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The settings a check needs from the driver under test.
///
/// Your factory maps each field onto your driver's builder. Checks start
/// from [`ConformanceConfig::default`] and change a field only to test that
/// very setting (for example a 500 ms default timeout for
/// [`checks::timeout_default`]), so a driver that ignores a field fails
/// the check that is about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConformanceConfig {
    /// Largest buffered response body, in bytes; one more byte is
    /// [`Error::BodyTooLarge`]. Default 8 MiB (the suite moves 1 MiB bodies).
    pub max_body_bytes: u64,
    /// Connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// The driver's default per-attempt timeout, used when a request sets
    /// none. Default 30 s.
    pub timeout: Duration,
}

impl Default for ConformanceConfig {
    fn default() -> Self {
        ConformanceConfig {
            max_body_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

impl ConformanceConfig {
    /// This configuration with another body limit.
    pub fn with_max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = limit;
        self
    }
    /// This configuration with another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// This configuration with another default per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a check failed: a sentence saying what was expected and what the
/// driver did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The explanation.
    pub message: String,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// What every check returns.
pub type CheckResult = Result<(), Failure>;

/// `__for_each_check!((path::to::callback) args…)` calls `callback!` with
/// `(args…)` and then the name of every check,
/// in the order [`run_all`] runs them: the one list the test macro and the
/// report are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_check {
    (($($callback:tt)+) $($args:tt)*) => {
        $($callback)+! { ($($args)*)
            method_get,
            method_head,
            method_post,
            method_put,
            method_delete,
            method_patch,
            headers_round_trip,
            body_empty_round_trip,
            body_binary_round_trip,
            body_1mib_round_trip,
            request_body_stream,
            status_4xx_is_response,
            status_5xx_is_response,
            redirect_followed,
            redirect_limit,
            redirect_303_post_becomes_get,
            redirect_307_keeps_method_and_body,
            timeout_per_request,
            timeout_default,
            timeout_request_overrides_default,
            connect_refused,
            dns_failure,
            tls_handshake_failure,
            reset_before_response,
            close_before_response,
            reset_mid_body,
            never_respond_times_out,
            slow_drip_times_out,
            garbage_is_invalid_response,
            body_at_limit,
            body_over_limit,
            head_ignores_body_limit,
            invalid_url_rejected,
            concurrent_200,
            keep_alive_reuse,
            dropped_future_frees_connection,
            elapsed_reported,
            streaming_response,
            streaming_response_reset_mid_body,
            streaming_response_not_limited,
        }
    };
}

/// Expands to one `#[test]` per check in [`checks`], each calling the check
/// with your driver factory on a fresh two-worker tokio runtime.
///
/// The argument is an expression (usually a closure) of type
/// `Fn(ConformanceConfig) -> Result<D, httpclient_core::Error>` where
/// `D: Driver + 'static`. It is evaluated once per test.
///
/// ```ignore
/// httpclient_conformance::conformance_tests!(|cfg: httpclient_conformance::ConformanceConfig| {
///     my_driver::MyDriver::builder()
///         .connect_timeout(cfg.connect_timeout)
///         .timeout(cfg.timeout)
///         .max_body_bytes(cfg.max_body_bytes)
///         .build()
/// });
/// ```
///
/// Wrap the call in a module (`mod conformance { ... }`) to group the
/// tests under one prefix.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::__for_each_check! { ($crate::__conformance_test_fns) $make }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    (($make:expr) $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::__private::run_test(stringify!($name), async {
                    let make = $make;
                    $crate::checks::$name(&make).await
                });
            }
        )*
    };
}

#[doc(hidden)]
pub mod __private {
    //! Used by the macros; not part of the public API.

    use std::future::Future;

    use crate::{CHECK_TIME_LIMIT, CheckResult};

    /// Runs one check on a fresh two-worker runtime and panics with its
    /// failure message, so `cargo test` shows it.
    pub fn run_test(name: &str, check: impl Future<Output = CheckResult>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build a tokio runtime for the conformance check");
        let outcome = rt.block_on(async { tokio::time::timeout(CHECK_TIME_LIMIT, check).await });
        // Dropping the runtime aborts anything a driver left running.
        drop(rt);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => panic!("conformance check `{name}` failed: {failure}"),
            Err(_) => panic!(
                "conformance check `{name}` did not finish within {CHECK_TIME_LIMIT:?} (a hang)"
            ),
        }
    }
}
