//! The one engine behind batches and streams.
//!
//! # Why no task per request
//!
//! Requests run as futures inside the caller's future (a
//! `FuturesUnordered` owned by the batch), not as spawned tasks. So:
//!
//! * nothing can outlive the batch: dropping the batch future or the stream
//!   drops every request in it, which closes their connections;
//! * an empty batch spawns nothing and returns at once;
//! * inputs are pulled one at a time, only when a worker slot is free, so a
//!   million-input job holds `O(workers)` requests in memory;
//! * the per-request cost is one driver future and one worker permit —
//!   close to a bare `buffered(C)` stream.
//!
//! The price, shared with `buffered`/`buffer_unordered`: requests make
//! progress only while the batch future or the stream is being polled. A
//! stream consumer that awaits slow work between items stalls the requests
//! in flight (their own timeouts keep running). Keep per-item work short, or
//! hand items to another task through a channel.
//!
//! # Worker slots
//!
//! A request holds a permit of the executor's semaphore from just before it
//! is handed to the driver until it finishes or is dropped. The semaphore
//! is fair (FIFO), so concurrent batches on one executor share the limit
//! instead of multiplying it. A batch takes an input from its source only
//! with a permit in hand, so nothing is pulled that cannot start at once.
//! When a request finishes and nobody else is queued for a permit, the
//! batch keeps that permit — and the request's place in the in-flight
//! gauge — for its next request (no trip through the semaphore, no shared
//! counter touched); it hands kept permits back as soon as it has to wait
//! or lets other tasks run, stops, or someone queues — and a stream also
//! whenever it yields an item. `execute_batch` has the engine push its
//! in-order results into the result vector itself
//! ([`BatchStream::poll_collect`]) rather than return them one by one. A
//! stream takes the next input (and a permit for it) only when polled
//! again after yielding, so a consumer
//! holding an item holds no slot beyond the requests already running. An
//! invalid input never reaches the driver; its permit goes to the next
//! input.

//!
//! # Refill per wake-up
//!
//! Freed slots are not refilled one by one as each result comes out, but
//! once per pass: the engine takes every result that is ready, then —
//! when the requests in flight have nothing more to give — starts new
//! requests for all the slots freed meanwhile, and polls them. Nothing
//! waits longer (the refill happens in the same wake-up), and a driver that
//! hands requests to a thread of its own (isahc's agent) gets them in a
//! burst instead of one wake-up of that thread per request: `batch/isahc/c64`
//! went from 0.90–0.95 to 0.99–1.02 of plain isahc `buffered(64)`. A request
//! answered at its very first poll (no I/O: a cache, a no-op driver) is
//! replaced at once by `execute_batch` instead: a burst gains it nothing,
//! and freeing 64 requests' memory before allocating the next 64 overflows
//! the allocator's per-thread cache (`batch/noop` fell from 0.72 to 0.63).
//! A result that finished after the pass's refill and is kept for later
//! (an ordered stream, behind a slow head) earns the pass one more refill:
//! nothing else might wake the stream to reuse its slot.

use std::collections::VecDeque;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use httpclient_core::{Driver, Error, IntoRequest, Request};
use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, SemaphorePermit, TryAcquireError};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{WaitForCancellationFuture, WaitForCancellationFutureOwned};
use tracing::Span;

use crate::executor::{
    BatchExecutor, Call, Done, Inner, SpareTickets, Ticket, record_done, trace_failure,
};
use crate::options::{BatchOptions, Deadline};
use crate::result::{BatchItem, Outcome, StopReason};
use crate::stats::LocalStats;

/// Result order of a stream.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    Unordered,
    Ordered(usize),
}

/// Where finished items wait to be yielded.
enum Sink {
    Unordered(VecDeque<BatchItem>),
    Ordered {
        /// Index of `buf[0]`: the oldest input not yet yielded.
        head: usize,
        window: usize,
        buf: VecDeque<Option<BatchItem>>,
    },
}

impl Sink {
    fn new(mode: Mode) -> Self {
        match mode {
            Mode::Unordered => Sink::Unordered(VecDeque::new()),
            Mode::Ordered(window) => Sink::Ordered {
                head: 0,
                window,
                buf: VecDeque::new(),
            },
        }
    }

