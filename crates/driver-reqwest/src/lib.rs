//! # httpclient-driver-reqwest
//!
//! [`ReqwestDriver`]: a batchclient [`Driver`] over
//! [reqwest](https://docs.rs/reqwest) 0.13, the client most Rust services
//! already use. It adds nothing a batch does not need and takes away what
//! would make the layers above it lie:
//!
//! * **No hidden retries.** reqwest 0.13 retries some failures by itself;
//!   the driver sets its retry policy to *never*, so the pool layer is the
//!   one retry authority and the server's request count equals attempts.
//! * **Exact error kinds.** A failure is classified by walking its whole
//!   `source()` chain ([`httpclient_core::source_chain`]): refused, DNS and
//!   TLS connect failures, connect vs request timeouts, a reset before the
//!   response head (maybe applied) vs in the middle of the body (applied),
//!   invalid HTTP. reqwest alone calls a mid-body reset a "decode error".
//! * **Bodies read inside `execute`**, bounded by a limit, so a batch that
//!   holds ten thousand responses holds no connection; opt into a stream
//!   per request with `stream_response`.
//! * **Real connection counts, when asked for.** With
//!   [`ReqwestDriverBuilder::count_connections`]`(true)` a tower layer on
//!   reqwest's connector counts every connection established, so
//!   [`Driver::connections_opened`] is exact (`Some(n)`). It is off by
//!   default — the layer costs a few allocations per request because
//!   reqwest boxes connector layers and clones the connector per request —
//!   and then, as around your own client
//!   ([`ReqwestDriver::from_client`]), the count is `None`: never a guess.
//!
//! ## Defaults
//!
//! Shared with `httpclient-driver-isahc`, so swapping drivers changes
//! nothing a caller can observe:
//!
//! | setting | default |
//! |---|---|
//! | redirects | followed, at most [`DEFAULT_MAX_REDIRECTS`] (10) hops; one more is an error |
//! | per-attempt timeout when the request sets none | [`DEFAULT_TIMEOUT`] (30 s) |
//! | connect timeout | [`DEFAULT_CONNECT_TIMEOUT`] (10 s) |
//! | buffered body limit | [`DEFAULT_MAX_BODY_BYTES`] (64 MiB) |
//! | idle connections per host | unbounded (reqwest's default) |
//! | `User-Agent` (when the request has none) | [`DEFAULT_USER_AGENT`] |
//! | retries | none |
//! | connection counting | off ([`ReqwestDriverBuilder::count_connections`]) |
//! | TLS | rustls with the aws-lc-rs provider, the platform's root store |
//! | HTTP version | HTTP/1.1; HTTP/2 with the `http2` feature (ALPN, or prior knowledge) |
//!
//! Proxies set in the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`)
//! are honoured, as with reqwest itself.
//!
//! ## Timeouts
//!
//! The precedence is core's: a request's own
//! [`timeout`](httpclient_core::RequestOptions::timeout) bounds the attempt
//! (connect, send, head and body); when it has none, the driver's default
//! applies. A timeout that expires while connecting is
//! `Timeout { phase: Connect }` (nothing sent); any other is
//! `Timeout { phase: Request }`, including one that expires in the middle
//! of a body.
//!
//! ## Example
//!
//! ```no_run
//! use httpclient_core::{Driver, DriverExt, Request};
//! use httpclient_driver_reqwest::ReqwestDriver;
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), httpclient_core::Error> {
//! let driver = ReqwestDriver::builder()
//!     .timeout(Duration::from_secs(10))
//!     .max_body_bytes(1 << 20)
//!     .count_connections(true)
//!     .build()?;
//! let resp = driver
//!     .send(Request::get("http://127.0.0.1:8080/items").timeout(Duration::from_secs(2)))
//!     .await?;
//! println!("{} in {:?}: {}", resp.status(), resp.elapsed(), resp.text()?);
//! println!("connections opened: {:?}", driver.connections_opened());
//! # Ok(()) }
//! ```
//!
//! ## Conformance
//!
//! The driver passes every check of `httpclient-conformance`
//! (`tests/conformance.rs`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod count;
mod error;
mod fast_url;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{Method, StatusCode, Uri};
use httpclient_core::{
    Driver, Error, Request, RequestBody, RequestParts, Response, ResponseStream, async_trait,
};

pub use builder::{RedirectPolicy, ReqwestDriverBuilder};
/// The reqwest this driver is built on, for [`ReqwestDriver::from_client`].
pub use reqwest;

use crate::error::{Limits, Stage, classify};

/// Redirect hops followed by default; one more is an error.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;
/// Per-attempt timeout for requests that set none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read into memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// `User-Agent` sent when a request has none.
pub const DEFAULT_USER_AGENT: &str =
    concat!("httpclient-driver-reqwest/", env!("CARGO_PKG_VERSION"));

/// Largest buffer reserved up front from a `Content-Length`; bigger bodies
/// grow as they arrive, so a lying header cannot make us allocate.
const MAX_PREALLOC: u64 = 16 * 1024 * 1024;

/// What the driver does per request, on top of its client.
#[derive(Debug)]
struct Settings {
    /// Default per-attempt timeout; `None` leaves the client's own.
    timeout: Option<Duration>,
    /// The client's connect timeout, when we built the client (for
    /// `Timeout { after }`).
    connect_timeout: Option<Duration>,
    /// Buffered body limit.
    max_body_bytes: Option<u64>,
    /// Connections established, when we built the client.
    connections: Option<Arc<AtomicU64>>,
}

/// A [`Driver`] over a `reqwest::Client`. Cheap to clone: clones share the
/// client, its connection pool and its connection counter.
#[derive(Clone)]
pub struct ReqwestDriver {
    client: reqwest::Client,
    settings: Arc<Settings>,
}

impl fmt::Debug for ReqwestDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestDriver")
            .field("timeout", &self.settings.timeout)
            .field("max_body_bytes", &self.settings.max_body_bytes)
            .field("connections_opened", &self.connections_opened())
            .finish_non_exhaustive()
    }
}

