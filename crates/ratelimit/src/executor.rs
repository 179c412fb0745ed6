//! `RateLimitedExecutor`: a [`Driver`] that takes a permit from a
//! [`Limiter`] before every request it forwards.
//!
//! It is itself a `Driver`, so it chains: put it *inside* a retry layer
//! (`ConnectionPool<RateLimitedExecutor<D>>`) and every attempt spends a
//! permit, so the server never sees more than the quota.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use httpclient_core::ext::PermitWait;
use httpclient_core::{Driver, Error, Request, Response};

use crate::Quota;
use crate::clock::{Clock, Precision};
use crate::limiter::{Acquire, Limiter, LimiterBuilder, Permit, Spacing};
use crate::stats::LimiterStats;

const LAYER: &str = "RateLimitedExecutor";

/// Counters of a [`RateLimitedExecutor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RateLimiterStats {
    /// The limiter's counters (quota, requests, granted, throttled,
    /// rejected, queue, waits, release lag).
    pub limiter: LimiterStats,
    /// Requests forwarded to the driver.
    #[doc(alias = "TotalExecuted")]
    pub executed: u64,
    /// Requests forwarded and not yet finished.
    pub in_flight: u64,
}

/// A rate-limited [`Driver`]: every request waits (FIFO) for a permit of
/// its [`Quota`], then goes to the wrapped driver. Each response records
/// how long it waited ([`PermitWait`], read with
/// [`Response::permit_wait`]).
///
/// ```
/// use httpclient_core::{testkit::MockDriver, DriverExt};
/// use httpclient_ratelimit::{Quota, RateLimitedExecutor};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let exec = RateLimitedExecutor::new(MockDriver::new(), Quota::per_second(20)?);
/// exec.send("http://api.example/a").await?;
/// let second = exec.send("http://api.example/b").await?;
/// let wait = second.permit_wait().unwrap().wait;
/// assert_eq!(wait, Duration::from_millis(50));
/// assert_eq!(exec.stats().limiter.throttled, 1);
/// # Ok(()) }
/// ```
///
/// # Coming from the Go package
///
/// `NewRateLimitedExecutor(driver, rps, maxWorkers)` becomes
/// `RateLimitedExecutor::new(driver, Quota::per_second(rps)?.burst(rps)?)`:
/// Go's bucket held `rps` tokens, refilled once a second, so its burst was
/// `rps` (and up to 2×`rps` across a refill). For an API that polices its
/// limit strictly, prefer the default burst of 1 (evenly spaced requests).
/// The third argument, `maxWorkers`, was stored and never used, so it has
/// no counterpart here: bound concurrency with the batch layer's workers.
/// `UpdateRate` is [`RateLimitedExecutor::set_quota`], `Stop` is
/// [`RateLimitedExecutor::stop`], `ExecuteWithTimeout` is
/// [`RateLimitedExecutor::execute_within`] (or wrap `execute` in
/// `tokio::time::timeout`: the dropped waiter gives its place back).
pub struct RateLimitedExecutor<D> {
    driver: D,
    limiter: Limiter,
    executed: AtomicU64,
    in_flight: AtomicU64,
}

impl<D> fmt::Debug for RateLimitedExecutor<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitedExecutor")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RateLimitedExecutor`]; see [`LimiterBuilder`] for the options.
pub struct RateLimitedExecutorBuilder<D> {
    driver: D,
    limiter: LimiterBuilder,
}

impl<D> fmt::Debug for RateLimitedExecutorBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitedExecutorBuilder")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> RateLimitedExecutorBuilder<D> {
    /// Bound the wait queue (see [`LimiterBuilder::max_queue`]).
    pub fn max_queue(mut self, n: usize) -> Self {
        self.limiter = self.limiter.max_queue(n);
        self
    }

    /// Spacing under late wake-ups (see [`Spacing`]).
    pub fn spacing(mut self, spacing: Spacing) -> Self {
        self.limiter = self.limiter.spacing(spacing);
        self
    }

    /// Wake-up precision (see [`Precision`]).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.limiter = self.limiter.precision(precision);
        self
    }

    /// A custom clock (see [`Clock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.limiter = self.limiter.clock(clock);
        self
    }

    /// Build the executor.
    pub fn build(self) -> RateLimitedExecutor<D> {
        RateLimitedExecutor::with_limiter(self.driver, self.limiter.layer(LAYER).build())
    }
}

