//! `Limiter`: exact permits, FIFO waiting, no background task.
//!
//! # How permits are granted
//!
//! The arithmetic is GCRA ([`crate::state`]): the next permit is due at
//! `TAT − τ`. A request that finds the queue empty and a permit due takes it
//! at once. Otherwise it joins a FIFO queue, and its grant instant is
//! *implied by its position*: the head's is the next conforming instant, and
//! each position behind it adds one period `T`. Nothing per waiter is
//! stored but an id and a waker, which is what makes the hard cases exact:
//!
//! * **Late wake-ups do not cost rate.** When the head is released, the
//!   permit is taken *as of its grant instant*, not as of the moment its task
//!   woke, so the next grant is exactly one period after the previous grant.
//!   Over any long run the rate is the quota's, to the nanosecond, however
//!   late the runtime wakes tasks.
//! * **Never early.** A waiter is released only once the clock has reached
//!   its grant instant. Whoever takes the lock first (the head's timer, a new
//!   arrival, a `set_quota`) releases every waiter whose instant has passed,
//!   in queue order, and wakes it.
//! * **Cancellation gives the place back.** A waiter whose future is
//!   dropped (a caller's timeout, a `select!`) is removed from the queue;
//!   everyone behind it moves up one position — one period earlier — with no
//!   bookkeeping beyond the removal.
//! * **Quota changes reschedule everyone.** [`Limiter::set_quota`] re-expresses
//!   the recently used permits in the new period (no fresh burst, see
//!   [`crate::RateState::set_quota`]) and, since queued grant instants are
//!   implied by position, every waiter's instant follows the new period from
//!   the change on. The head is woken to re-arm its timer; nobody is stranded.
//! * **Stop wakes everyone.** [`Limiter::stop`] drains the queue, waking each
//!   waiter with [`Error::Stopped`]; later calls fail at once.
//!
//! Only the queue head sleeps on a timer; the others wait for a wake-up
//! that comes when they are released or become the head. There is no task
//! to spawn and none to outlive the limiter.
//!
//! # Spacing
//!
//! [`Spacing::Scheduled`] (the default) releases waiters at their scheduled
//! instants: the long-run rate is exact, but after a late wake-up two
//! releases may be closer than one period (never more than the lateness
//! allows). [`Spacing::Strict`] instead takes each permit at the instant the
//! waiter actually runs, so released requests are never closer than one
//! period (beyond the burst) — for servers that police spacing — at the cost
//! of losing the lateness from the rate, as governor does.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use httpclient_core::{Error, RateLimitReason};

use crate::Quota;
use crate::clock::{Clock, Precision, Sleep, TokioClock};
use crate::precise::{PreciseTimer, TimerKey};
use crate::state::{Gcra, RateState};
use crate::stats::{Counters, LimiterStats};

/// How queued requests are spaced when wake-ups run late. See the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Spacing {
    /// Release at the scheduled grant instants: exact long-run rate.
    #[default]
    Scheduled,
    /// Never release two requests closer than one period beyond the burst,
    /// even after a late wake-up; the rate loses the lateness.
    Strict,
}

/// A granted permit: when it was due and how long its request waited.
///
/// Rate permits are spent when granted; there is nothing to give back, so a
/// `Permit` is plain information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    granted_at: u64,
    waited: Duration,
    lag: Duration,
}

impl Permit {
    /// How long the request waited for its permit (zero when one was free).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// How late the request was released after its grant instant (zero
    /// when it did not wait).
    pub fn release_lag(&self) -> Duration {
        self.lag
    }

    /// The grant instant, in nanoseconds on the limiter's clock.
    pub fn granted_at(&self) -> u64 {
        self.granted_at
    }

    /// Whether the request had to wait.
    pub fn was_throttled(&self) -> bool {
        !self.waited.is_zero()
    }
}

const PENDING: u64 = 0;
const STOPPED: u64 = u64::MAX;

/// Where a queued waiter learns its outcome once it leaves the queue:
/// `PENDING`, `STOPPED`, or its grant instant + 1.
#[derive(Debug)]
struct Slot {
    outcome: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    slot: Arc<Slot>,
    waker: Option<Waker>,
}

struct Inner {
    state: Box<dyn RateState>,
    queue: VecDeque<Entry>,
    next_id: u64,
    stopped: bool,
    /// Grant instants are never recorded before the last quota change.
    floor: u64,
    stats: Counters,
}

