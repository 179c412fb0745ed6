//! `Response`: the head, a body already read (by default), and what the
//! layers did on the way.
//!
//! Drivers read the body inside `execute` unless the request asked for a
//! stream ([`crate::RequestOptions::stream_response`]): a batch that holds
//! ten thousand responses must not hold ten thousand connections (the Go
//! package stalls past 200 that way).
//!
//! Layers record what they did — retry attempts, time waited for a rate
//! permit — through dedicated accessors ([`Response::retry_info`],
//! [`Response::permit_wait`]) rather than in [`Response::extensions`]:
//! the first insert into an empty `http::Extensions` costs three allocations
//! (the map's box, its table, the boxed value) plus hashing, about a thousand
//! instructions per request per layer, paid on every success. The records
//! share one small box instead: one allocation for a whole chain of layers,
//! none for a bare driver. They are not inline because `Response` is moved
//! by value through every layer and driver: at 256 bytes it still copies in
//! glibc's straight-line path, while the 56 bytes of inline records (304
//! bytes) cost more in copying than the allocation they would save, on the
//! bare driver path too. The records of a happy path — one attempt and no
//! backoff, no wait for a permit — are one bit each in a byte that fits in
//! the struct's padding, so a request that went through without retrying or
//! waiting allocates nothing for them. The extensions stay for callers' own
//! data.

use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{Extensions, HeaderMap, StatusCode, Uri, Version};

use crate::Error;
use crate::ext::{PermitWait, RetryInfo};

type DynBodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// A streamed response body (opt-in). Yields chunks; mid-body failures come
/// back as [`Error::ResetMidBody`] and friends.
pub struct ResponseStream {
    // Mutex only to make the stream `Sync`; `get_mut` never locks.
    inner: Mutex<DynBodyStream>,
}

impl ResponseStream {
    /// Wrap any stream of chunks.
    pub fn new(stream: impl Stream<Item = Result<Bytes, Error>> + Send + 'static) -> Self {
        ResponseStream {
            inner: Mutex::new(Box::pin(stream)),
        }
    }
}

impl Stream for ResponseStream {
    type Item = Result<Bytes, Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .inner
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseStream")
    }
}

/// A response body: read into memory (default) or a stream (opt-in).
#[derive(Debug)]
pub enum ResponseBody {
    /// The whole body, read inside `execute`.
    Full(Bytes),
    /// The body as a stream, for large downloads.
    Stream(ResponseStream),
}

/// An HTTP response. 4xx and 5xx are responses, not errors.
pub struct Response {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: ResponseBody,
    url: Option<Uri>,
    elapsed: Duration,
    // Boxed to keep `Response` at 256 bytes (see the module docs).
    records: Option<Box<Records>>,
    /// The common records, inline: bits of [`Plain`]. A layer stamping
    /// "one attempt, no backoff" or "no wait for the permit" sets a bit
    /// here instead of allocating the box; the byte sits in padding, so
    /// `Response` does not grow.
    plain: u8,
    extensions: Extensions,
}

/// What the layers recorded, in one box shared by all of them.
#[derive(Default)]
struct Records {
    retry_info: Option<RetryInfo>,
    permit_wait: Option<PermitWait>,
}

/// The records every happy path stamps, kept as bits of `Response::plain`
/// (a record is in the box or in its bit, never both).
struct Plain;

impl Plain {
    /// [`Plain::RETRY_INFO`] is set.
    const ONE_ATTEMPT: u8 = 1;
    /// [`Plain::PERMIT_WAIT`] is set.
    const NO_WAIT: u8 = 2;
    const RETRY_INFO: RetryInfo = RetryInfo {
        attempts: 1,
        backoff: Duration::ZERO,
    };
    const PERMIT_WAIT: PermitWait = PermitWait {
        wait: Duration::ZERO,
        total: Duration::ZERO,
    };
}

