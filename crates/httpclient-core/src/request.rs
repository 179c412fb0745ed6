//! `Request`: validated when built, cheap to replay.
//!
//! Every check a driver would otherwise fail on late — an unparsable URL, a
//! missing host, a scheme other than http/https, an invalid header, a zero
//! timeout — happens in [`RequestBuilder::build`], so a bad request becomes
//! an [`Error::InvalidRequest`] before any driver or layer runs. The body is
//! [`Bytes`] by default so a retry layer can replay it for free
//! ([`Request::try_clone`]); a streaming body is allowed but marks the request
//! as not replayable.
//!
//! Because building can fail, anything that takes many requests (the batch
//! layer) accepts [`IntoRequest`]: a request, a builder, a `Result`, or a URL
//! string. A build failure then lands in that input's own result slot instead
//! of aborting the whole batch.
//!
//! Building sits on every request's hot path, so it does only what
//! validation needs: the URL is parsed once, and its scheme and host are
//! checked without allocating. The [`Origin`] (an `Arc<str>` host) is made
//! the first time a layer asks for it ([`Request::origin`]) and kept, so a
//! bare driver never pays for it. A driver takes the request apart with
//! [`Request::into_parts`] and moves the URI, headers and body on instead of
//! cloning them.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Method, Uri};

use crate::{Error, Origin, Scheme};

/// A stream of body chunks for a request that cannot be buffered.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, crate::BoxError>> + Send>>;

/// A request body: bytes (replayable, the default) or a one-shot stream.
pub struct RequestBody {
    inner: BodyInner,
}

enum BodyInner {
    Bytes(Bytes),
    // Mutex only makes the body `Sync`; it is taken exactly once.
    Stream(Mutex<Option<BodyStream>>),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> Self {
        RequestBody {
            inner: BodyInner::Bytes(Bytes::new()),
        }
    }

    /// A one-shot streaming body. A request with it is not replayable: retry
    /// layers will not retry it.
    pub fn from_stream(stream: BodyStream) -> Self {
        RequestBody {
            inner: BodyInner::Stream(Mutex::new(Some(stream))),
        }
    }

    /// The bytes, if this is a buffered body.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.inner {
            BodyInner::Bytes(b) => Some(b),
            BodyInner::Stream(_) => None,
        }
    }

    /// The bytes of a buffered body, moved out (no reference-count or
    /// promotion cost, unlike cloning [`as_bytes`](Self::as_bytes)); a
    /// streaming body is handed back unchanged, for
    /// [`take_stream`](Self::take_stream).
    ///
    /// ```
    /// use httpclient_core::RequestBody;
    /// let body = RequestBody::from(String::from("abc"));
    /// assert_eq!(body.into_bytes().unwrap(), "abc");
    /// ```
    ///
    /// # Errors
    /// The body itself when it is a stream.
    pub fn into_bytes(self) -> Result<Bytes, RequestBody> {
        match self.inner {
            BodyInner::Bytes(b) => Ok(b),
            inner @ BodyInner::Stream(_) => Err(RequestBody { inner }),
        }
    }

    /// Whether the body can be sent again (it is buffered).
    pub fn is_replayable(&self) -> bool {
        matches!(self.inner, BodyInner::Bytes(_))
    }

    /// Take the stream out of a streaming body (once); `None` for a
    /// buffered body or a stream already taken.
    pub fn take_stream(&self) -> Option<BodyStream> {
        match &self.inner {
            BodyInner::Bytes(_) => None,
            BodyInner::Stream(m) => m.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }

    fn try_clone(&self) -> Option<RequestBody> {
        self.as_bytes().map(|b| RequestBody {
            inner: BodyInner::Bytes(b.clone()),
        })
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            BodyInner::Bytes(b) => write!(f, "RequestBody({} bytes)", b.len()),
            BodyInner::Stream(_) => f.write_str("RequestBody(stream)"),
        }
    }
}

impl<T: Into<Bytes>> From<T> for RequestBody {
    fn from(value: T) -> Self {
        RequestBody {
            inner: BodyInner::Bytes(value.into()),
        }
    }
}

