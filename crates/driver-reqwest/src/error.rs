//! Mapping reqwest's errors onto core's [`Error`] kinds.
//!
//! reqwest's own flags are too coarse for a retry layer: a connection reset
//! in the middle of a body is reported as a *decode* error, and "connect
//! error" covers refused, DNS and TLS alike. So the mapping walks the whole
//! `source()` chain and looks for the concrete cause — an `io::Error` kind,
//! a `hyper::Error` predicate, a `rustls::Error`, reqwest's DNS error — and
//! uses *where* the failure happened (sending and waiting for the head, or
//! reading the body) to tell "maybe applied, no answer" from "applied, answer
//! cut off".

use std::io;
use std::time::Duration;

use httpclient_core::{ConnectKind, Error, TimeoutPhase, source_chain};

/// Where in the exchange the error surfaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, writing the request, or waiting for the response head.
    Head,
    /// Reading the response body (buffered or streamed).
    Body,
}

/// The limits that applied to the attempt, for `Timeout { after }`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
}

/// Classifies a reqwest error (see the module docs).
pub(crate) fn classify(err: reqwest::Error, stage: Stage, limits: Limits) -> Error {
    if err.is_builder() {
        return Error::InvalidRequest {
            reason: format!("reqwest rejected the request: {err}"),
            source: Some(Box::new(err)),
        };
    }
    if err.is_timeout() {
        return if err.is_connect() {
            Error::Timeout {
                phase: TimeoutPhase::Connect,
                after: limits.connect_timeout,
            }
        } else {
            Error::Timeout {
                phase: TimeoutPhase::Request,
                after: limits.timeout,
            }
        };
    }
    if err.is_connect() {
        let kind = connect_kind(&err);
        return Error::Connect {
            kind,
            source: Some(Box::new(err)),
        };
    }
    if err.is_redirect() {
        // Too many redirects, or a redirect loop: the server's answer is
        // valid HTTP, just not one we follow. Not retryable.
        return Error::driver(err);
    }
    if let Some(h) = find_hyper_error(&err) {
        if h.is_parse() {
            return Error::InvalidResponse {
                reason: format!("the server sent invalid HTTP: {h}"),
                source: Some(Box::new(err)),
            };
        }
    }
    match stage {
        Stage::Head if is_reset(&err) => Error::ResetBeforeResponse {
            source: Some(Box::new(err)),
        },
        // reqwest reports every failure while reading a body — a reset, an
        // early close, a truncated chunk — as a body or decode error.
        Stage::Body if err.is_body() || err.is_decode() || is_reset(&err) => Error::ResetMidBody {
            source: Some(Box::new(err)),
        },
        _ => Error::driver(err),
    }
}

/// Refused, DNS, TLS or other, from what the connect error wraps.
fn connect_kind(err: &reqwest::Error) -> ConnectKind {
    if err.is_dns() {
        return ConnectKind::Dns;
    }
    if is_tls(err) {
        return ConnectKind::Tls;
    }
    if io_kinds(err).contains(&io::ErrorKind::ConnectionRefused) {
        ConnectKind::Refused
    } else {
        ConnectKind::Other
    }
}

/// Every cause of `err`: its `source()` chain, and inside each `io::Error`
/// the error it wraps (with that one's chain) — `io::Error::source` skips the
/// wrapped error, and connectors wrap twice (hyper-rustls puts tokio-rustls's
/// `io::Error(InvalidData, rustls::Error)` inside an `io::Error(Other, ..)`).
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut stack = vec![err];
    while let Some(e) = stack.pop() {
        for cause in source_chain(e) {
            if out.len() >= 32 {
                return out; // a pathological chain; enough to classify
            }
            out.push(cause);
            if let Some(inner) = cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                stack.push(inner);
            }
        }
    }
    out
}

/// A `rustls::Error` anywhere among the causes.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    causes(err).iter().any(|e| e.is::<rustls::Error>())
}

/// The kinds of every `io::Error` among the causes, outermost first.
fn io_kinds(err: &(dyn std::error::Error + 'static)) -> Vec<io::ErrorKind> {
    causes(err)
        .iter()
        .filter_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
        .collect()
}

fn find_hyper_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a hyper::Error> {
    source_chain(err).find_map(|e| e.downcast_ref::<hyper::Error>())
}

/// The connection ended under us: hyper saw an incomplete message or a
/// closed channel, or the OS reported a reset/abort/broken pipe/early EOF.
fn is_reset(err: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(h) = find_hyper_error(err) {
        if h.is_incomplete_message()
            || h.is_canceled()
            || h.is_closed()
            || h.is_body_write_aborted()
        {
            return true;
        }
    }
    io_kinds(err).iter().any(|k| {
        matches!(
            k,
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::General("handshake".into());
        let io = io::Error::new(io::ErrorKind::InvalidData, inner);
        assert!(is_tls(&io));
        // hyper-rustls wraps tokio-rustls's io::Error in another one.
        let twice = io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::General("x".into()),
        ));
        assert!(is_tls(&twice));
        assert_eq!(
            io_kinds(&twice),
            [io::ErrorKind::Other, io::ErrorKind::InvalidData]
        );
        let plain = io::Error::new(io::ErrorKind::InvalidData, "not tls");
        assert!(!is_tls(&plain));
    }

    #[test]
    fn io_kinds_that_mean_reset() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(is_reset(&io::Error::from(kind)), "{kind:?}");
        }
        assert!(!is_reset(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
