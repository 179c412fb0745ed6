//! [`ConnectionPool`]: the retry / health / per-host-limit layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use httpclient_core::ext::RetryInfo;
use httpclient_core::{
    ConfigError, Driver, Error, Origin, Request, Response, retry_after_from_headers,
};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::budget::{BudgetState, Grant};
use crate::health::{Admit, HostEntry, Registry, error_blames_host, resolve_target};
use crate::stats::{Counters, inc};
use crate::{
    HealthCheck, HostHealth, HostWarmup, OutlierDetection, PoolStats, RetryBudget, RetryPolicy,
    Warmup, WarmupReport,
};

const LAYER: &str = "ConnectionPool";

/// Default bound on the number of hosts the pool keeps state for.
pub const DEFAULT_MAX_HOSTS: usize = 10_000;

type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State shared by the pool, its request futures and its checker task.
pub(crate) struct Shared<D> {
    inner: D,
    policy: RwLock<Arc<RetryPolicy>>,
    /// Whether the policy in force has a total deadline, so `execute` can
    /// pick the request's path without the lock.
    policy_has_deadline: AtomicBool,
    budget_config: RetryBudget,
    budget: BudgetState,
    registry: Registry,
    counters: Counters,
    rng: Mutex<fastrand::Rng>,
    token: CancellationToken,
    wall_clock: WallClock,
    connections_baseline: AtomicU64,
    health_summary: Mutex<Option<(usize, Duration)>>,
}

impl<D> Shared<D> {
    /// A request reached the driver: a deposit in the retry budget (not
    /// even a clock read when the budget is unlimited).
    fn deposit(&self) {
        if !self.budget_config.is_unlimited() {
            self.budget.deposit(Instant::now());
        }
    }

    /// Whether a request needs the full retry loop from its first attempt:
    /// there is host state to consult or a total deadline to keep.
    fn needs_full_loop(&self) -> bool {
        self.registry.tracks_hosts() || self.policy_has_deadline.load(Ordering::Relaxed)
    }
}

struct Checker {
    handle: JoinHandle<()>,
    config: watch::Sender<Option<Arc<ProbePlan>>>,
}

struct ProbePlan {
    check: HealthCheck,
    targets: Vec<(Arc<HostEntry>, String)>,
}

/// A [`Driver`] layer that retries what is safe to retry, as fast as the
/// server allows and no faster, warms connections up, checks host health
/// and fails fast on hosts that are down. See the [crate docs](crate).
///
/// Cheap to share behind an `Arc` (it is a `Driver`, and so is
/// `Arc<ConnectionPool<D>>`). Dropping the pool stops its health checker.
pub struct ConnectionPool<D> {
    shared: Arc<Shared<D>>,
    checker: Mutex<Option<Checker>>,
}

