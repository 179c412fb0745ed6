//! `Response`: the head, a body already read (by default), and what the
//! layers did on the way.
//!
//! Drivers read the body inside `execute` unless the request asked for a
//! stream ([`crate::RequestOptions::stream_response`]): a batch that holds
//! ten thousand responses must not hold ten thousand connections (the Go
//! package stalls past 200 that way). Layers record what they did — retry
//! attempts, time waited for a rate permit — as typed values in
//! [`Response::extensions`]; see [`crate::ext`].

use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::{Extensions, HeaderMap, StatusCode, Uri, Version};

use crate::Error;

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
    extensions: Extensions,
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
    /// What the layers recorded (see [`crate::ext`]).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }
    /// What the layers recorded, mutably.
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
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers.len())
            .field("body", &self.body)
            .field("elapsed", &self.elapsed)
            .finish()
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
    fn text_rejects_invalid_utf8() {
        let r = Response::new(StatusCode::OK).with_body(vec![0xff, 0xfe]);
        assert!(matches!(r.text(), Err(Error::InvalidResponse { .. })));
    }
}
