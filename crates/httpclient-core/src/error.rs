//! One error type for every driver and layer.
//!
//! Layers make decisions from errors — retry or not, fail fast, count a
//! kind — so the kinds are explicit variants rather than strings, and the
//! two questions a retry layer must answer are methods:
//!
//! * [`Error::is_retryable`]: could trying again plausibly succeed?
//! * [`Error::may_have_been_sent`]: could the server have received (and
//!   applied) the request? Only when this is `false` is it safe to retry a
//!   non-idempotent request such as a `POST`.
//!
//! Drivers classify failures by walking the whole [`std::error::Error::source`]
//! chain of their client's error (see [`source_chain`]), never by one flag.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::Origin;

/// A boxed error from a driver's underlying client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a connection attempt failed. Every kind means the request was
/// never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectKind {
    /// The peer refused the TCP connection (nothing listening).
    Refused,
    /// The host name could not be resolved.
    Dns,
    /// The TLS handshake failed (certificate, protocol, …); not retryable.
    Tls,
    /// Any other failure before the connection was established.
    Other,
}

impl fmt::Display for ConnectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectKind::Refused => "connection refused",
            ConnectKind::Dns => "DNS resolution failed",
            ConnectKind::Tls => "TLS handshake failed",
            ConnectKind::Other => "connect failed",
        })
    }
}

/// Which deadline ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Establishing the connection: nothing was sent.
    Connect,
    /// The request as a whole (per attempt): it may have been sent.
    Request,
}

/// Why a rate limiter refused a request without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitReason {
    /// The wait queue was full (`max_queue`).
    QueueFull,
    /// The caller asked not to wait (`try_execute` / `try_acquire`) and no
    /// permit was available now.
    WouldWait,
    /// A per-key limiter is at its cap on distinct keys.
    TooManyKeys,
}

/// A constructor or setter was given a value that cannot work.
///
/// Every layer validates its configuration up front and reports mistakes
/// with this type instead of panicking or silently substituting a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The parameter that was wrong, e.g. `"workers"`.
    pub field: &'static str,
    /// What is wrong with it, e.g. `"must be at least 1"`.
    pub reason: String,
}

