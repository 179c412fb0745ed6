//! Scenarios for `httpclient-pool` (the pool engineer fills these in).
//!
//! Expected here: `ConnectionPool` over `ReqwestDriver` vs the bare driver on
//! the happy path (ratio of `rps`, no retries happen) and the cost of
//! retries against `?fault=..` URLs. See the recipe in [`super`].

use super::Scenario;

/// The pool scenarios (none yet).
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
