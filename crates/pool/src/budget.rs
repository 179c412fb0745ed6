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

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
    withdrawals: u64,
}

/// The running state of a budget (one per pool).
///
/// Deposits come with every request, so they take no lock: each bucket's
/// deposits live in one `AtomicU64` holding the bucket's epoch (low 32
/// bits of it: a bucket is at least 100 ms, so the tag repeats after more
/// than 13 years) and its count, updated by one compare-and-swap.
/// Withdrawals come only with retries and must check and spend at once, so
/// they take a mutex (which deposits never wait for).
#[derive(Debug)]
pub(crate) struct BudgetState {
    config: RetryBudget,
    start: Instant,
    bucket_nanos: u64,
    /// Per bucket: `epoch as u32` in the high half, deposits in the low.
    deposits: [AtomicU64; BUCKETS],
    withdrawals: Mutex<[Bucket; BUCKETS]>,
}

fn tag(epoch: u64) -> u32 {
    epoch as u32 // wraps on purpose; see `BudgetState`
}

fn pack(tag: u32, count: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
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
            deposits: [const { AtomicU64::new(0) }; BUCKETS],
            withdrawals: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX) / self.bucket_nanos
    }

    /// A request reached the driver.
    pub(crate) fn deposit(&self, now: Instant) {
        if self.config.unlimited {
            return;
        }
        let epoch = self.epoch(now);
        let tag = tag(epoch);
        let slot = &self.deposits[(epoch % BUCKETS as u64) as usize];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (held, count) = unpack(current);
            let next = if held == tag {
                pack(tag, count.saturating_add(1))
            } else if (tag.wrapping_sub(held) as i32) > 0 {
                // The slot holds an older bucket: this one replaces it.
                pack(tag, 1)
            } else {
                // A caller with a stale clock reading, behind a bucket that
                // already moved on: its bucket has left the window.
                return;
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Try to spend one retry; `false` when the budget is exhausted.
    pub(crate) fn try_withdraw(&self, now: Instant) -> bool {
        if self.config.unlimited {
            return true;
        }
        let epoch = self.epoch(now);
        let mut withdrawn = self.withdrawals.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        let in_window = (epoch - oldest) as u32;
        let deposits: u64 = self
            .deposits
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Relaxed)))
            .filter(|(held, _)| tag(epoch).wrapping_sub(*held) <= in_window)
            .map(|(_, count)| u64::from(count))
            .sum();
        let withdrawals: u64 = withdrawn
            .iter()
            .filter(|b| b.epoch >= oldest && b.epoch <= epoch)
            .map(|b| b.withdrawals)
            .sum();
        let allowed = self.config.ratio * deposits as f64 + self.config.reserve() as f64;
        if (withdrawals + 1) as f64 <= allowed {
            let b = &mut withdrawn[(epoch % BUCKETS as u64) as usize];
            if b.epoch != epoch {
                *b = Bucket {
                    epoch,
                    withdrawals: 0,
                };
            }
            b.withdrawals += 1;
            true
        } else {
            false
        }
    }
}

impl BudgetState {
    /// Give back a retry withdrawn at `at` that was never sent (its request
    /// was turned away after the backoff, stopped or dropped), if its
    /// bucket is still in the window.
    pub(crate) fn refund(&self, at: Instant) {
        if self.config.unlimited {
            return;
        }
        let epoch = self.epoch(at);
        let mut withdrawn = self.withdrawals.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut withdrawn[(epoch % BUCKETS as u64) as usize];
        if b.epoch == epoch && b.withdrawals > 0 {
            b.withdrawals -= 1;
        }
    }
}

/// A retry the budget granted, not yet sent: dropped unspent, it goes back
/// to the budget.
pub(crate) struct Grant<'a> {
    budget: &'a BudgetState,
    at: Option<Instant>,
}

impl<'a> Grant<'a> {
    pub(crate) fn new(budget: &'a BudgetState, at: Instant) -> Self {
        Grant {
            budget,
            at: Some(at),
        }
    }

    /// The retry went out: the withdrawal stands.
    pub(crate) fn spend(mut self) {
        self.at = None;
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        if let Some(at) = self.at.take() {
            self.budget.refund(at);
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
        let b = BudgetState::new(cfg, t0);
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
        let b = BudgetState::new(
            RetryBudget::new(0.0, 0, Duration::from_secs(1)).unwrap(),
            t0,
        );
        b.deposit(t0);
        assert!(!b.try_withdraw(t0));
        let u = BudgetState::new(RetryBudget::unlimited(), t0);
        assert!((0..10_000).all(|_| u.try_withdraw(t0)));
    }

    #[test]
    fn an_unspent_grant_goes_back_to_the_budget() {
        let t0 = Instant::now();
        let b = BudgetState::new(
            RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap(),
            t0,
        );
        assert!(b.try_withdraw(t0));
        assert!(!b.try_withdraw(t0), "the floor allows one");
        drop(Grant::new(&b, t0));
        assert!(b.try_withdraw(t0), "refunded");
        Grant::new(&b, t0).spend();
        assert!(!b.try_withdraw(t0), "a spent grant stays withdrawn");
    }

    #[test]
    fn deposits_from_many_threads_are_all_counted() {
        let t0 = Instant::now();
        let cfg = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
        let b = BudgetState::new(cfg, t0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..10_000).for_each(|_| b.deposit(t0)));
            }
        });
        // 0.5 × 40 000 deposits, not one lost to a race.
        let granted = (0..30_000).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 20_000);
    }

    #[test]
    fn a_stale_deposit_never_wipes_a_newer_bucket() {
        let t0 = Instant::now();
        let cfg = RetryBudget::new(1.0, 0, Duration::from_secs(10)).unwrap();
        let b = BudgetState::new(cfg, t0);
        // Ten buckets of 1 s: 12 s later, bucket 12 shares bucket 2's slot.
        let late = t0 + Duration::from_secs(12);
        for _ in 0..5 {
            b.deposit(late);
        }
        // A caller that read the clock before the slot moved on: its bucket
        // (2) has left the window and must not replace bucket 12.
        b.deposit(t0 + Duration::from_secs(2));
        let granted = (0..10).filter(|_| b.try_withdraw(late)).count();
        assert_eq!(granted, 5);
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