impl Inner {
    fn period(&self) -> u64 {
        self.state.quota().period_nanos()
    }

    /// The head's grant instant.
    fn head_grant(&self) -> u64 {
        self.state.next_conforming().max(self.floor)
    }

    /// The grant instant position `k` of the queue would get.
    fn projected(&self, k: usize) -> u64 {
        let k = u64::try_from(k).unwrap_or(u64::MAX);
        self.head_grant()
            .saturating_add(k.saturating_mul(self.period()))
    }

    /// Release every waiter whose grant instant has passed, in order
    /// (scheduled spacing only; strict waiters release themselves).
    fn advance(&mut self, now: u64, spacing: Spacing, wake: &mut Vec<Waker>) {
        if spacing == Spacing::Strict {
            return;
        }
        let mut released = false;
        while !self.queue.is_empty() {
            let grant = self.head_grant();
            if grant > now || self.state.take(grant).is_err() {
                break;
            }
            if let Some(entry) = self.queue.pop_front() {
                self.grant_popped(entry, grant, wake);
                released = true;
            }
        }
        if released {
            self.wake_head(wake);
        }
    }

    fn grant_popped(&mut self, entry: Entry, grant: u64, wake: &mut Vec<Waker>) {
        entry.slot.outcome.store(grant + 1, Ordering::Release);
        self.stats.granted += 1;
        self.stats.throttled += 1;
        if let Some(w) = entry.waker {
            wake.push(w);
        }
    }

    fn wake_head(&mut self, wake: &mut Vec<Waker>) {
        if let Some(w) = self.queue.front().and_then(|e| e.waker.clone()) {
            wake.push(w);
        }
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.queue.binary_search_by_key(&id, |e| e.id).ok()
    }
}

pub(crate) struct Shared {
    clock: Arc<dyn Clock>,
    spacing: Spacing,
    precision: Precision,
    max_queue: Option<usize>,
    layer: &'static str,
    precise: Option<Arc<PreciseTimer>>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wake_all(wake: Vec<Waker>) {
    for w in wake {
        w.wake();
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A rate limiter usable without HTTP: [`Limiter::acquire`] waits for a
/// permit, [`Limiter::try_acquire`] never waits. Cheap to clone; clones share
/// the limit.
///
/// ```
/// use httpclient_ratelimit::{Limiter, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = Limiter::new(Quota::per_second(10)?);
/// let start = tokio::time::Instant::now();
/// for _ in 0..3 {
///     limiter.acquire().await?;
/// }
/// // 10/s, burst 1: permits at 0, 100 and 200 ms.
/// assert_eq!(start.elapsed(), Duration::from_millis(200));
/// assert!(limiter.try_acquire().is_err()); // the next one is 100 ms away
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.lock();
        f.debug_struct("Limiter")
            .field("quota", &inner.state.quota())
            .field("queue_len", &inner.queue.len())
            .field("stopped", &inner.stopped)
            .field("spacing", &self.shared.spacing)
            .field("precision", &self.shared.precision)
            .finish()
    }
}

/// Builds a [`Limiter`]. Every option has a valid default; nothing here can
/// fail.
pub struct LimiterBuilder {
    state: Box<dyn RateState>,
    max_queue: Option<usize>,
    spacing: Spacing,
    precision: Precision,
    clock: Option<Arc<dyn Clock>>,
    layer: &'static str,
    percentiles: bool,
    precise: Option<Arc<PreciseTimer>>,
}

impl fmt::Debug for LimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterBuilder")
            .field("quota", &self.state.quota())
            .field("max_queue", &self.max_queue)
            .field("spacing", &self.spacing)
            .field("precision", &self.precision)
            .field("clock", &self.clock)
            .finish()
    }
}