/// Per-request settings that travel with the request through every layer.
///
/// Timeout precedence (the same everywhere): `timeout` here bounds **one
/// attempt**; when it is `None` the driver's default applies. A retry layer's
/// total deadline spans all attempts, and a batch deadline spans the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Per-attempt timeout; `None` = the driver's default.
    pub timeout: Option<Duration>,
    /// Declares a non-idempotent request (e.g. a `POST` with an idempotency
    /// key) safe to retry even when it may have reached the server.
    pub retry_safe: bool,
    /// A free-form label for logs, stats and tests.
    pub tag: Option<Arc<str>>,
    /// Return the body as a stream instead of reading it inside `execute`.
    /// Off by default, so connections go back to the pool as soon as
    /// `execute` returns.
    pub stream_response: bool,
}

/// An HTTP request, validated, with its [`Origin`] worked out once (when
/// first asked for).
pub struct Request {
    method: Method,
    uri: Uri,
    /// Checked when built, so the lazy origin cannot fail.
    scheme: Scheme,
    origin: OnceLock<Origin>,
    headers: HeaderMap,
    body: RequestBody,
    options: RequestOptions,
    extensions: Extensions,
}

impl Request {
    /// Start building a request with any method.
    pub fn builder(method: Method, url: impl AsRef<str>) -> RequestBuilder {
        RequestBuilder::new(method, url.as_ref())
    }

    /// Start building a `GET`.
    ///
    /// ```
    /// use httpclient_core::Request;
    /// use std::time::Duration;
    /// let req = Request::get("http://127.0.0.1:8080/items?page=2")
    ///     .header("accept", "application/json")
    ///     .timeout(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(req.origin().port(), 8080);
    /// assert!(Request::get("not a url").build().is_err());
    /// ```
    pub fn get(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::GET, url)
    }
    /// Start building a `HEAD`.
    pub fn head(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::HEAD, url)
    }
    /// Start building a `POST`.
    pub fn post(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::POST, url)
    }
    /// Start building a `PUT`.
    pub fn put(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::PUT, url)
    }
    /// Start building a `DELETE`.
    pub fn delete(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::DELETE, url)
    }
    /// Start building a `PATCH`.
    pub fn patch(url: impl AsRef<str>) -> RequestBuilder {
        Self::builder(Method::PATCH, url)
    }

    /// Build a request from the `http` crate's `Request<B>`, validating it
    /// the same way as the builder.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a relative or non-http(s) URI.
    pub fn from_http<B: Into<Bytes>>(req: http::Request<B>) -> Result<Request, Error> {
        let (parts, body) = req.into_parts();
        let (scheme, _) = Origin::check(&parts.uri)?;
        Ok(Request {
            method: parts.method,
            uri: parts.uri,
            scheme,
            origin: OnceLock::new(),
            headers: parts.headers,
            body: RequestBody::from(body.into()),
            options: RequestOptions::default(),
            extensions: parts.extensions,
        })
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The absolute URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
    /// Scheme + host + port: the key for per-host limits and health.
    ///
    /// Made on the first call and kept (the request was validated when it
    /// was built, so this cannot fail); copies made by
    /// [`try_clone`](Self::try_clone) afterwards share it.
    pub fn origin(&self) -> &Origin {
        self.origin.get_or_init(|| {
            // `build` checked that the URI has a non-empty host.
            let host = self.uri.host().unwrap_or_default();
            Origin::from_checked(&self.uri, self.scheme, host)
        })
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The headers, mutably (values set here are already valid by type).
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }
    /// The body.
    pub fn body(&self) -> &RequestBody {
        &self.body
    }
    /// The per-request options.
    pub fn options(&self) -> &RequestOptions {
        &self.options
    }
    /// The per-request options, mutably (layers fill in defaults).
    pub fn options_mut(&mut self) -> &mut RequestOptions {
        &mut self.options
    }
    /// Typed values layers attach to the request.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    /// Typed values layers attach to the request, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Whether the method is idempotent per RFC 9110 (GET, HEAD, OPTIONS,
    /// PUT, DELETE, TRACE), so repeating it is safe.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        )
    }

    /// Whether a retry layer may resend this request after a failure that
    /// may have reached the server: an idempotent method or
    /// [`RequestOptions::retry_safe`], and a replayable body.
    pub fn is_retry_safe(&self) -> bool {
        (self.is_idempotent() || self.options.retry_safe) && self.body.is_replayable()
    }

    /// A copy for another attempt; `None` when the body is a one-shot stream.
    pub fn try_clone(&self) -> Option<Request> {
        Some(Request {
            method: self.method.clone(),
            uri: self.uri.clone(),
            scheme: self.scheme,
            origin: self.origin.clone(),
            headers: self.headers.clone(),
            body: self.body.try_clone()?,
            options: self.options.clone(),
            extensions: self.extensions.clone(),
        })
    }

    /// Replace the body (e.g. with a stream).
    pub fn set_body(&mut self, body: RequestBody) {
        self.body = body;
    }

    /// Take the request apart, moving every piece out: what a driver does
    /// to turn it into its own client's request without cloning the URI,
    /// the headers or the body (cloning a [`Bytes`] that came from a `Vec`
    /// or `String` allocates).
    ///
    /// ```
    /// use httpclient_core::Request;
    /// let req = Request::post("http://127.0.0.1:8080/submit?x=1")
    ///     .header("x-id", "7")
    ///     .body(String::from("payload"))
    ///     .build()
    ///     .unwrap();
    /// let parts = req.into_parts();
    /// assert_eq!(parts.method, "POST");
    /// assert_eq!(parts.uri.path(), "/submit");
    /// assert_eq!(parts.headers["x-id"], "7");
    /// assert_eq!(parts.body.into_bytes().unwrap(), "payload");
    /// ```
    pub fn into_parts(self) -> RequestParts {
        RequestParts {
            method: self.method,
            uri: self.uri,
            headers: self.headers,
            body: self.body,
            options: self.options,
            extensions: self.extensions,
        }
    }
}

