//! Host health: active checks ([`HealthCheck`]), passive outlier detection
//! ([`OutlierDetection`]) and the per-host state both drive.
//!
//! # Why health state must *act*
//!
//! The Go package probes hosts and then changes nothing: requests keep
//! waiting on timeouts against a dead host. Here a host marked down makes
//! every request to it fail fast with [`Error::UnhealthyHost`] (the circuit
//! is open) until it recovers, so a batch against a dead dependency ends in
//! microseconds instead of N × timeout, and the dependency gets no load
//! while it restarts.
//!
//! # The state machine (per [`Origin`])
//!
//! * **Up** → **Down** after `unhealthy_threshold` consecutive failed probes
//!   (active), or `consecutive_failures` consecutive failed real requests
//!   (passive, when outlier detection is on).
//! * **Down** → **Up** after `healthy_threshold` consecutive successful
//!   probes, when the host is health-checked.
//! * **Down** → **HalfOpen** when the host is *not* health-checked and its
//!   cool-down has passed: exactly one real request (the trial) is let
//!   through; its success brings the host up, its failure sends it back
//!   down with the cool-down doubled (up to a cap). A cancelled trial hands
//!   the turn to the next request.
//! * Disabling health checks (or dropping a host from the list) brings
//!   hosts that *probes* had marked down back up, since nothing would ever
//!   probe them again; hosts that real traffic marked down keep their
//!   cool-down path. So no host can stay down with no way back.
//!
//! A host starts up. What counts as a failure, for probes and real traffic
//! alike: a response the predicate calls unhealthy (default: status ≥ 500),
//! or an error that points at the host — connect failures, timeouts,
//! resets, invalid responses, unknown driver errors. Errors that say
//! nothing about the host (an invalid request, a layer refusing, a
//! cancellation, our own total deadline, a panic in the driver or in the
//! predicate) are neutral: a probe that ends so records no verdict (a
//! warning is logged) and is not counted in the probe stats.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use httpclient_core::http::Method;
use httpclient_core::{ConfigError, Error, MAX_RETRY_AFTER, Origin, RateLimitReason, Response};
use tokio::sync::Semaphore;
use tokio::time::Instant;

type ResponsePredicate = Arc<dyn Fn(&Response) -> bool + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Default verdict on a response: healthy when the status is below 500.
fn status_below_500(resp: &Response) -> bool {
    resp.status().as_u16() < 500
}

/// Whether an error says something about the host (`Some(true)` = the host
/// failed) or nothing (`None`).
pub(crate) fn error_blames_host(err: &Error) -> Option<bool> {
    match err {
        Error::Connect { .. }
        | Error::Timeout { .. }
        | Error::ResetBeforeResponse { .. }
        | Error::ResetMidBody { .. }
        | Error::InvalidResponse { .. }
        | Error::Driver { .. } => Some(true),
        Error::HttpStatus { status, .. } => Some(status.as_u16() >= 500),
        _ => None,
    }
}

/// Active health checking: which hosts, how often, and what healthy means.
/// Built with [`HealthCheck::builder`]; see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use httpclient_core::http::Method;
/// use httpclient_pool::HealthCheck;
///
/// let hc = HealthCheck::builder(["http://127.0.0.1:8080", "http://127.0.0.1:8081/healthz"], Duration::from_secs(5))
///     .thresholds(3, 2)
///     .method(Method::GET)
///     .path("/ready")
///     .timeout(Duration::from_secs(1))
///     .jitter(0.1)
///     .healthy_when(|resp| resp.status().is_success())
///     .build()?;
/// assert_eq!(hc.targets().len(), 2);
/// // An entry with its own path keeps it; one without gets `path`.
/// assert_eq!(hc.targets()[0].1, "http://127.0.0.1:8080/ready");
/// assert_eq!(hc.targets()[1].1, "http://127.0.0.1:8081/healthz");
/// assert!(HealthCheck::builder(["http://h"], Duration::ZERO).build().is_err());
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct HealthCheck {
    targets: Vec<(Origin, String)>,
    interval: Duration,
    timeout: Duration,
    method: Method,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
    jitter: f64,
    healthy: ResponsePredicate,
}

