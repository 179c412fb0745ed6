//! The permit arithmetic: GCRA (virtual scheduling) behind a small trait.
//!
//! The whole state of a rate limit is one number, the *theoretical arrival
//! time* `TAT`: the instant at which the bucket would be empty again if no
//! more permits were taken. With emission interval `T` and burst tolerance
//! `τ = (burst − 1)·T` (see [`Quota`]):
//!
//! * a permit conforms at instant `t` when `TAT − τ ≤ t`;
//! * taking it moves `TAT` to `max(TAT, t) + T`.
//!
//! No ticker, no windows, no refill task: the next conforming instant is
//! always `TAT − τ`, computed on demand, exact to the nanosecond.
//!
//! The limiter calls a [`RateState`] under its own lock and never across an
//! `.await`, so the trait is synchronous and tiny. [`Gcra`] is the in-process
//! implementation. A state shared between processes (a Redis key updated by
//! a script, say) fits the same three operations — *when is the next permit
//! due*, *take one at instant t or tell me when*, *change the quota without a
//! fresh burst* — and [`RateState::take`] may fail (another process got
//! there first), in which case the limiter simply waits for the new instant
//! it returns. A networked implementation would serve these calls from a
//! locally leased share of the limit, since they must not block.

use crate::Quota;

/// The arithmetic state of one rate limit. See the [module docs](self).
///
/// All instants are nanoseconds on the limiter's [`crate::Clock`].
pub trait RateState: Send + 'static {
    /// The quota in force.
    fn quota(&self) -> Quota;

    /// The earliest instant at which one more permit conforms (`TAT − τ`);
    /// it may lie in the past, meaning a permit is available now.
    fn next_conforming(&self) -> u64;

    /// Take one permit *as of* instant `at`. Succeeds when a permit conforms
    /// at `at`; otherwise leaves the state unchanged and returns the instant
    /// at which one will.
    ///
    /// The limiter passes the scheduled grant instant of a waiter that woke
    /// late (so lateness does not cost rate), or the current instant.
    ///
    /// # Errors
    /// `Err(next)` with the next conforming instant when no permit conforms
    /// at `at`.
    fn take(&mut self, at: u64) -> Result<(), u64>;

    /// Switch to `quota` at instant `now` without handing out a fresh burst:
    /// the permits recently used stay used, re-expressed in the new period.
    fn set_quota(&mut self, now: u64, quota: Quota);
}

/// In-process GCRA state: a theoretical arrival time and a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    tat: u64,
    quota: Quota,
}

impl Gcra {
    /// A full bucket: `burst` permits available from instant 0.
    pub fn new(quota: Quota) -> Self {
        Gcra { tat: 0, quota }
    }

    /// The theoretical arrival time.
    pub fn tat(&self) -> u64 {
        self.tat
    }
}

impl RateState for Gcra {
    fn quota(&self) -> Quota {
        self.quota
    }

    fn next_conforming(&self) -> u64 {
        self.tat.saturating_sub(self.quota.tolerance_nanos())
    }

    fn take(&mut self, at: u64) -> Result<(), u64> {
        let next = self.next_conforming();
        if next > at {
            return Err(next);
        }
        self.tat = self.tat.max(at).saturating_add(self.quota.period_nanos());
        Ok(())
    }

    fn set_quota(&mut self, now: u64, quota: Quota) {
        // `TAT − now` is the debt: how many periods' worth of permits were
        // used recently. Keep that many permits used under the new period
        // (rounded up), so neither a faster nor a slower quota refills the
        // bucket, and re-applying the same quota changes nothing.
        let debt = u128::from(self.tat.saturating_sub(now));
        let scaled = (debt * u128::from(quota.period_nanos()))
            .div_ceil(u128::from(self.quota.period_nanos()));
        let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
        self.tat = now.saturating_add(scaled);
        self.quota = quota;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(rate: u32, burst: u32) -> Quota {
        Quota::per_second(rate).unwrap().burst(burst).unwrap()
    }

    #[test]
    fn burst_then_steady_spacing() {
        let mut g = Gcra::new(q(1000, 3));
        let now = 5_000_000_000;
        for _ in 0..3 {
            assert_eq!(g.take(now), Ok(()));
        }
        assert_eq!(g.take(now), Err(now + 1_000_000));
        assert_eq!(g.next_conforming(), now + 1_000_000);
        assert_eq!(g.take(now + 1_000_000), Ok(()));
        assert_eq!(g.take(now + 1_000_000), Err(now + 2_000_000));
    }

    #[test]
    fn taking_at_the_scheduled_instant_keeps_the_rate() {
        // A waiter that wakes late takes its permit as of its grant instant:
        // the next one is still due one period after that grant.
        let mut g = Gcra::new(q(1000, 1));
        g.take(0).unwrap();
        let grant = g.next_conforming();
        assert_eq!(grant, 1_000_000);
        g.take(grant).unwrap(); // even if "now" were 1.7 ms
        assert_eq!(g.next_conforming(), 2_000_000);
    }

    #[test]
    fn set_quota_keeps_debt_and_never_refills() {
        let mut g = Gcra::new(q(1000, 10));
        for _ in 0..10 {
            g.take(0).unwrap();
        }
        assert!(g.take(0).is_err());
        // Same quota again: no change at all (Go's UpdateRate refilled).
        let before = g;
        g.set_quota(0, q(1000, 10));
        assert_eq!(g, before);
        // Ten times slower: the ten used permits now weigh 10 × 10 ms.
        g.set_quota(0, q(100, 10));
        assert_eq!(g.tat(), 100_000_000);
        assert_eq!(g.next_conforming(), 10_000_000);
        // Faster again: 10 × 1 ms.
        g.set_quota(0, q(1000, 10));
        assert_eq!(g.tat(), 10_000_000);
        // An idle bucket stays full, at any quota.
        let mut idle = Gcra::new(q(10, 5));
        idle.set_quota(7_000_000_000, q(1, 5));
        assert_eq!(idle.next_conforming(), 7_000_000_000 - 4_000_000_000);
    }
}
