//! Turning isahc / libcurl failures into core's [`Error`] kinds.
//!
//! isahc's own [`isahc::error::ErrorKind`] is too coarse for a retry layer:
//! it files a TLS handshake failure under `ConnectionFailed`, and a server
//! that closed the connection without answering under `ProtocolViolation`.
//! The precise answer is the libcurl result code, which isahc keeps as the
//! error's source, so we walk the whole [`source_chain`] looking for a
//! [`curl::Error`] first, then for a `std::io::Error`, and only then fall
//! back to isahc's kind.
//!
//! Whether a failure happened before or after the response head arrived
//! ([`Phase`]) is known to the caller, not to curl, and decides between
//! [`Error::ResetBeforeResponse`] and [`Error::ResetMidBody`].

use std::io;
use std::time::Duration;

use httpclient_core::{ConnectKind, Error, TimeoutPhase, source_chain};
use isahc::error::ErrorKind;

use crate::body::RequestBodyError;

/// Where in the exchange a failure surfaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before a response head arrived: connecting, sending, waiting.
    Head,
    /// While reading the body of a response whose head arrived.
    Body,
}

/// The limits in force for the attempt that failed, for
/// [`Error::Timeout::after`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// The per-attempt limit (the request's own, else the driver default),
    /// where known.
    pub(crate) request: Option<Duration>,
    /// The connect limit, where known.
    pub(crate) connect: Option<Duration>,
}

// libcurl result codes without an `is_*` helper in the `curl` crate (their
// numbers are part of libcurl's stable ABI, see curl/curl.h).
const CURLE_WEIRD_SERVER_REPLY: i64 = 8;
const CURLE_SSL_PINNEDPUBKEYNOTMATCH: i64 = 90;
const CURLE_SSL_INVALIDCERTSTATUS: i64 = 91;
const CURLE_SSL_CLIENTCERT: i64 = 98;
const CURLE_UNRECOVERABLE_POLL: i64 = 99;

/// Classify an isahc error raised at `phase`.
pub(crate) fn classify(err: isahc::Error, phase: Phase, limits: Limits) -> Error {
    // A failure of the caller's own streaming request body: report the
    // caller's error, not curl's "aborted by callback".
    if find::<RequestBodyError>(&err).is_some() {
        return Error::driver(err);
    }
    if let Some(kind) = find::<curl::Error>(&err).map(|c| from_curl(c, phase)) {
        return kind.into_error(err, limits);
    }
    if let Some(io) = httpclient_core::find_io_error(&err) {
        if let Some(kind) = from_io(io.kind(), phase) {
            return kind.into_error(err, limits);
        }
    }
    from_isahc_kind(err.kind(), phase).into_error(err, limits)
}

/// Classify an `io::Error` from reading a response body. isahc's body
/// reader wraps the transfer's `isahc::Error` (and through it the curl
/// error) in the `io::Error`; a bare one means the transfer ended without a
/// result (for example the agent stopped).
pub(crate) fn classify_body_io(err: io::Error, limits: Limits) -> Error {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<isahc::Error>())
    {
        let inner = err
            .into_inner()
            .and_then(|b| b.downcast::<isahc::Error>().ok())
            .map(|b| *b);
        if let Some(isahc_err) = inner {
            return classify(isahc_err, Phase::Body, limits);
        }
        return Error::ResetMidBody { source: None };
    }
    match from_io(err.kind(), Phase::Body) {
        Some(kind) => kind.into_error(err, limits),
        None => Error::ResetMidBody {
            source: Some(Box::new(err)),
        },
    }
}

/// The kind decided, before the source is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect(ConnectKind),
    Timeout(TimeoutPhase),
    ResetBefore,
    ResetMidBody,
    InvalidResponse(&'static str),
    InvalidRequest(&'static str),
    Driver,
}

impl Kind {
    fn reset(phase: Phase) -> Kind {
        match phase {
            Phase::Head => Kind::ResetBefore,
            Phase::Body => Kind::ResetMidBody,
        }
    }

    fn into_error<E>(self, source: E, limits: Limits) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let source: httpclient_core::BoxError = Box::new(source);
        match self {
            Kind::Connect(kind) => Error::Connect {
                kind,
                source: Some(source),
            },
            Kind::Timeout(phase) => Error::Timeout {
                phase,
                after: match phase {
                    // Whichever of the two limits is shorter ran out first.
                    TimeoutPhase::Connect => match (limits.connect, limits.request) {
                        (Some(c), Some(r)) => Some(c.min(r)),
                        (c, r) => c.or(r),
                    },
                    _ => limits.request,
                },
            },
            Kind::ResetBefore => Error::ResetBeforeResponse {
                source: Some(source),
            },
            Kind::ResetMidBody => Error::ResetMidBody {
                source: Some(source),
            },
            Kind::InvalidResponse(reason) => Error::InvalidResponse {
                reason: reason.to_string(),
                source: Some(source),
            },
            Kind::InvalidRequest(reason) => Error::InvalidRequest {
                reason: reason.to_string(),
                source: Some(source),
            },
            Kind::Driver => Error::Driver { source },
        }
    }
}

