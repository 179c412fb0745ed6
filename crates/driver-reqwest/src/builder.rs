//! [`ReqwestDriverBuilder`]: the few settings a batch user needs, validated
//! when built.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use httpclient_core::{ConfigError, Error};

use crate::count::CountConnectsLayer;
use crate::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT, ReqwestDriver, Settings,
};

/// What to do with a `3xx` response that has a `Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPolicy {
    /// Don't follow: the `3xx` is returned as the response.
    None,
    /// Follow at most this many hops; a response that would need one more
    /// is an error ([`Error::Driver`] wrapping reqwest's redirect error).
    /// `Limit(0)` makes every redirect an error; use [`RedirectPolicy::None`]
    /// to receive redirects as responses instead.
    Limit(usize),
}

impl Default for RedirectPolicy {
    /// Follow up to [`DEFAULT_MAX_REDIRECTS`] (10) hops, like browsers, curl's
    /// common setting and the isahc driver.
    fn default() -> Self {
        RedirectPolicy::Limit(DEFAULT_MAX_REDIRECTS)
    }
}

/// Builds a [`ReqwestDriver`]; start with [`ReqwestDriver::builder`].
///
/// Setters only record; [`build`](Self::build) validates everything and
/// reports the first mistake as [`Error::Config`], never a panic.
///
/// ```
/// use httpclient_driver_reqwest::{RedirectPolicy, ReqwestDriver};
/// use std::time::Duration;
///
/// let driver = ReqwestDriver::builder()
///     .connect_timeout(Duration::from_secs(3))
///     .timeout(Duration::from_secs(10))
///     .max_idle_per_host(64)
///     .max_body_bytes(4 * 1024 * 1024)
///     .user_agent("my-crawler/1.0")
///     .redirect(RedirectPolicy::None)
///     .build()?;
/// # Ok::<(), httpclient_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build()`"]
pub struct ReqwestDriverBuilder {
    // `None` = not set, so `build_with_client` can tell what the caller asked for.
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    max_idle_per_host: Option<usize>,
    max_body_bytes: Option<Option<u64>>,
    user_agent: Option<String>,
    redirect: Option<RedirectPolicy>,
    count_connections: Option<bool>,
    #[cfg(feature = "http2")]
    http2_prior_knowledge: bool,
}

impl ReqwestDriverBuilder {
    /// Limit on establishing a connection (TCP and TLS). Default
    /// [`DEFAULT_CONNECT_TIMEOUT`] (10 s). Must be greater than zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The default per-attempt timeout, applied to a request that sets none
    /// of its own ([`httpclient_core::RequestOptions::timeout`] wins when
    /// set, longer or shorter). It spans connecting, sending, the head and
    /// reading the body (or, for a streamed body, until the stream ends).
    /// Default [`DEFAULT_TIMEOUT`] (30 s). Must be greater than zero.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Idle keep-alive connections kept per host. Default: unbounded
    /// (reqwest's default), so a batch at concurrency C keeps C warm
    /// connections. `0` disables keep-alive.
    pub fn max_idle_per_host(mut self, max: usize) -> Self {
        self.max_idle_per_host = Some(max);
        self
    }