    /// Whether input number `pulled` may be taken now.
    #[inline]
    fn can_pull(&self, pulled: usize) -> bool {
        match self {
            Sink::Unordered(_) => true,
            Sink::Ordered { head, window, .. } => pulled < head.saturating_add(*window),
        }
    }

    /// Make room for input `index` (ordered mode keeps a slot per input).
    #[inline]
    fn reserve(&mut self, index: usize) {
        if let Sink::Ordered { head, buf, .. } = self {
            debug_assert_eq!(index, *head + buf.len());
            buf.push_back(None);
        }
    }

    fn put(&mut self, item: BatchItem) {
        match self {
            Sink::Unordered(q) => q.push_back(item),
            Sink::Ordered { head, buf, .. } => {
                let at = item.index - *head;
                buf[at] = Some(item);
            }
        }
    }

    /// Whether the item for input `index` is the next to yield with
    /// nothing waiting before it (so it can skip the buffer).
    #[inline]
    fn is_next(&self, index: usize) -> bool {
        match self {
            Sink::Unordered(q) => q.is_empty(),
            Sink::Ordered { head, .. } => index == *head,
        }
    }

    /// The next item is being yielded directly: free its slot.
    #[inline]
    fn skip_next(&mut self) {
        if let Sink::Ordered { head, buf, .. } = self {
            debug_assert!(buf.front().is_some_and(Option::is_none));
            buf.pop_front();
            *head += 1;
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<BatchItem> {
        match self {
            Sink::Unordered(q) => q.pop_front(),
            Sink::Ordered { head, buf, .. } => {
                if buf.front().is_some_and(Option::is_some) {
                    *head += 1;
                    buf.pop_front().flatten()
                } else {
                    None
                }
            }
        }
    }

    #[inline]
    fn has_ready(&self) -> bool {
        match self {
            Sink::Unordered(q) => !q.is_empty(),
            Sink::Ordered { buf, .. } => buf.front().is_some_and(Option::is_some),
        }
    }
}

/// A stream that has been ready this many times in a row returns
/// `Pending` once (waking itself at once), so a driver that never waits
/// cannot starve the other tasks of a single-threaded executor. Rare enough
/// to cost nothing measurable; tokio's own resources do the same with
/// their cooperative budget.
const YIELD_EVERY: u32 = 256;

type AcquireFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SemaphorePermit<'a>, AcquireError>> + Send + 'a>>;

/// Everything but the input: unpinned, so it can be borrowed freely.
struct Core<'a, D> {
    inner: &'a Inner<D>,
    request_timeout: Option<Duration>,
    options: BatchOptions,
    calls: FuturesUnordered<Call<'a>>,
    sink: Sink,
    /// Permits of finished requests kept for the next ones (merged into
    /// one), only while nobody else waits for a permit and only until this
    /// batch next waits.
    spare: Option<SemaphorePermit<'a>>,
    /// The finished requests' places in the in-flight gauge, kept with
    /// their permits (and given back with them).
    spare_tickets: SpareTickets<'a>,
    acquiring: Option<AcquireFuture<'a>>,
    pulled: usize,
    input_done: bool,
    stop: Option<StopReason>,
    start: Option<Instant>,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    cancel_wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    closing_wait: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
    abort_wait: Option<Pin<Box<WaitForCancellationFuture<'a>>>>,
    yielded: Counts,
    /// This batch's requests and responses not yet published to the
    /// executor's stats.
    local: LocalStats<'a>,
    /// Loop iterations, to space out the token checks.
    ticks: u32,
    /// Items yielded since this stream last returned `Pending`.
    ready_streak: u32,
    /// It returned `Pending` last time: signals are checked on re-entry.
    resumed: bool,
    finished: bool,
}

impl<D> Drop for Core<'_, D> {
    fn drop(&mut self) {
        // The batch's counted starts go out before the calls still in
        // flight are dropped and counted as cancelled (or not started).
        self.local.publish();
    }
}

/// The items produced so far, by kind.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) not_started: usize,
}

