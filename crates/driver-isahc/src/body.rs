//! Bodies between core's types and isahc's `AsyncBody`.
//!
//! * Request bodies: a buffered body is handed to curl either as a
//!   rewindable buffer or, for a request that is not safe to retry, as a
//!   non-rewindable reader. The second is deliberate: libcurl silently
//!   re-sends a request that went out on a reused keep-alive connection
//!   which closed before any response byte arrived, and it can only do that
//!   by rewinding the body. Refusing the rewind turns that hidden retry into
//!   an error the pool layer can judge, so a `POST` is never applied twice
//!   behind its back. A streaming body is forwarded chunk by chunk.
//! * Response bodies: read inside `execute` up to the driver's limit, or
//!   exposed as a [`ResponseStream`] when the request asked for one (not
//!   limited: the caller bounds a stream). Mid-body failures map through
//!   [`crate::classify`].

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::io::{AsyncRead, AsyncReadExt, Cursor};
use futures_util::{Stream, stream};
use httpclient_core::{BodyStream, BoxError, Error, ResponseStream};
use isahc::AsyncBody;

use crate::classify::{Limits, classify_body_io};

/// The caller's streaming request body failed; carried through curl inside
/// an `io::Error` so the classifier can report the caller's own error.
#[derive(Debug)]
pub(crate) struct RequestBodyError(BoxError);

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body stream failed: {}", self.0)
    }
}

impl std::error::Error for RequestBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A request body for one hop.
pub(crate) enum HopBody {
    /// No body.
    Empty,
    /// A buffered body; `rewindable` says whether curl may re-send it.
    Bytes { bytes: Bytes, rewindable: bool },
    /// A one-shot stream (already taken out of the request).
    Stream(BodyStream),
    /// A stream that has been handed to curl: it cannot be sent again.
    Spent,
}

impl HopBody {
    /// Whether a 307/308 redirect can send this body again.
    pub(crate) fn is_replayable(&self) -> bool {
        !matches!(self, HopBody::Stream(_) | HopBody::Spent)
    }

    /// A copy for the next hop (`None` for a stream).
    pub(crate) fn replay(&self) -> Option<HopBody> {
        match self {
            HopBody::Empty => Some(HopBody::Empty),
            HopBody::Bytes { bytes, rewindable } => Some(HopBody::Bytes {
                bytes: bytes.clone(),
                rewindable: *rewindable,
            }),
            HopBody::Stream(_) | HopBody::Spent => None,
        }
    }

    /// Whether there is nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            HopBody::Empty => true,
            HopBody::Bytes { bytes, .. } => bytes.is_empty(),
            HopBody::Stream(_) | HopBody::Spent => false,
        }
    }

    /// The isahc body for this hop. Takes a stream out (a stream can be
    /// sent once); buffered bodies stay for a possible redirect.
    pub(crate) fn take_for_isahc(&mut self) -> AsyncBody {
        match self {
            HopBody::Empty | HopBody::Spent => AsyncBody::empty(),
            HopBody::Bytes { bytes, .. } if bytes.is_empty() => AsyncBody::empty(),
            HopBody::Bytes {
                bytes,
                rewindable: true,
            } => AsyncBody::from(bytes.to_vec()),
            HopBody::Bytes {
                bytes,
                rewindable: false,
            } => AsyncBody::from_reader_sized(Cursor::new(bytes.clone()), bytes.len() as u64),
            HopBody::Stream(_) => match std::mem::replace(self, HopBody::Spent) {
                HopBody::Stream(s) => AsyncBody::from_reader(StreamReader::new(s)),
                _ => AsyncBody::empty(),
            },
        }
    }
}

/// `AsyncRead` over a stream of chunks. The mutex only makes it `Sync`
/// (isahc requires it); it is reached through `&mut` and never locked.
struct StreamReader {
    stream: Mutex<BodyStream>,
    chunk: Bytes,
    done: bool,
}

impl StreamReader {
    fn new(stream: BodyStream) -> Self {
        StreamReader {
            stream: Mutex::new(stream),
            chunk: Bytes::new(),
            done: false,
        }
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                return Poll::Ready(Ok(n));
            }
            if this.done || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let stream = this
                .stream
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            match ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => this.chunk = chunk,
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Err(io::Error::other(RequestBodyError(e))));
                }
                None => this.done = true,
            }
        }
    }
}

/// Largest buffer reserved up front from a `Content-Length`; a bigger body
/// grows as it arrives, so a lying header cannot make us allocate.
const MAX_PREALLOC: u64 = 16 * 1024 * 1024;

