//! Test kit (feature `test-util`): a scriptable [`MockDriver`] and a
//! [`NoopDriver`].
//!
//! The mock sleeps with `tokio::time`, so under a paused clock
//! (`#[tokio::test(start_paused = true)]`, single-threaded runtime) every
//! latency is exact and a ten-second scenario runs in microseconds. It
//! records every request with the instant it arrived and tracks how many
//! calls are in flight — the numbers layer tests assert on.
//!
//! ```
//! use httpclient_core::testkit::{Behavior, MockDriver};
//! use httpclient_core::{Driver, DriverExt};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mock = MockDriver::new()
//!     .route("http://api/slow", Behavior::ok().after(Duration::from_secs(2)))
//!     .route("http://api/down", Behavior::refused());
//! mock.push(Behavior::status(503)); // the very next call, whatever its URL
//!
//! assert_eq!(mock.send("http://api/x").await.unwrap().status(), 503);
//! assert_eq!(mock.send("http://api/x").await.unwrap().status(), 200);
//! assert!(mock.send("http://api/down").await.unwrap_err().is_connect());
//! let start = tokio::time::Instant::now();
//! mock.send("http://api/slow").await.unwrap();
//! assert_eq!(start.elapsed(), Duration::from_secs(2));
//! assert_eq!(mock.calls().len(), 4);
//! # }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::time::Instant;

use crate::{ConnectKind, Driver, Error, Origin, Request, RequestOptions, Response, TimeoutPhase};

type ErrorFactory = Arc<dyn Fn() -> Error + Send + Sync>;
type Handler = Arc<dyn Fn(&Request, u64) -> Behavior + Send + Sync>;

#[derive(Clone)]
enum Outcome {
    Respond {
        status: StatusCode,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    Fail(ErrorFactory),
    Panic(String),
    Hang,
}

/// What the mock does for one call: wait `latency`, then respond, fail,
/// panic or hang forever. Built with the constructors below.
#[derive(Clone)]
pub struct Behavior {
    latency: Duration,
    outcome: Outcome,
}

impl fmt::Debug for Behavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.outcome {
            Outcome::Respond { status, .. } => format!("respond {status}"),
            Outcome::Fail(e) => format!("fail {}", e().kind_name()),
            Outcome::Panic(m) => format!("panic {m:?}"),
            Outcome::Hang => "hang".to_string(),
        };
        write!(f, "Behavior({what} after {:?})", self.latency)
    }
}

impl Behavior {
    /// `200 OK` with body `"ok"`, at once.
    pub fn ok() -> Self {
        Behavior::status(200).body("ok")
    }
    /// A response with this status and an empty body.
    pub fn status(status: u16) -> Self {
        Behavior {
            latency: Duration::ZERO,
            outcome: Outcome::Respond {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers: Vec::new(),
                body: Bytes::new(),
            },
        }
    }
    /// Fail with the error `make` builds (called once per call).
    pub fn fail(make: impl Fn() -> Error + Send + Sync + 'static) -> Self {
        Behavior {
            latency: Duration::ZERO,
            outcome: Outcome::Fail(Arc::new(make)),
        }
    }
    /// Fail with connection refused (nothing sent).
    pub fn refused() -> Self {
        Behavior::fail(|| Error::Connect {
            kind: ConnectKind::Refused,
            source: None,
        })
    }
    /// Fail with a reset before the response (maybe applied).
    pub fn reset() -> Self {
        Behavior::fail(|| Error::ResetBeforeResponse { source: None })
    }
    /// Fail with a reset in the middle of the body (applied).
    pub fn reset_mid_body() -> Self {
        Behavior::fail(|| Error::ResetMidBody { source: None })
    }
    /// Panic inside `execute` with this message.
    pub fn panic(message: impl Into<String>) -> Self {
        Behavior {
            latency: Duration::ZERO,
            outcome: Outcome::Panic(message.into()),
        }
    }
    /// Never complete (until the request's own timeout, if it has one, or
    /// until the future is dropped).
    pub fn hang() -> Self {
        Behavior {
            latency: Duration::ZERO,
            outcome: Outcome::Hang,
        }
    }
    /// Wait this long first.
    pub fn after(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    /// Set the response body (responses only).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Outcome::Respond { body: b, .. } = &mut self.outcome {
            *b = body.into();
        }
        self
    }
    /// Add a response header (responses only).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Outcome::Respond { headers, .. } = &mut self.outcome {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
}

