//! [`IsahcDriver`]: core's [`Driver`] over an isahc `HttpClient`.
//!
//! One `execute` is one attempt: the driver never retries (the pool layer
//! is the one retry authority), follows redirects itself (so the policy is
//! the documented one, the attempt's timeout spans every hop, and redirect
//! bodies are drained for connection reuse), and reads the body before
//! returning unless the request asked for a stream.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use httpclient_core::{Driver, Error, Request, RequestParts, Response, TimeoutPhase};
use isahc::config::{Configurable, ExpectContinue, RedirectPolicy as CurlRedirects};
use isahc::{AsyncBody, HttpClient};

use crate::body::{self, HopBody};
use crate::builder::{DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, IsahcDriverBuilder, RedirectPolicy};
use crate::classify::{Limits, Phase, classify};

/// curl counts timeouts in whole milliseconds, and 0 ms means "no timeout".
/// Round up, and add a millisecond so curl, which starts its clock a little
/// after us, never fires before the caller's limit has passed.
fn curl_timeout(remaining: Duration) -> Duration {
    let ms = remaining.as_nanos().div_ceil(1_000_000) + 1;
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A redirect body larger than this is not worth draining: the connection
/// is closed instead.
const MAX_DRAIN_BYTES: u64 = 64 * 1024;

/// Per-request settings the driver applies itself.
#[derive(Debug, Clone)]
pub(crate) struct DriverConfig {
    pub(crate) timeout: Duration,
    /// Known only when the driver built the client.
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) redirect: RedirectPolicy,
    /// `None`: the client's own.
    pub(crate) user_agent: Option<HeaderValue>,
}

/// The source of the [`Error::Driver`] returned when a redirect chain is
/// longer than the [`RedirectPolicy::Limit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyRedirects {
    /// The limit that was exceeded.
    pub limit: usize,
    /// The redirect that would have been one too many.
    pub location: Uri,
}

impl std::fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many redirects: more than {} (next: {})",
            self.limit, self.location
        )
    }
}

impl std::error::Error for TooManyRedirects {}

/// A [`Driver`] over isahc (libcurl).
///
/// Cheap to share: wrap it in an `Arc` (every layer accepts `Arc<D>`).
/// Build it with [`IsahcDriver::new`], [`IsahcDriver::builder`] or
/// [`IsahcDriver::from_client`]; see the crate docs for what it guarantees.
pub struct IsahcDriver {
    client: HttpClient,
    config: DriverConfig,
}

impl std::fmt::Debug for IsahcDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsahcDriver")
            .field("timeout", &self.config.timeout)
            .field("connect_timeout", &self.config.connect_timeout)
            .field("max_body_bytes", &self.config.max_body_bytes)
            .field("redirect", &self.config.redirect)
            .finish_non_exhaustive()
    }
}

impl IsahcDriver {
    /// A driver with the defaults (see [`IsahcDriverBuilder::new`]).
    ///
    /// # Errors
    /// [`Error::Driver`] when curl cannot start its agent thread.
    pub fn new() -> Result<IsahcDriver, Error> {
        IsahcDriverBuilder::new().build()
    }

    /// Configure a driver.
    pub fn builder() -> IsahcDriverBuilder {
        IsahcDriverBuilder::new()
    }

    /// A driver over your own client (TLS settings, proxies, DNS overrides,
    /// connection limits), with the driver's default per-request settings:
    /// timeout 30 s (set per request, so it takes precedence over a timeout
    /// configured on the client: the driver never runs a request without
    /// one), body limit 64 MiB, up to 10 redirects followed by the driver
    /// (the client's own redirect policy is overridden per request), and
    /// the client's own `User-Agent`. To change those, use
    /// [`IsahcDriverBuilder::build_with_client`].
    pub fn from_client(client: HttpClient) -> IsahcDriver {
        IsahcDriver::with_config(
            client,
            DriverConfig {
                timeout: DEFAULT_TIMEOUT,
                connect_timeout: None,
                max_body_bytes: Some(DEFAULT_MAX_BODY_BYTES),
                redirect: RedirectPolicy::default(),
                user_agent: None,
            },
        )
    }

    pub(crate) fn with_config(client: HttpClient, config: DriverConfig) -> IsahcDriver {
        IsahcDriver { client, config }
    }

    /// The underlying client.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The per-attempt timeout applied to requests that carry none.
    pub fn default_timeout(&self) -> Duration {
        self.config.timeout
    }

    /// The buffered body limit in bytes (`None`: unlimited).
    pub fn max_body_bytes(&self) -> Option<u64> {
        self.config.max_body_bytes
    }