impl ConfigError {
    /// A configuration error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

/// Every way a request can fail, for every driver and layer.
///
/// The enum is `#[non_exhaustive]`; match the kinds you act on and keep a
/// wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request could not be built: bad URL, unsupported scheme, invalid
    /// header, zero timeout. Nothing was sent.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong with the request.
        reason: String,
        /// The parser's own error, where there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A layer or driver was configured with a value that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The connection could not be established. Nothing was sent.
    #[error("{kind}")]
    Connect {
        /// Refused, DNS or TLS.
        kind: ConnectKind,
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A deadline ran out.
    #[error("{} timed out{}", match phase { TimeoutPhase::Connect => "connect", TimeoutPhase::Request => "request (it may have reached the server)" }, after.map(|d| format!(" after {d:?}")).unwrap_or_default())]
    Timeout {
        /// Connect (nothing sent) or the whole attempt (maybe sent).
        phase: TimeoutPhase,
        /// The limit that ran out, where known.
        after: Option<Duration>,
    },

    /// The connection was closed or reset after the request was written and
    /// before a response head arrived. The server may have applied it.
    #[error("connection reset before a response arrived (the request may have been applied)")]
    ResetBeforeResponse {
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The response head arrived but the body was cut off.
    #[error("connection reset while reading the response body (the request was applied)")]
    ResetMidBody {
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The server sent something that is not valid HTTP.
    #[error("invalid response: {reason}")]
    InvalidResponse {
        /// What was wrong.
        reason: String,
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// The response body exceeded the configured limit.
    #[error("response body larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },

    /// A rate limiter refused to run the request now. Nothing was sent.
    #[error("rate limited ({reason:?}){}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// Why it was refused.
        reason: RateLimitReason,
        /// When a permit is expected to be available, if known.
        retry_after: Option<Duration>,
    },

    /// The layer was stopped; it accepts no new work. Nothing was sent.
    #[error("{layer} is stopped")]
    Stopped {
        /// Which layer, e.g. `"RateLimitedExecutor"`.
        layer: &'static str,
    },

    /// The host is marked unhealthy (circuit open); the request was failed
    /// fast without being sent.
    #[error("host {origin} is marked unhealthy")]
    UnhealthyHost {
        /// The host.
        origin: Origin,
    },

    /// A retry layer gave up.
    #[error("giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<Error>,
    },

    /// A layer turned an HTTP status into an error (for example a 503 whose
    /// `Retry-After` is beyond the retry layer's cap).
    #[error("HTTP status {status}{}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    HttpStatus {
        /// The status the server returned.
        status: StatusCode,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },

    /// Cancelled by the caller (a cancellation token) while in flight.
    #[error("cancelled")]
    Cancelled,

    /// A deadline that spans more than one attempt (a batch or a retry
    /// layer's total deadline) passed while the request was in flight.
    #[error("deadline exceeded")]
    DeadlineExceeded,

    /// The driver panicked while executing the request; the panic was caught.
    #[error("driver panicked: {message}")]
    Panicked {
        /// The panic payload, if it was a string.
        message: String,
    },

    /// Any other error from a driver.
    #[error("driver error: {source}")]
    Driver {
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::InvalidRequest`] with a reason and no source.
    pub fn invalid_request(reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            reason: reason.into(),
            source: None,
        }
    }

    /// An [`Error::Driver`] wrapping any error.
    pub fn driver(source: impl Into<BoxError>) -> Self {
        Error::Driver {
            source: source.into(),
        }
    }

    /// An [`Error::Panicked`] from a caught panic payload.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        Error::Panicked { message }
    }

    /// Whether trying again could plausibly succeed: connect failures other
    /// than TLS, timeouts, resets, rate limiting, and the statuses 429, 502,
    /// 503 and 504. Whether a retry is *safe* is a separate question — see
    /// [`Error::may_have_been_sent`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { kind, .. } => *kind != ConnectKind::Tls,
            Error::Timeout { .. }
            | Error::ResetBeforeResponse { .. }
            | Error::ResetMidBody { .. }
            | Error::RateLimited { .. } => true,
            Error::HttpStatus { status, .. } => matches!(status.as_u16(), 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Whether a deadline ran out ([`Error::Timeout`] or
    /// [`Error::DeadlineExceeded`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::DeadlineExceeded)
    }

    /// Whether the connection could not be established (including a
    /// connect timeout).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Timeout {
                    phase: TimeoutPhase::Connect,
                    ..
                }
        )
    }

    /// Whether the server may have received the request.
    ///
    /// `false` only when it provably did not: the request was invalid, the
    /// connection never came up (refused, DNS, TLS, connect timeout), or a
    /// layer refused it before sending (rate limited, stopped, unhealthy
    /// host, configuration). Everything else — resets, request timeouts,
    /// cancellation in flight, unknown driver errors — is treated as "maybe
    /// applied", which is what makes retrying a `POST` unsafe.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Error::InvalidRequest { .. }
            | Error::Config(_)
            | Error::Connect { .. }
            | Error::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            }
            | Error::RateLimited { .. }
            | Error::Stopped { .. }
            | Error::UnhealthyHost { .. } => false,
            Error::RetriesExhausted { .. } => true,
            _ => true,
        }
    }

    /// A short, stable name for the kind, for stats and logs
    /// (e.g. `"connect_refused"`, `"reset_mid_body"`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Config(_) => "config",
            Error::Connect { kind, .. } => match kind {
                ConnectKind::Refused => "connect_refused",
                ConnectKind::Dns => "connect_dns",
                ConnectKind::Tls => "connect_tls",
                ConnectKind::Other => "connect_other",
            },
            Error::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            } => "connect_timeout",
            Error::Timeout { .. } => "timeout",
            Error::ResetBeforeResponse { .. } => "reset_before_response",
            Error::ResetMidBody { .. } => "reset_mid_body",
            Error::InvalidResponse { .. } => "invalid_response",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Stopped { .. } => "stopped",
            Error::UnhealthyHost { .. } => "unhealthy_host",
            Error::RetriesExhausted { .. } => "retries_exhausted",
            Error::HttpStatus { .. } => "http_status",
            Error::Cancelled => "cancelled",
            Error::DeadlineExceeded => "deadline_exceeded",
            Error::Panicked { .. } => "panicked",
            Error::Driver { .. } => "driver",
        }
    }
}

/// Iterate over an error and all its sources, outermost first.
///
/// Drivers use this to classify a client error by everything it wraps
/// (an `io::Error` of kind `ConnectionReset` three levels down, say).
pub fn source_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// The first `std::io::Error` in an error's source chain, if any.
pub fn find_io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    source_chain(err).find_map(|e| e.downcast_ref::<std::io::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_safety_follows_what_was_sent() {
        let refused = Error::Connect {
            kind: ConnectKind::Refused,
            source: None,
        };
        assert!(refused.is_retryable());
        assert!(!refused.may_have_been_sent());
        assert!(refused.is_connect());

        let reset = Error::ResetBeforeResponse { source: None };
        assert!(reset.is_retryable());
        assert!(reset.may_have_been_sent());
        assert!(reset.to_string().contains("may have been applied"));

        let tls = Error::Connect {
            kind: ConnectKind::Tls,
            source: None,
        };
        assert!(!tls.is_retryable());
        assert!(!tls.may_have_been_sent());

        let ct = Error::Timeout {
            phase: TimeoutPhase::Connect,
            after: Some(Duration::from_secs(1)),
        };
        assert!(ct.is_timeout() && ct.is_connect() && !ct.may_have_been_sent());
        let rt = Error::Timeout {
            phase: TimeoutPhase::Request,
            after: None,
        };
        assert!(rt.is_timeout() && !rt.is_connect() && rt.may_have_been_sent());
    }

    #[test]
    fn statuses_retryable_only_when_transient() {
        for (code, retry) in [
            (429, true),
            (502, true),
            (503, true),
            (504, true),
            (500, false),
            (404, false),
        ] {
            let e = Error::HttpStatus {
                status: StatusCode::from_u16(code).unwrap(),
                retry_after: None,
            };
            assert_eq!(e.is_retryable(), retry, "{code}");
        }
    }

    #[test]
    fn panic_payloads_become_messages() {
        let e = Error::from_panic(Box::new("boom"));
        assert_eq!(e.to_string(), "driver panicked: boom");
        let e = Error::from_panic(Box::new(String::from("owned")));
        assert!(matches!(e, Error::Panicked { ref message } if message == "owned"));
        let e = Error::from_panic(Box::new(42u8));
        assert!(matches!(e, Error::Panicked { .. }));
    }

    #[test]
    fn source_chain_finds_nested_io_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "rst",
        ));
        let io = find_io_error(&e).expect("nested io error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(source_chain(&e).count(), 2);
    }

    #[test]
    fn config_error_converts() {
        let e: Error = ConfigError::new("workers", "must be at least 1").into();
        assert_eq!(
            e.to_string(),
            "invalid configuration: workers: must be at least 1"
        );
        assert!(!e.may_have_been_sent());
    }
}