impl ReqwestDriver {
    /// A driver with the [defaults](crate#defaults).
    ///
    /// # Errors
    /// [`Error::Driver`] if reqwest cannot build its client (for example,
    /// the platform's TLS root store cannot be loaded). Never panics.
    pub fn new() -> Result<ReqwestDriver, Error> {
        Self::builder().build()
    }

    /// A builder for the settings a batch user needs.
    pub fn builder() -> ReqwestDriverBuilder {
        ReqwestDriverBuilder::default()
    }

    /// Wrap a `reqwest::Client` you configured yourself.
    ///
    /// The driver still reads bodies inside `execute` with the default body
    /// limit ([`DEFAULT_MAX_BODY_BYTES`]), honours per-request timeouts and
    /// classifies errors. Everything else is the client's: its timeouts (a
    /// request without its own timeout gets the client's), redirects, TLS,
    /// pool — and its **retry policy**: reqwest retries some failures by
    /// default, so build it with `.retry(reqwest::retry::never())` if a
    /// retry layer sits above this driver, or server counts will exceed
    /// attempts. Connections cannot be counted: [`Driver::connections_opened`]
    /// returns `None`. For a body limit or default timeout on your own
    /// client, use [`ReqwestDriverBuilder::build_with_client`].
    pub fn from_client(client: reqwest::Client) -> ReqwestDriver {
        Self::from_parts(
            client,
            Settings {
                timeout: None,
                connect_timeout: None,
                max_body_bytes: Some(DEFAULT_MAX_BODY_BYTES),
                connections: None,
            },
        )
    }