/// The first `T` in an error's source chain, also looking inside
/// `io::Error`s: their `source()` skips the error they wrap, and isahc wraps
/// errors in `io::Error` on the way through its body pipes.
fn find<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    source_chain(err).find_map(|e| {
        e.downcast_ref::<T>().or_else(|| {
            let inner = e.downcast_ref::<io::Error>()?.get_ref()?;
            find::<T>(inner)
        })
    })
}

fn from_curl(err: &curl::Error, phase: Phase) -> Kind {
    let code = i64::from(err.code());
    if err.is_couldnt_connect() {
        // libcurl files "refused" and "unreachable" under one code and
        // isahc does not expose CURLINFO_OS_ERRNO; on a reachable host
        // (the common case, and loopback) it is a refusal.
        Kind::Connect(ConnectKind::Refused)
    } else if err.is_couldnt_resolve_host() || err.is_couldnt_resolve_proxy() {
        Kind::Connect(ConnectKind::Dns)
    } else if err.is_ssl_connect_error()
        || err.is_peer_failed_verification()
        || err.is_ssl_cacert()
        || err.is_ssl_certproblem()
        || err.is_ssl_cipher()
        || err.is_ssl_issuer_error()
        || err.is_ssl_cacert_badfile()
        || err.is_ssl_crl_badfile()
        || err.is_ssl_engine_notfound()
        || err.is_ssl_engine_setfailed()
        || err.is_ssl_engine_initfailed()
        || err.is_use_ssl_failed()
        || code == CURLE_SSL_PINNEDPUBKEYNOTMATCH
        || code == CURLE_SSL_INVALIDCERTSTATUS
        || code == CURLE_SSL_CLIENTCERT
    {
        Kind::Connect(ConnectKind::Tls)
    } else if err.is_operation_timedout() {
        Kind::Timeout(timeout_phase(err))
    } else if err.is_got_nothing() {
        // "Empty reply from server": the connection closed after the
        // request went out and before a single response byte.
        Kind::ResetBefore
    } else if err.is_send_fail_rewind() {
        // The connection died before any response byte and curl wanted to
        // re-send a body we deliberately made non-rewindable (see
        // `body::isahc_body`), so nothing was sent twice.
        Kind::ResetBefore
    } else if err.is_recv_error()
        || err.is_send_error()
        || err.is_partial_file()
        || err.is_chunk_failed()
        || err.is_again()
        || err.is_ssl_shutdown_failed()
        || code == CURLE_UNRECOVERABLE_POLL
    {
        Kind::reset(phase)
    } else if err.is_http2_stream_error() || err.is_http2_error() {
        match phase {
            Phase::Head => Kind::InvalidResponse("HTTP/2 protocol error"),
            Phase::Body => Kind::ResetMidBody,
        }
    } else if err.is_unsupported_protocol() || code == CURLE_WEIRD_SERVER_REPLY {
        // Our URLs are validated http/https, so "unsupported protocol"
        // here is curl refusing a response that is not HTTP/1.x (it reports
        // an HTTP/0.9-looking reply this way).
        Kind::InvalidResponse("the server's reply is not valid HTTP")
    } else if err.is_bad_content_encoding() || err.is_conv_failed() {
        Kind::InvalidResponse("the response body's content encoding is invalid")
    } else if err.is_url_malformed() {
        Kind::InvalidRequest("libcurl rejected the URL")
    } else if err.is_too_many_redirects() {
        Kind::InvalidResponse("too many redirects")
    } else {
        // Proxy failures, out of memory, API misuse, …: nothing a caller
        // can act on by kind; the source says what happened.
        Kind::Driver
    }
}