impl fmt::Debug for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("targets", &self.targets)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("method", &self.method)
            .field("unhealthy_threshold", &self.unhealthy_threshold)
            .field("healthy_threshold", &self.healthy_threshold)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl HealthCheck {
    /// Probe `hosts` every `interval`. Each host is a URL: its origin is
    /// the host whose state the probes drive; if it has a path other than
    /// `/`, that URL is probed as is, otherwise the builder's
    /// [`path`](HealthCheckBuilder::path) (default `/`) is used.
    ///
    /// Defaults: `HEAD`, thresholds 3 down / 2 up, probe timeout
    /// `min(interval, 5 s)`, jitter ±10 %, healthy = status below 500.
    pub fn builder<I, S>(hosts: I, interval: Duration) -> HealthCheckBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        HealthCheckBuilder {
            hosts: hosts.into_iter().map(|h| h.as_ref().to_string()).collect(),
            interval,
            timeout: None,
            method: Method::HEAD,
            path: "/".to_string(),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            jitter: 0.1,
            healthy: Arc::new(status_below_500),
        }
    }

    /// The hosts and the URL probed for each, in the order given
    /// (duplicates of one origin removed, the first kept).
    pub fn targets(&self) -> &[(Origin, String)] {
        &self.targets
    }
    /// The interval between rounds (before jitter).
    pub fn interval(&self) -> Duration {
        self.interval
    }
    /// The per-probe timeout (the probe request's per-attempt timeout; see
    /// [`HealthCheckBuilder::timeout`]).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// The probe method.
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// Consecutive failed probes that mark a host down.
    pub fn unhealthy_threshold(&self) -> u32 {
        self.unhealthy_threshold
    }
    /// Consecutive successful probes that bring a host back up.
    pub fn healthy_threshold(&self) -> u32 {
        self.healthy_threshold
    }
    /// Interval jitter as a fraction (0.1 = ±10 %).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    pub(crate) fn is_healthy(&self, resp: &Response) -> bool {
        (self.healthy)(resp)
    }
    /// The shortest [`HealthCheck::next_interval`] can be (a millisecond
    /// less, against rounding).
    pub(crate) fn min_interval(&self) -> Duration {
        self.interval
            .mul_f64(1.0 - self.jitter)
            .saturating_sub(Duration::from_millis(1))
    }

    /// One jittered interval.
    pub(crate) fn next_interval(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.jitter == 0.0 {
            return self.interval;
        }
        let factor = 1.0 + self.jitter * (2.0 * rng.f64() - 1.0);
        self.interval.mul_f64(factor)
    }
}

/// Builds a [`HealthCheck`]; see [`HealthCheck::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct HealthCheckBuilder {
    hosts: Vec<String>,
    interval: Duration,
    timeout: Option<Duration>,
    method: Method,
    path: String,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
    jitter: f64,
    healthy: ResponsePredicate,
}