pin_project! {
    /// The results of [`BatchExecutor::execute_stream`] and friends, as
    /// they finish (or in input order for the ordered variant).
    ///
    /// * Inputs are pulled from the source only when a worker slot is free
    ///   (and, when ordered, when the input fits in the reorder window), so
    ///   memory stays `O(workers + window)` however long the source is.
    /// * Every input pulled gets exactly one [`BatchItem`], whose `index` is
    ///   its position in the source.
    /// * When the stream is stopped (cancellation token, deadline,
    ///   fail-fast, executor shutdown) it stops pulling: requests in flight
    ///   are reported (as errors when they were cancelled), then the stream
    ///   ends. Inputs never pulled stay in the source — they are *not*
    ///   reported, so an endless or channel-fed source cannot keep a stopped
    ///   stream alive. [`BatchStream::pulled`] says how many were taken. An
    ///   input is taken only once a worker slot is in hand and its request
    ///   is sent at once, so an input pulled but not sent is rare: one
    ///   handed to the driver in the same poll that yielded an earlier
    ///   result (its future not yet polled) when the stream is then
    ///   stopped, or one that meets a shutdown in that instant. It is
    ///   reported as [`Outcome::NotStarted`] — provably nothing was sent.
    /// * Requests make progress only while the stream is polled (see the
    ///   [crate docs](crate#no-task-per-request)); dropping it drops them.
    ///
    /// Deadlines need a tokio runtime with time enabled; everything else
    /// works under any executor the driver works under.
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchStream<'a, D, S> {
        core: Core<'a, D>,
        span: Span,
        #[pin]
        input: S,
    }
}

pub(crate) struct BatchEnd {
    pub(crate) stopped: Option<StopReason>,
    /// Inputs pulled from the source (each got exactly one item).
    pub(crate) pulled: usize,
    pub(crate) start: Instant,
    /// Inputs left in the source after a stop (batch mode drains them).
    pub(crate) unstarted: usize,
    /// The pulled inputs' items by kind (the unstarted are not in it).
    pub(crate) counts: Counts,
}

impl<'a, D: Driver, S> BatchStream<'a, D, S>
where
    S: Stream,
    S::Item: IntoRequest,
{
    pub(crate) fn new(
        exec: &'a BatchExecutor<D>,
        input: S,
        options: BatchOptions,
        mode: Mode,
        size: Option<usize>,
    ) -> Self {
        let inner = exec.inner();
        let span = tracing::debug_span!(
            target: "httpclient_batch",
            "batch",
            size = size.map(|n| n as u64),
            workers = inner.shared.workers,
            ordered_window = match mode { Mode::Ordered(w) => Some(w as u64), Mode::Unordered => None },
        );
        let request_timeout = options.request_timeout.or(inner.shared.request_timeout);
        BatchStream {
            core: Core {
                inner,
                request_timeout,
                options,
                calls: FuturesUnordered::new(),
                sink: Sink::new(mode),
                spare: None,
                spare_tickets: SpareTickets::new(&inner.shared),
                acquiring: None,
                pulled: 0,
                input_done: false,
                stop: None,
                start: None,
                deadline: None,
                sleep: None,
                cancel_wait: None,
                closing_wait: None,
                abort_wait: None,
                yielded: Counts::default(),
                local: LocalStats::new(&inner.shared.stats),
                ticks: 0,
                ready_streak: 0,
                resumed: false,
                finished: false,
            },
            span,
            input,
        }
    }
}

impl<D, S> BatchStream<'_, D, S> {
    /// Inputs taken from the source so far (the next input's index).
    pub fn pulled(&self) -> usize {
        self.core.pulled
    }

    /// Requests of this stream in flight now.
    pub fn in_flight(&self) -> usize {
        self.core.calls.len()
    }

    /// Why the stream stopped taking inputs, if it did.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.core.stop
    }
}

