//! The retry budget: retries may add at most a fixed fraction to the load.
//!
//! # Why a budget and not just `max_retries`
//!
//! With `max_retries = 3`, a dependency that fails every request receives
//! four times the traffic exactly when it can least take it, and every layer
//! of retries above multiplies that again. A budget (Finagle's
//! `RetryBudget`, tower's `TpsBudget`, Envoy's `retry_budget`) caps retries
//! to a ratio of recent requests — 20 % by default — plus a small floor so a
//! quiet client can still retry a rare failure. Under a 100 % failure storm
//! the pool then sends at most `requests × (1 + ratio) + floor` attempts in
//! any window, and says so in its stats (`budget_exhausted`).
//!
//! # How it counts
//!
//! A sliding window (default 10 s) split into ten buckets on tokio's clock
//! (so paused-clock tests are exact). Every request that reaches the driver
//! deposits one; every retry withdraws one. A retry is allowed while
//! `retries_in_window + 1 ≤ ratio × requests_in_window + min_per_sec × window_secs`.

use std::time::Duration;

use httpclient_core::ConfigError;
use tokio::time::Instant;

const BUCKETS: usize = 10;

/// Configuration of the retry budget; see the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use httpclient_pool::RetryBudget;
/// let b = RetryBudget::new(0.5, 10, Duration::from_secs(10))?;
/// assert_eq!(b.ratio(), 0.5);
/// assert!(RetryBudget::new(f64::NAN, 10, Duration::from_secs(10)).is_err());
/// assert!(RetryBudget::new(0.2, 10, Duration::ZERO).is_err());
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    ratio: f64,
    min_per_sec: u32,
    window: Duration,
    unlimited: bool,
}

impl Default for RetryBudget {
    /// Ratio 0.2, floor 10 retries per second, window 10 s.
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
            unlimited: false,
        }
    }
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request over a sliding
    /// `window`, plus `min_per_sec` retries per second of window as a floor.
    ///
    /// # Errors
    /// [`ConfigError`] when `ratio` is NaN, infinite, negative or above 100,
    /// or `window` is not between 1 s and 1 hour.
    pub fn new(ratio: f64, min_per_sec: u32, window: Duration) -> Result<Self, ConfigError> {
        if !ratio.is_finite() || !(0.0..=100.0).contains(&ratio) {
            return Err(ConfigError::new(
                "budget_ratio",
                format!("must be a finite number in 0..=100, got {ratio}"),
            ));
        }
        if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "budget_window",
                format!("must be between 1 s and 1 hour, got {window:?}"),
            ));
        }
        Ok(RetryBudget {
            ratio,
            min_per_sec,
            window,
            unlimited: false,
        })
    }

    /// No budget: only `max_retries` and the deadline bound retries. Meant
    /// for tests and for callers with their own load shedding.
    pub fn unlimited() -> Self {
        RetryBudget {
            unlimited: true,
            ..RetryBudget::default()
        }
    }

    /// Retries allowed per request in the window.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
    /// Retries allowed per second of window regardless of traffic.
    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }
    /// The sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Whether this is [`RetryBudget::unlimited`].
    pub fn is_unlimited(&self) -> bool {
        self.unlimited
    }
    /// The floor as a number of retries per window:
    /// `min_per_sec × window` (in whole seconds, rounded up).
    pub fn reserve(&self) -> u64 {
        u64::from(self.min_per_sec) * self.window.as_secs_f64().ceil() as u64
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    deposits: u64,
    withdrawals: u64,
}

/// The running state of a budget (one per pool, behind a mutex: a handful
/// of integer operations per request).
#[derive(Debug)]
pub(crate) struct BudgetState {
    config: RetryBudget,
    start: Instant,
    bucket_nanos: u64,
    buckets: [Bucket; BUCKETS],
}

impl BudgetState {
    pub(crate) fn new(config: RetryBudget, now: Instant) -> Self {
        BudgetState {
            config,
            start: now,
            // The window is at most an hour: its nanoseconds fit in u64.
            bucket_nanos: u64::try_from(config.window.as_nanos() / BUCKETS as u128)
                .unwrap_or(u64::MAX)
                .max(1),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX) / self.bucket_nanos
    }

    fn current(&mut self, now: Instant) -> &mut Bucket {
        let epoch = self.epoch(now);
        let b = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if b.epoch != epoch {
            *b = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        b
    }

    /// A request reached the driver.
    pub(crate) fn deposit(&mut self, now: Instant) {
        if self.config.unlimited {
            return;
        }
        self.current(now).deposits += 1;
    }

    /// Try to spend one retry; `false` when the budget is exhausted.
    pub(crate) fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.config.unlimited {
            return true;
        }
        let epoch = self.epoch(now);
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let (mut deposits, mut withdrawals) = (0u64, 0u64);
        for b in &self.buckets {
            if b.epoch >= oldest && b.epoch <= epoch {
                deposits += b.deposits;
                withdrawals += b.withdrawals;
            }
        }
        let allowed = self.config.ratio * deposits as f64 + self.config.reserve() as f64;
        if (withdrawals + 1) as f64 <= allowed {
            self.current(now).withdrawals += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_plus_floor_within_the_window() {
        let t0 = Instant::now();
        let cfg = RetryBudget::new(0.2, 1, Duration::from_secs(10)).unwrap();
        let mut b = BudgetState::new(cfg, t0);
        for _ in 0..100 {
            b.deposit(t0);
        }
        // 0.2 × 100 + 1 × 10 = 30 retries.
        let granted = (0..100).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 30);
        // Still inside the window 9 s later: nothing new.
        assert!(!b.try_withdraw(t0 + Duration::from_secs(9)));
        // After the window slides past every deposit and withdrawal, only
        // the floor is left.
        let later = t0 + Duration::from_secs(25);
        let granted = (0..100).filter(|_| b.try_withdraw(later)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn zero_ratio_zero_floor_allows_nothing_and_unlimited_everything() {
        let t0 = Instant::now();
        let mut b = BudgetState::new(
            RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap(),
            t0,
        );
        b.deposit(t0);
        assert!(!b.try_withdraw(t0));
        let mut u = BudgetState::new(RetryBudget::unlimited(), t0);
        assert!((0..10_000).all(|_| u.try_withdraw(t0)));
    }

    #[test]
    fn bad_budgets_are_config_errors() {
        for r in [f64::NAN, f64::INFINITY, -0.1, 101.0] {
            assert_eq!(
                RetryBudget::new(r, 1, Duration::from_secs(10))
                    .unwrap_err()
                    .field,
                "budget_ratio"
            );
        }
        for w in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_secs(3601),
        ] {
            assert_eq!(
                RetryBudget::new(0.2, 1, w).unwrap_err().field,
                "budget_window"
            );
        }
    }
}