impl<D> fmt::Debug for ConnectionPool<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field(
                "policy",
                &*self.shared.policy.read().unwrap_or_else(|p| p.into_inner()),
            )
            .field("budget", &self.shared.budget_config)
            .field("stopped", &self.shared.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Builds a [`ConnectionPool`]; see [`ConnectionPool::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct PoolBuilder<D> {
    driver: D,
    policy: RetryPolicy,
    budget: RetryBudget,
    per_host_limit: Option<usize>,
    outlier: Option<OutlierDetection>,
    max_hosts: usize,
    seed: Option<u64>,
    token: Option<CancellationToken>,
    wall_clock: Option<WallClock>,
}

impl<D> fmt::Debug for PoolBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("policy", &self.policy)
            .field("budget", &self.budget)
            .field("per_host_limit", &self.per_host_limit)
            .field("outlier", &self.outlier)
            .field("max_hosts", &self.max_hosts)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> PoolBuilder<D> {
    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The retry budget (default [`RetryBudget::default`]: 20 % plus 10/s
    /// over 10 s).
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// At most `n` requests in flight per host ([`Origin`]); the others
    /// wait, in order, without holding anything else. A slot is held per
    /// attempt, not across backoff sleeps, and is freed if the request
    /// future is dropped. Must be at least 1.
    pub fn per_host_limit(mut self, n: usize) -> Self {
        self.per_host_limit = Some(n);
        self
    }

    /// Turn on passive outlier detection (off by default: ejecting a host
    /// on real-traffic failures changes outcomes, so it is opt-in).
    pub fn outlier_detection(mut self, od: OutlierDetection) -> Self {
        self.outlier = Some(od);
        self
    }

    /// Bound on the hosts the pool keeps state for (default
    /// [`DEFAULT_MAX_HOSTS`]). Idle hosts are forgotten when it is reached;
    /// if all are busy, a request to a new host fails with
    /// [`Error::RateLimited`] (`TooManyKeys`) when a per-host limit is set,
    /// or goes untracked by outlier detection otherwise.
    pub fn max_hosts(mut self, n: usize) -> Self {
        self.max_hosts = n;
        self
    }

    /// Seed the jitter (backoff and health-check interval) so a run can be
    /// replayed exactly; by default the seed is random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Tie the pool to a cancellation token: cancelling it is the same as
    /// calling [`ConnectionPool::stop`]. (The pool uses a child token, so
    /// `stop()` never cancels yours.)
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The wall clock used to read HTTP-date `Retry-After` values (default
    /// [`SystemTime::now`]). Backoff and deadlines run on tokio's clock;
    /// only dates need a wall clock, and tests with a paused tokio clock
    /// inject a fixed one here to make date arithmetic exact.
    pub fn wall_clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.wall_clock = Some(Arc::new(now));
        self
    }

    /// Check the settings and make the pool.
    ///
    /// # Errors
    /// [`ConfigError`] for a per-host limit of 0 (or above tokio's
    /// semaphore maximum) or `max_hosts` of 0.
    pub fn build(self) -> Result<ConnectionPool<D>, ConfigError> {
        if let Some(n) = self.per_host_limit {
            if n == 0 {
                return Err(ConfigError::new("per_host_limit", "must be at least 1"));
            }
            if n > tokio::sync::Semaphore::MAX_PERMITS {
                return Err(ConfigError::new(
                    "per_host_limit",
                    format!("{n} is above {}", tokio::sync::Semaphore::MAX_PERMITS),
                ));
            }
        }
        if self.max_hosts == 0 {
            return Err(ConfigError::new("max_hosts", "must be at least 1"));
        }
        Ok(self.assemble())
    }

    fn assemble(self) -> ConnectionPool<D> {
        let token = self
            .token
            .map_or_else(CancellationToken::new, |t| t.child_token());
        let baseline = self.driver.connections_opened().unwrap_or(0);
        let rng = self
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        ConnectionPool {
            shared: Arc::new(Shared {
                inner: self.driver,
                policy_has_deadline: AtomicBool::new(self.policy.total_deadline().is_some()),
                policy: RwLock::new(Arc::new(self.policy)),
                budget_config: self.budget,
                budget: BudgetState::new(self.budget, Instant::now()),
                registry: Registry::new(self.max_hosts, self.per_host_limit, self.outlier),
                counters: Counters::default(),
                rng: Mutex::new(rng),
                token,
                wall_clock: self.wall_clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
                connections_baseline: AtomicU64::new(baseline),
                health_summary: Mutex::new(None),
            }),
            checker: Mutex::new(None),
        }
    }
}

/// How one request's life ended, for the counters. Dropped without
/// `finish` it counts as cancelled (the future was dropped) — or, when the
/// drop is a panic unwinding out of the inner driver, as failed with kind
/// `"panicked"`, so a layer above that contains the panic (a
/// `BatchExecutor` reports it in the request's slot) and the pool agree.
struct RequestGuard<'a> {
    counters: &'a Counters,
    finished: bool,
}

impl<'a> RequestGuard<'a> {
    /// Count a request in (`requests`, `in_flight`).
    fn start(counters: &'a Counters) -> Self {
        inc(&counters.requests);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            counters,
            finished: false,
        }
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            if std::thread::panicking() {
                inc(&self.counters.failed);
                self.counters.add_failure_kind("panicked");
            } else {
                inc(&self.counters.cancelled);
            }
        }
    }
}

impl<D: Driver> ConnectionPool<D> {
    /// A pool with the default policy (3 retries, 100 ms base backoff with
    /// full jitter up to 10 s, `Retry-After` up to 30 s), the default retry
    /// budget (20 % + 10/s), no per-host limit, no outlier detection and no
    /// health checks.
    pub fn new(driver: D) -> Self {
        Self::builder(driver).assemble()
    }

    /// Start configuring a pool over `driver`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use httpclient_core::testkit::NoopDriver;
    /// use httpclient_pool::{ConnectionPool, OutlierDetection, RetryBudget, RetryPolicy};
    ///
    /// let pool = ConnectionPool::builder(NoopDriver)
    ///     .retry_policy(RetryPolicy::builder().max_retries(5).build()?)
    ///     .retry_budget(RetryBudget::new(0.5, 10, Duration::from_secs(10))?)
    ///     .per_host_limit(32)
    ///     .outlier_detection(OutlierDetection::new(5, Duration::from_secs(10))?)
    ///     .build()?;
    /// assert_eq!(pool.policy().max_retries(), 5);
    /// assert!(ConnectionPool::builder(NoopDriver).per_host_limit(0).build().is_err());
    /// # Ok::<(), httpclient_core::ConfigError>(())
    /// ```
    pub fn builder(driver: D) -> PoolBuilder<D> {
        PoolBuilder {
            driver,
            policy: RetryPolicy::default(),
            budget: RetryBudget::default(),
            per_host_limit: None,
            outlier: None,
            max_hosts: DEFAULT_MAX_HOSTS,
            seed: None,
            token: None,
            wall_clock: None,
        }
    }

    /// The driver this pool wraps.
    pub fn inner(&self) -> &D {
        &self.shared.inner
    }

    /// The retry policy in force.
    pub fn policy(&self) -> Arc<RetryPolicy> {
        Arc::clone(&self.shared.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replace the retry policy; requests already running keep the one they
    /// started with.
    pub fn set_policy(&self, policy: RetryPolicy) {
        let mut slot = self
            .shared
            .policy
            .write()
            .unwrap_or_else(|p| p.into_inner());
        self.shared
            .policy_has_deadline
            .store(policy.total_deadline().is_some(), Ordering::Relaxed);
        *slot = Arc::new(policy);
    }

    /// Go-style shortcut: keep the current policy but set the number of
    /// retries and the base backoff delay (the first retry's ceiling; later
    /// ones double up to `max_delay`, with jitter — unlike the Go package's
    /// constant delay).
    ///
    /// # Errors
    /// [`ConfigError`] when `max_retries` is above
    /// [`crate::MAX_RETRIES_LIMIT`] or `base_delay` is above the policy's
    /// `max_delay`.
    #[doc(alias = "SetRetryPolicy")]
    pub fn set_retry_policy(
        &self,
        max_retries: u32,
        base_delay: Duration,
    ) -> Result<(), ConfigError> {
        let policy = self
            .policy()
            .to_builder()
            .max_retries(max_retries)
            .base_delay(base_delay)
            .build()?;
        self.set_policy(policy);
        Ok(())
    }

    /// Stop the pool: the health checker ends, backoff sleeps wake and
    /// return the last attempt's outcome, a first attempt waiting for a
    /// per-host slot and every later call fail with [`Error::Stopped`] (a
    /// retry waiting for a slot returns its previous attempt's outcome).
    /// Attempts already at the driver finish normally. Cannot be undone;
    /// cancelling the token given to [`PoolBuilder::cancellation_token`]
    /// does the same.
    #[doc(alias = "Stop")]
    pub fn stop(&self) {
        self.shared.token.cancel();
        // Abort but keep the handle, so `health_checker_running` reports
        // whether the task has really ended rather than that we forgot it.
        if let Some(c) = lock(&self.checker).as_ref() {
            c.handle.abort();
        }
        *lock(&self.shared.health_summary) = None;
    }

    /// Whether [`ConnectionPool::stop`] was called (or the token given to
    /// the builder was cancelled).
    pub fn is_stopped(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// A snapshot of the counters, host health and configuration.
    #[doc(alias = "Stats")]
    pub fn stats(&self) -> PoolStats {
        let s = &*self.shared;
        let c = &s.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let stopped = s.token.is_cancelled();
        let connections_opened = s
            .inner
            .connections_opened()
            .map(|n| n.saturating_sub(s.connections_baseline.load(Ordering::Relaxed)));
        PoolStats {
            requests: get(&c.requests),
            attempts: get(&c.attempts),
            retries: get(&c.retries),
            succeeded: get(&c.succeeded),
            failed: get(&c.failed),
            cancelled: get(&c.cancelled),
            in_flight: get(&c.in_flight),
            failures_by_kind: lock(&c.failures_by_kind).clone(),
            failed_statuses: lock(&c.failed_statuses).clone(),
            budget_exhausted: get(&c.budget_exhausted),
            retries_exhausted: get(&c.retries_exhausted),
            retry_after_too_long: get(&c.retry_after_too_long),
            not_retried_unsafe: get(&c.not_retried_unsafe),
            deadline_exceeded: get(&c.deadline_exceeded),
            unhealthy_rejected: get(&c.unhealthy_rejected),
            host_limit_waits: get(&c.host_limit_waits),
            backoff: Duration::from_nanos(get(&c.backoff_nanos)),
            probes: get(&c.probes),
            probe_failures: get(&c.probe_failures),
            warmup_requests: get(&c.warmup_requests),
            connections_opened,
            hosts: s.registry.snapshot(Instant::now()),
            retry_policy: (*self.policy()).clone(),
            retry_budget: s.budget_config,
            per_host_limit: s.registry.per_host_limit(),
            // A cancelled builder token ends the checker without `stop()`.
            health_check: if stopped {
                None
            } else {
                *lock(&s.health_summary)
            },
            stopped,
        }
    }

    /// Zero the counters (not host health, not the in-flight gauge); the
    /// connection count restarts from the driver's current figure.
    #[doc(alias = "ResetStats")]
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
        if let Some(n) = self.shared.inner.connections_opened() {
            self.shared.connections_baseline.store(n, Ordering::Relaxed);
        }
    }

    /// The health of one host, if the pool tracks it.
    pub fn host_health(&self, origin: &Origin) -> Option<HostHealth> {
        self.shared.registry.get(origin)
    }

    /// Warm up `per_host` connections to each host with `HEAD /` requests;
    /// see [`ConnectionPool::warmup_connections_with`].
    ///
    /// # Errors
    /// As [`ConnectionPool::warmup_connections_with`].
    #[doc(alias = "WarmupConnections")]
    pub async fn warmup_connections<I, S>(
        &self,
        hosts: I,
        per_host: usize,
    ) -> Result<WarmupReport, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.warmup_connections_with(hosts, Warmup::new(per_host))
            .await
    }

    /// Send `warmup.per_host()` real requests to each host at once through
    /// the inner driver and report per host; see [`crate::warmup`] for what
    /// it does and does not promise. A host that does not parse gets an
    /// error in its own entry; the others still run.
    ///
    /// ```no_run
    /// # use httpclient_pool::ConnectionPool;
    /// # async fn demo(pool: ConnectionPool<impl httpclient_core::Driver>) -> Result<(), httpclient_core::Error> {
    /// let report = pool.warmup_connections(["http://127.0.0.1:8080"], 8).await?;
    /// println!("{} ok, {} failed, {:?} connections opened",
    ///     report.succeeded(), report.failed(), report.connections_opened);
    /// for host in &report.hosts {
    ///     for err in &host.errors { eprintln!("{}: {err}", host.host); }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] for `per_host` of 0 or above
    /// [`crate::MAX_WARMUP_PER_HOST`], a zero timeout or a bad path;
    /// [`Error::Stopped`] when the pool is stopped.
    pub async fn warmup_connections_with<I, S>(
        &self,
        hosts: I,
        warmup: Warmup,
    ) -> Result<WarmupReport, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let s = &*self.shared;
        if s.token.is_cancelled() {
            return Err(Error::Stopped { layer: LAYER });
        }
        warmup.validate()?;
        let started = Instant::now();
        let deadline = started + warmup.get_timeout();
        let before = s.inner.connections_opened();
        let per_host = warmup.per_host();
        let mut report: Vec<HostWarmup> = Vec::new();
        let mut pending: Vec<usize> = Vec::new();
        let mut futs = FuturesUnordered::new();
        for host in hosts {
            let host = host.as_ref().to_string();
            let index = report.len();
            let mut entry = HostWarmup {
                host: host.clone(),
                origin: None,
                succeeded: 0,
                failed: 0,
                errors: Vec::new(),
            };
            let prepared = resolve_target(&host, warmup.get_path()).and_then(|(origin, url)| {
                let request = Request::builder(warmup.get_method().clone(), &url)
                    .timeout(warmup.get_timeout())
                    .build()?;
                let slot = s.registry.entry_for(&origin)?;
                Ok((origin, request, slot))
            });
            match prepared {
                Err(e) => {
                    entry.failed = per_host;
                    entry.errors.push(e);
                    pending.push(0);
                }
                Ok((origin, request, slot)) => {
                    entry.origin = Some(origin);
                    pending.push(per_host);
                    for _ in 0..per_host {
                        let Some(req) = request.try_clone() else {
                            break; // empty body: always replayable
                        };
                        let slot = slot.clone();
                        futs.push(async move {
                            let _permit = match &slot {
                                Some(e) => acquire_slot(e).await,
                                None => None,
                            };
                            inc(&s.counters.warmup_requests);
                            (index, s.inner.execute(req).await.map(drop))
                        });
                    }
                }
            }
            report.push(entry);
        }
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        let interrupted = loop {
            tokio::select! {
                next = futs.next() => match next {
                    Some((i, result)) => {
                        pending[i] -= 1;
                        match result {
                            Ok(()) => report[i].succeeded += 1,
                            Err(e) => {
                                report[i].failed += 1;
                                report[i].errors.push(e);
                            }
                        }
                    }
                    None => break None,
                },
                _ = &mut sleep => break Some(false),
                _ = s.token.cancelled() => break Some(true),
            }
        };
        drop(futs);
        if let Some(stopped) = interrupted {
            for (i, n) in pending.iter().enumerate() {
                for _ in 0..*n {
                    report[i].failed += 1;
                    report[i].errors.push(if stopped {
                        Error::Stopped { layer: LAYER }
                    } else {
                        Error::DeadlineExceeded
                    });
                }
            }
        }
        let connections_opened = s
            .inner
            .connections_opened()
            .map(|after| after.saturating_sub(before.unwrap_or(0)));
        Ok(WarmupReport {
            hosts: report,
            connections_opened,
            elapsed: started.elapsed(),
        })
    }

    /// A per-host slot for one attempt, waiting (counted) if the host is
    /// at its limit; [`Error::Stopped`] or [`Error::DeadlineExceeded`] if
    /// the pool stops or the deadline passes first.
    async fn slot(
        &self,
        entry: &HostEntry,
        deadline: Option<Instant>,
    ) -> Result<Option<OwnedSemaphorePermit>, Error> {
        let s = &*self.shared;
        let Some((_, sem)) = entry.limit.as_ref() else {
            return Ok(None);
        };
        if let Ok(p) = Arc::clone(sem).try_acquire_owned() {
            return Ok(Some(p));
        }
        inc(&s.counters.host_limit_waits);
        let out_of_time = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            p = Arc::clone(sem).acquire_owned() => Ok(p.ok()),
            _ = s.token.cancelled() => Err(Error::Stopped { layer: LAYER }),
            _ = out_of_time => {
                inc(&s.counters.deadline_exceeded);
                Err(Error::DeadlineExceeded)
            }
        }
    }

    /// One request, on the common path: no host state to consult, no total
    /// deadline. The first attempt runs inline, without the retry loop's
    /// state (backoff sleep, deadline timer, per-host slot, previous
    /// outcome), so this future stays small; only an outcome that may be
    /// retried moves on to [`ConnectionPool::retry_loop`], boxed — by then a
    /// backoff sleep of milliseconds follows, and one allocation is noise.
    /// Should the configuration have changed since `execute` chose this
    /// path (health checks enabled, a policy with a deadline installed), the
    /// whole request goes through the loop instead.
    ///
    /// Written as a function returning an `async` block, and scoped with
    /// care, because this future's size is paid on every request (it is
    /// moved into its box, and above about 1 KiB the allocator takes its
    /// slow path): the request lives in one slot, the captured `original`
    /// — an `async fn` would keep its argument and a copy of it — and the
    /// attempt's copy and outcome are scoped so they are not kept across an
    /// `.await` that no longer needs them.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its request argument twice"
    )]
    fn run(
        &self,
        mut original: Option<Request>,
        span: tracing::Span,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        async move {
            let s = &*self.shared;
            let mut guard = RequestGuard::start(&s.counters);
            let policy = self.policy();
            let (result, attempts, backoff) = 'outcome: {
                let Some(request) = original.as_ref() else {
                    break 'outcome (Err(Error::Cancelled), 0, Duration::ZERO);
                };
                let st = match self.begin(request, &policy) {
                    Ok(st) => st,
                    Err(e) => break 'outcome (Err(e), 0, Duration::ZERO),
                };
                if st.entry.is_some() || st.deadline.is_some() {
                    let all = Box::pin(self.retry_loop(&mut original, &policy, st, None));
                    break 'outcome all.await;
                }
                let mut send = {
                    // Keep the original for a possible retry; the driver
                    // gets a copy (the body is `Bytes`: a reference-count
                    // bump). A request that can never be retried is handed
                    // over as is.
                    let copy = if st.replayable && policy.max_retries() > 0 {
                        request.try_clone()
                    } else {
                        None
                    };
                    let mut req = match copy {
                        Some(req) => req,
                        None => match original.take() {
                            Some(req) => req,
                            None => break 'outcome (Err(Error::Cancelled), 0, Duration::ZERO),
                        },
                    };
                    if req.options().timeout.is_none() {
                        req.options_mut().timeout = policy.attempt_timeout();
                    }
                    s.deposit();
                    self.send(req, 1)
                };
                let retry = {
                    let mut outcome = (&mut send).await;
                    trace_outcome(send.span(), &outcome);
                    drop(send);
                    // What `decide` would end at once, with no counter to
                    // touch: an answer whose status is not retried, an error
                    // not worth retrying. Everything else takes the full
                    // decision.
                    let done = match &outcome {
                        Ok(resp) => !policy.is_retry_status(resp.status()),
                        Err(err) => !policy.is_retry_error(err),
                    };
                    if done {
                        // Finished here, in place: the response is stamped
                        // where it lies and returned, not moved through the
                        // block's result and `finish`.
                        guard.finished = true;
                        self.finish_in_place(&policy, &span, &mut outcome, 1, Duration::ZERO);
                        return outcome;
                    }
                    let st = Attempts { attempt: 1, ..st };
                    Box::pin(self.retry_loop(&mut original, &policy, st, Some(outcome)))
                };
                retry.await
            };
            guard.finished = true;
            self.finish(&policy, &span, result, attempts, backoff)
        }
    }

    /// One request through the full retry loop, from the start: used when
    /// the pool has host state to consult (per-host limit, outlier
    /// detection, health checks) or the policy has a total deadline.
    /// Like [`ConnectionPool::run`], an `async` block holding the request
    /// in one place, which the loop borrows.
    fn run_general(
        &self,
        request: Request,
        span: tracing::Span,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        let mut original = Some(request);
        async move {
            let mut guard = RequestGuard::start(&self.shared.counters);
            let policy = self.policy();
            let started = match &original {
                Some(request) => self.begin(request, &policy),
                None => Err(Error::Cancelled),
            };
            let (result, attempts, backoff) = match started {
                Ok(st) => self.retry_loop(&mut original, &policy, st, None).await,
                Err(e) => (Err(e), 0, Duration::ZERO),
            };
            guard.finished = true;
            self.finish(&policy, &span, result, attempts, backoff)
        }
    }

    /// The checks before the first attempt, and the loop's starting state.
    fn begin(&self, request: &Request, policy: &RetryPolicy) -> Result<Attempts, Error> {
        let s = &*self.shared;
        if s.token.is_cancelled() {
            return Err(Error::Stopped { layer: LAYER });
        }
        // Only a pool that tracks hosts needs the origin: a request makes
        // it on first use, which costs a parse and an allocation.
        let entry = if s.registry.tracks_hosts() {
            s.registry.entry_for(request.origin())?
        } else {
            None
        };
        Ok(Attempts {
            entry,
            deadline: policy.total_deadline().map(|d| Instant::now() + d),
            replayable: request.body().is_replayable(),
            retry_safe: request.is_retry_safe(),
            attempt: 0,
            backoff: Duration::ZERO,
        })
    }

    /// One attempt at the inner driver, in its `attempt` span (`attempt`
    /// counts from 1; the span is the future's [`span`](tracing::instrument::Instrumented::span)).
    /// The caller reports the outcome with [`trace_outcome`] once it is
    /// known (the deadline may cut it short).
    #[inline(always)] // so the request goes to the driver without another move
    fn send(&self, req: Request, attempt: u32) -> Attempt<'_> {
        inc(&self.shared.counters.attempts);
        let span = tracing::debug_span!(target: "httpclient_pool", "attempt", attempt);
        tracing::Instrument::instrument(self.shared.inner.execute(req), span)
    }

    /// The retry loop. With `current`, the first attempt already ran (on
    /// the fast path) and the loop starts by deciding on its outcome.
    /// `original` is the request, borrowed from the caller's future (so it
    /// is held once), taken on the last attempt that may be sent.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold its outcome argument twice"
    )]
    fn retry_loop<'a>(
        &'a self,
        original: &'a mut Option<Request>,
        policy: &'a RetryPolicy,
        mut st: Attempts,
        mut current: Option<Result<Response, Error>>,
    ) -> impl Future<Output = (Result<Response, Error>, u32, Duration)> + Send + 'a {
        async move {
            let s = &*self.shared;
            let c = &s.counters;
            let max_retries = policy.max_retries();
            // The previous attempt's outcome, while the next one is being set up.
            let mut last: Option<Result<Response, Error>> = None;
            // The budget's grant for the retry being set up: given back if
            // the retry is not sent (turned away after the backoff, stopped,
            // or this future dropped).
            let mut grant: Option<Grant<'_>> = None;
            loop {
                if let Some(outcome) = current.take() {
                    let (delay, outcome) = match self.decide(policy, &st, outcome) {
                        Step::Done(out) => return (out, st.attempt, st.backoff),
                        Step::Retry {
                            delay,
                            outcome,
                            withdrawn,
                        } => {
                            grant = withdrawn.map(|at| Grant::new(&s.budget, at));
                            (delay, outcome)
                        }
                    };
                    let slept_from = Instant::now();
                    let stopped = tokio::select! {
                        _ = tokio::time::sleep(delay) => false,
                        _ = s.token.cancelled() => true,
                    };
                    let slept = slept_from.elapsed();
                    st.backoff += slept;
                    c.backoff_nanos.fetch_add(
                        u64::try_from(slept.as_nanos()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    if stopped {
                        return (outcome, st.attempt, st.backoff);
                    }
                    last = Some(outcome);
                }
                let (attempt, backoff) = (st.attempt, st.backoff);

                // The health gate, before every attempt.
                let trial = match &st.entry {
                    None => None,
                    Some(e) => match e.admit(Instant::now()) {
                        Admit::Go => None,
                        Admit::Trial(t) => Some(t),
                        Admit::Reject => {
                            inc(&c.unhealthy_rejected);
                            let out = last.unwrap_or_else(|| {
                                Err(Error::UnhealthyHost {
                                    origin: e.origin.clone(),
                                })
                            });
                            return (out, attempt, backoff);
                        }
                    },
                };

                if original.is_none() {
                    // The original went out on an attempt that was to be the
                    // last; nothing left to send.
                    return (last.unwrap_or(Err(Error::Cancelled)), attempt, backoff);
                }

                // Wait for a per-host slot (bounded by the deadline and stop),
                // then send (bounded by the deadline).
                let permit = match &st.entry {
                    Some(e) if e.limit.is_some() => match self.slot(e, st.deadline).await {
                        Ok(p) => p,
                        // Nothing was sent: the previous attempt's outcome, if
                        // any, is the most informative answer.
                        Err(err) => return (last.unwrap_or(Err(err)), attempt, backoff),
                    },
                    _ => None,
                };
                let send = {
                    // This attempt's copy of the request: clone while a retry
                    // may follow, hand over the original on the last possible
                    // attempt. (A block, so the copy is not kept across the
                    // send's `.await` in this future.)
                    let copy = if st.replayable && attempt < max_retries {
                        original.as_ref().and_then(Request::try_clone)
                    } else {
                        None
                    };
                    let Some(mut req) = copy.or_else(|| original.take()) else {
                        return (last.unwrap_or(Err(Error::Cancelled)), attempt, backoff);
                    };
                    if req.options().timeout.is_none() {
                        req.options_mut().timeout = policy.attempt_timeout();
                    }
                    if attempt == 0 {
                        s.deposit();
                    } else {
                        // Counted once the retry really goes out: past the
                        // health gate and the per-host slot.
                        inc(&c.retries);
                        if let Some(g) = grant.take() {
                            g.spend();
                        }
                    }
                    self.send(req, attempt + 1)
                };
                let attempt_span = send.span().clone();
                let outcome = match st.deadline {
                    Some(d) => match tokio::time::timeout_at(d, send).await {
                        Ok(r) => r,
                        Err(_) => {
                            inc(&c.deadline_exceeded);
                            Err(Error::DeadlineExceeded)
                        }
                    },
                    None => send.await,
                };
                drop(permit);
                st.attempt += 1;
                trace_outcome(&attempt_span, &outcome);
                drop(attempt_span);

                // Passive health: every real outcome feeds the host's state.
                if let Some(e) = &st.entry {
                    if s.registry.outlier.is_some() || trial.is_some() {
                        let failed = match &s.registry.outlier {
                            Some(od) => od.classify(&outcome),
                            None => match &outcome {
                                Ok(r) => Some(r.status().as_u16() >= 500),
                                Err(err) => error_blames_host(err),
                            },
                        };
                        let text = || match &outcome {
                            Ok(r) => format!("HTTP {}", r.status()),
                            Err(err) => err.to_string(),
                        };
                        e.record_traffic(
                            failed,
                            text,
                            Instant::now(),
                            s.registry.outlier.as_ref(),
                            trial,
                        );
                    }
                }
                current = Some(outcome);
            }
        }
    }

    /// Return this outcome, or retry after how long?
    fn decide(
        &self,
        policy: &RetryPolicy,
        st: &Attempts,
        outcome: Result<Response, Error>,
    ) -> Step {
        let s = &*self.shared;
        let c = &s.counters;
        let server_delay: Option<Duration> = match &outcome {
            Ok(resp) => {
                if !policy.is_retry_status(resp.status()) {
                    return Step::Done(outcome);
                }
                if !st.retry_safe {
                    inc(&c.not_retried_unsafe);
                    tracing::debug!(status = %resp.status(), "not retried: request is not retry-safe");
                    return Step::Done(outcome);
                }
                retry_after_from_headers(resp.headers(), (s.wall_clock)())
            }
            Err(err) => {
                if !policy.is_retry_error(err) {
                    return Step::Done(outcome);
                }
                // Safe to resend: retry-safe, or provably never sent.
                let resendable = st.retry_safe || !err.may_have_been_sent();
                if !st.replayable || !resendable {
                    inc(&c.not_retried_unsafe);
                    tracing::debug!(error = %err, replayable = st.replayable, "not retried: it may have been applied, or its body cannot be replayed");
                    return Step::Done(outcome);
                }
                match err {
                    Error::RateLimited { retry_after, .. }
                    | Error::HttpStatus { retry_after, .. } => *retry_after,
                    _ => None,
                }
            }
        };
        if st.attempt > policy.max_retries() {
            inc(&c.retries_exhausted);
            return Step::Done(outcome);
        }
        let delay = match server_delay {
            Some(d) if d > policy.max_retry_after() => {
                inc(&c.retry_after_too_long);
                return Step::Done(match outcome {
                    Ok(resp) => Err(Error::HttpStatus {
                        status: resp.status(),
                        retry_after: Some(d),
                    }),
                    Err(e) => Err(e),
                });
            }
            Some(d) => d,
            None => policy.backoff(st.attempt, &mut lock(&s.rng)),
        };
        // A host that this very outcome (or other traffic) marked down, and
        // that will still be down when the backoff ends: fail fast now
        // instead of sleeping for a retry that would not be sent, and keep
        // the budget for hosts that can use it.
        if let Some(e) = &st.entry {
            if e.surely_rejects_at(Instant::now().checked_add(delay)) {
                inc(&c.unhealthy_rejected);
                return Step::Done(outcome);
            }
        }
        if st.deadline.is_some_and(|d| Instant::now() + delay >= d) {
            inc(&c.deadline_exceeded);
            return Step::Done(outcome);
        }
        if s.token.is_cancelled() {
            return Step::Done(outcome);
        }
        let withdrawn = if s.budget_config.is_unlimited() {
            None
        } else {
            let now = Instant::now();
            if !s.budget.try_withdraw(now) {
                inc(&c.budget_exhausted);
                tracing::debug!("not retried: retry budget exhausted");
                return Step::Done(outcome);
            }
            Some(now)
        };
        tracing::debug!(
            target: "httpclient_pool",
            attempt = st.attempt,
            backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            from_server = server_delay.is_some(),
            "retrying after backoff"
        );
        Step::Retry {
            delay,
            outcome,
            withdrawn,
        }
    }

    /// Record the request's end in its span and the counters, and stamp a
    /// response with its [`RetryInfo`].
    fn finish(
        &self,
        policy: &RetryPolicy,
        span: &tracing::Span,
        mut result: Result<Response, Error>,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Response, Error> {
        self.finish_in_place(policy, span, &mut result, attempts, backoff);
        result
    }

    /// [`ConnectionPool::finish`] on an outcome where it lies, so the
    /// common path does not move the (large) response through another
    /// frame and `Result`.
    fn finish_in_place(
        &self,
        policy: &RetryPolicy,
        span: &tracing::Span,
        result: &mut Result<Response, Error>,
        attempts: u32,
        backoff: Duration,
    ) {
        let c = &self.shared.counters;
        if !span.is_disabled() {
            span.record("attempts", attempts);
            if let Ok(resp) = &*result {
                span.record("status", resp.status().as_u16());
            }
        }
        match result {
            Ok(resp) => {
                let status = resp.status();
                if status.as_u16() >= 500 || policy.is_retry_status(status) {
                    inc(&c.failed);
                    c.add_failed_status(status.as_u16());
                } else {
                    inc(&c.succeeded);
                }
                resp.set_retry_info(RetryInfo { attempts, backoff });
            }
            Err(e) => {
                inc(&c.failed);
                c.add_failure_kind(e.kind_name());
                if attempts > 1 {
                    let last = std::mem::replace(e, Error::Cancelled);
                    *e = Error::RetriesExhausted {
                        attempts,
                        last: Box::new(last),
                    };
                }
            }
        }
    }
}

/// An attempt's outcome as an event in its span.
fn trace_outcome(attempt_span: &tracing::Span, outcome: &Result<Response, Error>) {
    match outcome {
        Ok(resp) => tracing::debug!(
            target: "httpclient_pool",
            parent: attempt_span,
            status = resp.status().as_u16(),
            "attempt answered"
        ),
        Err(err) => tracing::debug!(
            target: "httpclient_pool",
            parent: attempt_span,
            error_kind = err.kind_name(),
            error = %err,
            "attempt failed"
        ),
    }
}

/// One attempt's future at the inner driver, in its span.
type Attempt<'a> = tracing::instrument::Instrumented<
    Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>,
>;

/// The retry loop's state for one request.
struct Attempts {
    /// The host's health and slots, when the pool tracks it.
    entry: Option<Arc<HostEntry>>,
    deadline: Option<Instant>,
    replayable: bool,
    retry_safe: bool,
    /// Attempts made so far.
    attempt: u32,
    /// Time slept between attempts so far.
    backoff: Duration,
}

/// What [`ConnectionPool::decide`] made of an attempt's outcome.
enum Step {
    /// The request ends with this.
    Done(Result<Response, Error>),
    /// Retry after `delay`; `outcome` is kept in case the retry never runs.
    /// `withdrawn` is when the budget granted it (`None`: unlimited).
    Retry {
        delay: Duration,
        outcome: Result<Response, Error>,
        withdrawn: Option<Instant>,
    },
}

/// A per-host slot, waiting if needed.
async fn acquire_slot(entry: &HostEntry) -> Option<OwnedSemaphorePermit> {
    let (_, sem) = entry.limit.as_ref()?;
    Arc::clone(sem).acquire_owned().await.ok()
}

impl<D: Driver + 'static> ConnectionPool<D> {
    /// Probe `hosts` every `interval` with the defaults of
    /// [`HealthCheck::builder`] (HEAD /, 3 failures down, 2 successes up).
    ///
    /// # Errors
    /// As [`ConnectionPool::enable_health_check_with`], plus
    /// [`Error::Config`] for a zero interval, no hosts or a bad host URL.
    #[doc(alias = "EnableHealthCheck")]
    pub fn enable_health_check<I, S>(&self, hosts: I, interval: Duration) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.enable_health_check_with(HealthCheck::builder(hosts, interval).build()?)
    }

    /// Start health checks, or reconfigure the running checker. There is
    /// only ever one checker task per pool: calling this again replaces its
    /// configuration (and probes at once), it never starts a second loop.
    /// The first round of probes runs at once. The task belongs to the
    /// pool: [`ConnectionPool::stop`] and dropping the pool end it.
    ///
    /// Probes go straight to the inner driver (through whatever layers sit
    /// inside the pool, so an inner rate limiter spends permits on them),
    /// bypass the retry loop and the per-host limit, and are counted in
    /// `probes`, not in the traffic counters.
    ///
    /// ```
    /// use std::time::Duration;
    /// use httpclient_core::testkit::MockDriver;
    /// use httpclient_pool::ConnectionPool;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), httpclient_core::Error> {
    /// let pool = ConnectionPool::new(MockDriver::new());
    /// pool.enable_health_check(["http://api.internal"], Duration::from_secs(5))?;
    /// assert!(pool.enable_health_check(["http://api.internal"], Duration::ZERO).is_err());
    /// pool.disable_health_check();
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Stopped`] after `stop()`; [`Error::Config`] (field
    /// `runtime`) when called outside a tokio runtime.
    pub fn enable_health_check_with(&self, check: HealthCheck) -> Result<(), Error> {
        let s = &self.shared;
        if s.token.is_cancelled() {
            return Err(Error::Stopped { layer: LAYER });
        }
        let mut checker = lock(&self.checker);
        let running = checker.as_ref().is_some_and(|c| !c.handle.is_finished());
        let runtime = if running {
            None
        } else {
            Some(tokio::runtime::Handle::try_current().map_err(|_| {
                ConfigError::new(
                    "runtime",
                    "health checks need a tokio runtime: call this from inside one",
                )
            })?)
        };
        let origins: Vec<Origin> = check.targets().iter().map(|(o, _)| o.clone()).collect();
        let entries = s.registry.set_probed(&origins);
        let targets = entries
            .into_iter()
            .zip(check.targets().iter().map(|(_, url)| url.clone()))
            .collect();
        *lock(&s.health_summary) = Some((origins.len(), check.interval()));
        let plan = Some(Arc::new(ProbePlan { check, targets }));
        match (checker.as_ref(), runtime) {
            (Some(c), None) => {
                c.config.send_replace(plan);
            }
            (_, Some(rt)) => {
                let (tx, rx) = watch::channel(plan);
                let handle = rt.spawn(run_checker(Arc::clone(s), rx));
                *checker = Some(Checker { handle, config: tx });
            }
            (None, None) => unreachable!("no checker and no runtime"),
        }
        Ok(())
    }

    /// Stop probing. The checker task idles (it does not spin) until
    /// health checks are enabled again; hosts that probes had marked down
    /// come back up, since nothing would probe them any more.
    #[doc(alias = "DisableHealthCheck")]
    pub fn disable_health_check(&self) {
        let checker = lock(&self.checker);
        if let Some(c) = checker.as_ref() {
            c.config.send_replace(None);
        }
        self.shared.registry.set_probed(&[]);
        *lock(&self.shared.health_summary) = None;
    }

    /// Whether a health-checker task is running (enabled or idle).
    pub fn health_checker_running(&self) -> bool {
        lock(&self.checker)
            .as_ref()
            .is_some_and(|c| !c.handle.is_finished())
    }
}

impl<D> Drop for ConnectionPool<D> {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.checker).take() {
            c.handle.abort();
        }
    }
}

impl<D: Driver> Driver for ConnectionPool<D> {
    // Written out instead of `#[async_trait]`, which would wrap `run` in a
    // second future and copy its (large) state into it on the first poll.
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        // One `request` span per request, entered on every poll, so the
        // attempt spans and events below (and those of inner layers: the
        // rate limiter's permit wait, the driver) nest under it. With no
        // subscriber interested, the macro yields a disabled span without
        // evaluating its fields, and the future runs bare: no
        // `Instrumented` wrapper to enter a span that is not there, and no
        // extra layer the request's state (and its response) moves through.
        let span = tracing::debug_span!(
            target: "httpclient_pool",
            "request",
            method = %request.method(),
            host = %request.origin(),
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        // Two futures, each boxed as it is: the common one stays small
        // (see `run`), the full loop only costs its size where it is used.
        if self.shared.needs_full_loop() {
            in_span(self.run_general(request, span.clone()), span)
        } else if span.is_disabled() {
            Box::pin(self.run(Some(request), span))
        } else {
            in_span(self.run(Some(request), span.clone()), span)
        }
    }

    fn connections_opened(&self) -> Option<u64> {
        self.shared.inner.connections_opened()
    }
}

