//! [`run_all`]: every check in sequence, for use outside `cargo test`.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use httpclient_core::{Driver, Error};

use crate::{CHECK_TIME_LIMIT, CheckResult, ConformanceConfig, Failure};

/// The result of one check.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The check's name (its function name in [`crate::checks`]).
    pub name: &'static str,
    /// `Ok(())` or why it failed (a panic or a hang is a failure too).
    pub result: CheckResult,
    /// How long it took.
    pub duration: Duration,
}

/// Every check's outcome, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per check.
    pub outcomes: Vec<CheckOutcome>,
}

impl Report {
    /// Whether every check passed.
    pub fn all_passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.outcomes.iter().filter(|o| o.result.is_err())
    }

    /// How many checks passed.
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    /// The outcome of one check by name.
    pub fn get(&self, name: &str) -> Option<&CheckOutcome> {
        self.outcomes.iter().find(|o| o.name == name)
    }
}

impl fmt::Display for Report {
    /// One line per check, then `N passed, M failed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            match &o.result {
                Ok(()) => writeln!(f, "ok     {:<36} {:>8.1?}", o.name, o.duration)?,
                Err(e) => writeln!(f, "FAILED {:<36} {:>8.1?}  {e}", o.name, o.duration)?,
            }
        }
        write!(
            f,
            "{} passed, {} failed",
            self.passed(),
            self.outcomes.len() - self.passed()
        )
    }
}

/// Names of every check, in the order [`run_all`] runs them.
pub fn check_names() -> &'static [&'static str] {
    macro_rules! names {
        (() $($name:ident),* $(,)?) => { &[$(stringify!($name)),*] };
    }
    crate::__for_each_check! { (names) }
}

/// Runs one check, bounded by [`CHECK_TIME_LIMIT`], catching a panic.
async fn run_one(name: &'static str, check: impl Future<Output = CheckResult>) -> CheckOutcome {
    let started = Instant::now();
    let result = match tokio::time::timeout(
        CHECK_TIME_LIMIT,
        AssertUnwindSafe(check).catch_unwind(),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(Failure::new(format!(
            "panicked: {}",
            Error::from_panic(panic)
        ))),
        Err(_) => Err(Failure::new(format!(
            "did not finish within {CHECK_TIME_LIMIT:?} (a hang)"
        ))),
    };
    CheckOutcome {
        name,
        result,
        duration: started.elapsed(),
    }
}

/// Runs every check in [`crate::checks`] one after the other with the
/// driver factory `make`, and reports each outcome. Must be called inside
/// a tokio runtime with the time and IO drivers enabled (a multi-thread
/// runtime is best: `concurrent_200` spawns tasks).
///
/// ```no_run
/// # async fn demo() {
/// use httpclient_conformance::{run_all, ConformanceConfig};
/// use httpclient_core::{async_trait, Driver, Error, Request, Response};
///
/// struct Teapot;
/// #[async_trait]
/// impl Driver for Teapot {
///     async fn execute(&self, _r: Request) -> Result<Response, Error> {
///         Ok(Response::new(http::StatusCode::IM_A_TEAPOT))
///     }
/// }
///
/// let report = run_all(|_cfg: ConformanceConfig| Ok(Teapot)).await;
/// println!("{report}");
/// assert!(!report.all_passed());
/// # }
/// ```
pub async fn run_all<F, D>(make: F) -> Report
where
    F: Fn(ConformanceConfig) -> Result<D, Error>,
    D: Driver + 'static,
{
    let mut report = Report::default();
    macro_rules! run {
        (() $($name:ident),* $(,)?) => {
            $(
                report
                    .outcomes
                    .push(run_one(stringify!($name), crate::checks::$name(&make)).await);
            )*
        };
    }
    crate::__for_each_check! { (run) }
    report
}
