//! [`BatchExecutor`]: the worker limit, the shared state, the `Driver`
//! implementation and shutdown.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use httpclient_core::http::Method;
use httpclient_core::{
    ConfigError, Driver, Error, IntoRequest, Origin, Request, Response, async_trait,
};
use tokio::sync::{AcquireError, Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{BatchStream, Counts, IterInput, Mode};
use crate::options::BatchOptions;
use crate::result::{BatchItem, BatchResult, Outcome, StopReason};
use crate::stats::{BatchStats, Finish, LocalStats, StatsCore};

/// The layer name used in [`Error::Stopped`].
pub(crate) const LAYER: &str = "BatchExecutor";

/// Items `execute_batch` reserves room for up front, at most.
const PREALLOCATE_AT_MOST: usize = 1 << 16;

pub(crate) fn stopped() -> Error {
    Error::Stopped { layer: LAYER }
}

/// State shared by every batch, stream and single call of one executor
/// (and its clones). Not generic, so request futures can hold a plain
/// reference to it.
pub(crate) struct Shared {
    pub(crate) workers: usize,
    pub(crate) semaphore: Semaphore,
    pub(crate) stats: StatsCore,
    pub(crate) request_timeout: Option<Duration>,
    /// Set once by `shutdown`; checked after a request takes its in-flight
    /// slot (see [`Ticket::enter`]).
    shutting_down: AtomicBool,
    /// Notified when the last in-flight request ends during a shutdown.
    idle: Notify,
    /// Cancelled when a shutdown gives up waiting: every batch drops its
    /// in-flight requests. `aborted` mirrors it for a lock-free check.
    pub(crate) abort: CancellationToken,
    aborted: AtomicBool,
    /// Cancelled when a shutdown begins (a child of `abort`, so an abort
    /// fires it too): wakes batches that wait on their input source, which
    /// the closed semaphore alone would not reach.
    pub(crate) closing: CancellationToken,
    /// Callers queued for a worker permit right now. A batch keeps the
    /// permit of a finished request for its next one only while nobody
    /// waits, so sharing stays first come, first served.
    waiting: AtomicUsize,
}

impl Shared {
    /// Whether anyone waits for a permit besides the caller's own queued
    /// request (`own`: the caller has one in the queue).
    #[inline]
    pub(crate) fn has_waiters_besides(&self, own: bool) -> bool {
        self.waiting.load(Ordering::Relaxed) > usize::from(own)
    }

    /// Wait for one permit (the slow path), counted in `waiting`.
    pub(crate) async fn acquire_slow(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        self.semaphore.acquire().await
    }

    #[inline]
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            if self.stats.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A place in the in-flight gauge. Dropping it (the request finished, or
/// its future was dropped) lowers the gauge and wakes a waiting shutdown.
pub(crate) struct Ticket<'a> {
    shared: &'a Shared,
}

impl<'a> Ticket<'a> {
    /// Take an in-flight slot; `None` when the executor is shutting down.
    ///
    /// The gauge is raised *before* the shutdown flag is read, and shutdown
    /// sets the flag before it reads the gauge (both `SeqCst`), so either
    /// this request backs off or shutdown waits for it — never neither.
    #[inline]
    pub(crate) fn enter(shared: &'a Shared) -> Option<Self> {
        shared
            .stats
            .in_flight_gauge()
            .fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket { shared };
        if shared.is_shutting_down() {
            return None; // dropping `ticket` lowers the gauge again
        }
        Some(ticket)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        leave_gauge(self.shared, 1);
    }
}

/// Lower the in-flight gauge by `n`, waking a shutdown that waits for it
/// to reach zero.
fn leave_gauge(shared: &Shared, n: usize) {
    let prev = shared
        .stats
        .in_flight_gauge()
        .fetch_sub(n, Ordering::SeqCst);
    if prev == n && shared.is_shutting_down() {
        shared.idle.notify_waiters();
    }
}

/// The places in the in-flight gauge of a batch's finished requests, kept
/// (with their worker permits) for its next requests: a batch that hands
/// its slot straight to the next request then moves no shared counter for
/// it. A kept place still counts in the gauge, so a shutdown waits for it;
/// the batch gives them back whenever it gives back its kept permits —
/// before it waits, yields to a stream's consumer or stops — or hands one
/// to its next request once that request's input is taken from the
/// source: microseconds, unless the source blocks in `next()`.
pub(crate) struct SpareTickets<'a> {
    shared: &'a Shared,
    n: usize,
}

impl<'a> SpareTickets<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        SpareTickets { shared, n: 0 }
    }

    /// Keep a finished request's place.
    #[inline]
    pub(crate) fn keep(&mut self, ticket: Ticket<'a>) {
        // Its place stays in the gauge, now owned by `self.n`.
        std::mem::forget(ticket);
        self.n += 1;
    }

    /// A kept place for a new request, unless the executor is shutting
    /// down (then every kept place is given back). Like [`Ticket::enter`],
    /// the flag is read while the place is in the gauge.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Ticket<'a>> {
        if self.n == 0 {
            return None;
        }
        if self.shared.is_shutting_down() {
            self.release();
            return None;
        }
        self.n -= 1;
        Some(Ticket {
            shared: self.shared,
        })
    }

    /// Give every kept place back.
    pub(crate) fn release(&mut self) {
        if self.n > 0 {
            leave_gauge(self.shared, std::mem::take(&mut self.n));
        }
    }
}