/// A [`Request`] taken apart by [`Request::into_parts`]: owned pieces a
/// driver moves into its client's request. The URI is the validated,
/// absolute http(s) one the request was built with; the [`Origin`] is not
/// included (it is derived from the URI: [`Origin::from_uri`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestParts {
    /// The method.
    pub method: Method,
    /// The absolute `http`/`https` URI.
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body: bytes ([`RequestBody::into_bytes`]) or a one-shot stream
    /// ([`RequestBody::take_stream`]).
    pub body: RequestBody,
    /// The per-request options (timeout, streaming, ...).
    pub options: RequestOptions,
    /// Typed values layers attached.
    pub extensions: Extensions,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("headers", &self.headers.len())
            .field("body", &self.body)
            .field("options", &self.options)
            .finish()
    }
}

/// Builds a [`Request`]; the first mistake is kept and reported by
/// [`RequestBuilder::build`], so calls chain without `?` at every step.
#[must_use = "a builder does nothing until `build()` (or a batch takes it)"]
pub struct RequestBuilder {
    result: Result<Request, Error>,
}

impl RequestBuilder {
    fn new(method: Method, url: &str) -> Self {
        let result = parse_url(url).and_then(|uri| {
            let (scheme, _) = Origin::check(&uri)?;
            Ok(Request {
                method,
                uri,
                scheme,
                origin: OnceLock::new(),
                headers: HeaderMap::new(),
                body: RequestBody::empty(),
                options: RequestOptions::default(),
                extensions: Extensions::new(),
            })
        });
        RequestBuilder { result }
    }

    fn map(mut self, f: impl FnOnce(&mut Request) -> Result<(), Error>) -> Self {
        if let Ok(req) = &mut self.result {
            if let Err(e) = f(req) {
                self.result = Err(e);
            }
        }
        self
    }

    /// Append a header; an invalid name or value is an
    /// [`Error::InvalidRequest`] at `build()`.
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: std::error::Error + Send + Sync + 'static,
        V: TryInto<HeaderValue>,
        V::Error: std::error::Error + Send + Sync + 'static,
    {
        self.map(|req| {
            let name = name.try_into().map_err(|e| Error::InvalidRequest {
                reason: "invalid header name".into(),
                source: Some(Box::new(e)),
            })?;
            let value = value.try_into().map_err(|e| Error::InvalidRequest {
                reason: format!("invalid value for header `{name}`"),
                source: Some(Box::new(e)),
            })?;
            req.headers.append(name, value);
            Ok(())
        })
    }

