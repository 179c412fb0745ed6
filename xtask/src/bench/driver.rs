//! Driver overhead scenarios: `driver/reqwest/c{16,64,256}` (ReqwestDriver vs
//! plain reqwest) and `driver/isahc/c{16,64,256}` (IsahcDriver vs plain
//! isahc), metric `rps`, threshold ratio >= 0.97.

use super::Scenario;

/// Concurrencies measured.
pub const CONCURRENCIES: [usize; 3] = [16, 64, 256];

/// The driver scenarios.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = reqwest_driver_scenarios();
    all.extend(isahc_driver_scenarios());
    all
}

/// `driver/reqwest/c{16,64,256}`: not wired yet (the driver crate did not
/// build when the harness was written); returns no scenario.
pub fn reqwest_driver_scenarios() -> Vec<Scenario> {
    Vec::new()
}

/// `driver/isahc/c{16,64,256}`: not wired yet; returns no scenario.
pub fn isahc_driver_scenarios() -> Vec<Scenario> {
    Vec::new()
}
