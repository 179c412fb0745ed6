//! `Quota`: how many permits, how fast, how much burst — validated once.
//!
//! A quota is stored the way the GCRA uses it: an *emission interval* `T`
//! (the period between two permits, in whole nanoseconds) and a *burst* `b`
//! (how many permits may go back to back after a quiet spell), from which
//! the burst tolerance `τ = (b − 1)·T` follows. Every constructor checks its
//! input and returns a [`ConfigError`] naming the mistake, so a `Quota`
//! value is always usable: there is no zero, negative, NaN or infinite rate,
//! no period that rounds to 0 ns and no zero burst to trip over later.
//!
//! The period is rounded **up** to whole nanoseconds: a limiter built from
//! `Quota::per_second(3.0)` spaces permits 333,333,334 ns apart, a hair
//! *under* 3/s, never over. Rates whose period is a whole number of
//! nanoseconds (1,000/s, 0.2/s, 20,000/s, …) are exact.
//!
//! The burst defaults to **1**: permits evenly spaced, which satisfies any
//! window-based limit a server may police. Raise it with [`Quota::burst`] to
//! use an allowance the server grants ("20/s, bursts of 10").

use std::fmt;
use std::time::Duration;

use httpclient_core::ConfigError;

const NANOS_PER_SEC: f64 = 1e9;

/// A validated rate: one permit every [`Quota::period`], with up to
/// [`Quota::burst_size`] permits back to back after a quiet spell.
///
/// ```
/// use httpclient_ratelimit::Quota;
/// use std::time::Duration;
///
/// let q = Quota::per_second(20.0)?.burst(10)?; // 20/s, bursts of 10
/// assert_eq!(q.period(), Duration::from_millis(50));
/// assert_eq!(q.burst_size(), 10);
///
/// let per_min = Quota::new(100, Duration::from_secs(60))?; // 100 per minute
/// assert_eq!(per_min.period(), Duration::from_millis(600));
///
/// let slow = Quota::per_second(0.2)?; // one every 5 s
/// assert_eq!(slow.period(), Duration::from_secs(5));
///
/// assert!(Quota::per_second(0.0).is_err());
/// assert!(Quota::per_second(f64::NAN).is_err());
/// assert!(Quota::per_second(20).unwrap().burst(0).is_err());
/// # Ok::<(), httpclient_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    period_ns: u64,
    burst: u32,
}

impl Quota {
    /// `rate` permits per second (fractions welcome: `0.2` is one every
    /// five seconds). Burst 1.
    ///
    /// # Errors
    /// [`ConfigError`] (field `rate`) when `rate` is zero, negative, NaN,
    /// infinite, above 10⁹/s (the period would round to 0 ns) or so small
    /// the period overflows 584 years.
    pub fn per_second(rate: impl Into<f64>) -> Result<Quota, ConfigError> {
        Quota::per_unit(rate.into(), 1.0, "per second")
    }

    /// `rate` permits per minute. Burst 1.
    ///
    /// # Errors
    /// As [`Quota::per_second`].
    pub fn per_minute(rate: impl Into<f64>) -> Result<Quota, ConfigError> {
        Quota::per_unit(rate.into(), 60.0, "per minute")
    }

    /// `rate` permits per hour. Burst 1.
    ///
    /// # Errors
    /// As [`Quota::per_second`].
    pub fn per_hour(rate: impl Into<f64>) -> Result<Quota, ConfigError> {
        Quota::per_unit(rate.into(), 3600.0, "per hour")
    }

