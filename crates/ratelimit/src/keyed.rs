//! `KeyedRateLimitedExecutor`: one limiter per key (per host by default).
//!
//! Each key gets its own [`Limiter`] — its own GCRA state and its own FIFO
//! queue — created on first use with the default quota or the key's
//! override. The per-key lookup (a hash map behind a short lock) lives in
//! this separate type so the plain [`crate::RateLimitedExecutor`] never pays
//! for it.
//!
//! # Bounded memory
//!
//! A key's limiter is *idle* when nobody waits on it and its bucket is full
//! again (`TAT ≤ now`): dropping it and creating a fresh one later changes
//! no grant at all, so idle limiters are evicted freely — in sweeps as the
//! map grows, and whenever a new key arrives at the cap. If the cap
//! (`max_keys`) is reached and no key is idle, a request for a new key is
//! refused with [`RateLimitReason::TooManyKeys`] and a `retry_after` telling
//! when the first key will be idle. A limiter in use by a request in
//! progress is never evicted, so one key never has two limiters at once.
//!
//! Counters of evicted keys are folded into the totals of
//! [`KeyedRateLimitedExecutor::stats`]; per-key counters
//! ([`KeyedRateLimitedExecutor::key_stats`]) exist for live keys only and
//! keep mean and max release lag but no percentiles, to stay small.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use httpclient_core::ext::PermitWait;
use httpclient_core::{
    ConfigError, Driver, Error, Origin, RateLimitReason, Request, Response, async_trait,
};

use crate::Quota;
use crate::clock::{Clock, Precision, TokioClock};
use crate::executor::InFlight;
use crate::limiter::{Limiter, Spacing};
use crate::precise::PreciseTimer;
use crate::stats::LimiterStats;

const LAYER: &str = "KeyedRateLimitedExecutor";
const DEFAULT_MAX_KEYS: usize = 10_000;
const FIRST_SWEEP: usize = 64;

type KeyFn<K> = Arc<dyn Fn(&Request) -> K + Send + Sync>;

/// How long a request may wait for its key's permit.
enum Wait {
    Forever,
    Never,
    AtMost(Duration),
}

/// Totals over every key, including evicted ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys with a live limiter now.
    pub keys: usize,
    /// Most live keys at once.
    pub peak_keys: usize,
    /// Idle limiters evicted so far.
    pub evicted_keys: u64,
    /// Requests refused because the key cap was reached.
    pub rejected_too_many_keys: u64,
    /// Permit requests received (all keys).
    pub requests: u64,
    /// Permits granted.
    pub granted: u64,
    /// Granted permits that had to wait.
    pub throttled: u64,
    /// Refused: a key's queue was full.
    pub rejected_queue_full: u64,
    /// Refused: the caller would not wait.
    pub rejected_would_wait: u64,
    /// Waiters that gave up.
    pub cancelled: u64,
    /// Ended by `stop`.
    pub stopped: u64,
    /// Waiters now, all keys.
    pub queue_len: usize,
    /// Requests forwarded to the driver.
    pub executed: u64,
    /// Total wait of granted requests.
    pub total_wait: Duration,
    /// Longest wait.
    pub max_wait: Duration,
    /// Longest release lag.
    pub max_release_lag: Duration,
}

impl KeyedStats {
    fn add(&mut self, s: &LimiterStats) {
        self.requests += s.requests;
        self.granted += s.granted;
        self.throttled += s.throttled;
        self.rejected_queue_full += s.rejected_queue_full;
        self.rejected_would_wait += s.rejected_would_wait;
        self.cancelled += s.cancelled;
        self.stopped += s.stopped;
        self.total_wait += s.total_wait;
        self.max_wait = self.max_wait.max(s.max_wait);
        self.max_release_lag = self.max_release_lag.max(s.release_lag.max);
    }

    /// Fraction of granted permits that had to wait (0 when none).
    pub fn throttle_rate(&self) -> f64 {
        if self.granted == 0 {
            0.0
        } else {
            self.throttled as f64 / self.granted as f64
        }
    }
}

struct Keys<K> {
    default_quota: Quota,
    overrides: HashMap<K, Quota>,
    limiters: HashMap<K, Limiter>,
    stopped: bool,
    sweep_at: usize,
    peak: usize,
    evicted: u64,
    too_many: u64,
    /// Counters of evicted limiters.
    retired: KeyedStats,
}