/// Read a whole response body, failing once it passes `max` bytes (`None`:
/// no limit).
///
/// A `Content-Length` above the limit fails at once, without reading.
pub(crate) async fn read_to_limit(
    body: AsyncBody,
    content_length: Option<u64>,
    max: Option<u64>,
    limits: Limits,
) -> Result<Bytes, Error> {
    if let (Some(len), Some(max)) = (content_length, max) {
        if len > max {
            return Err(Error::BodyTooLarge { limit: max });
        }
    }
    let capacity = content_length.unwrap_or(0).min(MAX_PREALLOC);
    let mut buf = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    // Reading at most `max + 1` bytes proves "too large" without buffering
    // more than one byte past the limit.
    let cap = max.map_or(u64::MAX, |m| m.saturating_add(1));
    body.take(cap)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| classify_body_io(e, limits))?;
    if let Some(max) = max {
        if buf.len() as u64 > max {
            return Err(Error::BodyTooLarge { limit: max });
        }
    }
    Ok(Bytes::from(buf))
}

/// Read and discard a redirect's body so its connection can be reused;
/// gives up (dropping the body, which closes the connection) past `max`
/// bytes or on any error.
pub(crate) async fn drain(body: AsyncBody, max: u64) {
    let mut sink = Vec::new();
    let _ = body.take(max).read_to_end(&mut sink).await;
}

/// Chunk size of a streamed response body.
const STREAM_CHUNK: usize = 16 * 1024;

/// A streamed response body. It is not bounded by the driver's body limit:
/// a caller who asks for a stream reads it at their own pace and bounds
/// memory themselves (the conformance suite's shared rule).
pub(crate) fn response_stream(body: AsyncBody, limits: Limits) -> ResponseStream {
    ResponseStream::new(chunks(body, limits))
}

fn chunks(
    body: AsyncBody,
    limits: Limits,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    stream::try_unfold(body, move |mut body| async move {
        let mut chunk = vec![0u8; STREAM_CHUNK];
        let n = body
            .read(&mut chunk)
            .await
            .map_err(|e| classify_body_io(e, limits))?;
        if n == 0 {
            return Ok(None);
        }
        chunk.truncate(n);
        Ok(Some((Bytes::from(chunk), body)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("in-memory bodies are ready at once")
    }

    #[test]
    fn full_bodies_stop_at_the_limit() {
        let ok = block_on(read_to_limit(
            AsyncBody::from(vec![7u8; 10]),
            None,
            Some(10),
            Limits::default(),
        ))
        .unwrap();
        assert_eq!(ok.len(), 10);
        let err = block_on(read_to_limit(
            AsyncBody::from(vec![7u8; 11]),
            None,
            Some(10),
            Limits::default(),
        ))
        .unwrap_err();
        assert!(matches!(err, Error::BodyTooLarge { limit: 10 }), "{err:?}");
        // An announced length over the limit fails without reading.
        let err = block_on(read_to_limit(
            AsyncBody::empty(),
            Some(11),
            Some(10),
            Limits::default(),
        ))
        .unwrap_err();
        assert!(matches!(err, Error::BodyTooLarge { limit: 10 }));
    }

    #[test]
    fn streamed_bodies_come_in_chunks() {
        let s = chunks(AsyncBody::from(vec![1u8; 40_000]), Limits::default());
        let parts: Vec<_> = block_on(s.collect::<Vec<_>>());
        let total: usize = parts.iter().map(|p| p.as_ref().unwrap().len()).sum();
        assert_eq!(total, 40_000);
        assert!(parts.len() >= 3, "read in chunks, got {}", parts.len());
    }

    #[test]
    fn stream_reader_forwards_chunks_and_errors() {
        let items: Vec<Result<Bytes, BoxError>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"cde")),
        ];
        let mut r = StreamReader::new(Box::pin(stream::iter(items)));
        let mut out = Vec::new();
        block_on(r.read_to_end(&mut out)).unwrap();
        assert_eq!(out, b"abcde");

        let items: Vec<Result<Bytes, BoxError>> =
            vec![Ok(Bytes::from_static(b"x")), Err("disk on fire".into())];
        let mut r = StreamReader::new(Box::pin(stream::iter(items)));
        let mut out = Vec::new();
        let err = block_on(r.read_to_end(&mut out)).unwrap_err();
        let inner = err.get_ref().unwrap();
        assert!(inner.is::<RequestBodyError>());
        assert!(inner.to_string().contains("disk on fire"));
    }

    #[test]
    fn buffered_bodies_replay_and_streams_do_not() {
        let mut b = HopBody::Bytes {
            bytes: Bytes::from_static(b"abc"),
            rewindable: false,
        };
        assert!(b.is_replayable());
        assert_eq!(b.take_for_isahc().len(), Some(3));
        assert!(b.replay().is_some());
        let items: Vec<Result<Bytes, BoxError>> = vec![];
        let mut s = HopBody::Stream(Box::pin(stream::iter(items)));
        assert!(!s.is_replayable() && s.replay().is_none());
        assert_eq!(s.take_for_isahc().len(), None);
        assert!(matches!(s, HopBody::Spent));
        assert!(!s.is_replayable() && s.replay().is_none());
    }
}