    /// `count` permits per `per`, evenly spaced (burst 1): `Quota::new(100,
    /// Duration::from_secs(60))` is one permit every 600 ms. Exact integer
    /// arithmetic; the period is rounded up to whole nanoseconds.
    ///
    /// # Errors
    /// [`ConfigError`] when `count` is 0 (field `count`) or `per` is zero or
    /// too short to give each permit at least 1 ns (field `per`).
    pub fn new(count: u32, per: Duration) -> Result<Quota, ConfigError> {
        if count == 0 {
            return Err(ConfigError::new("count", "must be at least 1"));
        }
        let per_ns = per.as_nanos();
        if per_ns == 0 {
            return Err(ConfigError::new("per", "must be longer than zero"));
        }
        if per_ns < u128::from(count) {
            return Err(ConfigError::new(
                "per",
                format!("{count} permits per {per:?} is more than one per nanosecond"),
            ));
        }
        let period = per_ns.div_ceil(u128::from(count));
        let period_ns = u64::try_from(period).map_err(|_| {
            ConfigError::new(
                "per",
                format!("{per:?} / {count} does not fit in 584 years"),
            )
        })?;
        Ok(Quota {
            period_ns,
            burst: 1,
        })
    }

    /// One permit every `period` (burst 1).
    ///
    /// # Errors
    /// [`ConfigError`] (field `period`) when `period` is zero or longer than
    /// 584 years.
    pub fn with_period(period: Duration) -> Result<Quota, ConfigError> {
        if period.is_zero() {
            return Err(ConfigError::new("period", "must be longer than zero"));
        }
        let period_ns = u64::try_from(period.as_nanos())
            .map_err(|_| ConfigError::new("period", "must be shorter than 584 years"))?;
        Ok(Quota {
            period_ns,
            burst: 1,
        })
    }

    /// The same rate with up to `burst` permits back to back after a quiet
    /// spell (a token bucket of `burst` tokens). `1` means evenly spaced.
    ///
    /// # Errors
    /// [`ConfigError`] (field `burst`) when `burst` is 0, or when
    /// `burst × period` exceeds 584 years.
    pub fn burst(self, burst: u32) -> Result<Quota, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::new(
                "burst",
                "must be at least 1 (1 = evenly spaced permits)",
            ));
        }
        if self.period_ns.checked_mul(u64::from(burst)).is_none() {
            return Err(ConfigError::new(
                "burst",
                format!("{burst} × {:?} does not fit in 584 years", self.period()),
            ));
        }
        Ok(Quota { burst, ..self })
    }

    fn per_unit(rate: f64, unit_secs: f64, unit: &str) -> Result<Quota, ConfigError> {
        if rate.is_nan() {
            return Err(ConfigError::new("rate", "is NaN"));
        }
        if rate.is_infinite() {
            return Err(ConfigError::new("rate", "must be finite"));
        }
        if rate <= 0.0 {
            return Err(ConfigError::new(
                "rate",
                format!("must be greater than 0 (got {rate} {unit})"),
            ));
        }
        let exact = unit_secs * NANOS_PER_SEC / rate;
        if exact < 1.0 {
            return Err(ConfigError::new(
                "rate",
                format!("{rate} {unit} is more than one permit per nanosecond"),
            ));
        }
        // Round up (never faster than asked), but forgive float noise on
        // rates whose period is a whole number of nanoseconds.
        let nearest = exact.round();
        let period = if (exact - nearest).abs() <= exact * 1e-12 {
            nearest
        } else {
            exact.ceil()
        };
        if period >= u64::MAX as f64 {
            return Err(ConfigError::new(
                "rate",
                format!("{rate} {unit} gives a period longer than 584 years"),
            ));
        }
        Ok(Quota {
            period_ns: period as u64,
            burst: 1,
        })
    }

    /// The emission interval `T`: the time between two permits at the
    /// sustained rate.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The period in nanoseconds.
    pub fn period_nanos(&self) -> u64 {
        self.period_ns
    }

    /// How many permits may go back to back after a quiet spell (≥ 1).
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The burst tolerance `τ = (burst − 1)·T`: how far ahead of the
    /// steady schedule a permit may be taken.
    pub fn burst_tolerance(&self) -> Duration {
        Duration::from_nanos(self.tolerance_nanos())
    }

    /// `τ` in nanoseconds (cannot overflow: checked by [`Quota::burst`]).
    pub fn tolerance_nanos(&self) -> u64 {
        self.period_ns * u64::from(self.burst - 1)
    }

    /// The sustained rate in permits per second (`1 / period`).
    pub fn rate_per_second(&self) -> f64 {
        NANOS_PER_SEC / self.period_ns as f64
    }

    /// The most permits any window of length `window` can hold under this
    /// quota: `burst + ⌊window / period⌋`. Handy for asserting conformance.
    pub fn max_in_window(&self, window: Duration) -> u64 {
        let w = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        u64::from(self.burst).saturating_add(w / self.period_ns)
    }
}