impl<D, I> BatchStream<'_, D, IterInput<I>>
where
    I: Iterator,
{
    /// After the stream ended: how the batch ended, counting (and dropping)
    /// inputs that were never pulled when it was stopped.
    pub(crate) fn finish_batch(self: Pin<&mut Self>) -> BatchEnd {
        let this = self.project();
        let core = this.core;
        let mut unstarted = 0;
        if core.stop.is_some() {
            let iter = this.input.project().iter;
            // An iterator that says it is endless would never be drained.
            if iter.size_hint().0 != usize::MAX {
                for _ in iter {
                    unstarted += 1;
                }
            }
            core.inner.shared.stats.record_not_started(unstarted as u64);
        }
        if let Some(reason) = core.stop {
            let _e = this.span.enter();
            tracing::debug!(target: "httpclient_batch", %reason, unstarted, "batch stopped early");
        }
        BatchEnd {
            stopped: core.stop,
            pulled: core.pulled,
            start: core.start.unwrap_or_else(Instant::now),
            unstarted,
            counts: core.yielded,
        }
    }
}

impl<D, S> Stream for BatchStream<'_, D, S>
where
    D: Driver,
    S: Stream,
    S::Item: IntoRequest,
{
    type Item = BatchItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BatchItem>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.core.poll_next(this.input, cx, None)
    }
}