impl LimiterBuilder {
    /// Bound the wait queue: a request that would make it longer than `n`
    /// is refused at once with [`RateLimitReason::QueueFull`] and a
    /// `retry_after` (when the queue head is due). `0` means never wait.
    /// Default: unbounded.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = Some(n);
        self
    }

    /// How queued requests are spaced when wake-ups run late (default
    /// [`Spacing::Scheduled`]).
    pub fn spacing(mut self, spacing: Spacing) -> Self {
        self.spacing = spacing;
        self
    }

    /// How precisely waiters are woken (default [`Precision::Timer`]).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Use this clock instead of a [`TokioClock`] created at `build`.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Use a shared clock instance.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub(crate) fn layer(mut self, layer: &'static str) -> Self {
        self.layer = layer;
        self
    }

    pub(crate) fn percentiles(mut self, on: bool) -> Self {
        self.percentiles = on;
        self
    }

    /// Share one high-resolution helper between limiters (per-key).
    pub(crate) fn precise_timer(mut self, timer: Arc<PreciseTimer>) -> Self {
        self.precise = Some(timer);
        self
    }

    /// Build the limiter.
    pub fn build(self) -> Limiter {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TokioClock::new()) as Arc<dyn Clock>);
        // A clock that cannot map to real time has no use for the helper.
        let precise = if self.precision == Precision::Fine && clock.real_instant(0).is_some() {
            Some(self.precise.unwrap_or_default())
        } else {
            None
        };
        Limiter {
            shared: Arc::new(Shared {
                clock,
                spacing: self.spacing,
                precision: self.precision,
                max_queue: self.max_queue,
                layer: self.layer,
                precise,
                inner: Mutex::new(Inner {
                    state: self.state,
                    queue: VecDeque::new(),
                    next_id: 0,
                    stopped: false,
                    floor: 0,
                    stats: Counters::new(self.percentiles),
                }),
            }),
        }
    }
}

enum Start {
    Granted(Permit),
    Refused(Error),
    Queued {
        id: u64,
        slot: Arc<Slot>,
        arrived: u64,
    },
}

impl Limiter {
    /// A limiter with default options (unbounded queue, scheduled spacing,
    /// tokio timer precision, a [`TokioClock`]).
    pub fn new(quota: Quota) -> Limiter {
        Limiter::builder(quota).build()
    }

    /// A builder for the other options.
    pub fn builder(quota: Quota) -> LimiterBuilder {
        Limiter::with_state(Gcra::new(quota))
    }

    /// A builder over a custom [`RateState`] (its quota is the limiter's).
    pub fn with_state(state: impl RateState) -> LimiterBuilder {
        LimiterBuilder {
            state: Box::new(state),
            max_queue: None,
            spacing: Spacing::default(),
            precision: Precision::default(),
            clock: None,
            layer: "Limiter",
            percentiles: true,
            precise: None,
        }
    }

