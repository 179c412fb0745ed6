//! [`IsahcDriverBuilder`]: the few settings a batch user needs, validated.

use std::time::Duration;

use http::HeaderValue;
use httpclient_core::{ConfigError, Error};
use isahc::HttpClient;
use isahc::config::{
    Configurable, ExpectContinue, RedirectPolicy as CurlRedirects, VersionNegotiation,
};

use crate::driver::{DriverConfig, IsahcDriver};

/// Default connect timeout: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default per-attempt timeout when a request has none: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on a response body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of redirects followed: 10 (shared with the reqwest driver).
pub const DEFAULT_MAX_REDIRECTS: usize = 10;
/// `User-Agent` sent when a request has none.
pub const DEFAULT_USER_AGENT: &str = concat!("httpclient-driver-isahc/", env!("CARGO_PKG_VERSION"));

/// What to do with a `3xx` response that has a usable `Location` (the same
/// shape as the reqwest driver's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPolicy {
    /// Don't follow: the `3xx` is returned as the response.
    None,
    /// Follow at most this many hops; a response that would need one more
    /// is an error ([`Error::Driver`] whose source is
    /// [`TooManyRedirects`](crate::TooManyRedirects)). `Limit(0)` makes every
    /// redirect an error; use [`RedirectPolicy::None`] to receive redirects
    /// as responses instead.
    Limit(usize),
}

impl Default for RedirectPolicy {
    /// Follow up to [`DEFAULT_MAX_REDIRECTS`] (10) hops.
    fn default() -> Self {
        RedirectPolicy::Limit(DEFAULT_MAX_REDIRECTS)
    }
}

/// Builds an [`IsahcDriver`]. Every setter validates at [`build`]
/// (the first mistake wins) and nothing panics.
///
/// Settings split in two: those curl applies to the whole client
/// (connect timeout, idle connections, idle timeout) and those the driver
/// applies per request (default timeout, body limit, redirects, user agent).
/// [`build_with_client`] takes your own `HttpClient` and therefore accepts
/// only the second kind.
///
/// ```
/// use std::time::Duration;
/// use httpclient_driver_isahc::IsahcDriver;
///
/// let driver = IsahcDriver::builder()
///     .connect_timeout(Duration::from_secs(2))
///     .timeout(Duration::from_secs(10))
///     .max_body_bytes(1024 * 1024)
///     .user_agent("my-crawler/1.0")
///     .build()?;
/// # Ok::<(), httpclient_core::Error>(())
/// ```
///
/// [`build`]: IsahcDriverBuilder::build
/// [`build_with_client`]: IsahcDriverBuilder::build_with_client
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct IsahcDriverBuilder {
    connect_timeout: Option<Duration>,
    max_idle_connections: Option<usize>,
    idle_timeout: Option<Duration>,
    timeout: Duration,
    max_body_bytes: Option<u64>,
    redirect: RedirectPolicy,
    user_agent: Option<HeaderValue>,
    #[cfg(feature = "http2")]
    http2_prior_knowledge: bool,
    error: Option<ConfigError>,
}

impl Default for IsahcDriverBuilder {
    fn default() -> Self {
        IsahcDriverBuilder {
            connect_timeout: None,
            max_idle_connections: None,
            idle_timeout: None,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: Some(DEFAULT_MAX_BODY_BYTES),
            redirect: RedirectPolicy::default(),
            user_agent: None,
            #[cfg(feature = "http2")]
            http2_prior_knowledge: false,
            error: None,
        }
    }
}