    /// Largest response body read into memory; a larger one fails with
    /// [`Error::BodyTooLarge`] as soon as the `Content-Length` or the bytes
    /// read so far exceed it, and the connection is closed rather than
    /// drained. Default [`DEFAULT_MAX_BODY_BYTES`] (64 MiB). Must be at
    /// least 1. Streamed bodies (`stream_response`) are not limited: the
    /// caller reads them at its own pace.
    pub fn max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = Some(Some(limit));
        self
    }

    /// Read buffered bodies of any size (no [`Error::BodyTooLarge`]).
    pub fn no_body_limit(mut self) -> Self {
        self.max_body_bytes = Some(None);
        self
    }

    /// The `User-Agent` header sent when a request has none. Default
    /// [`DEFAULT_USER_AGENT`]. Must be a valid header value.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The redirect policy. Default: follow up to [`DEFAULT_MAX_REDIRECTS`]
    /// (10) hops.
    pub fn redirect(mut self, policy: RedirectPolicy) -> Self {
        self.redirect = Some(policy);
        self
    }

    /// Count the connections the client establishes, so
    /// [`Driver::connections_opened`](httpclient_core::Driver::connections_opened)
    /// reports `Some(n)`: exactly the TCP (plus TLS) connections opened, which
    /// equals what the server accepted. Default: **off**, and
    /// `connections_opened()` is then `None` — never a guess.
    ///
    /// Off by default because it is not free and most runs never read it
    /// (pay only for what you use, as hyper-util's observability does). The
    /// count comes from a tower layer on reqwest's connector; reqwest boxes
    /// every connector layer and hyper-util clones the whole connector for
    /// every request (even one that reuses a pooled connection), so the
    /// layer costs about 6 000 instructions and 13 small allocations per
    /// request, some 8 % of the client's CPU per request on loopback. Turn it
    /// on when you want to see connection reuse: warm-up reports, keep-alive
    /// checks, leak hunting.
    ///
    /// ```
    /// use httpclient_core::Driver;
    /// use httpclient_driver_reqwest::ReqwestDriver;
    ///
    /// let counted = ReqwestDriver::builder().count_connections(true).build()?;
    /// assert_eq!(counted.connections_opened(), Some(0));
    /// assert_eq!(ReqwestDriver::new()?.connections_opened(), None);
    /// # Ok::<(), httpclient_core::Error>(())
    /// ```
    pub fn count_connections(mut self, on: bool) -> Self {
        self.count_connections = Some(on);
        self
    }

    /// Speak HTTP/2 without negotiation, also over plain `http://` (feature
    /// `http2`). Without it, HTTP/2 is used only when a TLS server offers it
    /// by ALPN.
    #[cfg(feature = "http2")]
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.http2_prior_knowledge = true;
        self
    }

    fn settings(&self) -> Result<(Option<Duration>, Option<u64>), ConfigError> {
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(Some(DEFAULT_MAX_BODY_BYTES));
        if max_body_bytes == Some(0) {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be at least 1 (use no_body_limit() for no limit)",
            ));
        }
        Ok((Some(timeout), max_body_bytes))
    }

    /// Validate and build the driver with its own `reqwest::Client`:
    /// reqwest's retries off, `Referer` off, rustls, and (only when asked for
    /// with [`count_connections`](Self::count_connections)) a connector layer
    /// that counts connections.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, a zero connect timeout, a body
    /// limit of 0 or an invalid user agent; [`Error::Driver`] if reqwest
    /// cannot build its client (for example, no TLS root store).
    pub fn build(self) -> Result<ReqwestDriver, Error> {
        let (timeout, max_body_bytes) = self.settings()?;
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout.is_zero() {
            return Err(ConfigError::new("connect_timeout", "must be greater than zero").into());
        }
        let user_agent = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let user_agent = http::HeaderValue::from_str(user_agent).map_err(|_| {
            ConfigError::new(
                "user_agent",
                format!("{user_agent:?} is not a valid header value"),
            )
        })?;
        let redirect = match self.redirect.unwrap_or_default() {
            RedirectPolicy::None => reqwest::redirect::Policy::none(),
            RedirectPolicy::Limit(n) => reqwest::redirect::Policy::limited(n),
        };
        let connections = self
            .count_connections
            .unwrap_or(false)
            .then(|| Arc::new(AtomicU64::new(0)));
        let mut builder = reqwest::Client::builder()
            // The pool layer is the one retry authority: server counts must
            // equal attempts.
            .retry(reqwest::retry::never())
            .connect_timeout(connect_timeout)
            .redirect(redirect)
            // curl (and so the isahc driver) sends no Referer on redirects.
            .referer(false)
            .user_agent(user_agent);
        if let Some(count) = &connections {
            builder = builder.connector_layer(CountConnectsLayer::new(Arc::clone(count)));
        }
        if let Some(max) = self.max_idle_per_host {
            builder = builder.pool_max_idle_per_host(max);
        }
        #[cfg(feature = "http2")]
        if self.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(Error::driver)?;
        Ok(ReqwestDriver::from_parts(
            client,
            Settings {
                timeout,
                connect_timeout: Some(connect_timeout),
                max_body_bytes,
                connections,
            },
        ))
    }

    /// Build around your own `reqwest::Client`, applying only what the
    /// driver itself does per request: the body limit (default 64 MiB) and,
    /// if you set it here, a default [`timeout`](Self::timeout) (set on each
    /// request, so it replaces the client's own total timeout). Left unset,
    /// the client's own timeout applies to requests that carry none.
    ///
    /// Connections cannot be counted (`connections_opened()` is `None`), and
    /// the client's retry policy, redirects and connect timeout are yours:
    /// turn reqwest's retries off (`.retry(reqwest::retry::never())`) if a
    /// retry layer sits above this driver.
    ///
    /// # Errors
    /// [`Error::Config`] if a client-level setting (connect timeout, idle
    /// pool, user agent, redirect policy, connection counting, HTTP/2) was
    /// set on this builder:
    /// it cannot be applied to a client that is already built.
    pub fn build_with_client(self, client: reqwest::Client) -> Result<ReqwestDriver, Error> {
        let client_level: [(&'static str, bool); 5] = [
            ("connect_timeout", self.connect_timeout.is_some()),
            ("count_connections", self.count_connections == Some(true)),
            ("max_idle_per_host", self.max_idle_per_host.is_some()),
            ("user_agent", self.user_agent.is_some()),
            ("redirect", self.redirect.is_some()),
        ];
        for (field, set) in client_level {
            if set {
                return Err(ConfigError::new(
                    field,
                    "is a reqwest::Client setting; set it on the client passed to build_with_client",
                )
                .into());
            }
        }
        #[cfg(feature = "http2")]
        if self.http2_prior_knowledge {
            return Err(ConfigError::new(
                "http2_prior_knowledge",
                "is a reqwest::Client setting; set it on the client passed to build_with_client",
            )
            .into());
        }
        let timeout_set = self.timeout.is_some();
        let (timeout, max_body_bytes) = self.settings()?;
        Ok(ReqwestDriver::from_parts(
            client,
            Settings {
                timeout: if timeout_set { timeout } else { None },
                connect_timeout: None,
                max_body_bytes,
                connections: None,
            },
        ))
    }
}