impl Response {
    /// A response with this status, HTTP/1.1, no headers and an empty body.
    /// Drivers and mocks fill in the rest with the `with_*` methods.
    ///
    /// ```
    /// use httpclient_core::Response;
    /// use http::StatusCode;
    /// let r = Response::new(StatusCode::OK).with_body("hi").with_header("x-a", "1");
    /// assert_eq!(r.text().unwrap(), "hi");
    /// assert!(r.status().is_success());
    /// ```
    pub fn new(status: StatusCode) -> Self {
        Response {
            status,
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            body: ResponseBody::Full(Bytes::new()),
            url: None,
            elapsed: Duration::ZERO,
            records: None,
            plain: 0,
            extensions: Extensions::new(),
        }
    }

    /// Set the whole body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = ResponseBody::Full(body.into());
        self
    }
    /// Set a streamed body.
    pub fn with_stream(mut self, stream: ResponseStream) -> Self {
        self.body = ResponseBody::Stream(stream);
        self
    }
    /// Replace the headers.
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }
    /// Append one header. Panics never: an invalid name or value is skipped
    /// in release builds and caught by a debug assertion in tests.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => debug_assert!(false, "invalid header {name}: {value}"),
        }
        self
    }
    /// Set the HTTP version.
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }
    /// Set the final URL (after redirects).
    pub fn with_url(mut self, url: Uri) -> Self {
        self.url = Some(url);
        self
    }
    /// Set the time from sending to having the body.
    pub fn with_elapsed(mut self, elapsed: Duration) -> Self {
        self.elapsed = elapsed;
        self
    }
    /// Set the retry layer's record (see [`Response::retry_info`]).
    pub fn with_retry_info(mut self, info: RetryInfo) -> Self {
        self.set_retry_info(info);
        self
    }
    /// Set the rate limiter's record (see [`Response::permit_wait`]).
    pub fn with_permit_wait(mut self, wait: PermitWait) -> Self {
        self.set_permit_wait(wait);
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The headers, mutably.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }
    /// The final URL, if the driver reports it.
    pub fn url(&self) -> Option<&Uri> {
        self.url.as_ref()
    }
    /// Time the driver spent: from sending the request to having the body
    /// (or the head, for a streamed body).
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
    /// What the retry layer (the pool) did for this response: attempts made
    /// and time spent in backoff. `None` when no retry layer handled it.
    ///
    /// ```
    /// use httpclient_core::{ext::RetryInfo, Response};
    /// use std::time::Duration;
    /// let info = RetryInfo { attempts: 2, backoff: Duration::from_millis(100) };
    /// let r = Response::new(http::StatusCode::OK).with_retry_info(info);
    /// assert_eq!(r.retry_info(), Some(&info));
    /// assert_eq!(Response::new(http::StatusCode::OK).retry_info(), None);
    /// ```
    pub fn retry_info(&self) -> Option<&RetryInfo> {
        self.record(Plain::ONE_ATTEMPT, &Plain::RETRY_INFO, |r| &r.retry_info)
    }
    /// Replace the retry layer's record. A layer that retries calls this on
    /// the response it returns; an outer retry layer overwrites an inner one.
    pub fn set_retry_info(&mut self, info: RetryInfo) {
        self.set_record(Plain::ONE_ATTEMPT, &Plain::RETRY_INFO, info, |r| {
            &mut r.retry_info
        });
    }
    /// How long this request waited for its rate-limit permit. `None` when
    /// no rate limiter handled it. Limiters add to it with
    /// [`PermitWait::record`], so chained limiters keep a sum.
    ///
    /// ```
    /// use httpclient_core::{ext::PermitWait, Response};
    /// use std::time::Duration;
    /// let mut r = Response::new(http::StatusCode::OK);
    /// assert_eq!(r.permit_wait(), None);
    /// PermitWait::record(&mut r, Duration::from_millis(30));
    /// PermitWait::record(&mut r, Duration::from_millis(5));
    /// let pw = r.permit_wait().unwrap();
    /// assert_eq!(pw.wait, Duration::from_millis(5));
    /// assert_eq!(pw.total, Duration::from_millis(35));
    /// ```
    pub fn permit_wait(&self) -> Option<&PermitWait> {
        self.record(Plain::NO_WAIT, &Plain::PERMIT_WAIT, |r| &r.permit_wait)
    }
    /// Replace the rate limiter's record as is (no summing; limiters use
    /// [`PermitWait::record`] to add to an inner limiter's record).
    pub fn set_permit_wait(&mut self, wait: PermitWait) {
        self.set_record(Plain::NO_WAIT, &Plain::PERMIT_WAIT, wait, |r| {
            &mut r.permit_wait
        });
    }
    /// A layer record: `plain` when its `bit` is set, else what the box
    /// holds in `field`.
    #[inline]
    fn record<T>(
        &self,
        bit: u8,
        plain: &'static T,
        field: fn(&Records) -> &Option<T>,
    ) -> Option<&T> {
        if self.plain & bit != 0 {
            return Some(plain);
        }
        field(self.records.as_ref()?).as_ref()
    }
    /// Store a layer record: the happy path's value (`plain`) as its `bit`,
    /// any other in the box's `field` — and clear the other place, so a
    /// record is in one of them, never both.
    #[inline]
    fn set_record<T: PartialEq>(
        &mut self,
        bit: u8,
        plain: &T,
        value: T,
        field: fn(&mut Records) -> &mut Option<T>,
    ) {
        if value == *plain {
            if let Some(r) = &mut self.records {
                *field(r) = None;
            }
            self.plain |= bit;
        } else {
            self.plain &= !bit;
            *field(self.records.get_or_insert_default()) = Some(value);
        }
    }
    /// Callers' own typed data, carried with the response. The layers'
    /// records are not here: read [`Response::retry_info`] and
    /// [`Response::permit_wait`].
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    /// Callers' own typed data, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The body as bytes. Empty for a streamed body; check
    /// [`Response::is_streaming`] or use [`Response::collect`].
    pub fn bytes(&self) -> &Bytes {
        static EMPTY: Bytes = Bytes::new();
        match &self.body {
            ResponseBody::Full(b) => b,
            ResponseBody::Stream(_) => &EMPTY,
        }
    }

    /// The body as UTF-8 text.
    ///
    /// # Errors
    /// [`Error::InvalidResponse`] when the body is not valid UTF-8.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(self.bytes()).map_err(|e| Error::InvalidResponse {
            reason: "body is not valid UTF-8".into(),
            source: Some(Box::new(e)),
        })
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`Error::InvalidResponse`] when the body does not decode as `T`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.bytes()).map_err(|e| Error::InvalidResponse {
            reason: "body is not the expected JSON".into(),
            source: Some(Box::new(e)),
        })
    }

    /// Whether the body is a stream (requested with `stream_response`).
    pub fn is_streaming(&self) -> bool {
        matches!(self.body, ResponseBody::Stream(_))
    }

    /// Take the body out.
    pub fn into_body(self) -> ResponseBody {
        self.body
    }

    /// The whole body, reading a stream to its end if needed.
    ///
    /// # Errors
    /// Whatever the stream fails with mid-body.
    pub async fn collect(self) -> Result<Bytes, Error> {
        match self.body {
            ResponseBody::Full(b) => Ok(b),
            ResponseBody::Stream(mut s) => {
                let mut buf = BytesMut::new();
                while let Some(chunk) =
                    std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await
                {
                    buf.extend_from_slice(&chunk?);
                }
                Ok(buf.freeze())
            }
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Response");
        d.field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers.len())
            .field("body", &self.body)
            .field("elapsed", &self.elapsed);
        if let Some(info) = self.retry_info() {
            d.field("retry_info", info);
        }
        if let Some(wait) = self.permit_wait() {
            d.field("permit_wait", wait);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_bodies_collect() {
        let s = ResponseStream::new(futures::stream::iter(vec![
            Ok(Bytes::from("ab")),
            Ok(Bytes::from("c")),
        ]));
        let r = Response::new(StatusCode::OK).with_stream(s);
        assert!(r.is_streaming());
        assert!(r.bytes().is_empty());
        assert_eq!(r.collect().await.unwrap(), "abc");

        let s = ResponseStream::new(futures::stream::iter(vec![
            Ok(Bytes::from("ab")),
            Err(Error::ResetMidBody { source: None }),
        ]));
        let err = Response::new(StatusCode::OK)
            .with_stream(s)
            .collect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ResetMidBody { .. }));
    }

    #[test]
    fn layer_records_are_not_extensions() {
        let info = RetryInfo {
            attempts: 3,
            backoff: Duration::from_millis(250),
        };
        let wait = PermitWait {
            wait: Duration::from_millis(7),
            total: Duration::from_millis(9),
        };
        let r = Response::new(StatusCode::OK)
            .with_retry_info(info)
            .with_permit_wait(wait);
        assert_eq!(r.retry_info(), Some(&info));
        assert_eq!(r.permit_wait(), Some(&wait));
        // Stamping records allocates nothing in the extensions map.
        assert!(r.extensions().is_empty());
        assert!(r.extensions().get::<RetryInfo>().is_none());
        let dbg = format!("{r:?}");
        assert!(dbg.contains("attempts: 3"), "{dbg}");
        assert!(dbg.contains("total: 9ms"), "{dbg}");

        let mut r = Response::new(StatusCode::OK);
        assert_eq!(r.retry_info(), None);
        assert_eq!(r.permit_wait(), None);
        assert!(!format!("{r:?}").contains("retry_info"));
        r.set_retry_info(info);
        r.set_retry_info(RetryInfo {
            attempts: 1,
            backoff: Duration::ZERO,
        });
        assert_eq!(r.retry_info().unwrap().attempts, 1, "set replaces");
        r.set_permit_wait(wait);
        assert_eq!(r.permit_wait(), Some(&wait));
    }

    #[test]
    fn happy_path_records_are_inline_and_replace_like_boxed_ones() {
        let one = RetryInfo {
            attempts: 1,
            backoff: Duration::ZERO,
        };
        let no_wait = PermitWait::default();
        let mut r = Response::new(StatusCode::OK)
            .with_retry_info(one)
            .with_permit_wait(no_wait);
        assert_eq!(r.retry_info(), Some(&one));
        assert_eq!(r.permit_wait(), Some(&no_wait));
        assert!(r.records.is_none(), "the happy path allocates no box");

        // Boxed and inline records replace each other both ways.
        let three = RetryInfo {
            attempts: 3,
            backoff: Duration::from_millis(20),
        };
        let waited = PermitWait {
            wait: Duration::from_millis(4),
            total: Duration::from_millis(4),
        };
        r.set_retry_info(three);
        r.set_permit_wait(waited);
        assert_eq!(r.retry_info(), Some(&three));
        assert_eq!(r.permit_wait(), Some(&waited));
        r.set_retry_info(one);
        assert_eq!(r.retry_info(), Some(&one));
        assert_eq!(r.permit_wait(), Some(&waited), "the other record stays");
        r.set_permit_wait(no_wait);
        assert_eq!(r.permit_wait(), Some(&no_wait));
        r.set_retry_info(three);
        assert_eq!(r.retry_info(), Some(&three));
        assert_eq!(r.permit_wait(), Some(&no_wait));

        // Chained limiters add up from an inline zero.
        let mut r = Response::new(StatusCode::OK);
        PermitWait::record(&mut r, Duration::ZERO);
        PermitWait::record(&mut r, Duration::from_millis(3));
        assert_eq!(
            r.permit_wait(),
            Some(&PermitWait {
                wait: Duration::from_millis(3),
                total: Duration::from_millis(3)
            })
        );
        assert!(format!("{r:?}").contains("permit_wait"));
    }

    /// `Response` moves by value through every layer; past 256 bytes each
    /// move takes glibc's looping copy (measured: ~290 instructions per
    /// request on the bare driver path). Grow it only with a measurement.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn response_stays_within_256_bytes() {
        assert!(
            std::mem::size_of::<Response>() <= 256,
            "Response is {} bytes",
            std::mem::size_of::<Response>()
        );
    }

    #[test]
    fn text_rejects_invalid_utf8() {
        let r = Response::new(StatusCode::OK).with_body(vec![0xff, 0xfe]);
        assert!(matches!(r.text(), Err(Error::InvalidResponse { .. })));
    }
}
