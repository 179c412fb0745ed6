//! Scenarios for full layer chains, e.g.
//! `BatchExecutor<ConnectionPool<RateLimitedExecutor<ReqwestDriver>>>`
//! against plain reqwest (fills in once the layers exist). See the recipe
//! in [`super`].

use super::Scenario;

/// The chain scenarios (none yet).
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