/// Boxes a request future, entering `span` on every poll — or bare when the
/// span is disabled (no subscriber interested): no `Instrumented` wrapper to
/// enter a span that is not there.
fn in_span<'a, F>(
    fut: F,
    span: tracing::Span,
) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>
where
    F: Future<Output = Result<Response, Error>> + Send + 'a,
{
    if span.is_disabled() {
        Box::pin(fut)
    } else {
        Box::pin(tracing::Instrument::instrument(fut, span))
    }
}

/// The one checker loop of a pool.
async fn run_checker<D: Driver>(
    shared: Arc<Shared<D>>,
    mut config: watch::Receiver<Option<Arc<ProbePlan>>>,
) {
    let token = shared.token.clone();
    loop {
        let plan = config.borrow_and_update().clone();
        let Some(plan) = plan else {
            tokio::select! {
                changed = config.changed() => if changed.is_err() { return },
                _ = token.cancelled() => return,
            }
            continue;
        };
        let round_start = Instant::now();
        tokio::select! {
            _ = probe_round(&shared, &plan, round_start) => {}
            changed = config.changed() => {
                if changed.is_err() { return }
                continue; // reconfigured mid-round: probe the new set at once
            }
            _ = token.cancelled() => return,
        }
        let pause = plan.check.next_interval(&mut lock(&shared.rng));
        tokio::select! {
            _ = tokio::time::sleep_until(round_start + pause) => {}
            changed = config.changed() => if changed.is_err() { return },
            _ = token.cancelled() => return,
        }
    }
}