impl Drop for SpareTickets<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>;

/// What a finished call hands back to its batch, including its worker
/// permit (the batch may reuse it for its next request).
pub(crate) struct Done<'a> {
    pub(crate) permit: Option<SemaphorePermit<'a>>,
    /// Its place in the in-flight gauge: the batch may keep it, with the
    /// permit, for its next request.
    pub(crate) ticket: Option<Ticket<'a>>,
    /// The item as it will be yielded (its `elapsed` is filled in by
    /// [`record_done`]); built in place so the response is not copied
    /// again on its way out.
    pub(crate) item: BatchItem,
    pub(crate) started: Instant,
    pub(crate) epoch: u16,
    /// It was answered at its first poll.
    pub(crate) instant: bool,
    pub(crate) trace: Option<Box<(Method, Origin)>>,
}

/// One driver call in flight: the driver's future, its worker permit, its
/// place in the in-flight gauge, and what the stats need. Polling catches panics; dropping it before it finished counts
/// the request as cancelled.
///
/// A request is counted as started when it is handed over (a batch counts
/// it locally and publishes it with its responses), but a driver future
/// does nothing before its first poll, so a call dropped unpolled provably
/// sent nothing: it is taken back out of `requests` and reported as not
/// started. Its latency runs from that first poll (the clock is read
/// then), so time the call spends handed over but unpolled — a stream's
/// consumer holding an item, the batch's task letting others run — is not
/// counted.
pub(crate) struct Call<'a> {
    fut: CallFuture<'a>,
    index: usize,
    /// The stats window it was counted in.
    epoch: u16,
    /// When it was first polled.
    begun: Option<Instant>,
    trace: Option<Box<(Method, Origin)>>,
    ticket: Option<Ticket<'a>>,
    permit: Option<SemaphorePermit<'a>>,
}