impl<D, S> BatchStream<'_, D, S>
where
    D: Driver,
    S: Stream,
    S::Item: IntoRequest,
{
    /// `execute_batch`'s loop: append the results to `out` until the batch
    /// ends (`Ready`) or waits. The engine pushes them itself, so a result
    /// goes from its call straight into the vector — not returned through
    /// the stream's `poll_next` and its caller first.
    pub(crate) fn poll_collect(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut Vec<BatchItem>,
    ) -> Poll<()> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            match this
                .core
                .poll_next(this.input.as_mut(), cx, Some(&mut *out))
            {
                Poll::Ready(Some(item)) => out.push(item),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<D, S> FusedStream for BatchStream<'_, D, S>
where
    D: Driver,
    S: Stream,
    S::Item: IntoRequest,
{
    fn is_terminated(&self) -> bool {
        self.core.finished
    }
}

impl<'a, D: Driver> Core<'a, D> {
    /// The engine. Results are returned one per call — or, when `out` is
    /// given (`execute_batch`), appended to it as they come, the loop going
    /// on until the batch ends or waits: then a replacement request may be
    /// handed over before a result is stored, and the stop signals need no
    /// re-check on entry unless the last poll returned `Pending`.
    fn poll_next<S>(
        &mut self,
        mut input: Pin<&mut S>,
        cx: &mut Context<'_>,
        mut out: Option<&mut Vec<BatchItem>>,
    ) -> Poll<Option<BatchItem>>
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.start.is_none() {
            self.begin();
        }
        // Time may have passed since the last poll — a stream's consumer
        // held an item, or the task waited — and the token or the deadline
        // may have fired meanwhile: notice before anything more is sent.
        // (`execute_batch` stores its results without leaving the loop, so
        // there it is only needed after a `Pending`; the token's read takes
        // a lock.)
        if out.is_none() || mem::take(&mut self.resumed) {
            self.check_resume_signals();
        }
        if self.ready_streak >= YIELD_EVERY {
            return self.yield_to_runtime(cx);
        }
        // Freed slots are refilled once per pass, when no more results are
        // ready (see "Refill per wake-up" in the module docs).
        let mut filled = false;
        loop {
            if let Some(item) = self.sink.pop() {
                if let Some(poll) = self.emit(item, &mut out, cx) {
                    return poll;
                }
                // As after a return: the freed slot may be refilled.
                filled = false;
                continue;
            }
            self.check_signals();
            if self.sink.has_ready() {
                continue;
            }
            match self.calls.poll_next_unpin(cx) {
                Poll::Ready(Some(mut done)) => {
                    self.finish(&mut done);
                    // A call answered at its first poll (no I/O, nothing
                    // handed to another thread) gains nothing from a
                    // burst: `execute_batch`, which goes on at once,
                    // refills its slot right away.
                    if done.instant && out.is_some() && self.stop.is_none() {
                        self.fill(input.as_mut(), cx);
                    }
                    if self.sink.is_next(done.item.index) {
                        self.sink.skip_next();
                        if let Some(poll) = self.emit(done.item, &mut out, cx) {
                            return poll;
                        }
                        filled = false;
                        continue;
                    }
                    self.sink.put(done.item);
                    // Its slot is free and nothing may wake this batch for
                    // it (say, a result answered at its first poll, behind a
                    // slow head): refill once more when nothing is ready —
                    // within the same budget as yielded results, so a head
                    // that waits on this very thread gets its turn.
                    self.ready_streak += 1;
                    if self.ready_streak >= YIELD_EVERY {
                        return self.yield_to_runtime(cx);
                    }
                    filled = false;
                    continue;
                }
                // Nothing more is ready (or nothing runs): refill the free
                // slots, then look again if that changed anything.
                Poll::Ready(None) | Poll::Pending
                    if !filled && self.stop.is_none() && !self.input_done =>
                {
                    filled = true;
                    let before = self.calls.len();
                    self.fill(input.as_mut(), cx);
                    if self.calls.len() > before
                        || self.sink.has_ready()
                        || self.stop.is_some()
                        || self.input_done
                    {
                        continue;
                    }
                }
                Poll::Ready(None) => {
                    if (self.input_done || self.stop.is_some()) && !self.sink.has_ready() {
                        self.finished = true;
                        self.local.publish();
                        tracing::debug!(
                            target: "httpclient_batch",
                            pulled = self.pulled,
                            succeeded = self.yielded.succeeded,
                            failed = self.yielded.failed,
                            not_started = self.yielded.not_started,
                            "batch finished"
                        );
                        return Poll::Ready(None);
                    }
                }
                Poll::Pending => {}
            }
            if self.poll_signals(cx) {
                continue;
            }
            // Waiting: publish the stats, then give kept permits (and gauge
            // places) back so other callers can run — in that order, so a
            // shutdown the last place wakes finds this batch's counts.
            self.local.publish();
            self.drop_spares();
            self.ready_streak = 0;
            self.resumed = true;
            return Poll::Pending;
        }
    }

    /// Ready this many times in a row (a driver that never waits, or results
    /// kept behind a slow head): let the rest of the task's executor run —
    /// say, the timer the head waits for, or the task that would cancel
    /// this batch, on a single-threaded runtime. Kept permits go back first.
    #[cold]
    #[inline(never)]
    fn yield_to_runtime(&mut self, cx: &mut Context<'_>) -> Poll<Option<BatchItem>> {
        self.ready_streak = 0;
        self.resumed = true;
        self.drop_spares();
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Hand `item` over: appended to `out` when there is one (`None`: go
    /// on, unless the ready-results budget says to yield to the runtime),
    /// else returned by [`Core::yield_item`].
    #[inline]
    fn emit(
        &mut self,
        item: BatchItem,
        out: &mut Option<&mut Vec<BatchItem>>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Option<BatchItem>>> {
        match out {
            Some(out) => {
                debug_assert_eq!(item.index, out.len(), "items arrive in input order");
                out.push(item);
                self.ready_streak += 1;
                (self.ready_streak >= YIELD_EVERY).then(|| self.yield_to_runtime(cx))
            }
            None => Some(self.yield_item(item)),
        }
    }

    /// Hand `item` to the caller. A stream gives a kept permit back first,
    /// and leaves the semaphore's queue: its consumer may hold the item for
    /// a long time, and nobody should wait for a worker slot the stream is
    /// not using meanwhile. (`execute_batch` stores its results through
    /// [`Core::emit`] instead, keeping its permits.)
    #[inline]
    fn yield_item(&mut self, item: BatchItem) -> Poll<Option<BatchItem>> {
        // Leave the queue first (a permit the semaphore hands to a queued
        // request the stream will not poll until its consumer returns would
        // sit there unused; dropping it gives such a permit back), then give
        // the kept permit (and gauge place) back to whoever else waits.
        self.acquiring = None;
        self.drop_spares();
        self.ready_streak += 1;
        Poll::Ready(Some(item))
    }

    fn begin(&mut self) {
        let now = Instant::now();
        self.start = Some(now);
        self.deadline = match self.options.deadline {
            None => None,
            Some(Deadline::At(at)) => Some(at),
            // A limit too large to represent is no limit.
            Some(Deadline::After(d)) => now.checked_add(d),
        };
        if self.inner.shared.is_shutting_down() {
            self.halt(StopReason::Shutdown);
        } else if self
            .options
            .cancel
            .as_ref()
            .is_some_and(|t| t.is_cancelled())
        {
            self.halt(StopReason::Cancelled);
        } else if self.deadline.is_some_and(|d| now >= d) {
            self.halt(StopReason::DeadlineExceeded);
        }
    }

    /// Take inputs and start requests while worker slots are free.
    ///
    /// A permit is obtained *before* an input is taken, so an input goes
    /// straight from the source to the driver and is never held while the
    /// batch waits for a slot.
    fn fill<S>(&mut self, mut input: Pin<&mut S>, cx: &mut Context<'_>)
    where
        S: Stream,
        S::Item: IntoRequest,
    {
        let workers = self.inner.shared.workers;
        loop {
            if self.input_done || !self.sink.can_pull(self.pulled) {
                return;
            }
            let permit = match self.take_spare() {
                // A kept permit outlives a shutdown's closing of the
                // semaphore: check before taking an input with it.
                Some(_) if self.inner.shared.is_shutting_down() => {
                    self.halt(StopReason::Shutdown);
                    return;
                }
                Some(permit) => permit,
                None => {
                    // When this batch alone holds every permit, none can be
                    // free: wait for our own requests instead of queueing.
                    if self.acquiring.is_none() && self.calls.len() >= workers {
                        return;
                    }
                    match self.acquire(cx) {
                        Poll::Ready(Ok(permit)) => permit,
                        Poll::Ready(Err(_closed)) => {
                            self.halt(StopReason::Shutdown);
                            return;
                        }
                        Poll::Pending => return,
                    }
                }
            };
            match input.as_mut().poll_next(cx) {
                Poll::Ready(Some(raw)) => {
                    let index = self.pulled;
                    self.pulled += 1;
                    self.sink.reserve(index);
                    // Built in place and handed to the driver from there
                    // (see `Call::start`): the request is moved once.
                    let mut built = raw.into_request();
                    match built {
                        Ok(_) => {
                            if !self.start(index, &mut built, permit) {
                                return;
                            }
                        }
                        Err(e) => {
                            self.keep_spare(permit);
                            self.invalid(index, e);
                            // Yield it before taking more input, so a run of
                            // bad inputs cannot pile up (in ordered mode the
                            // window bounds them).
                            if self.stop.is_some() || self.sink.has_ready() {
                                return;
                            }
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.input_done = true;
                    self.drop_spares();
                    return;
                }
                Poll::Pending => {
                    self.keep_spare(permit);
                    return;
                }
            }
        }
    }

    /// Hand a request to the driver; `false` when the executor is shutting
    /// down (the request is reported as not started and the batch stops).
    #[inline]
    fn start(
        &mut self,
        index: usize,
        built: &mut Result<Request, Error>,
        permit: SemaphorePermit<'a>,
    ) -> bool {
        let ticket = match self.spare_tickets.take() {
            Some(kept) => Some(kept),
            None => Ticket::enter(&self.inner.shared),
        };
        let Some(ticket) = ticket else {
            drop(permit);
            self.inner.shared.stats.record_not_started(1);
            self.put(
                index,
                Outcome::NotStarted(StopReason::Shutdown),
                Duration::ZERO,
            );
            self.halt(StopReason::Shutdown);
            return false;
        };
        // Only when there is a default to apply: the request was just moved
        // here, and reading it at once waits for that copy to land.
        if let (Some(timeout), Ok(request)) = (self.request_timeout, &mut *built) {
            if request.options().timeout.is_none() {
                request.options_mut().timeout = Some(timeout);
            }
        }
        let epoch = self.local.start();
        self.calls.push(Call::start(
            &self.inner.driver,
            ticket,
            permit,
            index,
            epoch,
            built,
        ));
        true
    }

    fn take_spare(&mut self) -> Option<SemaphorePermit<'a>> {
        let spare = self.spare.as_mut()?;
        if spare.num_permits() > 1 {
            spare.split(1)
        } else {
            self.spare.take()
        }
    }

    /// Give the kept permits and gauge places back.
    fn drop_spares(&mut self) {
        self.spare = None;
        self.spare_tickets.release();
    }

    fn keep_spare(&mut self, permit: SemaphorePermit<'a>) {
        match self.spare.as_mut() {
            Some(spare) => spare.merge(permit),
            None => self.spare = Some(permit),
        }
    }

    fn acquire(&mut self, cx: &mut Context<'_>) -> Poll<Result<SemaphorePermit<'a>, AcquireError>> {
        if self.acquiring.is_none() {
            match self.inner.shared.semaphore.try_acquire() {
                Ok(permit) => return Poll::Ready(Ok(permit)),
                // `Closed` goes through the waiting path too: it fails at
                // once with the same error.
                Err(TryAcquireError::Closed | TryAcquireError::NoPermits) => {
                    self.acquiring = Some(Box::pin(self.inner.shared.acquire_slow()));
                }
            }
        }
        let Some(fut) = self.acquiring.as_mut() else {
            return Poll::Pending;
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => {
                self.acquiring = None;
                Poll::Ready(r)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Response(_) => self.yielded.succeeded += 1,
            Outcome::Error(_) => self.yielded.failed += 1,
            Outcome::NotStarted(_) => self.yielded.not_started += 1,
        }
    }

    fn put(&mut self, index: usize, outcome: Outcome, elapsed: Duration) {
        self.count(&outcome);
        self.sink.put(BatchItem {
            index,
            outcome,
            elapsed,
        });
    }

    fn invalid(&mut self, index: usize, e: Error) {
        self.inner.shared.stats.record_invalid();
        trace_failure(index, None, &e);
        let trigger = self
            .options
            .fail_fast
            .as_ref()
            .filter(|ff| ff.triggers_on_error(&e))
            .map(|ff| ff.cancels_in_flight());
        self.put(index, Outcome::Error(e), Duration::ZERO);
        if let Some(cancel) = trigger {
            self.halt(StopReason::FailFast { trigger: index });
            if cancel {
                self.cancel_in_flight(|| Error::Cancelled);
            }
        }
    }

    /// Account for a finished call (stats, trace, fail-fast, deadline) and
    /// keep its permit for the next request when nobody waits.
    #[inline]
    fn finish(&mut self, done: &mut Done<'a>) {
        // Read first: `done` was just moved here, and the clock read gives
        // that copy time to land before its fields are read.
        let now = Instant::now();
        let mut kept = false;
        if let Some(permit) = done.permit.take() {
            // Our own queued request does not count: the semaphore would
            // hand it the permit, where a stream's consumer may leave it idle.
            let own = self.acquiring.is_some();
            if self.stop.is_none()
                && !self.input_done
                && !self.inner.shared.has_waiters_besides(own)
            {
                self.keep_spare(permit);
                kept = true;
            }
        }
        record_done(&self.inner.shared, Some(&mut self.local), done, now);
        // Its place in the gauge goes with its permit: kept for the next
        // request, or given back now that it is recorded.
        if let Some(ticket) = done.ticket.take() {
            if kept {
                self.spare_tickets.keep(ticket);
            }
        }
        let trigger = if self.stop.is_none() {
            self.options
                .fail_fast
                .as_ref()
                .filter(|ff| ff.triggers_on_outcome(&done.item.outcome))
                .map(|ff| ff.cancels_in_flight())
        } else {
            None
        };
        self.count(&done.item.outcome);
        if let Some(cancel) = trigger {
            self.halt(StopReason::FailFast {
                trigger: done.item.index,
            });
            if cancel {
                self.cancel_in_flight(|| Error::Cancelled);
            }
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.on_deadline();
        }
    }

    /// Stop taking inputs (first reason wins).
    fn halt(&mut self, reason: StopReason) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(reason);
        self.acquiring = None;
        self.drop_spares();
    }

    /// Drop every request in flight, reporting each with `error()` — or as
    /// not started when its future was never polled (nothing was sent).
    fn cancel_in_flight(&mut self, error: fn() -> Error) {
        if self.calls.is_empty() {
            return;
        }
        let kind = error().kind_name();
        let reason = self.stop.unwrap_or(StopReason::Cancelled);
        // Their starts are counted before their ends (or withdrawals).
        self.local.publish();
        for mut call in mem::take(&mut self.calls) {
            let index = call.index();
            let trace = call.take_trace();
            match call.abandon(kind) {
                Some(elapsed) => {
                    let e = error();
                    trace_failure(index, trace.as_deref(), &e);
                    self.put(index, Outcome::Error(e), elapsed);
                }
                // Never polled: `abandon` counted it as not started.
                None => self.put(index, Outcome::NotStarted(reason), Duration::ZERO),
            }
        }
    }

    fn on_cancel(&mut self) {
        self.halt(StopReason::Cancelled);
        self.cancel_in_flight(|| Error::Cancelled);
    }

    fn on_deadline(&mut self) {
        self.halt(StopReason::DeadlineExceeded);
        self.cancel_in_flight(|| Error::DeadlineExceeded);
    }

    fn on_abort(&mut self) {
        self.halt(StopReason::Shutdown);
        self.cancel_in_flight(|| Error::Cancelled);
    }

    /// Cheap checks of the stop signals between items. `Pending` returns
    /// register wakers instead ([`Core::poll_signals`]); these checks catch
    /// a stop while the batch never has to wait (a fast driver). The
    /// caller's token is read every 32 items (reading it takes its lock),
    /// and on entry where time may have passed
    /// ([`Core::check_resume_signals`]).
    fn check_signals(&mut self) {
        if self.stop.is_some() && self.calls.is_empty() {
            return;
        }
        if self.inner.shared.is_aborted() {
            self.on_abort();
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % 32 == 0 {
            self.check_token();
        }
    }

    /// On re-entry after time may have passed (see [`Core::poll_next`]):
    /// the token and the deadline, before any request is polled — a stop
    /// that fired meanwhile sends nothing more, and requests handed to the
    /// driver but never polled are reported as not started.
    fn check_resume_signals(&mut self) {
        self.check_token();
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.on_deadline();
        }
    }

    /// Stop (and drop the requests in flight) if the caller's token was
    /// cancelled.
    #[inline]
    fn check_token(&mut self) {
        if self.stop.is_some() && self.calls.is_empty() {
            return;
        }
        if self
            .options
            .cancel
            .as_ref()
            .is_some_and(|t| t.is_cancelled())
        {
            self.on_cancel();
        }
    }

    /// Before returning `Pending`: register for the stop signals; `true`
    /// when one has fired (the caller loops again).
    fn poll_signals(&mut self, cx: &mut Context<'_>) -> bool {
        if self.stop.is_some() && self.calls.is_empty() {
            return false;
        }
        if let Some(token) = &self.options.cancel {
            let wait = self
                .cancel_wait
                .get_or_insert_with(|| Box::pin(token.clone().cancelled_owned()));
            if wait.as_mut().poll(cx).is_ready() {
                self.on_cancel();
                return true;
            }
        }
        let shared = &self.inner.shared;
        // One registration at a time: while taking inputs, a shutdown (of
        // either kind: `closing` is a child of `abort`) must stop intake
        // even if the batch waits on its source, not on a worker slot;
        // once stopped, only an aborting shutdown still matters.
        if self.stop.is_none() {
            let closing = self
                .closing_wait
                .get_or_insert_with(|| Box::pin(shared.closing.cancelled()));
            if closing.as_mut().poll(cx).is_ready() {
                if shared.is_aborted() {
                    self.on_abort();
                } else {
                    self.halt(StopReason::Shutdown);
                }
                return true;
            }
        } else {
            let abort = self
                .abort_wait
                .get_or_insert_with(|| Box::pin(shared.abort.cancelled()));
            if abort.as_mut().poll(cx).is_ready() {
                self.on_abort();
                return true;
            }
        }
        if let Some(deadline) = self.deadline {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.as_mut().poll(cx).is_ready() {
                self.on_deadline();
                return true;
            }
        }
        false
    }
}

pin_project! {
    /// An iterator as an always-ready input stream (see
    /// [`BatchExecutor::execute_iter`]).
    #[derive(Debug)]
    pub struct IterInput<I> {
        iter: I,
    }
}

impl<I> IterInput<I> {
    pub(crate) fn new(iter: I) -> Self {
        IterInput { iter }
    }
}

impl<I: Iterator> Stream for IterInput<I> {
    type Item = I::Item;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.project().iter.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}