    /// Set the body.
    pub fn body(self, body: impl Into<RequestBody>) -> Self {
        let body = body.into();
        self.map(|req| {
            req.body = body;
            Ok(())
        })
    }

    /// Set a JSON body and `content-type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let encoded = serde_json::to_vec(value);
        self.map(|req| {
            let bytes = encoded.map_err(|e| Error::InvalidRequest {
                reason: "cannot serialise JSON body".into(),
                source: Some(Box::new(e)),
            })?;
            req.headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            req.body = RequestBody::from(bytes);
            Ok(())
        })
    }

    /// Per-attempt timeout. Zero is an [`Error::InvalidRequest`].
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|req| {
            if timeout.is_zero() {
                return Err(Error::invalid_request("timeout must be greater than zero"));
            }
            req.options.timeout = Some(timeout);
            Ok(())
        })
    }

    /// Mark a non-idempotent request safe to retry (for example a `POST`
    /// carrying an idempotency key).
    pub fn retry_safe(self, safe: bool) -> Self {
        self.map(|req| {
            req.options.retry_safe = safe;
            Ok(())
        })
    }

    /// Attach a free-form tag.
    pub fn tag(self, tag: impl Into<Arc<str>>) -> Self {
        let tag = tag.into();
        self.map(|req| {
            req.options.tag = Some(tag);
            Ok(())
        })
    }

    /// Return the response body as a stream (see
    /// [`RequestOptions::stream_response`]).
    pub fn stream_response(self, on: bool) -> Self {
        self.map(|req| {
            req.options.stream_response = on;
            Ok(())
        })
    }

    /// Attach a typed extension value.
    pub fn extension<T: Clone + Send + Sync + 'static>(self, value: T) -> Self {
        self.map(|req| {
            req.extensions.insert(value);
            Ok(())
        })
    }

    /// Finish: the request, or the first mistake made while building it.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] describing the first invalid input.
    pub fn build(self) -> Result<Request, Error> {
        self.result
    }
}

/// URLs up to this long are parsed from one allocation (see [`parse_url`]).
const INLINE_URL_BYTES: usize = 128;

/// A short URL's bytes, stored inline in the allocation `Bytes::from_owner`
/// makes for its owner and reference count.
struct InlineUrl {
    len: usize,
    buf: [u8; INLINE_URL_BYTES],
}

impl AsRef<[u8]> for InlineUrl {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Parse and copy a URL into a `Uri`, with `http`'s own parser and errors.
///
/// `str::parse::<Uri>` copies the text into a `Vec`-backed `Bytes`, and the
/// parser's first split turns that into a shared buffer: two allocations
/// per request. A short URL is copied instead into an owner that carries
/// its bytes inline, so the buffer and its reference count are one
/// allocation (and later `Uri` clones are a reference-count increment).
fn parse_url(url: &str) -> Result<Uri, Error> {
    let trimmed = url.trim();
    let parsed = if trimmed.len() <= INLINE_URL_BYTES {
        let mut buf = [0u8; INLINE_URL_BYTES];
        buf[..trimmed.len()].copy_from_slice(trimmed.as_bytes());
        Uri::from_maybe_shared(Bytes::from_owner(InlineUrl {
            len: trimmed.len(),
            buf,
        }))
    } else {
        trimmed.parse()
    };
    let uri: Uri = parsed.map_err(|e| Error::InvalidRequest {
        reason: format!("cannot parse URL `{url}`"),
        source: Some(Box::new(e)),
    })?;
    Ok(uri)
}

/// Go-style helper for people coming from the Go package:
/// `request(method, url, body)`.
///
/// ```
/// let req = httpclient_core::request("POST", "http://127.0.0.1:1/submit", "payload").unwrap();
/// assert_eq!(req.method(), "POST");
/// assert!(httpclient_core::request("NOT A METHOD", "http://x/", "").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidRequest`] for an invalid method or URL.
pub fn request(method: &str, url: &str, body: impl Into<Bytes>) -> Result<Request, Error> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| Error::InvalidRequest {
        reason: format!("invalid method `{method}`"),
        source: Some(Box::new(e)),
    })?;
    Request::builder(method, url).body(body.into()).build()
}