/// One call the mock saw.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// 0-based order of arrival.
    pub index: u64,
    /// When the call reached the mock (tokio clock: exact under pause).
    pub at: Instant,
    /// The method.
    pub method: Method,
    /// The URI.
    pub uri: Uri,
    /// The origin.
    pub origin: Origin,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, if buffered.
    pub body: Option<Bytes>,
    /// The per-request options.
    pub options: RequestOptions,
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Behavior>,
    routes: Vec<(String, Behavior)>,
    default: Option<Behavior>,
    handler: Option<Handler>,
}

#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    calls: Mutex<Vec<RecordedCall>>,
    next_index: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    completed: AtomicU64,
    connections: Mutex<Option<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A scriptable driver for tests. Cheap to clone; clones share the script
/// and the records.
///
/// Which behavior a call gets, first match wins: the [`MockDriver::handler`]
/// if set; else the next [`MockDriver::push`]ed behavior; else the first
/// [`MockDriver::route`] whose URL prefix matches; else the default
/// ([`Behavior::ok`] unless [`MockDriver::default_behavior`] changed it).
///
/// Like a real driver it honours the request's per-attempt timeout: a call
/// slower than the timeout (or hanging) fails with
/// [`Error::Timeout`] at exactly the timeout.
#[derive(Clone, Default)]
pub struct MockDriver {
    shared: Arc<Shared>,
}

impl fmt::Debug for MockDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockDriver")
            .field("calls", &self.call_count())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

struct InFlight<'a>(&'a Shared);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MockDriver {
    /// A mock that answers `200 ok` at once.
    pub fn new() -> Self {
        MockDriver::default()
    }

    /// Answer every otherwise unmatched call with `behavior`.
    pub fn default_behavior(self, behavior: Behavior) -> Self {
        lock(&self.shared.script).default = Some(behavior);
        self
    }

    /// Answer calls whose full URL starts with `url_prefix`.
    pub fn route(self, url_prefix: impl Into<String>, behavior: Behavior) -> Self {
        lock(&self.shared.script)
            .routes
            .push((url_prefix.into(), behavior));
        self
    }

    /// Decide every call with a function of the request and its 0-based
    /// call index (overrides everything else). Good for property tests.
    pub fn handler(self, f: impl Fn(&Request, u64) -> Behavior + Send + Sync + 'static) -> Self {
        lock(&self.shared.script).handler = Some(Arc::new(f));
        self
    }

    /// Report this many connections from [`Driver::connections_opened`].
    pub fn with_connections_opened(self, n: Option<u64>) -> Self {
        *lock(&self.shared.connections) = n;
        self
    }

    /// Queue a behavior for the next unscripted call (FIFO).
    pub fn push(&self, behavior: Behavior) {
        lock(&self.shared.script).queue.push_back(behavior);
    }

    /// Every call seen so far, in arrival order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    /// Number of calls seen so far.
    pub fn call_count(&self) -> u64 {
        self.shared.next_index.load(Ordering::SeqCst)
    }

    /// Calls that returned (response or error; not dropped or panicked).
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// Calls in flight now (dropped futures count down at once).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most calls ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    fn pick(&self, request: &Request, index: u64) -> Behavior {
        let mut script = lock(&self.shared.script);
        if let Some(h) = script.handler.clone() {
            drop(script);
            return h(request, index);
        }
        if let Some(b) = script.queue.pop_front() {
            return b;
        }
        let url = request.uri().to_string();
        if let Some((_, b)) = script
            .routes
            .iter()
            .find(|(p, _)| url.starts_with(p.as_str()))
        {
            return b.clone();
        }
        script.default.clone().unwrap_or_else(Behavior::ok)
    }
}