    fn from_parts(client: reqwest::Client, settings: Settings) -> ReqwestDriver {
        ReqwestDriver {
            client,
            settings: Arc::new(settings),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The default per-attempt timeout (`None`: the client's own).
    pub fn default_timeout(&self) -> Option<Duration> {
        self.settings.timeout
    }

    /// The buffered body limit (`None`: unlimited).
    pub fn max_body_bytes(&self) -> Option<u64> {
        self.settings.max_body_bytes
    }

    /// Everything `execute` does before its first await, in a plain
    /// function: the core `Request` is consumed here, so neither it nor its
    /// moved-from parts are kept in the (boxed, per-request) future.
    ///
    /// The size of that future matters: at 976 bytes (release, Rust 1.95)
    /// it is under the largest size glibc's per-thread cache serves
    /// (1032 bytes); at 1072 or 1616 bytes every request's box went to the
    /// arena allocator and cost ~3.5 % more CPU per request against plain
    /// reqwest at C=64, though the instruction counts hardly differed. Keep
    /// large values out of the state held across awaits.
    fn prepare(&self, request: Request) -> Result<Prepared, Error> {
        let options = request.options();
        let timeout = options.timeout.or(self.settings.timeout);
        let stream_response = options.stream_response;
        let limits = Limits {
            connect_timeout: self.settings.connect_timeout,
            timeout,
        };
        let RequestParts {
            method,
            uri,
            headers,
            body,
            ..
        } = request.into_parts();
        // Only HEAD matters after the exchange (see `has_body`); comparing
        // now lets the method move into the reqwest request.
        let is_head = method == Method::HEAD;
        let req = Self::to_reqwest(method, &uri, headers, body, timeout)?;
        Ok(Prepared {
            req,
            uri,
            is_head,
            stream_response,
            limits,
        })
    }

    /// Turn a core request's parts into a reqwest request, moving the
    /// headers and body; the URI is only read (it becomes the response's
    /// final URL when no redirect happened).
    fn to_reqwest(
        method: Method,
        uri: &Uri,
        headers: http::HeaderMap,
        body: RequestBody,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Request, Error> {
        let url = match fast_url::cached(uri) {
            Some(url) => url,
            None => {
                let url = parse_url(uri)?;
                fast_url::remember(uri, &url);
                url
            }
        };
        let explicit_empty = needs_explicit_empty_body(&method);
        let mut req = reqwest::Request::new(method, url);
        *req.headers_mut() = headers;
        *req.timeout_mut() = timeout;
        match body.into_bytes() {
            Ok(bytes) => {
                if !bytes.is_empty() || explicit_empty {
                    *req.body_mut() = Some(reqwest::Body::from(bytes));
                }
            }
            Err(body) => match body.take_stream() {
                Some(stream) => *req.body_mut() = Some(reqwest::Body::wrap_stream(stream)),
                None => {
                    return Err(Error::invalid_request(
                        "the request's streaming body was already taken (a streamed request can be sent once)",
                    ));
                }
            },
        }
        Ok(req)
    }
}

/// A request ready to send, with what `execute` needs after the exchange.
struct Prepared {
    req: reqwest::Request,
    /// The request's URI: the response's URL when no redirect happened.
    uri: Uri,
    is_head: bool,
    stream_response: bool,
    limits: Limits,
}

/// `Url::parse` of the URI's string form, the reference the cached path in
/// [`fast_url`] must agree with; a URL reqwest cannot use is an
/// `InvalidRequest`.
fn parse_url(uri: &Uri) -> Result<reqwest::Url, Error> {
    with_url_str(uri, |url| {
        reqwest::Url::parse(url).map_err(|e| Error::InvalidRequest {
            reason: format!("reqwest cannot use the URL `{url}`"),
            source: Some(Box::new(e)),
        })
    })
}

/// URLs up to this long are assembled on the stack for `Url::parse`.
const URL_STACK_BYTES: usize = 256;

/// The `(scheme, authority, path?query)` pieces of an absolute URI, which
/// concatenated with `://` after the scheme are its string form.
fn uri_pieces(uri: &Uri) -> (&str, &str, &str) {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    (scheme, authority, path)
}

/// Calls `f` with `scheme://authority/path?query` of an absolute URI.
///
/// `Uri`'s `Display` goes through the formatting machinery and costs more
/// than the rest of the conversion, and a `String` is a heap allocation per
/// request that `Url::parse` (which makes its own copy) drops at once; so
/// the pieces are copied into a stack buffer, and only a URL longer than
/// [`URL_STACK_BYTES`] goes to the heap. Safe code throughout: the buffer is
/// turned back into a `&str` with a UTF-8 check (cheap for these few bytes,
/// and it cannot fail as every piece is a `&str`).
fn with_url_str<T>(uri: &Uri, f: impl FnOnce(&str) -> Result<T, Error>) -> Result<T, Error> {
    let (scheme, authority, path) = uri_pieces(uri);
    let len = scheme.len() + 3 + authority.len() + path.len();
    if len > URL_STACK_BYTES {
        let mut s = String::with_capacity(len);
        for piece in [scheme, "://", authority, path] {
            s.push_str(piece);
        }
        return f(&s);
    }
    let mut buf = [0u8; URL_STACK_BYTES];
    let mut at = 0;
    for piece in [scheme, "://", authority, path] {
        buf[at..at + piece.len()].copy_from_slice(piece.as_bytes());
        at += piece.len();
    }
    let url = std::str::from_utf8(&buf[..at])
        .map_err(|_| Error::invalid_request("the URL is not valid UTF-8"))?;
    f(url)
}

/// Whether `url` is exactly the string form of `uri`, compared piece by
/// piece without building that string.
fn is_same_url(uri: &Uri, url: &str) -> bool {
    let (scheme, authority, path) = uri_pieces(uri);
    url.strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
        .and_then(|rest| rest.strip_prefix(authority))
        == Some(path)
}

/// The response's URL: with no redirect (the usual case) the request's own
/// URI, moved. A plain function, so `execute` only moves `uri` (a borrow
/// there would keep its slot in the future after the move).
fn final_url(uri: Uri, url: &reqwest::Url) -> Option<Uri> {
    if is_same_url(&uri, url.as_str()) {
        Some(uri)
    } else {
        url.as_str().parse::<Uri>().ok()
    }
}

/// A `POST`/`PUT`/`PATCH` with an empty body still says
/// `Content-Length: 0`; other methods send no body at all.
fn needs_explicit_empty_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Whether a response (to anything but `HEAD`) with `status` carries a
/// body at all.
fn has_body(status: StatusCode) -> bool {
    !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Reads the whole body chunk by chunk, stopping at the limit. With
/// `precheck`, a `Content-Length` over the limit fails before reading.
async fn read_body(
    resp: &mut reqwest::Response,
    limit: Option<u64>,
    precheck: bool,
    limits: Limits,
) -> Result<Bytes, Error> {
    let expected = resp.content_length().filter(|_| precheck);
    if let (Some(limit), Some(len)) = (limit, expected) {
        if len > limit {
            return Err(Error::BodyTooLarge { limit });
        }
    }
    // The common case is one chunk: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| classify(e, Stage::Body, limits))?
    {
        total += chunk.len() as u64;
        if let Some(limit) = limit {
            if total > limit {
                return Err(Error::BodyTooLarge { limit });
            }
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&chunk);
        } else if let Some(head) = first.take() {
            let want = expected.unwrap_or(total).max(total).min(MAX_PREALLOC);
            let mut buf = BytesMut::with_capacity(want as usize);
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&chunk);
            joined = Some(buf);
        } else {
            first = Some(chunk);
        }
    }
    Ok(match (joined, first) {
        (Some(buf), _) => buf.freeze(),
        (None, Some(chunk)) => chunk,
        (None, None) => Bytes::new(),
    })
}

#[async_trait]
impl Driver for ReqwestDriver {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        let started = Instant::now();
        let Prepared {
            req,
            uri,
            is_head,
            stream_response,
            limits,
        } = self.prepare(request)?;

        let mut resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| classify(e, Stage::Head, limits))?;

        let status = resp.status();
        let version = resp.version();
        let headers = std::mem::take(resp.headers_mut());
        let final_url = final_url(uri, resp.url());
        let head = move |response: Response| {
            let response = response.with_version(version).with_headers(headers);
            match final_url {
                Some(url) => response.with_url(url),
                None => response,
            }
        };

        if stream_response {
            let stream = resp
                .bytes_stream()
                .map(move |chunk| chunk.map_err(|e| classify(e, Stage::Body, limits)));
            return Ok(head(Response::new(status))
                .with_stream(ResponseStream::new(stream))
                .with_elapsed(started.elapsed()));
        }

        // Read even a body that must be empty (HEAD, 204, 304) to its end,
        // so hyper sees the exchange finished and pools the connection; but
        // never judge it by the `Content-Length`, which describes the
        // resource, not this message.
        let precheck = !is_head && has_body(status);
        let body = read_body(&mut resp, self.settings.max_body_bytes, precheck, limits).await?;
        // The `Response` is assembled only now, so the (large) value is not
        // part of the future while the body is read.
        Ok(head(Response::new(status))
            .with_body(body)
            .with_elapsed(started.elapsed()))
    }

    fn connections_opened(&self) -> Option<u64> {
        self.settings
            .connections
            .as_ref()
            .map(|c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(u: &str) -> Result<reqwest::Url, Error> {
        let uri: Uri = u.parse().unwrap();
        let req = ReqwestDriver::to_reqwest(
            Method::GET,
            &uri,
            http::HeaderMap::new(),
            RequestBody::empty(),
            None,
        )?;
        Ok(req.url().clone())
    }

    #[test]
    fn urls_are_url_parse_on_first_and_cached_use() {
        for u in [
            "http://cache.test:8080/a/../b?q=%20",
            "http://cache.test:8080/c/./d",
            "http://cache.test:8080",
            "https://[::1]:8443/v6?",
            "http://user:pw@cache.test/p",
        ] {
            let expected = reqwest::Url::parse(u).unwrap();
            for _ in 0..3 {
                let url = url_of(u).unwrap();
                assert_eq!(url.as_str(), expected.as_str(), "{u}");
                assert_eq!(format!("{url:?}"), format!("{expected:?}"), "{u}");
            }
        }
    }

    #[test]
    fn a_url_reqwest_cannot_use_is_invalid_request_every_time() {
        for u in ["http://999.1.1.1/p", "http://1.2.3.4.5:80/"] {
            assert!(reqwest::Url::parse(u).is_err(), "{u}");
            for _ in 0..3 {
                match url_of(u) {
                    Err(Error::InvalidRequest { reason, source }) => {
                        assert_eq!(reason, format!("reqwest cannot use the URL `{u}`"));
                        assert!(source.is_some());
                    }
                    other => panic!("{u}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn uri_strings_match_display() {
        let long = format!("http://h/{}", "x".repeat(URL_STACK_BYTES));
        for u in [
            "http://127.0.0.1:8080/x?y=1",
            "https://Example.com/",
            "http://h",
            "http://user@h:1/p/q?a=b&c",
            "https://[::1]:443/z",
            "http://h/caf%C3%A9?q=%20",
            &long,
        ] {
            let uri: Uri = u.parse().unwrap();
            let display = uri.to_string();
            let built = with_url_str(&uri, |s| Ok(s.to_owned())).unwrap();
            assert_eq!(built, display, "{u}");
            assert!(is_same_url(&uri, &display), "{u}");
            assert!(!is_same_url(&uri, &format!("{display}x")), "{u}");
            assert!(!is_same_url(&uri, &display[..display.len() - 1]), "{u}");
        }
        let uri: Uri = "http://a.test/p".parse().unwrap();
        for other in ["https://a.test/p", "http://b.test/p", "http:/a.test/p", ""] {
            assert!(!is_same_url(&uri, other), "{other}");
        }
    }
}