    /// The redirect policy.
    pub fn redirect_policy(&self) -> RedirectPolicy {
        self.config.redirect
    }

    async fn run(&self, request: Request) -> Result<Response, Error> {
        let started = Instant::now();
        let limit = request.options().timeout.unwrap_or(self.config.timeout);
        let deadline = started.checked_add(limit);
        let limits = Limits {
            request: Some(limit),
            connect: self.config.connect_timeout,
        };
        let stream_response = request.options().stream_response;
        let mut hop = Hop::first(request)?;
        let mut redirects = 0usize;
        loop {
            let remaining = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => limit,
            };
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    phase: TimeoutPhase::Request,
                    after: Some(limit),
                });
            }
            // Keep the headers only while another hop may need them.
            let keep = match self.config.redirect {
                RedirectPolicy::None => false,
                RedirectPolicy::Limit(max) => redirects < max,
            };
            let isahc_request =
                hop.build_isahc(remaining, self.config.user_agent.as_ref(), keep)?;
            let response = self
                .client
                .send_async(isahc_request)
                .await
                .map_err(|e| classify(e, Phase::Head, limits))?;

            match self.next_hop(&hop, &response, redirects)? {
                Some(next) => {
                    body::drain(response.into_body(), MAX_DRAIN_BYTES).await;
                    hop = next;
                    redirects += 1;
                    continue;
                }
                None => {
                    return self
                        .finish(hop, response, started, stream_response, limits)
                        .await;
                }
            }
        }
    }

    async fn finish(
        &self,
        hop: Hop,
        response: http::Response<AsyncBody>,
        started: Instant,
        stream_response: bool,
        limits: Limits,
    ) -> Result<Response, Error> {
        let (parts, body) = response.into_parts();
        // A `Content-Length` on a response that has no body (to a HEAD, or
        // a 204/304) describes the resource, not bytes we will read.
        let has_body = hop.method != Method::HEAD
            && !parts.status.is_informational()
            && parts.status != StatusCode::NO_CONTENT
            && parts.status != StatusCode::NOT_MODIFIED;
        let announced = content_length(&parts.headers).filter(|_| has_body);
        let head = Response::new(parts.status)
            .with_version(parts.version)
            .with_url(hop.uri);
        if stream_response {
            return Ok(head
                .with_headers(parts.headers)
                .with_stream(body::response_stream(body, limits))
                .with_elapsed(started.elapsed()));
        }
        let bytes =
            body::read_to_limit(body, announced, self.config.max_body_bytes, limits).await?;
        Ok(head
            .with_headers(parts.headers)
            .with_body(bytes)
            .with_elapsed(started.elapsed()))
    }

    /// The next request if `response` is a redirect the policy follows.
    fn next_hop(
        &self,
        hop: &Hop,
        response: &http::Response<AsyncBody>,
        redirects: usize,
    ) -> Result<Option<Hop>, Error> {
        let status = response.status();
        let max = match self.config.redirect {
            RedirectPolicy::None => return Ok(None),
            RedirectPolicy::Limit(max) => max,
        };
        if !is_redirect(status) {
            return Ok(None);
        }
        let Some(location) = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| resolve(&hop.uri, v))
        else {
            // No usable Location: the 3xx is the answer.
            return Ok(None);
        };
        let keeps_body = matches!(
            status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        if keeps_body && !hop.body.is_replayable() {
            // A one-shot body cannot be sent again; hand back the 307/308.
            return Ok(None);
        }
        if redirects >= max {
            return Err(Error::driver(TooManyRedirects {
                limit: max,
                location,
            }));
        }
        let mut headers = hop.headers.clone();
        let (method, body) = if keeps_body {
            (
                hop.method.clone(),
                hop.body.replay().unwrap_or(HopBody::Empty),
            )
        } else {
            // 301/302/303: the next request is a GET (HEAD stays HEAD)
            // without the body, as browsers, curl and reqwest do.
            for h in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::TRANSFER_ENCODING,
            ] {
                headers.remove(h);
            }
            let method = if hop.method == Method::HEAD {
                Method::HEAD
            } else {
                Method::GET
            };
            (method, HopBody::Empty)
        };
        if !same_origin(&hop.uri, &location) {
            for h in [
                header::AUTHORIZATION,
                header::COOKIE,
                header::PROXY_AUTHORIZATION,
                header::WWW_AUTHENTICATE,
            ] {
                headers.remove(h);
            }
        }
        Ok(Some(Hop {
            method,
            uri: location,
            headers,
            body,
        }))
    }
}