impl fmt::Display for Quota {
    /// `20/s, burst 10` (or `1 per 5s, burst 1` below 1/s).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.rate_per_second();
        if rate >= 1.0 {
            write!(f, "{rate}/s, burst {}", self.burst)
        } else {
            write!(f, "1 per {:?}, burst {}", self.period(), self.burst)
        }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("period", &self.period())
            .field("burst", &self.burst)
            .field("rate_per_second", &self.rate_per_second())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_exact_or_rounded_up() {
        assert_eq!(Quota::per_second(1000).unwrap().period_nanos(), 1_000_000);
        assert_eq!(Quota::per_second(20_000).unwrap().period_nanos(), 50_000);
        assert_eq!(
            Quota::per_second(0.2).unwrap().period_nanos(),
            5_000_000_000
        );
        assert_eq!(Quota::per_second(3.0).unwrap().period_nanos(), 333_333_334);
        assert_eq!(Quota::per_second(1e9).unwrap().period_nanos(), 1);
        assert_eq!(Quota::per_minute(60).unwrap().period_nanos(), 1_000_000_000);
        assert_eq!(
            Quota::per_hour(1).unwrap().period(),
            Duration::from_secs(3600)
        );
        let q = Quota::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(q.period_nanos(), 333_333_334);
        assert!(q.rate_per_second() <= 3.0);
        for rate in [0.1, 0.3, 7.0, 13.0, 999.0, 1234.5678, 33_333.0] {
            let q = Quota::per_second(rate).unwrap();
            assert!(q.rate_per_second() <= rate, "{rate} -> {q:?}");
            // Within one nanosecond of the exact period.
            let slack = 1.0 - 1.0 / (q.period_nanos() as f64 - 1.0);
            assert!(q.rate_per_second() >= rate * slack, "{rate} -> {q:?}");
        }
    }

    #[test]
    fn invalid_values_are_config_errors() {
        for bad in [
            0.0,
            -1.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2e9,
            1e-12,
        ] {
            let e = Quota::per_second(bad).unwrap_err();
            assert_eq!(e.field, "rate", "{bad}: {e}");
        }
        assert_eq!(
            Quota::new(0, Duration::from_secs(1)).unwrap_err().field,
            "count"
        );
        assert_eq!(Quota::new(1, Duration::ZERO).unwrap_err().field, "per");
        assert_eq!(
            Quota::new(10, Duration::from_nanos(5)).unwrap_err().field,
            "per"
        );
        assert_eq!(Quota::new(1, Duration::MAX).unwrap_err().field, "per");
        assert_eq!(
            Quota::with_period(Duration::ZERO).unwrap_err().field,
            "period"
        );
        assert_eq!(
            Quota::with_period(Duration::MAX).unwrap_err().field,
            "period"
        );
        let q = Quota::per_second(10).unwrap();
        assert_eq!(q.burst(0).unwrap_err().field, "burst");
        let slow = Quota::with_period(Duration::from_secs(100 * 365 * 86_400)).unwrap();
        assert_eq!(slow.burst(10).unwrap_err().field, "burst");
    }

    #[test]
    fn burst_and_tolerance() {
        let q = Quota::per_second(20).unwrap().burst(10).unwrap();
        assert_eq!(q.burst_size(), 10);
        assert_eq!(q.burst_tolerance(), Duration::from_millis(450));
        assert_eq!(q.max_in_window(Duration::from_secs(1)), 30);
        assert_eq!(
            Quota::per_second(5).unwrap().burst_tolerance(),
            Duration::ZERO
        );
        assert_eq!(q.to_string(), "20/s, burst 10");
        assert_eq!(
            Quota::per_second(0.2).unwrap().to_string(),
            "1 per 5s, burst 1"
        );
    }
}