impl<D: Driver> RateLimitedExecutor<D> {
    /// Wrap `driver` with a limiter of `quota` and default options
    /// (unbounded FIFO queue, scheduled spacing, tokio timer precision).
    #[doc(alias = "NewRateLimitedExecutor")]
    pub fn new(driver: D, quota: Quota) -> Self {
        RateLimitedExecutor::builder(driver, quota).build()
    }

    /// A builder for the other options.
    pub fn builder(driver: D, quota: Quota) -> RateLimitedExecutorBuilder<D> {
        RateLimitedExecutorBuilder {
            driver,
            limiter: Limiter::builder(quota),
        }
    }

    /// Wrap `driver` with an existing limiter, e.g. one shared by several
    /// executors (or with non-HTTP work) that must stay under one limit.
    pub fn with_limiter(driver: D, limiter: Limiter) -> Self {
        RateLimitedExecutor {
            driver,
            limiter,
            executed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }

    /// Execute without waiting: a permit must be available now and nobody
    /// queued.
    ///
    /// # Errors
    /// [`Error::RateLimited`] (`WouldWait`, with `retry_after`) without
    /// sending anything; [`Error::Stopped`]; or the driver's error.
    pub async fn try_execute(&self, request: Request) -> Result<Response, Error> {
        let permit = self.limiter.try_acquire()?;
        self.forward(request, permit).await
    }

    /// Execute if the permit's scheduled instant is at most `max_wait`
    /// away, refusing at once otherwise (see [`Limiter::acquire_within`]).
    /// Unlike Go's `ExecuteWithTimeout`, a request that would not make it is
    /// refused up front instead of after waiting in vain.
    ///
    /// # Errors
    /// [`Error::RateLimited`] (`WouldWait` or `QueueFull`), [`Error::Stopped`],
    /// or the driver's error.
    #[doc(alias = "ExecuteWithTimeout")]
    pub async fn execute_within(
        &self,
        request: Request,
        max_wait: Duration,
    ) -> Result<Response, Error> {
        let permit = self.limiter.acquire_within(max_wait).await?;
        self.forward(request, permit).await
    }

    async fn forward(&self, request: Request, permit: Permit) -> Result<Response, Error> {
        let mut call = self.send(request, permit);
        let mut result = call.fut.as_mut().await;
        if let Ok(response) = &mut result {
            PermitWait::record(response, call.waited);
        }
        result
    }

    /// Hand `request` to the driver with `permit` in hand: counted as
    /// executed and in flight until the returned call is dropped.
    fn send(&self, request: Request, permit: Permit) -> InnerCall<'_> {
        self.executed.fetch_add(1, Ordering::Relaxed);
        // An event in the caller's span (a pool's `attempt`, if any); the
        // macro checks interest before computing anything.
        tracing::debug!(
            target: "httpclient_ratelimit",
            wait_ms = permit.waited().as_secs_f64() * 1000.0,
            "permit granted"
        );
        let in_flight = InFlight::enter(&self.in_flight);
        InnerCall {
            fut: self.driver.execute(request),
            waited: permit.waited(),
            _in_flight: in_flight,
        }
    }

    /// Change the quota at run time: queued requests are rescheduled at the
    /// new rate from now on, and no fresh burst is handed out.
    #[doc(alias = "UpdateRate")]
    #[doc(alias = "set_rate")]
    pub fn set_quota(&self, quota: Quota) {
        self.limiter.set_quota(quota);
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.limiter.quota()
    }

    /// Stop: new requests fail at once with [`Error::Stopped`], queued ones
    /// wake with it, requests already sent finish normally.
    #[doc(alias = "Stop")]
    pub fn stop(&self) {
        self.limiter.stop();
    }