impl fmt::Debug for HealthCheckBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheckBuilder")
            .field("hosts", &self.hosts)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl HealthCheckBuilder {
    /// Per-probe timeout (default `min(interval, 5 s)`). It is set as the
    /// probe request's own per-attempt timeout, so the driver enforces it
    /// from when the probe is really sent: time spent queued in layers
    /// inside the pool (a rate limiter) does not count against the host.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Probe method (default `HEAD`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    /// Path (and query) probed on hosts given without one (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// Consecutive failures that mark a host down and consecutive successes
    /// that bring it back (default 3 and 2).
    pub fn thresholds(mut self, unhealthy: u32, healthy: u32) -> Self {
        self.unhealthy_threshold = unhealthy;
        self.healthy_threshold = healthy;
        self
    }
    /// Randomise each interval by ± this fraction (default 0.1), so many
    /// clients do not probe in lock-step. `0` disables it.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }
    /// Decide whether a probe's response is healthy (default: status below
    /// 500). A probe that fails with an error about the host (connect,
    /// timeout, reset, bad response) is unhealthy; one that fails for a
    /// reason that says nothing about the host (an inner limiter refusing,
    /// an invalid request, a panic) records no verdict.
    pub fn healthy_when(mut self, f: impl Fn(&Response) -> bool + Send + Sync + 'static) -> Self {
        self.healthy = Arc::new(f);
        self
    }

    /// Check everything and resolve the hosts.
    ///
    /// # Errors
    /// [`ConfigError`]: no hosts, a host that is not an http(s) URL, a zero
    /// interval or timeout, a zero threshold, jitter outside `[0, 1)`, or a
    /// path that does not start with `/`.
    pub fn build(self) -> Result<HealthCheck, ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::new("interval", "must be greater than zero"));
        }
        // Deadlines are `Instant + Duration`: keep every duration far from
        // overflow (a panic there would kill the checker task silently).
        if self.interval > MAX_RETRY_AFTER || self.timeout.is_some_and(|t| t > MAX_RETRY_AFTER) {
            return Err(ConfigError::new(
                "interval",
                "interval and timeout must be at most one year",
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("timeout", "must be greater than zero"));
        }
        if self.unhealthy_threshold == 0 {
            return Err(ConfigError::new(
                "unhealthy_threshold",
                "must be at least 1",
            ));
        }
        if self.healthy_threshold == 0 {
            return Err(ConfigError::new("healthy_threshold", "must be at least 1"));
        }
        if !self.jitter.is_finite() || !(0.0..1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "jitter",
                format!("must be in [0, 1), got {}", self.jitter),
            ));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(
                "path",
                format!("`{}` must start with `/`", self.path),
            ));
        }
        if self.hosts.is_empty() {
            return Err(ConfigError::new("hosts", "at least one host is needed"));
        }
        let mut targets: Vec<(Origin, String)> = Vec::with_capacity(self.hosts.len());
        for host in &self.hosts {
            let (origin, url) = resolve_target(host, &self.path)
                .map_err(|e| ConfigError::new("hosts", e.to_string()))?;
            if !targets.iter().any(|(o, _)| *o == origin) {
                targets.push((origin, url));
            }
        }
        let timeout = self
            .timeout
            .unwrap_or_else(|| self.interval.min(Duration::from_secs(5)));
        Ok(HealthCheck {
            targets,
            interval: self.interval,
            timeout,
            method: self.method,
            unhealthy_threshold: self.unhealthy_threshold,
            healthy_threshold: self.healthy_threshold,
            jitter: self.jitter,
            healthy: self.healthy,
        })
    }
}

/// A host URL → its origin and the URL to request: the URL itself when it
/// names a path other than `/`, else the origin plus `default_path`.
pub(crate) fn resolve_target(host: &str, default_path: &str) -> Result<(Origin, String), Error> {
    let uri: httpclient_core::http::Uri =
        host.trim().parse().map_err(|e| Error::InvalidRequest {
            reason: format!("cannot parse host URL `{host}`"),
            source: Some(Box::new(e)),
        })?;
    let origin = Origin::from_uri(&uri)?;
    let own = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = if own.is_empty() || own == "/" {
        origin.url(default_path)
    } else {
        origin.url(own)
    };
    Ok((origin, url))
}

/// Passive outlier detection: mark a host down after this many consecutive
/// failed real requests, and let a single trial through after a cool-down.
///
/// ```
/// use std::time::Duration;
/// use httpclient_pool::OutlierDetection;
/// let od = OutlierDetection::new(5, Duration::from_secs(10))?
///     .with_max_cool_down(Duration::from_secs(120))?
///     .failure_when(|resp| resp.status().as_u16() >= 500);
/// assert_eq!(od.consecutive_failures(), 5);
/// assert!(OutlierDetection::new(0, Duration::from_secs(1)).is_err());
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OutlierDetection {
    consecutive_failures: u32,
    cool_down: Duration,
    max_cool_down: Duration,
    failure: ResponsePredicate,
}

impl fmt::Debug for OutlierDetection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutlierDetection")
            .field("consecutive_failures", &self.consecutive_failures)
            .field("cool_down", &self.cool_down)
            .field("max_cool_down", &self.max_cool_down)
            .finish_non_exhaustive()
    }
}

