//! The clock the limiter reads and sleeps on, and how precisely it wakes.
//!
//! Time is a `u64` count of nanoseconds since the clock's own origin: the
//! GCRA arithmetic stays in exact integers (584 years of range), and a
//! shared backend could store it as one number.
//!
//! The default [`TokioClock`] reads `tokio::time::Instant`, so a test under
//! tokio's paused clock (`#[tokio::test(start_paused = true)]`) is exact and
//! instant. Like governor, the clock is injectable: anything implementing
//! [`Clock`] will do (a clock shared with other components, a simulated one).
//!
//! # Wake-up precision
//!
//! tokio's timer works in whole milliseconds and rounds a deadline *up*: a
//! task sleeping until a grant instant wakes 1–2 ms after it on Linux. That
//! never releases a request early, and because grants are computed from the
//! schedule rather than from the moment a waiter wakes, lateness does not
//! cost rate — but it bunches releases. [`Precision::Fine`] adds a small
//! helper thread per limiter that waits on the OS's high-resolution timer
//! and wakes the waiting task at its grant instant; the tokio timer stays
//! armed as a safety net, so under a paused clock (where the helper cannot
//! know the simulated time) everything still works. The helper costs one
//! thread and about two context switches per wake-up; it is started on
//! first use and joined when the limiter is dropped.
//!
//! Measured by `cargo xtask bench` (`ratelimit/*`) on a shared 2-core
//! machine under heavy load: median release lag ≈ 1.2 ms with
//! [`Precision::Timer`] and ≈ 0.1–0.2 ms with [`Precision::Fine`]; process
//! CPU at 1,000/s with 64 callers doing HTTP ≈ 7 % vs ≈ 11 %, at 20,000/s
//! without I/O ≈ 5 % vs ≈ 20 %. The long-run rate is the same with both. A
//! busy-spin final approach was rejected: tokio's timer fires up to ~2 ms
//! late, so spinning would have to cover that window for every permit — a
//! whole core at 1,000/s.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A monotonic clock the limiter can read and sleep on.
///
/// `now` must never go backwards. `sleep_until` must not complete before
/// `now() >= deadline` (completing later is allowed: the limiter re-checks).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Nanoseconds since this clock's origin.
    fn now(&self) -> u64;

    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: u64) -> Sleep;

    /// The wall-clock [`std::time::Instant`] at which `now()` will reach
    /// `at`, when this clock follows real time. [`Precision::Fine`] uses it
    /// to arm its high-resolution helper; `None` (the default) disables the
    /// helper for this clock, leaving only [`Clock::sleep_until`].
    fn real_instant(&self, at: u64) -> Option<std::time::Instant> {
        let _ = at;
        None
    }
}

/// The default clock: `tokio::time::Instant`, paused-clock aware.
#[derive(Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The `tokio::time::Instant` of a clock reading.
    pub fn instant_of(&self, at: u64) -> tokio::time::Instant {
        self.origin + Duration::from_nanos(at)
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl fmt::Debug for TokioClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokioClock")
    }
}

impl Clock for TokioClock {
    fn now(&self) -> u64 {
        let d = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    fn sleep_until(&self, deadline: u64) -> Sleep {
        Box::pin(tokio::time::sleep_until(self.instant_of(deadline)))
    }

    fn real_instant(&self, at: u64) -> Option<std::time::Instant> {
        // Under a paused tokio clock this mapping is meaningless, but the
        // helper then causes at most one extra poll per grant instant (a
        // deadline never fires twice): the limiter re-reads `now()` before
        // releasing anything, and the tokio timer, which follows the paused
        // clock, stays armed.
        Some(self.instant_of(at).into_std())
    }
}

/// How precisely a waiting request is woken at its grant instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Precision {
    /// tokio's timer only: no extra thread, 1–2 ms of release lag on Linux.
    #[default]
    Timer,
    /// tokio's timer plus a high-resolution helper thread per limiter:
    /// ≈ 0.1–0.2 ms of lag for about two context switches per wake-up.
    /// Worth it with [`crate::Spacing::Strict`], and where bunched releases
    /// matter.
    Fine,
}