/// "A request, or the error that stopped it being built."
///
/// Layers that take many requests accept `impl IntoRequest`, so one bad URL
/// becomes an error in its own result slot while the rest run. Implemented
/// for [`Request`], [`RequestBuilder`], `Result<Request, Error>`, and URL
/// strings (a `GET`).
pub trait IntoRequest {
    /// Turn into a request or the error that stopped it being built.
    fn into_request(self) -> Result<Request, Error>;
}

impl IntoRequest for Request {
    fn into_request(self) -> Result<Request, Error> {
        Ok(self)
    }
}

impl IntoRequest for RequestBuilder {
    fn into_request(self) -> Result<Request, Error> {
        self.build()
    }
}

impl IntoRequest for Result<Request, Error> {
    fn into_request(self) -> Result<Request, Error> {
        self
    }
}

impl IntoRequest for &str {
    fn into_request(self) -> Result<Request, Error> {
        Request::get(self).build()
    }
}

impl IntoRequest for String {
    fn into_request(self) -> Result<Request, Error> {
        Request::get(self).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates_everything_before_any_driver() {
        let cases: Vec<(RequestBuilder, &str)> = vec![
            (Request::get("not a url"), "cannot parse"),
            (Request::get("ftp://example.com/f"), "unsupported scheme"),
            (Request::get("example.com/path"), "cannot parse"),
            (Request::get("example.com:80"), "no scheme"),
            (Request::get("/relative"), "no scheme"),
            (
                Request::get("http://ok/").header("bad name", "v"),
                "header name",
            ),
            (
                Request::get("http://ok/").header("x-ok", "line\nbreak"),
                "invalid value",
            ),
            (
                Request::get("http://ok/").timeout(Duration::ZERO),
                "timeout",
            ),
        ];
        for (builder, expect) in cases {
            let err = builder.build().unwrap_err();
            assert!(matches!(err, Error::InvalidRequest { .. }), "{err:?}");
            assert!(
                err.to_string().contains(expect),
                "{err} should mention {expect}"
            );
            assert!(!err.may_have_been_sent());
        }
    }

    #[test]
    fn first_mistake_wins_and_later_calls_are_ignored() {
        let err = Request::get("http://ok/")
            .header("bad name", "v")
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("header name"), "{err}");
    }

    #[test]
    fn options_and_headers_travel() {
        let req = Request::post("http://h:81/p")
            .header("x-a", "1")
            .header("x-a", "2")
            .body("abc")
            .timeout(Duration::from_millis(10))
            .retry_safe(true)
            .tag("t1")
            .build()
            .unwrap();
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(req.body().as_bytes().unwrap(), "abc");
        assert_eq!(req.options().timeout, Some(Duration::from_millis(10)));
        assert_eq!(req.options().tag.as_deref(), Some("t1"));
        assert!(!req.is_idempotent());
        assert!(req.is_retry_safe());
        let copy = req.try_clone().unwrap();
        assert_eq!(copy.uri(), req.uri());
        assert_eq!(copy.origin().port(), 81);
    }