impl<'a> Call<'a> {
    /// Hand the request in `slot` to the driver. The request is taken out of
    /// the slot where the caller built it: moved once, into the driver.
    /// (An error in the slot is reported as the call's outcome.)
    #[inline]
    pub(crate) fn start<D: Driver>(
        driver: &'a D,
        ticket: Ticket<'a>,
        permit: SemaphorePermit<'a>,
        index: usize,
        epoch: u16,
        slot: &mut Result<Request, Error>,
    ) -> Self {
        let trace = match slot {
            Ok(request) if tracing::enabled!(target: "httpclient_batch", tracing::Level::DEBUG) => {
                Some(Box::new((
                    request.method().clone(),
                    request.origin().clone(),
                )))
            }
            _ => None,
        };
        // `execute` is usually an `async` body that runs only when polled,
        // but a hand-written driver may do work (and panic) right here.
        // The closure borrows the slot instead of capturing the request:
        // `catch_unwind` moves its closure around, and a capture would copy
        // the whole request each time.
        let fut: CallFuture<'a> = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            match std::mem::replace(slot, Err(Error::Cancelled)) {
                Ok(request) => Ok(driver.execute(request)),
                Err(e) => Err(e),
            }
        })) {
            Ok(Ok(fut)) => fut,
            Ok(Err(e)) => Box::pin(std::future::ready(Err(e))),
            Err(payload) => Box::pin(std::future::ready(Err(Error::from_panic(payload)))),
        };
        Call {
            fut,
            index,
            epoch,
            begun: None,
            trace,
            ticket: Some(ticket),
            permit: Some(permit),
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The method and origin kept for the trace (when debug events are on).
    pub(crate) fn take_trace(&mut self) -> Option<Box<(Method, Origin)>> {
        self.trace.take()
    }

    /// Drop the request while it is in flight, counting it as an error of
    /// `kind`. Returns how long it ran, or `None` when it was never polled
    /// (nothing was sent: it is counted as not started, and the caller
    /// reports it so).
    pub(crate) fn abandon(mut self, kind: &'static str) -> Option<Duration> {
        let now = Instant::now();
        let shared = self.ticket.as_ref()?.shared;
        let ran = match self.begun {
            Some(started) => {
                shared
                    .stats
                    .record_finish(self.epoch, started, now, Finish::Cancelled(kind));
                Some(now.saturating_duration_since(started))
            }
            None => {
                shared.stats.record_unsent(self.epoch);
                None
            }
        };
        // The request (and its connection) goes before its place in the
        // gauge (see `drop_request`).
        self.drop_request();
        self.ticket = None;
        ran
    }
}

impl<'a> Future for Call<'a> {
    type Output = Done<'a>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done<'a>> {
        let this = &mut *self;
        let first_poll = this.begun.is_none();
        let started = match this.begun {
            Some(started) => started,
            None => *this.begun.insert(Instant::now()),
        };
        // The result is written straight into the outcome from inside
        // `catch_unwind` (whose own return value is then just a flag), so
        // the response is not copied through its frames.
        let mut outcome = Outcome::NotStarted(StopReason::Cancelled);
        let fut = &mut this.fut;
        match std::panic::catch_unwind(AssertUnwindSafe(|| match fut.as_mut().poll(cx) {
            Poll::Pending => false,
            Poll::Ready(Ok(r)) => {
                outcome = Outcome::Response(r);
                true
            }
            Poll::Ready(Err(e)) => {
                outcome = Outcome::Error(e);
                true
            }
        })) {
            Ok(false) => return Poll::Pending,
            Ok(true) => {}
            Err(payload) => outcome = Outcome::Error(Error::from_panic(payload)),
        }
        Poll::Ready(Done {
            permit: this.permit.take(),
            ticket: this.ticket.take(),
            item: BatchItem {
                index: this.index,
                outcome,
                elapsed: Duration::ZERO,
            },
            started,
            epoch: this.epoch,
            instant: first_poll,
            trace: this.trace.take(),
        })
    }
}

impl Call<'_> {
    /// Drop the driver's future (and its connection) now, before the
    /// ticket: a shutdown waiting for the in-flight gauge must not return
    /// while the request is still being torn down on another thread. (The
    /// placeholder is a zero-sized future: no allocation.)
    fn drop_request(&mut self) {
        drop(std::mem::replace(
            &mut self.fut,
            Box::pin(std::future::pending()),
        ));
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        // Dropped in flight by whoever owned the batch or the call.
        let Some(shared) = self.ticket.as_ref().map(|t| t.shared) else {
            return;
        };
        // Counted first, so that a driver future whose destructor panics is
        // counted all the same.
        match self.begun {
            Some(started) => shared.stats.record_finish(
                self.epoch,
                started,
                Instant::now(),
                Finish::Cancelled("cancelled"),
            ),
            // Never polled: the driver did nothing, nothing was sent.
            None => shared.stats.record_unsent(self.epoch),
        }
        // Then the request (and its connection), then its place in the
        // gauge (see `drop_request`).
        self.drop_request();
        self.ticket = None;
    }
}