/// Limiter options shared by every key.
#[derive(Clone)]
struct Template {
    max_queue: Option<usize>,
    spacing: Spacing,
    precision: Precision,
    clock: Arc<dyn Clock>,
    precise: Arc<PreciseTimer>,
}

impl Template {
    fn limiter(&self, quota: Quota) -> Limiter {
        let mut b = Limiter::builder(quota)
            .spacing(self.spacing)
            .precision(self.precision)
            .shared_clock(self.clock.clone())
            .layer(LAYER)
            .percentiles(false)
            .precise_timer(self.precise.clone());
        if let Some(n) = self.max_queue {
            b = b.max_queue(n);
        }
        b.build()
    }
}

/// A [`Driver`] with one rate limit per key: per host ([`Origin`]) by
/// default, or any function of the request.
///
/// ```
/// use httpclient_core::{testkit::MockDriver, DriverExt};
/// use httpclient_ratelimit::{KeyedRateLimitedExecutor, Quota};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let exec = KeyedRateLimitedExecutor::builder(MockDriver::new(), Quota::per_second(10)?)
///     .quota_for("http://slow.example".parse()?, Quota::per_second(1)?)
///     .max_keys(1_000)?
///     .build();
/// let t0 = tokio::time::Instant::now();
/// exec.send("http://fast.example/a").await?;
/// exec.send("http://fast.example/b").await?; // 100 ms later
/// exec.send("http://slow.example/a").await?; // its own bucket: at once
/// exec.send("http://slow.example/b").await?; // 1 s after the first slow one
/// assert_eq!(t0.elapsed(), Duration::from_millis(1100));
/// assert_eq!(exec.stats().keys, 2);
/// # Ok(()) }
/// ```
pub struct KeyedRateLimitedExecutor<D, K = Origin> {
    driver: D,
    key_fn: KeyFn<K>,
    template: Template,
    max_keys: usize,
    keys: Mutex<Keys<K>>,
    executed: AtomicU64,
    in_flight: AtomicU64,
}