/// How long a probe may take, all layers included, before the round stops
/// waiting for it: far above the probe's own timeout, because the time a
/// probe spends queued in inner layers (a rate limiter's FIFO) says nothing
/// about the host. Only a hung inner layer ever reaches it.
fn probe_safety_bound(check: &HealthCheck) -> Duration {
    check
        .timeout()
        .max(check.interval())
        .saturating_mul(PROBE_SAFETY_FACTOR)
}

const PROBE_SAFETY_FACTOR: u32 = 10;

async fn probe_round<D: Driver>(shared: &Shared<D>, plan: &ProbePlan, round_start: Instant) {
    let check = &plan.check;
    let bound = probe_safety_bound(check);
    let probes = plan.targets.iter().map(|(entry, url)| async move {
        // The probe's timeout rides on the request: the driver enforces it
        // from when the attempt really starts, so time spent waiting in an
        // inner layer (a rate limiter's queue) is not held against the
        // host. The outer bound only stops a hung inner layer from stalling
        // the checker; reaching it is inconclusive, not a failure, since
        // nothing says the probe ever reached the host.
        let outcome = match Request::builder(check.method().clone(), url)
            .timeout(check.timeout())
            .build()
        {
            Ok(req) => {
                // A driver that panics gives no verdict (below); it must not
                // end the checker, or a host marked down would stay down.
                let call = std::panic::AssertUnwindSafe(async { shared.inner.execute(req).await })
                    .catch_unwind();
                match tokio::time::timeout(bound, call).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(payload)) => Err(Error::from_panic(payload)),
                    Err(_) => {
                        tracing::debug!(
                            origin = %entry.origin,
                            bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                            "health probe inconclusive: inner layers held it past the safety bound"
                        );
                        return;
                    }
                }
            }
            Err(e) => Err(e),
        };
        // The verdict: the predicate on a response (a user closure, so a
        // panic in it is caught too), the error's meaning otherwise. What
        // says nothing about the host — a panic, a refusal by an inner
        // layer, an invalid request — is inconclusive: no verdict.
        let verdict = match &outcome {
            Ok(resp) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check.is_healthy(resp)
            }))
            .ok()
            .map(|healthy| {
                let error = (!healthy).then(|| format!("probe answered HTTP {}", resp.status()));
                (healthy, error)
            }),
            Err(e) => error_blames_host(e).map(|failed| {
                let error = failed.then(|| format!("probe failed: {e}"));
                (!failed, error)
            }),
        };
        let Some((healthy, error)) = verdict else {
            tracing::warn!(
                origin = %entry.origin,
                outcome = ?outcome.as_ref().map(|r| r.status()),
                "health probe inconclusive: the outcome says nothing about the host (no verdict recorded)"
            );
            return;
        };
        // Counted with its verdict: a probe dropped mid-flight (the checker
        // was reconfigured, disabled or stopped) or cut off as inconclusive
        // is in neither `probes` nor `probe_failures`.
        inc(&shared.counters.probes);
        if !healthy {
            inc(&shared.counters.probe_failures);
        }
        entry.record_probe(healthy, error, Instant::now(), round_start, check);
    });
    futures_util::future::join_all(probes).await;
}