    /// Counters.
    #[doc(alias = "Stats")]
    pub fn stats(&self) -> RateLimiterStats {
        RateLimiterStats {
            limiter: self.limiter.stats(),
            executed: self.executed.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Zero the counters.
    #[doc(alias = "ResetStats")]
    pub fn reset_stats(&self) {
        self.limiter.reset_stats();
        self.executed.store(0, Ordering::Relaxed);
    }

    /// The limiter (to share it, or to take permits for non-HTTP work).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.driver
    }

    /// Unwrap the driver.
    pub fn into_inner(self) -> D {
        self.driver
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>;

// Written out instead of `#[async_trait]`: one hand-made state machine
// instead of an `async` body nesting the limiter's and the forwarding
// futures (each copying the request and the response through), and an
// uncontended permit is taken with no `Acquire` future built at all.
impl<D: Driver> Driver for RateLimitedExecutor<D> {
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(Execute {
            exec: self,
            request: Some(request),
            acquire: None,
            call: None,
        })
    }

    fn connections_opened(&self) -> Option<u64> {
        self.driver.connections_opened()
    }
}

/// The driver's call for one request, with its permit's wait and its place
/// in the in-flight gauge.
struct InnerCall<'a> {
    fut: BoxFuture<'a>,
    waited: Duration,
    _in_flight: InFlight<'a>,
}

/// The future of [`RateLimitedExecutor::execute`]: nothing happens until it
/// is first polled (the permit is taken then, not when the future is
/// created); dropping it while queued gives the place back, dropping it
/// while the driver runs drops the driver's future.
struct Execute<'a, D> {
    exec: &'a RateLimitedExecutor<D>,
    /// Until handed to the driver.
    request: Option<Request>,
    /// While waiting for a permit.
    acquire: Option<Acquire<'a>>,
    /// While the driver runs.
    call: Option<InnerCall<'a>>,
}

impl<D: Driver> Future for Execute<'_, D> {
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let call = match &mut this.call {
            Some(call) => call,
            None => {
                let limiter = &this.exec.limiter;
                let granted = match &mut this.acquire {
                    Some(acquire) => match Pin::new(acquire).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(result) => {
                            this.acquire = None;
                            result
                        }
                    },
                    // First poll (or polled after completion: no request).
                    None if this.request.is_none() => {
                        return Poll::Ready(Err(polled_after_completion()));
                    }
                    // Granted or refused at once with no future built; a
                    // waiter keeps its place in `acquire`.
                    None => match limiter.acquire_or_queue() {
                        Ok(result) => result,
                        Err(mut acquire) => {
                            let polled = Pin::new(&mut acquire).poll(cx);
                            match polled {
                                Poll::Pending => {
                                    this.acquire = Some(acquire);
                                    return Poll::Pending;
                                }
                                Poll::Ready(result) => result,
                            }
                        }
                    },
                };
                let permit = match granted {
                    Ok(permit) => permit,
                    Err(e) => {
                        // Dropped in place: polled again, it reports
                        // completion instead of queueing anew.
                        this.request = None;
                        return Poll::Ready(Err(e));
                    }
                };
                // Moved once, straight from this future to the driver (no
                // intermediate tuple holding a second copy).
                match this.request.take() {
                    Some(request) => this.call.insert(this.exec.send(request, permit)),
                    None => return Poll::Ready(Err(polled_after_completion())),
                }
            }
        };
        // The response is recorded in place and handed on as it came.
        let mut out = call.fut.as_mut().poll(cx);
        if let Poll::Ready(result) = &mut out {
            if let Ok(response) = result {
                PermitWait::record(response, call.waited);
            }
            this.call = None;
        }
        out
    }
}

#[cold]
fn polled_after_completion() -> Error {
    Error::invalid_request("RateLimitedExecutor future polled after completion")
}

/// Counts a request in flight until dropped (also when the caller drops
/// the future mid-request).
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