/// Record a finished call in the stats and the trace, and set its item's
/// `elapsed`. Responses go through `local` when the caller has one (a
/// batch), errors are published at once.
#[inline]
pub(crate) fn record_done(
    shared: &Shared,
    local: Option<&mut LocalStats<'_>>,
    done: &mut Done<'_>,
    now: Instant,
) {
    let latency = now.saturating_duration_since(done.started);
    done.item.elapsed = latency;
    match &done.item.outcome {
        Outcome::Response(resp) => match local {
            Some(local) => local.response(done.epoch, done.started, now, latency, resp.status()),
            None => shared.stats.record_finish(
                done.epoch,
                done.started,
                now,
                Finish::Response(resp.status()),
            ),
        },
        Outcome::Error(e) => {
            // Errors are published at once (after the batch's starts).
            match local {
                Some(local) => local.error(done.epoch, done.started, now, e),
                None => shared
                    .stats
                    .record_finish(done.epoch, done.started, now, Finish::Error(e)),
            }
            trace_failure(done.item.index, done.trace.as_deref(), e);
        }
        Outcome::NotStarted(_) => {}
    }
}

pub(crate) fn trace_failure(index: usize, trace: Option<&(Method, Origin)>, e: &Error) {
    if matches!(e, Error::Panicked { .. }) {
        tracing::warn!(target: "httpclient_batch", index, kind = e.kind_name(), error = %e, "driver panicked; the panic was caught");
    } else if let Some((method, origin)) = trace {
        tracing::debug!(target: "httpclient_batch", index, %method, %origin, kind = e.kind_name(), error = %e, "request failed");
    } else {
        tracing::debug!(target: "httpclient_batch", index, kind = e.kind_name(), error = %e, "request failed");
    }
}

pub(crate) struct Inner<D> {
    pub(crate) shared: Shared,
    pub(crate) driver: D,
}

/// How long [`BatchExecutor::shutdown_timeout`], once its grace period is
/// over and it has cancelled the requests in flight, waits for their
/// batches to end them before it returns anyway. A batch being polled ends
/// them within microseconds; one that nobody polls (its owner is busy
/// elsewhere, or is the very task awaiting the shutdown) ends them when it
/// is next polled, or drops them when it is dropped.
pub const ABORT_SETTLE: Duration = Duration::from_millis(100);

/// How [`BatchExecutor::shutdown_with`] or
/// [`BatchExecutor::shutdown_timeout`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every in-flight request finished on its own.
    Drained,
    /// The token fired (or the grace period ended) first: this many
    /// requests were still in flight and were cancelled (each ends with
    /// [`Error::Cancelled`] in its batch, or as not started if it had never
    /// been polled).
    Aborted {
        /// Requests in flight when the shutdown gave up waiting.
        cancelled: usize,
        /// Of those, how many their batches had not yet ended when the
        /// shutdown returned: 0 unless a batch holding some was not being
        /// polled (see [`ABORT_SETTLE`]).
        unfinished: usize,
    },
}