#[async_trait]
impl Driver for MockDriver {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        let shared = &*self.shared;
        let index = shared.next_index.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        lock(&shared.calls).push(RecordedCall {
            index,
            at: now,
            method: request.method().clone(),
            uri: request.uri().clone(),
            origin: request.origin().clone(),
            headers: request.headers().clone(),
            body: request.body().as_bytes().cloned(),
            options: request.options().clone(),
        });
        let current = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(current, Ordering::SeqCst);
        let _guard = InFlight(shared);

        let behavior = self.pick(&request, index);
        let timeout = request.options().timeout;
        let outcome = async {
            tokio::time::sleep(behavior.latency).await;
            match behavior.outcome {
                Outcome::Respond {
                    status,
                    headers,
                    body,
                } => {
                    let mut resp = Response::new(status)
                        .with_body(body)
                        .with_url(request.uri().clone())
                        .with_elapsed(now.elapsed());
                    for (k, v) in &headers {
                        resp = resp.with_header(k, v);
                    }
                    Ok(resp)
                }
                Outcome::Fail(make) => Err(make()),
                Outcome::Panic(message) => panic!("{message}"),
                Outcome::Hang => std::future::pending().await,
            }
        };
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, outcome)
                .await
                .unwrap_or(Err(Error::Timeout {
                    phase: TimeoutPhase::Request,
                    after: Some(t),
                })),
            None => outcome.await,
        };
        shared.completed.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn connections_opened(&self) -> Option<u64> {
        *lock(&self.shared.connections)
    }
}

/// A driver that answers `200` at once without I/O: the baseline for
/// measuring a layer's own overhead.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDriver;

#[async_trait]
impl Driver for NoopDriver {
    async fn execute(&self, _request: Request) -> Result<Response, Error> {
        Ok(Response::new(StatusCode::OK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DriverExt;

    #[tokio::test(start_paused = true)]
    async fn latency_timeout_and_hang_are_exact_under_paused_clock() {
        let mock = MockDriver::new()
            .route(
                "http://h/slow",
                Behavior::ok().after(Duration::from_millis(300)),
            )
            .route("http://h/hang", Behavior::hang());
        let t0 = Instant::now();
        let err = mock
            .send(Request::get("http://h/slow").timeout(Duration::from_millis(100)))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::Request,
                ..
            }
        ));
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        let err = mock
            .send(Request::get("http://h/hang").timeout(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(t0.elapsed(), Duration::from_millis(5100));
        assert_eq!(mock.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_counts_concurrency_and_drops() {
        let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(1)));
        let futs: Vec<_> = (0..5).map(|_| mock.send("http://h/")).collect();
        let results = futures::future::join_all(futs).await;
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!(mock.max_in_flight(), 5);
        assert_eq!(mock.in_flight(), 0);

        let hung = MockDriver::new().default_behavior(Behavior::hang());
        let fut = hung.send("http://h/");
        let _ = tokio::time::timeout(Duration::from_secs(1), fut).await;
        assert_eq!(hung.in_flight(), 0, "dropping the future must count down");
        assert_eq!(hung.completed(), 0);
    }

    #[tokio::test]
    async fn handler_and_panic() {
        let mock = MockDriver::new().handler(|req, i| {
            if req.uri().path() == "/boom" {
                Behavior::panic("kaboom")
            } else {
                Behavior::status(200 + i as u16)
            }
        });
        assert_eq!(mock.send("http://h/a").await.unwrap().status(), 200);
        assert_eq!(mock.send("http://h/a").await.unwrap().status(), 201);
        let m2 = mock.clone();
        let joined = tokio::spawn(async move { m2.send("http://h/boom").await }).await;
        assert!(joined.unwrap_err().is_panic());
        assert_eq!(mock.in_flight(), 0);
        assert_eq!(mock.calls()[2].uri.path(), "/boom");
    }
}
