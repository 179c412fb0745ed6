//! Scenarios for `httpclient-ratelimit` (the rate-limit engineer fills
//! these in).
//!
//! Expected here: the limiter's overhead against an unlimited driver at a
//! rate far above what the machine reaches (ratio of `rps`), the accuracy
//! of the achieved rate as an absolute `achieved_ratio` record with a
//! `Threshold::Within` bound, and a comparison with `governor` (add it as an
//! optional dependency behind the `bench` feature). See the recipe in
//! [`super`].

use super::Scenario;

/// The rate-limit scenarios (none yet).
pub fn scenarios() -> Vec<Scenario> {
    Vec::new()
}