    /// Wait for a permit, in FIFO order.
    ///
    /// Dropping the returned future before it completes gives the place in
    /// the queue back (those behind move up); a permit already granted is
    /// spent.
    ///
    /// # Errors
    /// [`Error::RateLimited`] with [`RateLimitReason::QueueFull`] when the
    /// queue is at `max_queue`; [`Error::Stopped`] after [`Limiter::stop`].
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            limiter: self,
            max_wait: None,
            state: AcquireState::Start,
        }
    }

    /// The first step of [`Limiter::acquire`] without building its future:
    /// the permit (or the refusal) when the caller need not wait, else the
    /// future of its place in the queue. What a caller that polls
    /// `acquire()` would get, minus the future when nothing is waited for.
    pub(crate) fn acquire_or_queue(&self) -> Result<Result<Permit, Error>, Acquire<'_>> {
        match self.start(None) {
            Start::Granted(p) => Ok(Ok(p)),
            Start::Refused(e) => Ok(Err(e)),
            Start::Queued { id, slot, arrived } => Err(Acquire {
                limiter: self,
                max_wait: None,
                state: AcquireState::Waiting(Box::new(Waiting {
                    id,
                    slot,
                    arrived,
                    sleep: None,
                    precise: None,
                })),
            }),
        }
    }

    /// Wait for a permit only if its scheduled grant instant is at most
    /// `max_wait` away; otherwise fail at once with
    /// [`RateLimitReason::WouldWait`] and the `retry_after` it would have
    /// needed. The check is made on arrival against the schedule (a later
    /// cancellation ahead only shortens the wait; a later slower quota can
    /// lengthen it — wrap the call in a timeout for a hard bound).
    ///
    /// # Errors
    /// As [`Limiter::acquire`], plus `WouldWait`.
    #[doc(alias = "ExecuteWithTimeout")]
    pub fn acquire_within(&self, max_wait: Duration) -> Acquire<'_> {
        Acquire {
            limiter: self,
            max_wait: Some(nanos(max_wait)),
            state: AcquireState::Start,
        }
    }

    /// Take a permit only if one is available now and nobody is queued.
    ///
    /// # Errors
    /// [`Error::RateLimited`] with [`RateLimitReason::WouldWait`] and the
    /// time until a permit would be granted to this caller;
    /// [`Error::Stopped`] after [`Limiter::stop`].
    pub fn try_acquire(&self) -> Result<Permit, Error> {
        match self.start(Some(0)) {
            Start::Granted(p) => Ok(p),
            Start::Refused(e) => Err(e),
            Start::Queued { .. } => unreachable_queued(),
        }
    }

    /// Change the quota now. Waiters already queued are rescheduled at the
    /// new period from this instant; the permits used recently stay used
    /// (no fresh burst, and re-applying the same quota changes nothing).
    #[doc(alias = "UpdateRate")]
    #[doc(alias = "set_rate")]
    pub fn set_quota(&self, quota: Quota) {
        let shared = &*self.shared;
        let mut wake = Vec::new();
        {
            let mut inner = shared.lock();
            let now = shared.clock.now();
            inner.advance(now, shared.spacing, &mut wake);
            inner.state.set_quota(now, quota);
            inner.floor = inner.floor.max(now);
            inner.advance(now, shared.spacing, &mut wake);
            inner.wake_head(&mut wake);
        }
        tracing::debug!(%quota, "rate limit changed");
        wake_all(wake);
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.shared.lock().state.quota()
    }

    /// Stop: every queued waiter wakes with [`Error::Stopped`] and every
    /// later call fails with it at once. Permits already granted (requests
    /// in flight) are unaffected. Irreversible.
    pub fn stop(&self) {
        let mut wake = Vec::new();
        let n;
        {
            let mut inner = self.shared.lock();
            inner.stopped = true;
            n = inner.queue.len();
            while let Some(entry) = inner.queue.pop_front() {
                entry.slot.outcome.store(STOPPED, Ordering::Release);
                inner.stats.stopped += 1;
                if let Some(w) = entry.waker {
                    wake.push(w);
                }
            }
        }
        tracing::debug!(woken = n, "rate limiter stopped");
        wake_all(wake);
    }

    /// Whether [`Limiter::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.shared.lock().stopped
    }

    /// Waiters now.
    pub fn queue_len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LimiterStats {
        let inner = self.shared.lock();
        inner.stats.snapshot(
            inner.state.quota(),
            inner.queue.len(),
            self.shared.max_queue,
        )
    }

    /// Zero the counters (the peak queue length restarts from the current
    /// length). The limit itself is unaffected.
    pub fn reset_stats(&self) {
        let mut inner = self.shared.lock();
        let percentiles = inner.stats.lag.tracks_percentiles();
        inner.stats = Counters::new(percentiles);
        inner.stats.peak_queue = inner.queue.len();
    }

    /// The clock this limiter reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Whether nothing distinguishes this limiter from a fresh one: no
    /// waiter and a full bucket. Such a limiter can be dropped and
    /// recreated without changing any future grant (per-key eviction).
    pub(crate) fn is_idle(&self) -> bool {
        let inner = self.shared.lock();
        let now = self.shared.clock.now();
        let q = inner.state.quota();
        inner.queue.is_empty()
            && inner
                .state
                .next_conforming()
                .saturating_add(q.tolerance_nanos())
                <= now
    }

    /// The instant (clock nanoseconds) from which this limiter will be idle
    /// if nothing else arrives, or `None` while someone is queued.
    pub(crate) fn idle_at(&self) -> Option<u64> {
        let inner = self.shared.lock();
        let q = inner.state.quota();
        inner.queue.is_empty().then(|| {
            inner
                .state
                .next_conforming()
                .saturating_add(q.tolerance_nanos())
        })
    }

    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.shared)
    }

    /// Reserve or queue. `max_wait`: `Some(0)` = try only.
    fn start(&self, max_wait: Option<u64>) -> Start {
        let shared = &*self.shared;
        let mut wake = Vec::new();
        let result = {
            let mut inner = shared.lock();
            let now = shared.clock.now();
            inner.stats.requests += 1;
            if !inner.queue.is_empty() {
                inner.advance(now, shared.spacing, &mut wake);
            }
            if inner.stopped {
                inner.stats.stopped += 1;
                Start::Refused(Error::Stopped {
                    layer: shared.layer,
                })
            } else {
                let len = inner.queue.len();
                let immediate = len == 0 && inner.state.take(now).is_ok();
                if immediate {
                    inner.stats.granted += 1;
                    Start::Granted(Permit {
                        granted_at: now,
                        waited: Duration::ZERO,
                        lag: Duration::ZERO,
                    })
                } else {
                    let wait = inner.projected(len).saturating_sub(now);
                    if max_wait.is_some_and(|m| m == 0 || wait > m) {
                        // (A zero wait here means a due strict head has yet
                        // to run; the caller would still queue behind it.)
                        inner.stats.rejected_would_wait += 1;
                        let retry = if wait == 0 { inner.period() } else { wait };
                        Start::Refused(Error::RateLimited {
                            reason: RateLimitReason::WouldWait,
                            retry_after: Some(Duration::from_nanos(retry)),
                        })
                    } else if shared.max_queue.is_some_and(|m| len >= m) {
                        inner.stats.rejected_queue_full += 1;
                        // A place frees up when the head is released.
                        let head = inner.head_grant().saturating_sub(now);
                        let retry = if head == 0 { inner.period() } else { head };
                        Start::Refused(Error::RateLimited {
                            reason: RateLimitReason::QueueFull,
                            retry_after: Some(Duration::from_nanos(retry)),
                        })
                    } else {
                        let id = inner.next_id;
                        inner.next_id += 1;
                        let slot = Arc::new(Slot {
                            outcome: AtomicU64::new(PENDING),
                        });
                        inner.queue.push_back(Entry {
                            id,
                            slot: slot.clone(),
                            waker: None,
                        });
                        let ql = inner.queue.len();
                        inner.stats.peak_queue = inner.stats.peak_queue.max(ql);
                        Start::Queued {
                            id,
                            slot,
                            arrived: now,
                        }
                    }
                }
            }
        };
        wake_all(wake);
        result
    }

    /// One look at a queued waiter: its outcome, or what to wait for.
    fn step(&self, w: &Waiting, cx: &Context<'_>) -> Step {
        let shared = &*self.shared;
        let mut wake = Vec::new();
        let step = {
            let mut inner = shared.lock();
            let now = shared.clock.now();
            inner.advance(now, shared.spacing, &mut wake);
            match w.slot.outcome.load(Ordering::Acquire) {
                PENDING => match inner.position(w.id) {
                    None => Step::Wait(None), // unreachable: pending ⇒ queued
                    Some(pos) => {
                        let grant = inner.head_grant();
                        if pos == 0 && grant <= now && shared.spacing == Spacing::Strict {
                            // Strict: take the permit as of *now*, the
                            // instant this request actually goes.
                            match inner.state.take(now) {
                                Ok(()) => {
                                    if let Some(entry) = inner.queue.pop_front() {
                                        inner.grant_popped(entry, grant, &mut Vec::new());
                                    }
                                    inner.wake_head(&mut wake);
                                    Step::Done(Self::finish(&mut inner, w, grant, now))
                                }
                                Err(next) => {
                                    Self::store_waker(&mut inner, pos, cx);
                                    Step::Wait(Some(next))
                                }
                            }
                        } else {
                            Self::store_waker(&mut inner, pos, cx);
                            // (`grant <= now` here only if a custom state
                            // refused `take`: look again a little later.)
                            Step::Wait((pos == 0).then_some(grant.max(now + 1)))
                        }
                    }
                },
                STOPPED => Step::Done(Err(Error::Stopped {
                    layer: shared.layer,
                })),
                granted => Step::Done(Self::finish(&mut inner, w, granted - 1, now)),
            }
        };
        wake_all(wake);
        step
    }

    fn store_waker(inner: &mut Inner, pos: usize, cx: &Context<'_>) {
        if let Some(entry) = inner.queue.get_mut(pos) {
            match &mut entry.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
    }

    fn finish(inner: &mut Inner, w: &Waiting, grant: u64, now: u64) -> Result<Permit, Error> {
        let waited = now.saturating_sub(w.arrived);
        let lag = now.saturating_sub(grant);
        inner.stats.record_wait(waited);
        inner.stats.lag.record(lag);
        Ok(Permit {
            granted_at: grant,
            waited: Duration::from_nanos(waited),
            lag: Duration::from_nanos(lag),
        })
    }

    /// A queued waiter gave up.
    fn cancel(&self, w: &Waiting) {
        let mut wake = Vec::new();
        {
            let mut inner = self.shared.lock();
            if w.slot.outcome.load(Ordering::Acquire) == PENDING
                && let Some(pos) = inner.position(w.id)
            {
                inner.queue.remove(pos);
                inner.stats.cancelled += 1;
                if pos == 0 {
                    // The new head inherits the grant instant: wake it so it
                    // arms its timer.
                    inner.wake_head(&mut wake);
                }
            }
        }
        wake_all(wake);
    }
}