impl<D, K> fmt::Debug for KeyedRateLimitedExecutor<D, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("KeyedRateLimitedExecutor")
            .field("default_quota", &keys.default_quota)
            .field("keys", &keys.limiters.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyedRateLimitedExecutor`].
pub struct KeyedRateLimitedExecutorBuilder<D, K> {
    driver: D,
    key_fn: KeyFn<K>,
    default_quota: Quota,
    overrides: HashMap<K, Quota>,
    max_keys: usize,
    max_queue: Option<usize>,
    spacing: Spacing,
    precision: Precision,
    clock: Option<Arc<dyn Clock>>,
}

impl<D, K> fmt::Debug for KeyedRateLimitedExecutorBuilder<D, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimitedExecutorBuilder")
            .field("default_quota", &self.default_quota)
            .field("overrides", &self.overrides.len())
            .field("max_keys", &self.max_keys)
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> KeyedRateLimitedExecutor<D, Origin> {
    /// One limit per request [`Origin`] (scheme, host, port), each with
    /// `default_quota` unless overridden.
    pub fn builder(driver: D, default_quota: Quota) -> KeyedRateLimitedExecutorBuilder<D, Origin> {
        KeyedRateLimitedExecutor::builder_with_key(driver, default_quota, |r: &Request| {
            r.origin().clone()
        })
    }

    /// Per-origin limits with default options.
    pub fn new(driver: D, default_quota: Quota) -> Self {
        KeyedRateLimitedExecutor::builder(driver, default_quota).build()
    }
}

impl<D, K> KeyedRateLimitedExecutorBuilder<D, K>
where
    D: Driver,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// Give `key` its own quota instead of the default.
    pub fn quota_for(mut self, key: K, quota: Quota) -> Self {
        self.overrides.insert(key, quota);
        self
    }

    /// Cap on live keys (default 10,000).
    ///
    /// # Errors
    /// [`ConfigError`] (field `max_keys`) when `n` is 0.
    pub fn max_keys(mut self, n: usize) -> Result<Self, ConfigError> {
        if n == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        self.max_keys = n;
        Ok(self)
    }

    /// Bound each key's wait queue (see [`crate::LimiterBuilder::max_queue`]).
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = Some(n);
        self
    }

    /// Spacing under late wake-ups, for every key.
    pub fn spacing(mut self, spacing: Spacing) -> Self {
        self.spacing = spacing;
        self
    }

    /// Wake-up precision, for every key (with [`Precision::Fine`] all keys
    /// share one helper thread).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// A custom clock shared by every key.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Build the executor.
    pub fn build(self) -> KeyedRateLimitedExecutor<D, K> {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TokioClock::new()) as Arc<dyn Clock>);
        KeyedRateLimitedExecutor {
            driver: self.driver,
            key_fn: self.key_fn,
            template: Template {
                max_queue: self.max_queue,
                spacing: self.spacing,
                precision: self.precision,
                clock,
                precise: Arc::default(),
            },
            max_keys: self.max_keys,
            keys: Mutex::new(Keys {
                default_quota: self.default_quota,
                overrides: self.overrides,
                limiters: HashMap::new(),
                stopped: false,
                sweep_at: FIRST_SWEEP.min(self.max_keys),
                peak: 0,
                evicted: 0,
                too_many: 0,
                retired: KeyedStats::default(),
            }),
            executed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

impl<D, K> KeyedRateLimitedExecutor<D, K>
where
    D: Driver,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// One limit per `key_fn(request)`, each with `default_quota` unless
    /// overridden. The function should be cheap: it runs on every request.
    pub fn builder_with_key(
        driver: D,
        default_quota: Quota,
        key_fn: impl Fn(&Request) -> K + Send + Sync + 'static,
    ) -> KeyedRateLimitedExecutorBuilder<D, K> {
        KeyedRateLimitedExecutorBuilder {
            driver,
            key_fn: Arc::new(key_fn),
            default_quota,
            overrides: HashMap::new(),
            max_keys: DEFAULT_MAX_KEYS,
            max_queue: None,
            spacing: Spacing::default(),
            precision: Precision::default(),
            clock: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Keys<K>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limiter for `key`, created if needed (evicting idle ones).
    fn limiter_for(&self, key: &K) -> Result<Limiter, Error> {
        let mut keys = self.lock();
        if keys.stopped {
            keys.retired.stopped += 1;
            keys.retired.requests += 1;
            return Err(Error::Stopped { layer: LAYER });
        }
        if let Some(l) = keys.limiters.get(key) {
            return Ok(l.clone());
        }
        if keys.limiters.len() >= keys.sweep_at || keys.limiters.len() >= self.max_keys {
            Self::sweep(&mut keys);
            keys.sweep_at = (keys.limiters.len() * 2)
                .max(FIRST_SWEEP)
                .min(self.max_keys);
        }
        if keys.limiters.len() >= self.max_keys {
            keys.too_many += 1;
            keys.retired.requests += 1;
            let now = self.template.clock.now();
            let retry_after = keys
                .limiters
                .values()
                .filter_map(Limiter::idle_at)
                .min()
                .map(|at| Duration::from_nanos(at.saturating_sub(now).max(1)));
            return Err(Error::RateLimited {
                reason: RateLimitReason::TooManyKeys,
                retry_after,
            });
        }
        let quota = keys
            .overrides
            .get(key)
            .copied()
            .unwrap_or(keys.default_quota);
        let limiter = self.template.limiter(quota);
        keys.limiters.insert(key.clone(), limiter.clone());
        keys.peak = keys.peak.max(keys.limiters.len());
        Ok(limiter)
    }

    fn sweep(keys: &mut Keys<K>) {
        let mut retired = std::mem::take(&mut keys.retired);
        let mut evicted = 0;
        keys.limiters.retain(|_, l| {
            // Only this map holds it (no request in progress) and it is
            // indistinguishable from a fresh limiter.
            let drop_it = l.strong_count() == 1 && l.is_idle();
            if drop_it {
                retired.add(&l.stats());
                evicted += 1;
            }
            !drop_it
        });
        keys.retired = retired;
        keys.evicted += evicted;
    }

    /// Evict every idle key now (it also happens on its own as keys come
    /// and go). Returns how many were evicted.
    pub fn evict_idle(&self) -> usize {
        let mut keys = self.lock();
        let before = keys.evicted;
        Self::sweep(&mut keys);
        usize::try_from(keys.evicted - before).unwrap_or(usize::MAX)
    }

    async fn run(
        &self,
        limiter: &Limiter,
        request: Request,
        wait: Wait,
    ) -> Result<Response, Error> {
        let permit = match wait {
            Wait::Forever => limiter.acquire().await?,
            Wait::Never => limiter.try_acquire()?,
            Wait::AtMost(d) => limiter.acquire_within(d).await?,
        };
        self.executed.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight::enter(&self.in_flight);
        let mut response = self.driver.execute(request).await?;
        PermitWait::record(&mut response, permit.waited());
        Ok(response)
    }

    /// Execute without waiting (see [`crate::RateLimitedExecutor::try_execute`]).
    ///
    /// # Errors
    /// [`Error::RateLimited`] (`WouldWait` or `TooManyKeys`),
    /// [`Error::Stopped`], or the driver's error.
    pub async fn try_execute(&self, request: Request) -> Result<Response, Error> {
        let limiter = self.limiter_for(&(self.key_fn)(&request))?;
        self.run(&limiter, request, Wait::Never).await
    }

    /// Execute if the key's next grant is at most `max_wait` away (see
    /// [`Limiter::acquire_within`]).
    ///
    /// # Errors
    /// As [`KeyedRateLimitedExecutor::try_execute`], plus `QueueFull`.
    pub async fn execute_within(
        &self,
        request: Request,
        max_wait: Duration,
    ) -> Result<Response, Error> {
        let limiter = self.limiter_for(&(self.key_fn)(&request))?;
        self.run(&limiter, request, Wait::AtMost(max_wait)).await
    }

    /// Set `key`'s quota (kept as an override; applied at once if the key
    /// is live, without a fresh burst).
    pub fn set_quota_for(&self, key: K, quota: Quota) {
        let mut keys = self.lock();
        if let Some(l) = keys.limiters.get(&key) {
            l.set_quota(quota);
        }
        keys.overrides.insert(key, quota);
    }

    /// Drop `key`'s override: it goes back to the default quota.
    pub fn clear_quota_for(&self, key: &K) {
        let mut keys = self.lock();
        keys.overrides.remove(key);
        let q = keys.default_quota;
        if let Some(l) = keys.limiters.get(key) {
            l.set_quota(q);
        }
    }

    /// Change the default quota; live keys without an override switch at
    /// once (no fresh burst).
    #[doc(alias = "UpdateRate")]
    pub fn set_default_quota(&self, quota: Quota) {
        let mut keys = self.lock();
        keys.default_quota = quota;
        let keys = &*keys;
        for (k, l) in &keys.limiters {
            if !keys.overrides.contains_key(k) {
                l.set_quota(quota);
            }
        }
    }

    /// The quota `key` gets (override or default).
    pub fn quota_for(&self, key: &K) -> Quota {
        let keys = self.lock();
        keys.overrides
            .get(key)
            .copied()
            .unwrap_or(keys.default_quota)
    }

    /// Stop every key: waiters wake with [`Error::Stopped`], new requests
    /// fail at once, requests in flight finish.
    pub fn stop(&self) {
        let mut keys = self.lock();
        keys.stopped = true;
        for l in keys.limiters.values() {
            l.stop();
        }
    }

    /// Totals over all keys, evicted ones included.
    pub fn stats(&self) -> KeyedStats {
        let keys = self.lock();
        let mut s = keys.retired.clone();
        for l in keys.limiters.values() {
            let ls = l.stats();
            s.add(&ls);
            s.queue_len += ls.queue_len;
        }
        s.keys = keys.limiters.len();
        s.peak_keys = keys.peak;
        s.evicted_keys = keys.evicted;
        s.rejected_too_many_keys = keys.too_many;
        s.executed = self.executed.load(Ordering::Relaxed);
        s
    }

    /// Counters of one live key (`None` if it has no limiter now).
    pub fn key_stats(&self, key: &K) -> Option<LimiterStats> {
        self.lock().limiters.get(key).map(Limiter::stats)
    }

    /// Counters of every live key.
    pub fn all_key_stats(&self) -> Vec<(K, LimiterStats)> {
        self.lock()
            .limiters
            .iter()
            .map(|(k, l)| (k.clone(), l.stats()))
            .collect()
    }

    /// Requests forwarded and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.driver
    }
}

#[async_trait]
impl<D, K> Driver for KeyedRateLimitedExecutor<D, K>
where
    D: Driver,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        let limiter = self.limiter_for(&(self.key_fn)(&request))?;
        self.run(&limiter, request, Wait::Forever).await
    }

    fn connections_opened(&self) -> Option<u64> {
        self.driver.connections_opened()
    }
}