#[async_trait]
impl Driver for IsahcDriver {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        self.run(request).await
    }

    /// Always `None`: isahc offers no hook on connection set-up (no
    /// connector, no socket callback, no `CURLINFO_NUM_CONNECTS`), and this
    /// driver never reports a guess.
    fn connections_opened(&self) -> Option<u64> {
        None
    }
}

/// One request on the way: the original, or a redirect's follow-up.
struct Hop {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: HopBody,
}

impl Hop {
    fn first(request: Request) -> Result<Hop, Error> {
        // Only a request that may be applied twice lets curl rewind (and so
        // silently re-send) its body; see `body`.
        let rewindable = request.is_retry_safe();
        // Moved, not cloned: cloning a `Bytes` body or the `Uri` can allocate.
        let RequestParts {
            method,
            uri,
            headers,
            body,
            ..
        } = request.into_parts();
        let body = match body.into_bytes() {
            Ok(bytes) if bytes.is_empty() => HopBody::Empty,
            Ok(bytes) => HopBody::Bytes { bytes, rewindable },
            Err(body) => match body.take_stream() {
                Some(stream) => HopBody::Stream(stream),
                None => {
                    return Err(Error::invalid_request(
                        "the streaming request body was already consumed",
                    ));
                }
            },
        };
        Ok(Hop {
            method,
            uri,
            headers,
            body,
        })
    }

    fn build_isahc(
        &mut self,
        timeout: Duration,
        user_agent: Option<&HeaderValue>,
        keep_headers: bool,
    ) -> Result<http::Request<AsyncBody>, Error> {
        let mut builder = http::Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .timeout(curl_timeout(timeout))
            .redirect_policy(CurlRedirects::None)
            .expect_continue(ExpectContinue::disabled());
        let mut headers = if keep_headers {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        if let Some(ua) = user_agent {
            headers
                .entry(header::USER_AGENT)
                .or_insert_with(|| ua.clone());
        }
        // Like hyper: a body-carrying method with an empty body still says
        // so, or some servers wait for a body or answer 411.
        if self.body.is_empty()
            && matches!(self.method, Method::POST | Method::PUT | Method::PATCH)
            && !headers.contains_key(header::CONTENT_LENGTH)
        {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        builder
            .body(self.body.take_for_isahc())
            .map_err(|e| Error::InvalidRequest {
                reason: "isahc rejected the request".into(),
                source: Some(Box::new(e)),
            })
    }
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Resolve a `Location` against the current URL; `None` when it is not
/// a valid http(s) URL.
fn resolve(base: &Uri, location: &HeaderValue) -> Option<Uri> {
    let location = std::str::from_utf8(location.as_bytes()).ok()?;
    let base = url::Url::parse(&base.to_string()).ok()?;
    let next = base.join(location).ok()?;
    if !matches!(next.scheme(), "http" | "https") {
        return None;
    }
    next.as_str().parse().ok()
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    fn port(u: &Uri) -> Option<u16> {
        u.port_u16().or(match u.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }
    a.scheme() == b.scheme() && a.host() == b.host() && port(a) == port(b)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_current_url() {
        let base: Uri = "http://127.0.0.1:8080/a/b?x=1".parse().unwrap();
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(resolve(&base, &v("/c")).unwrap(), "http://127.0.0.1:8080/c");
        assert_eq!(
            resolve(&base, &v("d?y=2")).unwrap(),
            "http://127.0.0.1:8080/a/d?y=2"
        );
        assert_eq!(
            resolve(&base, &v("https://other.example/z")).unwrap(),
            "https://other.example/z"
        );
        assert!(resolve(&base, &v("ftp://other.example/z")).is_none());
        assert!(resolve(&base, &v("http://[broken")).is_none());
    }

    #[test]
    fn curl_timeouts_round_up_and_are_never_zero() {
        assert_eq!(curl_timeout(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            curl_timeout(Duration::from_nanos(1)),
            Duration::from_millis(2)
        );
        assert_eq!(
            curl_timeout(Duration::from_micros(399_600)),
            Duration::from_millis(401)
        );
        assert_eq!(
            curl_timeout(Duration::from_secs(30)),
            Duration::from_millis(30_001)
        );
        assert_eq!(curl_timeout(Duration::MAX), Duration::from_millis(u64::MAX));
    }

    #[test]
    fn origins_compare_with_default_ports() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(&u("http://h/a"), &u("http://h:80/b")));
        assert!(!same_origin(&u("http://h/a"), &u("https://h/a")));
        assert!(!same_origin(&u("http://h:1/a"), &u("http://h:2/a")));
        assert!(!same_origin(&u("http://h/a"), &u("http://g/a")));
    }
}