#[cold]
fn unreachable_queued() -> Result<Permit, Error> {
    // `start(Some(0))` never queues: a wait of 0 is granted at once and
    // any longer wait is refused.
    Err(Error::RateLimited {
        reason: RateLimitReason::WouldWait,
        retry_after: None,
    })
}

struct Waiting {
    id: u64,
    slot: Arc<Slot>,
    arrived: u64,
    sleep: Option<(u64, Sleep)>,
    precise: Option<TimerKey>,
}

enum Step {
    Done(Result<Permit, Error>),
    /// Wait for a wake-up; `Some(instant)` for the head (arm a timer).
    Wait(Option<u64>),
}

enum AcquireState {
    Start,
    Waiting(Box<Waiting>),
    Done,
}

/// The future returned by [`Limiter::acquire`]. Dropping it while it waits
/// gives its place in the queue back.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    limiter: &'a Limiter,
    max_wait: Option<u64>,
    state: AcquireState,
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            AcquireState::Start => "start",
            AcquireState::Waiting(_) => "waiting",
            AcquireState::Done => "done",
        };
        f.debug_struct("Acquire").field("state", &state).finish()
    }
}

impl Future for Acquire<'_> {
    type Output = Result<Permit, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let limiter = this.limiter;
        loop {
            match &mut this.state {
                AcquireState::Start => match limiter.start(this.max_wait) {
                    Start::Granted(p) => {
                        this.state = AcquireState::Done;
                        return Poll::Ready(Ok(p));
                    }
                    Start::Refused(e) => {
                        this.state = AcquireState::Done;
                        return Poll::Ready(Err(e));
                    }
                    Start::Queued { id, slot, arrived } => {
                        this.state = AcquireState::Waiting(Box::new(Waiting {
                            id,
                            slot,
                            arrived,
                            sleep: None,
                            precise: None,
                        }));
                    }
                },
                AcquireState::Waiting(w) => match limiter.step(w, cx) {
                    Step::Done(result) => {
                        if let (Some(key), Some(t)) = (w.precise.take(), &limiter.shared.precise) {
                            t.cancel(key);
                        }
                        this.state = AcquireState::Done;
                        return Poll::Ready(result);
                    }
                    Step::Wait(None) => {
                        w.sleep = None;
                        if let (Some(key), Some(t)) = (w.precise.take(), &limiter.shared.precise) {
                            t.cancel(key);
                        }
                        return Poll::Pending;
                    }
                    Step::Wait(Some(deadline)) => {
                        let shared = &*limiter.shared;
                        if let Some(t) = &shared.precise
                            && let Some(at) = shared.clock.real_instant(deadline)
                        {
                            w.precise = t.register(w.precise, at, cx.waker());
                        }
                        let sleep = match &mut w.sleep {
                            Some((d, s)) if *d == deadline => s,
                            slot => {
                                &mut slot
                                    .insert((deadline, shared.clock.sleep_until(deadline)))
                                    .1
                            }
                        };
                        if sleep.as_mut().poll(cx).is_ready() {
                            // The timer says the instant has come: look again.
                            w.sleep = None;
                            continue;
                        }
                        return Poll::Pending;
                    }
                },
                AcquireState::Done => {
                    return Poll::Ready(Err(Error::invalid_request(
                        "rate-limit Acquire future polled after completion",
                    )));
                }
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let AcquireState::Waiting(w) = &mut self.state {
            if let (Some(key), Some(t)) = (w.precise.take(), &self.limiter.shared.precise) {
                t.cancel(key);
            }
            self.limiter.cancel(w);
        }
    }
}