impl IsahcDriverBuilder {
    /// A builder with the defaults: connect timeout 10 s, timeout 30 s,
    /// body limit 64 MiB, 10 redirects, user agent [`DEFAULT_USER_AGENT`],
    /// curl's connection cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(mut self, field: &'static str, reason: &str) -> Self {
        if self.error.is_none() {
            self.error = Some(ConfigError::new(field, reason));
        }
        self
    }

    /// Limit on establishing a connection (DNS, TCP and TLS). Zero is an
    /// error. A connect that runs out is [`Error::Timeout`] with phase
    /// `Connect`: nothing was sent.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            return self.fail("connect_timeout", "must be greater than zero");
        }
        self.connect_timeout = Some(timeout);
        self
    }

    /// Per-attempt limit for requests that carry no timeout of their own
    /// (see the timeout precedence in `httpclient-core`). It covers the
    /// whole attempt: connecting, every redirect hop and reading the body.
    /// Zero is an error.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            return self.fail("timeout", "must be greater than zero");
        }
        self.timeout = timeout;
        self
    }

    /// How many idle keep-alive connections curl keeps for reuse, **across
    /// all hosts** (libcurl's `CURLMOPT_MAXCONNECTS`; curl has no per-host
    /// idle limit). `0` turns keep-alive off: every request opens and
    /// closes its own connection. Unset, curl sizes the cache to four times
    /// the number of requests in flight, which is right for batches.
    pub fn max_idle_connections(mut self, max: usize) -> Self {
        self.max_idle_connections = Some(max);
        self
    }

    /// How long an idle connection may wait in the cache before curl stops
    /// reusing it (curl's default: 118 s). Keep it below the server's own
    /// keep-alive timeout so curl rarely picks a connection the server has
    /// already closed. Zero is an error (use `max_idle_connections(0)` to
    /// turn keep-alive off).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            return self.fail("idle_timeout", "must be greater than zero");
        }
        self.idle_timeout = Some(timeout);
        self
    }

    /// Largest response body read inside `execute`, in bytes; a longer one
    /// is [`Error::BodyTooLarge`] as soon as the `Content-Length` or the
    /// bytes read so far exceed it (the connection is then closed, not
    /// drained). A body the request asked to stream is not limited (the
    /// caller bounds it). Zero is an error.
    pub fn max_body_bytes(mut self, max: u64) -> Self {
        if max == 0 {
            return self.fail(
                "max_body_bytes",
                "must be at least 1 (use no_body_limit() for no limit)",
            );
        }
        self.max_body_bytes = Some(max);
        self
    }

    /// Read buffered bodies of any size (no [`Error::BodyTooLarge`]).
    pub fn no_body_limit(mut self) -> Self {
        self.max_body_bytes = None;
        self
    }

    /// The redirect policy. Default: follow up to [`DEFAULT_MAX_REDIRECTS`]
    /// (10) hops. The driver follows redirects itself (see the crate docs).
    pub fn redirect(mut self, policy: RedirectPolicy) -> Self {
        self.redirect = policy;
        self
    }

    /// `User-Agent` sent when a request sets none (default
    /// [`DEFAULT_USER_AGENT`]). An invalid header value is an error.
    pub fn user_agent(mut self, user_agent: impl AsRef<str>) -> Self {
        match HeaderValue::from_str(user_agent.as_ref()) {
            Ok(v) => {
                self.user_agent = Some(v);
                self
            }
            Err(_) => self.fail("user_agent", "not a valid header value"),
        }
    }

    /// Speak HTTP/2 without negotiation, also over plain `http://` (feature
    /// `http2`). Without it, HTTP/2 is used only when a TLS server offers it
    /// by ALPN.
    #[cfg(feature = "http2")]
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.http2_prior_knowledge = true;
        self
    }

    fn version_negotiation(&self) -> VersionNegotiation {
        #[cfg(feature = "http2")]
        if self.http2_prior_knowledge {
            return VersionNegotiation::http2();
        }
        version_negotiation()
    }

    fn driver_config(&self) -> DriverConfig {
        DriverConfig {
            timeout: self.timeout,
            connect_timeout: Some(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
            max_body_bytes: self.max_body_bytes,
            redirect: self.redirect,
            user_agent: Some(
                self.user_agent
                    .clone()
                    .unwrap_or(HeaderValue::from_static(DEFAULT_USER_AGENT)),
            ),
        }
    }

    /// Build the driver: an isahc `HttpClient` with its own agent thread.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid setting; [`Error::Driver`]
    /// when curl cannot start its agent thread.
    pub fn build(self) -> Result<IsahcDriver, Error> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        let config = self.driver_config();
        let mut client = HttpClient::builder()
            .connect_timeout(config.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .timeout(config.timeout)
            // Redirects are followed by the driver (see `driver`), never by
            // isahc, so there is one policy and one place it is tested.
            .redirect_policy(CurlRedirects::None)
            // Bodies are bytes as sent: the same as the reqwest driver, and
            // the body limit counts what the caller receives.
            .automatic_decompression(false)
            // curl would wait up to 1 s for `100 Continue` before sending
            // a body over 1 MiB.
            .expect_continue(ExpectContinue::disabled())
            .version_negotiation(self.version_negotiation());
        if let Some(max) = self.max_idle_connections {
            client = client.connection_cache_size(max);
        }
        if let Some(ttl) = self.idle_timeout {
            client = client.connection_cache_ttl(ttl);
        }
        let client = client.build().map_err(Error::driver)?;
        Ok(IsahcDriver::with_config(client, config))
    }

    /// Build a driver over your own `HttpClient` (TLS settings, proxies,
    /// DNS overrides, …), applying this builder's per-request settings:
    /// [`timeout`](Self::timeout), [`max_body_bytes`](Self::max_body_bytes),
    /// [`redirect`](Self::redirect) and [`user_agent`](Self::user_agent)
    /// (only when set: otherwise the client's own `User-Agent` is sent).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting, or when a client-wide
    /// setting (`connect_timeout`, `max_idle_connections`, `idle_timeout`,
    /// `http2_prior_knowledge`) was given: it cannot be applied to a client that is already built,
    /// and ignoring it silently would be worse.
    pub fn build_with_client(self, client: HttpClient) -> Result<IsahcDriver, Error> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        #[cfg(feature = "http2")]
        let prior_knowledge = self.http2_prior_knowledge;
        #[cfg(not(feature = "http2"))]
        let prior_knowledge = false;
        for (set, field) in [
            (self.connect_timeout.is_some(), "connect_timeout"),
            (self.max_idle_connections.is_some(), "max_idle_connections"),
            (self.idle_timeout.is_some(), "idle_timeout"),
            (prior_knowledge, "http2_prior_knowledge"),
        ] {
            if set {
                return Err(ConfigError::new(
                    field,
                    "is a client-wide setting: configure it on the HttpClient you pass in",
                )
                .into());
            }
        }
        let mut config = self.driver_config();
        config.connect_timeout = None;
        config.user_agent = self.user_agent;
        Ok(IsahcDriver::with_config(client, config))
    }
}

/// HTTP/1.1 unless our own `http2` feature is on, even when another crate
/// in the build turned on isahc's `http2`.
fn version_negotiation() -> VersionNegotiation {
    if cfg!(feature = "http2") {
        VersionNegotiation::latest_compatible()
    } else {
        VersionNegotiation::http11()
    }
}