/// Runs many requests through a [`Driver`] with at most `workers` in flight
/// at once — across every batch, stream and single call made through this
/// executor and its clones.
///
/// * [`BatchExecutor::execute_batch`]: inputs in, one [`BatchItem`] per
///   input out, in input order.
/// * [`BatchExecutor::execute_stream`] /
///   [`BatchExecutor::execute_stream_ordered`]: for jobs too big to hold,
///   results as they finish (or in order), input pulled only as capacity
///   frees.
/// * It is a [`Driver`] itself: a single `execute` takes a worker slot and
///   is counted in the stats like a batch item, so executors chain.
///
/// Cloning is cheap and clones share the worker limit, the stats and the
/// shutdown state.
///
/// ```
/// use httpclient_batch::BatchExecutor;
/// use httpclient_core::testkit::MockDriver;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let exec = BatchExecutor::new(MockDriver::new(), 16)?;
/// let result = exec
///     .execute_batch((0..100).map(|i| format!("http://api.test/items/{i}")))
///     .await;
/// assert_eq!(result.len(), 100);
/// assert_eq!(result.succeeded, 100);
/// for (index, response) in result.successes() {
///     assert_eq!(response.status(), 200, "item {index}");
/// }
/// assert_eq!(exec.stats().requests, 100);
/// # Ok(()) }
/// ```
pub struct BatchExecutor<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for BatchExecutor<D> {
    fn clone(&self) -> Self {
        BatchExecutor {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<D> std::fmt::Debug for BatchExecutor<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.inner.shared;
        f.debug_struct("BatchExecutor")
            .field("workers", &s.workers)
            .field("in_flight", &s.stats.in_flight())
            .field("shutting_down", &s.is_shutting_down())
            .finish()
    }
}

/// Builds a [`BatchExecutor`] with non-default settings.
#[derive(Debug)]
#[must_use = "call `build()` to get the executor"]
pub struct BatchExecutorBuilder<D> {
    driver: D,
    workers: usize,
    request_timeout: Option<Duration>,
    error: Option<ConfigError>,
}

impl<D: Driver> BatchExecutorBuilder<D> {
    /// Maximum requests in flight at once, shared by every batch (default
    /// 64). Zero is a [`ConfigError`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Per-request timeout for requests that have none of their own; a
    /// batch's [`crate::BatchOptionsBuilder::request_timeout`] overrides it.
    /// Zero is a [`ConfigError`]. Default: none (the driver's own default
    /// applies).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        if timeout.is_zero() {
            self.error.get_or_insert(ConfigError::new(
                "request_timeout",
                "must be greater than zero",
            ));
        } else {
            self.request_timeout = Some(timeout);
        }
        self
    }

    /// Finish.
    ///
    /// # Errors
    /// [`ConfigError`] for zero workers, more than
    /// [`tokio::sync::Semaphore::MAX_PERMITS`] workers, or a zero timeout.
    pub fn build(self) -> Result<BatchExecutor<D>, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.workers == 0 {
            return Err(ConfigError::new("workers", "must be at least 1"));
        }
        if self.workers > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "workers",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        let abort = CancellationToken::new();
        let closing = abort.child_token();
        Ok(BatchExecutor {
            inner: Arc::new(Inner {
                shared: Shared {
                    workers: self.workers,
                    semaphore: Semaphore::new(self.workers),
                    stats: StatsCore::new(),
                    request_timeout: self.request_timeout,
                    shutting_down: AtomicBool::new(false),
                    idle: Notify::new(),
                    abort,
                    aborted: AtomicBool::new(false),
                    closing,
                    waiting: AtomicUsize::new(0),
                },
                driver: self.driver,
            }),
        })
    }
}

impl<D: Driver> BatchExecutor<D> {
    /// An executor running at most `workers` requests at once.
    ///
    /// # Errors
    /// [`ConfigError`] when `workers` is 0 (or absurdly large).
    pub fn new(driver: D, workers: usize) -> Result<Self, ConfigError> {
        Self::builder(driver).workers(workers).build()
    }

    /// Start building an executor (workers default to 64).
    pub fn builder(driver: D) -> BatchExecutorBuilder<D> {
        BatchExecutorBuilder {
            driver,
            workers: 64,
            request_timeout: None,
            error: None,
        }
    }

    /// The worker limit.
    pub fn workers(&self) -> usize {
        self.inner.shared.workers
    }

    /// The wrapped driver.
    pub fn driver(&self) -> &D {
        &self.inner.driver
    }

    /// Requests in flight now, across every batch and call (see
    /// [`BatchStats::in_flight`] for the instant a finished request may
    /// still count).
    pub fn in_flight(&self) -> usize {
        self.inner.shared.stats.in_flight()
    }