impl OutlierDetection {
    /// Eject a host after `consecutive_failures` failed requests in a row;
    /// after `cool_down` one trial request may go through (hosts that are
    /// health-checked recover through probes instead). Each failed trial
    /// doubles the cool-down, up to [`OutlierDetection::with_max_cool_down`]
    /// (default 10 × `cool_down`).
    ///
    /// # Errors
    /// [`ConfigError`] for zero failures or a zero cool-down.
    pub fn new(consecutive_failures: u32, cool_down: Duration) -> Result<Self, ConfigError> {
        if consecutive_failures == 0 {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1",
            ));
        }
        if cool_down.is_zero() {
            return Err(ConfigError::new("cool_down", "must be greater than zero"));
        }
        if cool_down > MAX_RETRY_AFTER {
            return Err(ConfigError::new("cool_down", "must be at most one year"));
        }
        Ok(OutlierDetection {
            consecutive_failures,
            cool_down,
            max_cool_down: cool_down.saturating_mul(10).min(MAX_RETRY_AFTER),
            failure: Arc::new(|r: &Response| !status_below_500(r)),
        })
    }

    /// Cap on the doubled cool-down.
    ///
    /// # Errors
    /// [`ConfigError`] when below the base cool-down.
    pub fn with_max_cool_down(mut self, max: Duration) -> Result<Self, ConfigError> {
        if max > MAX_RETRY_AFTER {
            return Err(ConfigError::new(
                "max_cool_down",
                "must be at most one year",
            ));
        }
        if max < self.cool_down {
            return Err(ConfigError::new(
                "max_cool_down",
                format!("{max:?} is below cool_down {:?}", self.cool_down),
            ));
        }
        self.max_cool_down = max;
        Ok(self)
    }

    /// Which responses count as failures (default: status ≥ 500).
    pub fn failure_when(mut self, f: impl Fn(&Response) -> bool + Send + Sync + 'static) -> Self {
        self.failure = Arc::new(f);
        self
    }

    /// Failures in a row that eject a host.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
    /// The base cool-down.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }
    /// The cool-down cap.
    pub fn max_cool_down(&self) -> Duration {
        self.max_cool_down
    }

    fn cool_down_for(&self, ejections: u32) -> Duration {
        let factor = 1u32.checked_shl(ejections.min(31)).unwrap_or(u32::MAX);
        self.cool_down
            .checked_mul(factor)
            .unwrap_or(self.max_cool_down)
            .min(self.max_cool_down)
    }

    pub(crate) fn classify(&self, outcome: &Result<Response, Error>) -> Option<bool> {
        match outcome {
            Ok(resp) => Some((self.failure)(resp)),
            Err(e) => error_blames_host(e),
        }
    }
}

/// Why a host is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownCause {
    /// Consecutive failed health probes.
    Probes,
    /// Consecutive failed real requests (outlier detection), or a failed
    /// half-open trial.
    Traffic,
}

/// The health of one host, as requests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostState {
    /// Requests go through.
    Up,
    /// Requests fail fast with [`Error::UnhealthyHost`].
    Down(DownCause),
    /// Cool-down over: one trial request may go through (or is in flight);
    /// the others still fail fast.
    HalfOpen,
}

/// A snapshot of one host's health and load (see
/// [`crate::PoolStats::hosts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostHealth {
    /// The host.
    pub origin: Origin,
    /// Up, down or half-open.
    pub state: HostState,
    /// Whether active health checks probe it.
    pub health_checked: bool,
    /// Consecutive failed real requests (outlier detection's counter:
    /// counted only while outlier detection is on, or for a trial request
    /// after a cool-down).
    pub consecutive_failures: u32,
    /// Consecutive failed probes.
    pub probe_failures: u32,
    /// Consecutive successful probes.
    pub probe_successes: u32,
    /// How many times traffic ejected it (resets when it recovers).
    pub ejections: u32,
    /// The last failure seen, as text: by a probe, or by a request that
    /// feeds host health (with outlier detection on, or a trial after a
    /// cool-down). Without either, requests' failures are not recorded here
    /// (see [`crate::PoolStats::failures_by_kind`]).
    pub last_error: Option<String>,
    /// How long ago the last probe finished, and whether it was healthy.
    pub last_check: Option<(Duration, bool)>,
    /// Requests to it in flight now, when a per-host limit is set.
    pub in_flight: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Up,
    Down { by: DownCause, until: Instant },
    HalfOpen { trial: bool },
}

#[derive(Debug)]
struct State {
    status: Status,
    probed: bool,
    probe_failures: u32,
    probe_successes: u32,
    traffic_failures: u32,
    ejections: u32,
    last_error: Option<String>,
    last_probe: Option<(Instant, bool)>,
    /// For a probed host: when the round of its last recorded probe began,
    /// the shortest pause between rounds and the successes needed, under
    /// the configuration that probed it. `None` until a probe is recorded
    /// under the current configuration.
    probe_clock: Option<ProbeClock>,
}

