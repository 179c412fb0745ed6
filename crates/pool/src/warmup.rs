//! Warm-up: open connections before the first real request needs them.
//!
//! # Why real requests
//!
//! Opening a socket is not warming a route (Apache HttpClient closed the
//! idea as won't-fix for that reason; okhttp's maintainers tell users to
//! send a cheap request). A warm-up here sends `per_host` real requests per
//! host, all at once, through the inner driver, so the driver's keep-alive
//! pool really holds up to `per_host` connections per host afterwards (DNS
//! resolved, TLS handshaken). The report says how many succeeded, gives
//! every error as a typed [`Error`] (not flattened to text), and — where the
//! driver can count — how many connections were really opened.
//!
//! # What to expect
//!
//! * Over **HTTP/2** one connection serves every request to a host, so
//!   `per_host` requests open one connection; `connections_opened` shows it.
//! * Over HTTP/1.1 the requests must overlap to need separate connections:
//!   against a host that answers faster than the requests are started (a
//!   loopback server, say), some of them reuse a connection another one has
//!   just released. Point the warm-up at a path that takes the server a
//!   moment, and read `connections_opened` rather than assuming.
//! * Warm-up requests pass through whatever layers sit **inside** the pool:
//!   a rate limiter inside it spends permits on them. They also respect the
//!   pool's per-host in-flight limit (no point holding more connections than
//!   can be used at once), skip the retry loop and the health gate, and are
//!   counted in `warmup_requests`, not in the traffic counters.
//! * Any response counts as a success, whatever its status: the connection
//!   is up. The whole warm-up is bounded by [`Warmup::timeout`]; requests
//!   still running then fail with [`Error::DeadlineExceeded`].

use std::time::Duration;

use httpclient_core::http::Method;
use httpclient_core::{ConfigError, Error, MAX_RETRY_AFTER, Origin};

/// The most warm-up requests per host.
pub const MAX_WARMUP_PER_HOST: usize = 1_024;

/// Options of [`crate::ConnectionPool::warmup_connections_with`].
///
/// ```
/// use std::time::Duration;
/// use httpclient_pool::Warmup;
/// use httpclient_core::http::Method;
/// let w = Warmup::new(8).method(Method::GET).path("/ping").timeout(Duration::from_secs(2));
/// assert_eq!(w.per_host(), 8);
/// ```
#[derive(Debug, Clone)]
pub struct Warmup {
    per_host: usize,
    method: Method,
    path: String,
    timeout: Duration,
}

impl Warmup {
    /// `per_host` concurrent `HEAD /` requests per host, within 10 s.
    pub fn new(per_host: usize) -> Self {
        Warmup {
            per_host,
            method: Method::HEAD,
            path: "/".into(),
            timeout: Duration::from_secs(10),
        }
    }
    /// The method (default `HEAD`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    /// Path (and query) for hosts given without one (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// Bound on the whole warm-up (default 10 s; zero or more than a year
    /// is a [`ConfigError`] on use).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Requests per host.
    pub fn per_host(&self) -> usize {
        self.per_host
    }
    pub(crate) fn get_method(&self) -> &Method {
        &self.method
    }
    pub(crate) fn get_path(&self) -> &str {
        &self.path
    }
    pub(crate) fn get_timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.per_host == 0 {
            return Err(ConfigError::new("per_host", "must be at least 1"));
        }
        if self.per_host > MAX_WARMUP_PER_HOST {
            return Err(ConfigError::new(
                "per_host",
                format!("{} is more than {MAX_WARMUP_PER_HOST}", self.per_host),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        // The deadline is `Instant + timeout`: keep it far from overflow,
        // like every other duration the pool takes.
        if self.timeout > MAX_RETRY_AFTER {
            return Err(ConfigError::new("timeout", "must be at most one year"));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(
                "path",
                format!("`{}` must start with `/`", self.path),
            ));
        }
        Ok(())
    }
}

/// What warm-up did for one host.
#[derive(Debug)]
#[non_exhaustive]
pub struct HostWarmup {
    /// The host as given.
    pub host: String,
    /// Its origin, when it parsed.
    pub origin: Option<Origin>,
    /// Requests that got a response (any status).
    pub succeeded: usize,
    /// Requests that failed (or were never sent because the host did not
    /// parse).
    pub failed: usize,
    /// Every failure, typed. A host that did not parse has one
    /// [`Error::InvalidRequest`] here and `failed == per_host`.
    pub errors: Vec<Error>,
}

/// The result of a warm-up.
#[derive(Debug)]
#[non_exhaustive]
pub struct WarmupReport {
    /// One entry per host, in the order given.
    pub hosts: Vec<HostWarmup>,
    /// Connections the driver opened during the warm-up (all hosts
    /// together), or `None` when the driver cannot count.
    pub connections_opened: Option<u64>,
    /// How long it took.
    pub elapsed: Duration,
}

impl WarmupReport {
    /// Successful requests over all hosts.
    pub fn succeeded(&self) -> usize {
        self.hosts.iter().map(|h| h.succeeded).sum()
    }
    /// Failed requests over all hosts.
    pub fn failed(&self) -> usize {
        self.hosts.iter().map(|h| h.failed).sum()
    }
    /// Whether every request of every host succeeded.
    pub fn is_complete(&self) -> bool {
        self.failed() == 0
    }
}