    /// Run every input and return one item per input, in input order.
    ///
    /// Inputs are anything [`IntoRequest`]: requests, builders, URL strings,
    /// or `Result<Request, Error>` — an input that fails to build gets its
    /// [`Error::InvalidRequest`] in its own slot while the rest run. Inputs
    /// are pulled lazily, one as each worker slot frees, and no task is
    /// spawned: the requests run inside this future, so dropping it drops
    /// them (and their connections). An empty batch returns at once.
    ///
    /// The input must be finite: the result holds an item per input. For
    /// an endless or very long source use [`BatchExecutor::execute_stream`]
    /// or [`BatchExecutor::execute_iter`], which hold only what is in
    /// flight.
    pub async fn execute_batch<I>(&self, inputs: I) -> BatchResult
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        self.execute_batch_with(inputs, BatchOptions::default())
            .await
    }

    /// [`BatchExecutor::execute_batch`] with cancellation, a deadline,
    /// fail-fast or a request timeout. When the batch is stopped, requests in
    /// flight end with [`Error::Cancelled`] / [`Error::DeadlineExceeded`]
    /// (fail-fast lets them finish unless told otherwise) and every input not
    /// yet started is reported as [`Outcome::NotStarted`]; the result comes
    /// back promptly.
    ///
    /// Reporting the inputs not started means counting them: the rest of
    /// the iterator is drained (inputs not built). An iterator that says it
    /// is endless (`size_hint().0 == usize::MAX`, as `repeat`, `cycle` and
    /// `(0..)` do) is not drained: the result then ends with the inputs
    /// that were pulled. An endless iterator that does not say so (say
    /// `iter::from_fn`) would be drained forever after a stop: use a stream
    /// for those.
    pub async fn execute_batch_with<I>(&self, inputs: I, options: BatchOptions) -> BatchResult
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        let iter = inputs.into_iter();
        let (lower, upper) = iter.size_hint();
        // In input order with an unbounded window: the whole result is held
        // anyway, and items then arrive ready to append.
        let stream = BatchStream::new(
            self,
            IterInput::new(iter),
            options,
            Mode::Ordered(usize::MAX),
            upper,
        );
        let mut stream = pin!(stream);
        // `lower` is only a hint (`usize::MAX` for an endless iterator):
        // reserve up to a bound and let the vector grow past it.
        let mut items: Vec<BatchItem> = Vec::with_capacity(lower.min(PREALLOCATE_AT_MOST));
        std::future::poll_fn(|cx| stream.as_mut().poll_collect(cx, &mut items)).await;
        let parts = stream.as_mut().finish_batch();
        debug_assert_eq!(
            items.len(),
            parts.pulled,
            "every pulled input yields one item"
        );
        if let Some(reason) = parts.stopped {
            let start = items.len();
            items.extend((start..start + parts.unstarted).map(|index| BatchItem {
                index,
                outcome: Outcome::NotStarted(reason),
                elapsed: Duration::ZERO,
            }));
        }
        // Counted by the engine as the items were made (a pass over 20,000
        // items after the fact reads megabytes back into the cache).
        let Counts {
            succeeded,
            failed,
            not_started,
        } = parts.counts;
        let not_started = not_started + parts.unstarted;
        debug_assert_eq!(
            (succeeded, failed, not_started),
            (
                items.iter().filter(|i| i.outcome.is_response()).count(),
                items.iter().filter(|i| i.outcome.is_error()).count(),
                items.iter().filter(|i| i.outcome.is_not_started()).count(),
            ),
            "the engine counted every item"
        );
        let end = Instant::now();
        BatchResult {
            items,
            succeeded,
            failed,
            not_started,
            stopped: parts.stopped,
            start: parts.start,
            end,
            duration: end.saturating_duration_since(parts.start),
        }
    }

    /// Run a (possibly endless) stream of inputs and yield each result as it
    /// finishes, in completion order. See [`BatchStream`] for the rules.
    pub fn execute_stream<S>(&self, inputs: S) -> BatchStream<'_, D, S>
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        self.execute_stream_with(inputs, BatchOptions::default())
    }

    /// [`BatchExecutor::execute_stream`] with options.
    pub fn execute_stream_with<S>(&self, inputs: S, options: BatchOptions) -> BatchStream<'_, D, S>
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        let upper = inputs.size_hint().1;
        BatchStream::new(self, inputs, options, Mode::Unordered, upper)
    }

    /// [`BatchExecutor::execute_stream`] over an iterator.
    pub fn execute_iter<I>(&self, inputs: I) -> BatchStream<'_, D, IterInput<I::IntoIter>>
    where
        I: IntoIterator,
        I::Item: IntoRequest,
    {
        self.execute_stream(IterInput::new(inputs.into_iter()))
    }

    /// Like [`BatchExecutor::execute_stream`], but results come out in input
    /// order, with at most `window` inputs between the oldest unfinished one
    /// and the newest started.
    ///
    /// **Head-of-line effect:** while the oldest request is unfinished, at
    /// most `window - 1` later results wait behind it and no input beyond the
    /// window is started — one slow request holds back up to `window`
    /// finished results and stalls intake, so throughput drops to what fits
    /// in the window. Memory stays `O(window)`. Give requests a timeout to
    /// bound the stall; use the unordered stream when order does not matter.
    ///
    /// # Errors
    /// [`ConfigError`] when `window` is 0.
    pub fn execute_stream_ordered<S>(
        &self,
        inputs: S,
        window: usize,
    ) -> Result<BatchStream<'_, D, S>, ConfigError>
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        self.execute_stream_ordered_with(inputs, window, BatchOptions::default())
    }

    /// [`BatchExecutor::execute_stream_ordered`] with options.
    ///
    /// # Errors
    /// [`ConfigError`] when `window` is 0.
    pub fn execute_stream_ordered_with<S>(
        &self,
        inputs: S,
        window: usize,
        options: BatchOptions,
    ) -> Result<BatchStream<'_, D, S>, ConfigError>
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        if window == 0 {
            return Err(ConfigError::new("window", "must be at least 1"));
        }
        let upper = inputs.size_hint().1;
        Ok(BatchStream::new(
            self,
            inputs,
            options,
            Mode::Ordered(window),
            upper,
        ))
    }

    /// A snapshot of the statistics (see [`crate::stats`] for definitions).
    pub fn stats(&self) -> BatchStats {
        self.inner.shared.stats.snapshot()
    }

    /// Open a new statistics window: counters and the latency histogram
    /// restart from zero; requests in flight now are not counted in the new
    /// window when they finish; the in-flight gauge is unaffected.
    pub fn reset_stats(&self) {
        self.inner.shared.stats.reset();
    }

    /// Whether [`BatchExecutor::shutdown`] has been called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shared.is_shutting_down()
    }

    /// Stop accepting work and wait for the requests in flight to finish.
    ///
    /// From the moment it is called: new batches report every input as
    /// [`Outcome::NotStarted`]`(`[`crate::StopReason::Shutdown`]`)`, running batches
    /// and streams stop taking inputs (the rest are not started) while their
    /// in-flight requests finish normally, and `execute` returns
    /// [`Error::Stopped`]. It returns once no request is in flight. Requests
    /// run inside their callers' futures, so a batch whose future is neither
    /// polled nor dropped keeps its requests "in flight"; no task of this
    /// crate is ever left running. Calling it again waits again.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.inner.shared.wait_idle().await;
    }

    /// Like [`BatchExecutor::shutdown`], but when `cancel` fires before the
    /// requests in flight have finished, they are cancelled: each ends with
    /// [`Error::Cancelled`] in its batch (its connection is dropped), and
    /// this returns once their futures are gone. Like `shutdown`, it needs
    /// the batches holding them to be polled (or dropped): if the caller
    /// may hold one itself, use [`BatchExecutor::shutdown_timeout`], whose
    /// wait is bounded.
    pub async fn shutdown_with(&self, cancel: CancellationToken) -> ShutdownOutcome {
        self.shutdown_until(cancel.cancelled(), std::future::pending())
            .await
    }

    /// [`BatchExecutor::shutdown_with`] a grace period, and bounded: once
    /// the grace period is over and the requests in flight are cancelled, it
    /// waits at most [`ABORT_SETTLE`] for their batches to end them, then
    /// returns anyway ([`ShutdownOutcome::Aborted`] says how many were left
    /// to a batch that was not being polled). Uses tokio's clock: needs a
    /// runtime with time enabled.
    pub async fn shutdown_timeout(&self, grace: Duration) -> ShutdownOutcome {
        self.shutdown_until(
            tokio::time::sleep(grace),
            // Measured from now, like the grace period: it ends
            // `ABORT_SETTLE` after that (tokio clamps a far-off deadline).
            tokio::time::sleep(grace.saturating_add(ABORT_SETTLE)),
        )
        .await
    }

    async fn shutdown_until(
        &self,
        give_up: impl Future<Output = ()>,
        settle: impl Future<Output = ()>,
    ) -> ShutdownOutcome {
        self.begin_shutdown();
        let shared = &self.inner.shared;
        {
            let idle = pin!(shared.wait_idle());
            let give_up = pin!(give_up);
            if let futures_util::future::Either::Left(_) =
                futures_util::future::select(idle, give_up).await
            {
                return ShutdownOutcome::Drained;
            }
        }
        let cancelled = shared.stats.in_flight();
        if cancelled == 0 {
            return ShutdownOutcome::Drained;
        }
        tracing::debug!(target: "httpclient_batch", cancelled, "shutdown: cancelling requests in flight");
        shared.aborted.store(true, Ordering::Release);
        shared.abort.cancel();
        // Batches being polled end their requests as soon as they run; one
        // that nobody polls would keep the gauge up until it is.
        let idle = pin!(shared.wait_idle());
        let settle = pin!(settle);
        futures_util::future::select(idle, settle).await;
        let unfinished = shared.stats.in_flight();
        if unfinished > 0 {
            tracing::debug!(target: "httpclient_batch", unfinished, "shutdown: returning while batches not being polled hold cancelled requests");
        }
        ShutdownOutcome::Aborted {
            cancelled,
            unfinished,
        }
    }

    fn begin_shutdown(&self) {
        let shared = &self.inner.shared;
        if !shared.shutting_down.swap(true, Ordering::SeqCst) {
            tracing::debug!(target: "httpclient_batch", in_flight = shared.stats.in_flight(), "shutdown: no new work accepted");
        }
        // Wakes every batch waiting for a worker slot or for its input:
        // they stop with `StopReason::Shutdown`.
        shared.semaphore.close();
        shared.closing.cancel();
    }

    pub(crate) fn inner(&self) -> &Inner<D> {
        &self.inner
    }
}