#[derive(Debug, Clone, Copy)]
struct ProbeClock {
    round_start: Instant,
    min_pause: Duration,
    healthy_threshold: u32,
}

/// Per-host state: health plus the optional in-flight semaphore.
#[derive(Debug)]
pub(crate) struct HostEntry {
    pub(crate) origin: Origin,
    pub(crate) limit: Option<(usize, Arc<Semaphore>)>,
    /// `true` while the status is not `Up`: the request path reads only this
    /// atomic when the host is healthy.
    not_up: AtomicBool,
    state: Mutex<State>,
}

/// What the gate says about the next attempt.
pub(crate) enum Admit {
    Go,
    Trial(TrialGuard),
    Reject,
}

/// Owned by the one request allowed through a half-open host. Dropping it
/// without recording an outcome (the request was cancelled) hands the trial
/// to the next request.
pub(crate) struct TrialGuard {
    entry: Arc<HostEntry>,
}

impl Drop for TrialGuard {
    fn drop(&mut self) {
        let mut st = lock(&self.entry.state);
        if let Status::HalfOpen { trial: true } = st.status {
            st.status = Status::HalfOpen { trial: false };
        }
    }
}

impl HostEntry {
    fn new(origin: Origin, limit: Option<usize>) -> Self {
        HostEntry {
            origin,
            limit: limit.map(|n| (n, Arc::new(Semaphore::new(n)))),
            not_up: AtomicBool::new(false),
            state: Mutex::new(State {
                status: Status::Up,
                probed: false,
                probe_failures: 0,
                probe_successes: 0,
                traffic_failures: 0,
                ejections: 0,
                last_error: None,
                last_probe: None,
                probe_clock: None,
            }),
        }
    }

    fn set_status(&self, st: &mut State, status: Status) {
        let was = st.status;
        st.status = status;
        self.not_up
            .store(!matches!(status, Status::Up), Ordering::Release);
        match (was, status) {
            (Status::Up, Status::Down { by, .. })
            | (Status::HalfOpen { .. }, Status::Down { by, .. }) => {
                tracing::warn!(origin = %self.origin, cause = ?by, last_error = ?st.last_error, "host marked down");
            }
            (Status::Down { .. } | Status::HalfOpen { .. }, Status::Up) => {
                tracing::info!(origin = %self.origin, "host back up");
            }
            _ => {}
        }
    }

    /// Whether a request arriving at `at` (`None`: beyond any instant)
    /// would certainly be turned away: the host is down, and its cool-down
    /// ends later than that or, when the checker owns its way back up, the
    /// probe rounds it still needs cannot have passed by then. Without side
    /// effects (unlike [`HostEntry::admit`]); a half-open host, or a probed
    /// one whose probe timing is not known yet (say, just reconfigured), is
    /// not certain either way.
    pub(crate) fn surely_rejects_at(&self, at: Option<Instant>) -> bool {
        if !self.not_up.load(Ordering::Acquire) {
            return false;
        }
        let st = lock(&self.state);
        let Status::Down { until, .. } = st.status else {
            return false;
        };
        let Some(at) = at else {
            return true; // a retry that far off is never sent anyway
        };
        if !st.probed {
            return at < until;
        }
        // Each success needs a round of its own, and rounds start at least
        // `min_pause` apart: the earliest the checker can lift the host.
        // (A probe of the old configuration recorded just after a
        // reconfiguration reset this may set it from the old interval; at
        // worst one request then fails fast where it could have waited.)
        st.probe_clock.is_some_and(|pc| {
            let needed = pc.healthy_threshold.saturating_sub(st.probe_successes);
            pc.min_pause
                .checked_mul(needed)
                .and_then(|wait| pc.round_start.checked_add(wait))
                .is_none_or(|earliest_up| at < earliest_up)
        })
    }

    /// May a request go to this host now?
    pub(crate) fn admit(self: &Arc<Self>, now: Instant) -> Admit {
        if !self.not_up.load(Ordering::Acquire) {
            return Admit::Go;
        }
        let mut st = lock(&self.state);
        match st.status {
            Status::Up => Admit::Go,
            Status::Down { until, .. } if !st.probed && now >= until => {
                st.status = Status::HalfOpen { trial: true };
                Admit::Trial(TrialGuard {
                    entry: Arc::clone(self),
                })
            }
            Status::HalfOpen { trial: false } if !st.probed => {
                st.status = Status::HalfOpen { trial: true };
                Admit::Trial(TrialGuard {
                    entry: Arc::clone(self),
                })
            }
            _ => Admit::Reject,
        }
    }