/// libcurl words its timeout message by the state the transfer was in:
/// "Resolving timed out …" / "Connection timed out …" while connecting (so
/// nothing was sent), "Operation timed out …" afterwards. A connect attempt
/// that the OS timed out says "Failed to connect …".
fn timeout_phase(err: &curl::Error) -> TimeoutPhase {
    match err.extra_description() {
        Some(msg)
            if msg.starts_with("Connection timed out")
                || msg.starts_with("Resolving timed out")
                || msg.starts_with("Failed to connect") =>
        {
            TimeoutPhase::Connect
        }
        _ => TimeoutPhase::Request,
    }
}

fn from_io(kind: io::ErrorKind, phase: Phase) -> Option<Kind> {
    use io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => Kind::Connect(ConnectKind::Refused),
        K::TimedOut => Kind::Timeout(TimeoutPhase::Request),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Kind::reset(phase)
        }
        _ => return None,
    })
}

fn from_isahc_kind(kind: &ErrorKind, phase: Phase) -> Kind {
    match kind {
        ErrorKind::ConnectionFailed => Kind::Connect(ConnectKind::Refused),
        ErrorKind::NameResolution => Kind::Connect(ConnectKind::Dns),
        ErrorKind::BadServerCertificate
        | ErrorKind::BadClientCertificate
        | ErrorKind::TlsEngine
        | ErrorKind::InvalidTlsConfiguration => Kind::Connect(ConnectKind::Tls),
        ErrorKind::Timeout => Kind::Timeout(TimeoutPhase::Request),
        ErrorKind::Io => Kind::reset(phase),
        ErrorKind::ProtocolViolation => Kind::InvalidResponse("HTTP protocol violation"),
        ErrorKind::InvalidContentEncoding => {
            Kind::InvalidResponse("the response body's content encoding is invalid")
        }
        ErrorKind::TooManyRedirects => Kind::InvalidResponse("too many redirects"),
        ErrorKind::InvalidRequest => Kind::InvalidRequest("isahc rejected the request"),
        _ => Kind::Driver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_depend_on_the_phase() {
        assert_eq!(
            from_io(io::ErrorKind::ConnectionReset, Phase::Head),
            Some(Kind::ResetBefore)
        );
        assert_eq!(
            from_io(io::ErrorKind::ConnectionReset, Phase::Body),
            Some(Kind::ResetMidBody)
        );
        assert_eq!(
            from_io(io::ErrorKind::TimedOut, Phase::Body),
            Some(Kind::Timeout(TimeoutPhase::Request))
        );
        assert_eq!(from_io(io::ErrorKind::InvalidData, Phase::Body), None);
    }

    #[test]
    fn isahc_kinds_fall_back_sensibly() {
        assert_eq!(
            from_isahc_kind(&ErrorKind::NameResolution, Phase::Head),
            Kind::Connect(ConnectKind::Dns)
        );
        assert_eq!(
            from_isahc_kind(&ErrorKind::BadServerCertificate, Phase::Head),
            Kind::Connect(ConnectKind::Tls)
        );
        assert_eq!(
            from_isahc_kind(&ErrorKind::Io, Phase::Body),
            Kind::ResetMidBody
        );
        assert_eq!(
            from_isahc_kind(&ErrorKind::Unknown, Phase::Head),
            Kind::Driver
        );
    }

    #[test]
    fn a_bare_body_io_error_is_a_mid_body_reset() {
        let e = classify_body_io(io::ErrorKind::ConnectionAborted.into(), Limits::default());
        assert!(matches!(e, Error::ResetMidBody { .. }), "{e:?}");
        let e = classify_body_io(
            io::Error::new(io::ErrorKind::TimedOut, "slow"),
            Limits {
                request: Some(Duration::from_secs(2)),
                connect: None,
            },
        );
        assert!(
            matches!(
                e,
                Error::Timeout {
                    phase: TimeoutPhase::Request,
                    after: Some(d)
                } if d == Duration::from_secs(2)
            ),
            "{e:?}"
        );
    }

    #[test]
    fn connect_timeouts_report_the_shorter_limit() {
        let e = Kind::Timeout(TimeoutPhase::Connect).into_error(
            io::Error::other("x"),
            Limits {
                request: Some(Duration::from_secs(30)),
                connect: Some(Duration::from_secs(5)),
            },
        );
        assert!(
            matches!(e, Error::Timeout { phase: TimeoutPhase::Connect, after: Some(d) } if d == Duration::from_secs(5)),
            "{e:?}"
        );
        assert!(!e.may_have_been_sent());
    }
}
