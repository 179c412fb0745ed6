//! Scenarios for `httpclient-batch` (the batch engineer fills these in).
//!
//! Expected here: `batch/executor/c{16,64,256}` comparing
//! `BatchExecutor::execute_batch` over `ReqwestDriver` against plain reqwest
//! with `buffered(C)` (ratio of `rps`, and CPU per request), and an absolute
//! `peak_rss_mib` record for a long streaming batch
//! ([`super::cpu::peak_rss_mib`]). See the recipe in [`super`].

use super::Scenario;

/// The batch scenarios (none yet).
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