    /// Record a real request's outcome: `failed` is `Some(true)` for a
    /// host failure, `Some(false)` for a success, `None` for neutral.
    pub(crate) fn record_traffic(
        &self,
        failed: Option<bool>,
        error: impl FnOnce() -> String,
        now: Instant,
        outlier: Option<&OutlierDetection>,
        trial: Option<TrialGuard>,
    ) {
        let Some(failed) = failed else {
            return; // a trial guard, if any, is dropped: next request tries
        };
        let mut st = lock(&self.state);
        let is_trial = trial.is_some() && matches!(st.status, Status::HalfOpen { trial: true });
        if !failed {
            st.traffic_failures = 0;
            if is_trial {
                st.ejections = 0;
                self.set_status(&mut st, Status::Up);
            }
        } else {
            st.traffic_failures = st.traffic_failures.saturating_add(1);
            st.last_error = Some(error());
            let eject = if is_trial {
                true
            } else {
                matches!(st.status, Status::Up)
                    && outlier.is_some_and(|o| st.traffic_failures >= o.consecutive_failures)
            };
            if eject {
                let cool =
                    outlier.map_or(Duration::from_secs(10), |o| o.cool_down_for(st.ejections));
                st.ejections = st.ejections.saturating_add(1);
                st.probe_successes = 0;
                self.set_status(
                    &mut st,
                    Status::Down {
                        by: DownCause::Traffic,
                        until: now + cool,
                    },
                );
            }
        }
        drop(st);
        // Status already settled; the guard's Drop sees no trial flag set
        // unless the status is still half-open with a trial (not possible
        // after a recorded outcome).
        drop(trial);
    }

    /// Record a probe's outcome.
    pub(crate) fn record_probe(
        &self,
        healthy: bool,
        error: Option<String>,
        now: Instant,
        round_start: Instant,
        check: &HealthCheck,
    ) {
        let mut st = lock(&self.state);
        st.last_probe = Some((now, healthy));
        st.probe_clock = Some(ProbeClock {
            round_start,
            min_pause: check.min_interval(),
            healthy_threshold: check.healthy_threshold,
        });
        if healthy {
            st.probe_failures = 0;
            st.probe_successes = st.probe_successes.saturating_add(1);
            if !matches!(st.status, Status::Up) && st.probe_successes >= check.healthy_threshold {
                st.traffic_failures = 0;
                st.ejections = 0;
                self.set_status(&mut st, Status::Up);
            }
        } else {
            st.probe_successes = 0;
            st.probe_failures = st.probe_failures.saturating_add(1);
            st.last_error = error;
            if matches!(st.status, Status::Up) && st.probe_failures >= check.unhealthy_threshold {
                self.set_status(
                    &mut st,
                    Status::Down {
                        by: DownCause::Probes,
                        until: now,
                    },
                );
            }
        }
    }

    fn set_probed(&self, probed: bool) {
        let mut st = lock(&self.state);
        // A new configuration (maybe a shorter interval, and a round at
        // once): the old probe timing says nothing any more.
        st.probe_clock = None;
        if st.probed == probed {
            return;
        }
        st.probed = probed;
        st.probe_failures = 0;
        st.probe_successes = 0;
        if !probed {
            // Nothing will probe it again: a verdict that only probes could
            // lift is dropped; a traffic verdict keeps its cool-down.
            if let Status::Down {
                by: DownCause::Probes,
                ..
            } = st.status
            {
                self.set_status(&mut st, Status::Up);
            }
        }
    }

