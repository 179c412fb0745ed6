//! [`ConnectionPool`]: the retry / health / per-host-limit layer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

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

use crate::budget::BudgetState;
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
    budget_config: RetryBudget,
    budget: Mutex<BudgetState>,
    registry: Registry,
    counters: Counters,
    rng: Mutex<fastrand::Rng>,
    token: CancellationToken,
    wall_clock: WallClock,
    connections_baseline: AtomicU64,
    health_summary: Mutex<Option<(usize, Duration)>>,
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
                policy: RwLock::new(Arc::new(self.policy)),
                budget_config: self.budget,
                budget: Mutex::new(BudgetState::new(self.budget, Instant::now())),
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
/// `finish` (the future was cancelled) it counts as cancelled.
struct RequestGuard<'a> {
    counters: &'a Counters,
    finished: bool,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            inc(&self.counters.cancelled);
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
        *self
            .shared
            .policy
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
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
    /// return the last attempt's outcome, requests waiting for a per-host
    /// slot and every later call fail with [`Error::Stopped`]. Attempts
    /// already at the driver finish normally. Cannot be undone.
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
            health_check: *lock(&s.health_summary),
            stopped: s.token.is_cancelled(),
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

    /// One request through the retry loop.
    async fn run(&self, request: Request, span: tracing::Span) -> Result<Response, Error> {
        let s = &*self.shared;
        let c = &s.counters;
        inc(&c.requests);
        c.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut guard = RequestGuard {
            counters: c,
            finished: false,
        };
        let policy = self.policy();
        // One labelled block rather than a nested `async fn`: the retry
        // loop's state then lives in this future directly, instead of being
        // built elsewhere and copied in (a measurable cost per request).
        let policy = &*policy;
        let outcome: (Result<Response, Error>, u32, Duration) = 'outcome: {
            if s.token.is_cancelled() {
                break 'outcome (Err(Error::Stopped { layer: LAYER }), 0, Duration::ZERO);
            }
            let origin = request.origin().clone();
            let entry = match s.registry.entry_for(&origin) {
                Ok(e) => e,
                Err(e) => break 'outcome (Err(e), 0, Duration::ZERO),
            };
            let deadline = policy.total_deadline().map(|d| Instant::now() + d);
            let replayable = request.body().is_replayable();
            let retry_safe = request.is_retry_safe();
            let max_retries = policy.max_retries();
            let mut original = Some(request);
            let mut attempt: u32 = 0;
            let mut backoff = Duration::ZERO;
            // Boxed: only a request that retries has one, and keeping it out of
            // the future's inline state keeps the common path's future small.
            let mut last: Option<Box<Result<Response, Error>>> = None;

            loop {
                // The health gate, before every attempt.
                let trial = match &entry {
                    None => None,
                    Some(e) => match e.admit(Instant::now()) {
                        Admit::Go => None,
                        Admit::Trial(t) => Some(t),
                        Admit::Reject => {
                            inc(&c.unhealthy_rejected);
                            let out = last.map_or_else(
                                || {
                                    Err(Error::UnhealthyHost {
                                        origin: origin.clone(),
                                    })
                                },
                                |b| *b,
                            );
                            break 'outcome (out, attempt, backoff);
                        }
                    },
                };

                // This attempt's copy of the request: clone while a retry may
                // follow, hand over the original on the last possible attempt.
                let mut req = if replayable && attempt < max_retries {
                    match original.as_ref().and_then(Request::try_clone) {
                        Some(r) => r,
                        None => match original.take() {
                            Some(r) => r,
                            None => {
                                break 'outcome (
                                    last.map_or(Err(Error::Cancelled), |b| *b),
                                    attempt,
                                    backoff,
                                );
                            }
                        },
                    }
                } else {
                    match original.take() {
                        Some(r) => r,
                        None => {
                            break 'outcome (
                                last.map_or(Err(Error::Cancelled), |b| *b),
                                attempt,
                                backoff,
                            );
                        }
                    }
                };
                if req.options().timeout.is_none() {
                    req.options_mut().timeout = policy.attempt_timeout();
                }

                // Wait for a per-host slot (bounded by the deadline and stop),
                // then send (bounded by the deadline).
                let permit = match &entry {
                    Some(e) if e.limit.is_some() => match self.slot(e, deadline).await {
                        Ok(p) => p,
                        // Nothing was sent: the previous attempt's outcome, if
                        // any, is the most informative answer.
                        Err(err) => {
                            break 'outcome (last.map_or(Err(err), |b| *b), attempt, backoff);
                        }
                    },
                    _ => None,
                };
                if attempt == 0 {
                    lock(&s.budget).deposit(Instant::now());
                }
                inc(&c.attempts);
                let attempt_span = tracing::debug_span!(target: "httpclient_pool", "attempt", attempt = attempt + 1);
                let send =
                    tracing::Instrument::instrument(s.inner.execute(req), attempt_span.clone());
                let outcome = match deadline {
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
                attempt += 1;
                match &outcome {
                    Ok(resp) => tracing::debug!(
                        target: "httpclient_pool",
                        parent: &attempt_span,
                        status = resp.status().as_u16(),
                        "attempt answered"
                    ),
                    Err(err) => tracing::debug!(
                        target: "httpclient_pool",
                        parent: &attempt_span,
                        error_kind = err.kind_name(),
                        error = %err,
                        "attempt failed"
                    ),
                }
                drop(attempt_span);

                // Passive health: every real outcome feeds the host's state.
                if let Some(e) = &entry {
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

                // Decide: return, or retry after how long?
                let server_delay: Option<Duration> = match &outcome {
                    Ok(resp) => {
                        if !policy.is_retry_status(resp.status()) {
                            break 'outcome (outcome, attempt, backoff);
                        }
                        if !retry_safe {
                            inc(&c.not_retried_unsafe);
                            tracing::debug!(status = %resp.status(), "not retried: request is not retry-safe");
                            break 'outcome (outcome, attempt, backoff);
                        }
                        retry_after_from_headers(resp.headers(), (s.wall_clock)())
                    }
                    Err(err) => {
                        if !err.is_retryable() {
                            break 'outcome (outcome, attempt, backoff);
                        }
                        // Safe to resend: retry-safe, or provably never sent.
                        let resendable = retry_safe || !err.may_have_been_sent();
                        if !replayable || !resendable {
                            inc(&c.not_retried_unsafe);
                            tracing::debug!(error = %err, replayable, "not retried: it may have been applied, or its body cannot be replayed");
                            break 'outcome (outcome, attempt, backoff);
                        }
                        match err {
                            Error::RateLimited { retry_after, .. }
                            | Error::HttpStatus { retry_after, .. } => *retry_after,
                            _ => None,
                        }
                    }
                };
                if attempt > max_retries {
                    inc(&c.retries_exhausted);
                    break 'outcome (outcome, attempt, backoff);
                }
                let delay = match server_delay {
                    Some(d) if d > policy.max_retry_after() => {
                        inc(&c.retry_after_too_long);
                        let out = match outcome {
                            Ok(resp) => Err(Error::HttpStatus {
                                status: resp.status(),
                                retry_after: Some(d),
                            }),
                            Err(e) => Err(e),
                        };
                        break 'outcome (out, attempt, backoff);
                    }
                    Some(d) => d,
                    None => policy.backoff(attempt, &mut lock(&s.rng)),
                };
                if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                    inc(&c.deadline_exceeded);
                    break 'outcome (outcome, attempt, backoff);
                }
                if s.token.is_cancelled() {
                    break 'outcome (outcome, attempt, backoff);
                }
                if !lock(&s.budget).try_withdraw(Instant::now()) {
                    inc(&c.budget_exhausted);
                    tracing::debug!("not retried: retry budget exhausted");
                    break 'outcome (outcome, attempt, backoff);
                }
                tracing::debug!(
                    target: "httpclient_pool",
                    attempt,
                    backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    from_server = server_delay.is_some(),
                    "retrying after backoff"
                );
                let slept_from = Instant::now();
                let stopped = tokio::select! {
                    _ = tokio::time::sleep(delay) => false,
                    _ = s.token.cancelled() => true,
                };
                let slept = slept_from.elapsed();
                backoff += slept;
                c.backoff_nanos.fetch_add(
                    u64::try_from(slept.as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if stopped {
                    break 'outcome (outcome, attempt, backoff);
                }
                // Counted once the retry really goes ahead.
                inc(&c.retries);
                last = Some(Box::new(outcome));
            }
        };
        guard.finished = true;
        let (result, attempts, backoff) = outcome;
        if !span.is_disabled() {
            span.record("attempts", attempts);
            if let Ok(resp) = &result {
                span.record("status", resp.status().as_u16());
            }
        }
        match result {
            Ok(mut resp) => {
                let status = resp.status();
                if status.as_u16() >= 500 || policy.is_retry_status(status) {
                    inc(&c.failed);
                    c.add_failed_status(status.as_u16());
                } else {
                    inc(&c.succeeded);
                }
                resp.extensions_mut()
                    .insert(RetryInfo { attempts, backoff });
                Ok(resp)
            }
            Err(e) => {
                inc(&c.failed);
                c.add_failure_kind(e.kind_name());
                if attempts > 1 {
                    Err(Error::RetriesExhausted {
                        attempts,
                        last: Box::new(e),
                    })
                } else {
                    Err(e)
                }
            }
        }
    }
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
        // evaluating its fields and `Instrumented` only forwards the poll.
        let span = tracing::debug_span!(
            target: "httpclient_pool",
            "request",
            method = %request.method(),
            host = %request.origin(),
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let record_on = span.clone();
        Box::pin(tracing::Instrument::instrument(
            self.run(request, record_on),
            span,
        ))
    }

    fn connections_opened(&self) -> Option<u64> {
        self.shared.inner.connections_opened()
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
            _ = probe_round(&shared, &plan) => {}
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

async fn probe_round<D: Driver>(shared: &Shared<D>, plan: &ProbePlan) {
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
            Ok(req) => match tokio::time::timeout(bound, shared.inner.execute(req)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(
                        origin = %entry.origin,
                        bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
                        "health probe inconclusive: inner layers held it past the safety bound"
                    );
                    return;
                }
            },
            Err(e) => Err(e),
        };
        let (healthy, error) = match &outcome {
            Ok(resp) if check.is_healthy(resp) => (true, None),
            Ok(resp) => (
                false,
                Some(format!("probe answered HTTP {}", resp.status())),
            ),
            Err(e) => (false, Some(format!("probe failed: {e}"))),
        };
        // Counted with its verdict: a probe dropped mid-flight (the checker
        // was reconfigured, disabled or stopped) or cut off as inconclusive
        // is in neither `probes` nor `probe_failures`.
        inc(&shared.counters.probes);
        if !healthy {
            inc(&shared.counters.probe_failures);
        }
        entry.record_probe(healthy, error, Instant::now(), check);
    });
    futures_util::future::join_all(probes).await;
}