    #[test]
    fn streaming_bodies_are_not_replayable() {
        let stream: BodyStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from("x"))]));
        let req = Request::put("http://h/")
            .body(RequestBody::from_stream(stream))
            .build()
            .unwrap();
        assert!(req.is_idempotent());
        assert!(!req.is_retry_safe());
        assert!(req.try_clone().is_none());
        assert!(req.body().take_stream().is_some());
        assert!(req.body().take_stream().is_none());
    }

    #[test]
    fn into_request_carries_build_errors() {
        assert!("http://a/".into_request().is_ok());
        assert!(String::from("nope").into_request().is_err());
        assert!(Request::get("http://a/").into_request().is_ok());
        let r: Result<Request, Error> = Err(Error::invalid_request("x"));
        assert!(r.into_request().is_err());
    }

    #[test]
    fn into_parts_moves_every_piece() {
        #[derive(Clone, Debug, PartialEq)]
        struct Mark(u8);
        let req = Request::put("http://h:81/p?q=1")
            .header("x-a", "1")
            .body(String::from("owned body"))
            .timeout(Duration::from_millis(7))
            .tag("t")
            .stream_response(true)
            .extension(Mark(3))
            .build()
            .unwrap();
        let body_ptr = req.body().as_bytes().unwrap().as_ptr();
        let parts = req.into_parts();
        assert_eq!(parts.method, Method::PUT);
        assert_eq!(parts.uri, "http://h:81/p?q=1");
        assert_eq!(parts.headers["x-a"], "1");
        assert_eq!(parts.options.timeout, Some(Duration::from_millis(7)));
        assert_eq!(parts.options.tag.as_deref(), Some("t"));
        assert!(parts.options.stream_response);
        assert_eq!(parts.extensions.get::<Mark>(), Some(&Mark(3)));
        let bytes = parts.body.into_bytes().unwrap();
        assert_eq!(bytes, "owned body");
        assert_eq!(bytes.as_ptr(), body_ptr, "moved, not copied");

        let stream: BodyStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from("x"))]));
        let streamed = Request::post("http://h/")
            .body(RequestBody::from_stream(stream))
            .build()
            .unwrap()
            .into_parts();
        let body = streamed.body.into_bytes().unwrap_err();
        assert!(body.take_stream().is_some(), "a stream comes back intact");
    }

    #[test]
    fn origin_is_made_on_first_use_and_shared_by_copies() {
        let req = Request::get("HTTP://Example.COM/x").build().unwrap();
        assert!(req.origin.get().is_none(), "not made while building");
        let origin = req.origin();
        assert_eq!(origin, &Origin::parse("http://example.com:80").unwrap());
        assert_eq!(origin.host(), "example.com");
        assert_eq!(origin.scheme(), Scheme::Http);
        assert!(std::ptr::eq(origin, req.origin()), "made once");
        let copy = req.try_clone().unwrap();
        assert_eq!(copy.origin(), origin);
        assert!(
            std::ptr::eq(copy.origin().host(), origin.host()),
            "shared host"
        );
        // The same origin as `Origin::from_uri` for every accepted form.
        for url in [
            "https://h",
            "https://H:443/x",
            "http://[::1]:9000/x",
            "http://u@h:1/p",
        ] {
            let req = Request::get(url).build().unwrap();
            assert_eq!(req.origin(), &Origin::from_uri(req.uri()).unwrap(), "{url}");
        }
        let fresh = Request::from_http(
            http::Request::builder()
                .uri("https://Z/")
                .body(Bytes::new())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(fresh.origin().to_string(), "https://z");
    }

    #[test]
    fn requests_and_parts_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Request>();
        send_sync::<RequestParts>();
        send_sync::<RequestBuilder>();
    }

    #[test]
    fn short_and_long_urls_parse_like_http_does() {
        let base = "http://h.test/";
        for len in [base.len(), 127, 128, 129, 300] {
            let url = format!("{base}{}", "a".repeat(len - base.len()));
            let req = Request::get(format!("  {url}\n")).build().unwrap();
            assert_eq!(req.uri(), &url.parse::<Uri>().unwrap(), "{len}");
            assert_eq!(req.uri().to_string(), url);
            let copy = req.try_clone().unwrap();
            assert_eq!(copy.uri(), req.uri());
            let bad = format!("http://h.test/{}", " x".repeat(len / 2));
            let err = Request::get(&bad).build().unwrap_err();
            assert!(err.to_string().contains("cannot parse URL"), "{err}");
            assert_eq!(
                std::error::Error::source(&err).map(|e| e.to_string()),
                Some(bad.trim().parse::<Uri>().unwrap_err().to_string())
            );
        }
        assert!(Request::get("").build().is_err());
    }

    #[test]
    fn from_http_validates() {
        let ok = http::Request::builder()
            .uri("https://h/x")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(Request::from_http(ok).unwrap().origin().port(), 443);
        let rel = http::Request::builder()
            .uri("/x")
            .body(Bytes::new())
            .unwrap();
        assert!(Request::from_http(rel).is_err());
    }
}