    fn is_idle(&self) -> bool {
        let st = lock(&self.state);
        matches!(st.status, Status::Up)
            && !st.probed
            && st.traffic_failures == 0
            && self
                .limit
                .as_ref()
                .is_none_or(|(n, s)| s.available_permits() == *n)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> HostHealth {
        let st = lock(&self.state);
        HostHealth {
            origin: self.origin.clone(),
            state: match st.status {
                Status::Up => HostState::Up,
                // Cool-down over: the next request goes through as a trial.
                Status::Down { until, .. } if !st.probed && now >= until => HostState::HalfOpen,
                Status::Down { by, .. } => HostState::Down(by),
                Status::HalfOpen { .. } => HostState::HalfOpen,
            },
            health_checked: st.probed,
            consecutive_failures: st.traffic_failures,
            probe_failures: st.probe_failures,
            probe_successes: st.probe_successes,
            ejections: st.ejections,
            last_error: st.last_error.clone(),
            last_check: st
                .last_probe
                .map(|(at, ok)| (now.saturating_duration_since(at), ok)),
            in_flight: self
                .limit
                .as_ref()
                .map(|(n, s)| n.saturating_sub(s.available_permits())),
        }
    }
}

/// Every host the pool keeps state for, bounded by `max_hosts`.
#[derive(Debug)]
pub(crate) struct Registry {
    map: RwLock<HashMap<Origin, Arc<HostEntry>>>,
    max_hosts: usize,
    per_host_limit: Option<usize>,
    pub(crate) outlier: Option<OutlierDetection>,
    probed: AtomicUsize,
}

impl Registry {
    pub(crate) fn new(
        max_hosts: usize,
        per_host_limit: Option<usize>,
        outlier: Option<OutlierDetection>,
    ) -> Self {
        Registry {
            map: RwLock::new(HashMap::new()),
            max_hosts,
            per_host_limit,
            outlier,
            probed: AtomicUsize::new(0),
        }
    }

    /// Whether any request may have an entry to consult (see
    /// [`Registry::entry_for`]).
    pub(crate) fn tracks_hosts(&self) -> bool {
        self.per_host_limit.is_some()
            || self.outlier.is_some()
            || self.probed.load(Ordering::Acquire) != 0
    }

    pub(crate) fn per_host_limit(&self) -> Option<usize> {
        self.per_host_limit
    }

    /// The entry a request to `origin` must consult, if any. Creates one
    /// when a per-host limit or outlier detection needs it.
    ///
    /// # Errors
    /// [`Error::RateLimited`] with [`RateLimitReason::TooManyKeys`] when a
    /// per-host limit is set and `max_hosts` distinct hosts are busy.
    pub(crate) fn entry_for(&self, origin: &Origin) -> Result<Option<Arc<HostEntry>>, Error> {
        let creates = self.per_host_limit.is_some() || self.outlier.is_some();
        if !creates && self.probed.load(Ordering::Acquire) == 0 {
            return Ok(None);
        }
        if let Some(e) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
        {
            return Ok(Some(Arc::clone(e)));
        }
        if !creates {
            return Ok(None);
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get(origin) {
            return Ok(Some(Arc::clone(e)));
        }
        if map.len() >= self.max_hosts {
            map.retain(|_, e| Arc::strong_count(e) > 1 || !e.is_idle());
        }
        if map.len() >= self.max_hosts {
            if self.per_host_limit.is_some() {
                return Err(Error::RateLimited {
                    reason: RateLimitReason::TooManyKeys,
                    retry_after: None,
                });
            }
            // Outlier detection only: the host goes untracked rather than
            // failing a request over bookkeeping.
            return Ok(None);
        }
        let entry = Arc::new(HostEntry::new(origin.clone(), self.per_host_limit));
        map.insert(origin.clone(), Arc::clone(&entry));
        Ok(Some(entry))
    }

    /// Make exactly `origins` the health-checked hosts.
    pub(crate) fn set_probed(&self, origins: &[Origin]) -> Vec<Arc<HostEntry>> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (origin, entry) in map.iter() {
            if !origins.contains(origin) {
                entry.set_probed(false);
            }
        }
        let mut out = Vec::with_capacity(origins.len());
        for origin in origins {
            let entry = map
                .entry(origin.clone())
                .or_insert_with(|| Arc::new(HostEntry::new(origin.clone(), self.per_host_limit)));
            entry.set_probed(true);
            out.push(Arc::clone(entry));
        }
        self.probed.store(origins.len(), Ordering::Release);
        out
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Vec<HostHealth> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<HostHealth> = map.values().map(|e| e.snapshot(now)).collect();
        v.sort_by(|a, b| a.origin.cmp(&b.origin));
        v
    }

    pub(crate) fn get(&self, origin: &Origin) -> Option<HostHealth> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(origin).map(|e| e.snapshot(Instant::now()))
    }
}