#[async_trait]
impl<D: Driver> Driver for BatchExecutor<D> {
    /// One request through the shared worker limit, counted in the stats;
    /// [`Error::Stopped`] after shutdown, [`Error::Cancelled`] when an
    /// aborted shutdown cancels it, [`Error::Panicked`] when the driver
    /// panics.
    async fn execute(&self, mut request: Request) -> Result<Response, Error> {
        let inner = &*self.inner;
        let shared = &inner.shared;
        if shared.is_shutting_down() {
            shared.stats.record_not_started(1);
            return Err(stopped());
        }
        let permit = match shared.semaphore.try_acquire() {
            Ok(p) => p,
            Err(_) => match shared.acquire_slow().await {
                Ok(p) => p,
                Err(_closed) => {
                    shared.stats.record_not_started(1);
                    return Err(stopped());
                }
            },
        };
        let Some(ticket) = Ticket::enter(shared) else {
            shared.stats.record_not_started(1);
            return Err(stopped());
        };
        if request.options().timeout.is_none() {
            request.options_mut().timeout = shared.request_timeout;
        }
        // Counted at once: the call is polled in this same poll.
        let epoch = shared.stats.count_start();
        let mut call = Call::start(&inner.driver, ticket, permit, 0, epoch, &mut Ok(request));
        let mut abort = pin!(shared.abort.cancelled());
        let done = std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = Pin::new(&mut call).poll(cx) {
                return Poll::Ready(Some(done));
            }
            if abort.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match done {
            Some(mut done) => {
                record_done(shared, None, &mut done, Instant::now());
                match done.item.outcome {
                    Outcome::Response(r) => Ok(r),
                    Outcome::Error(e) => Err(e),
                    // A call always ends with a response or an error.
                    Outcome::NotStarted(_) => Err(stopped()),
                }
            }
            None => match (call.take_trace(), call.abandon("cancelled")) {
                (trace, Some(_)) => {
                    let e = Error::Cancelled;
                    trace_failure(0, trace.as_deref(), &e);
                    Err(e)
                }
                // Aborted before its first poll: nothing was sent (and
                // `abandon` counted it so).
                (_, None) => Err(stopped()),
            },
        }
    }

    fn connections_opened(&self) -> Option<u64> {
        self.inner.driver.connections_opened()
    }
}
