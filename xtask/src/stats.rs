//! Pure statistics for the paired benchmark harness.
//!
//! Nothing here measures anything or touches the clock, so it lives outside
//! the `bench` feature gate and its unit tests run in a plain
//! `cargo test --workspace`.
//!
//! # Why paired ratios, medians and a bootstrap
//!
//! On a shared 2-core machine the throughput of the *same* code moves by
//! 20–40 % from one run to the next. Comparing two separate runs is
//! therefore meaningless at the few-percent level we care about. Instead the
//! harness alternates candidate `A` and baseline `B` in short slices; one
//! *pair* is the counterbalanced block `A B B A` ([`abba_order`]): whatever
//! the machine does during a pair (a compile in another terminal, a
//! frequency change) hits both sides of that pair nearly equally, and the
//! ABBA order cancels linear drift and position effects. Each pair yields
//! one ratio `metric(A) / metric(B)` (each side's metric aggregated over its
//! two slices of the pair); we report the [`median`] of those ratios
//! (robust to the odd slice that got descheduled) with a percentile-bootstrap
//! 95 % interval ([`bootstrap_median_ci`]) obtained by resampling whole
//! pairs.
//!
//! Verdicts ([`Threshold::judge`]) are taken on the *interval*, not on the
//! point estimate: a scenario passes only when the whole interval clears its
//! threshold, fails only when the whole interval misses it, and is
//! inconclusive otherwise.

use serde::{Deserialize, Serialize};

/// Number of ABBA pairs a ratio needs before its verdict can be `pass` or
/// `fail`; with fewer pairs (e.g. `--quick`) the verdict is `inconclusive`.
pub const MIN_GATED_PAIRS: usize = 50;

/// Number of bootstrap resamples used for every interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2_000;

/// Half-width the A/A control's interval must stay within (±2 %) for the
/// run's comparisons to be trusted.
pub const CONTROL_TOLERANCE: f64 = 0.02;

/// Median of `values`, ignoring NaNs. `None` when nothing is left.
///
/// For an even count the mean of the two middle values is returned.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(median_of_sorted(&sorted))
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Linear-interpolated quantile `q` in `[0, 1]` of an already sorted slice.
///
/// Returns `None` for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Percentile-bootstrap 95 % interval of the median of `values`.
///
/// Draws `resamples` samples of `values.len()` elements with replacement
/// from a [`fastrand::Rng`] seeded with `seed` (so a report is
/// reproducible from its raw data), takes the median of each, and returns
/// the 2.5th and 97.5th percentiles of those medians. NaNs are ignored.
/// `None` when there are no values or `resamples` is zero.
pub fn bootstrap_median_ci(values: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    let clean: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if clean.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = clean.len();
    let mut sample = vec![0.0; n];
    let mut medians = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for slot in sample.iter_mut() {
            *slot = clean[rng.usize(..n)];
        }
        sample.sort_by(f64::total_cmp);
        medians.push(median_of_sorted(&sample));
    }
    medians.sort_by(f64::total_cmp);
    Some((
        quantile_sorted(&medians, 0.025)?,
        quantile_sorted(&medians, 0.975)?,
    ))
}

/// A stable 64-bit seed derived from a scenario id (FNV-1a), so each
/// scenario's bootstrap is reproducible and independent of run order.
pub fn seed_for(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Which side of a comparison runs a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The candidate (numerator of every ratio).
    A,
    /// The baseline (denominator of every ratio).
    B,
}

/// Run order for `pairs` pairs: every pair is the counterbalanced block
/// `A B B A`, so the whole run is `A B B A A B B A …`.
///
/// Within a block each side runs once in an outer and once in an inner
/// position, so a linear drift cancels, and each side has exactly one slice
/// that directly follows a slice of the *other* side (positions 2 and 4)
/// and one that follows its own (positions 1 and 3, given the block before
/// ends with `A` and the warm-up ends with `A`). Measured on the 2-core dev
/// machine, a slice right after a side switch runs ~2–3 % faster than one
/// after the same side; alternating `AB`/`BA` pairs turn that into a
/// bimodal ratio distribution, `ABBA` blocks cancel it inside each pair.
pub fn abba_order(pairs: usize) -> Vec<[Side; 4]> {
    vec![[Side::A, Side::B, Side::B, Side::A]; pairs]
}

/// Outcome of a record against its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The whole interval satisfies the threshold.
    Pass,
    /// The whole interval violates the threshold.
    Fail,
    /// The interval straddles the threshold, too few pairs were run, or the
    /// run's A/A control was too noisy to trust any comparison.
    Inconclusive,
}

impl Verdict {
    /// Lower-case name as used in the table and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A bound a ratio (for comparisons) or a value (for absolute records) must
/// satisfy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// Must be `>=` this.
    AtLeast(f64),
    /// Must be `<=` this.
    AtMost(f64),
    /// Must lie within `[lo, hi]`.
    Within(f64, f64),
}

impl Threshold {
    /// Judges an interval `[lo, hi]` (use `lo == hi` for a point value).
    ///
    /// `Pass` when the whole interval satisfies the bound, `Fail` when the
    /// whole interval violates it, `Inconclusive` when it straddles.
    pub fn judge(self, lo: f64, hi: f64) -> Verdict {
        if lo.is_nan() || hi.is_nan() {
            return Verdict::Inconclusive;
        }
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        match self {
            Threshold::AtLeast(t) => {
                if lo >= t {
                    Verdict::Pass
                } else if hi < t {
                    Verdict::Fail
                } else {
                    Verdict::Inconclusive
                }
            }
            Threshold::AtMost(t) => {
                if hi <= t {
                    Verdict::Pass
                } else if lo > t {
                    Verdict::Fail
                } else {
                    Verdict::Inconclusive
                }
            }
            Threshold::Within(a, b) => {
                if lo >= a && hi <= b {
                    Verdict::Pass
                } else if hi < a || lo > b {
                    Verdict::Fail
                } else {
                    Verdict::Inconclusive
                }
            }
        }
    }

    /// Human-readable form, e.g. `>= 0.97`.
    pub fn describe(self) -> String {
        match self {
            Threshold::AtLeast(t) => format!(">= {t}"),
            Threshold::AtMost(t) => format!("<= {t}"),
            Threshold::Within(a, b) => format!("in [{a}, {b}]"),
        }
    }
}

/// Whether the A/A control's ratio interval is tight enough (within
/// ±[`CONTROL_TOLERANCE`]) for the run's comparisons to be trusted.
pub fn control_is_tight(lo: f64, hi: f64) -> bool {
    lo >= 1.0 - CONTROL_TOLERANCE && hi <= 1.0 + CONTROL_TOLERANCE
}

/// The verdict of a paired ratio with an optional threshold.
///
/// * no threshold: `None` (the record is informational);
/// * fewer than [`MIN_GATED_PAIRS`] pairs: `Inconclusive` (indicative only);
/// * otherwise [`Threshold::judge`] on the interval.
///
/// The run-wide control gate is applied later by
/// [`crate::report::apply_control_gate`].
pub fn ratio_verdict(
    threshold: Option<Threshold>,
    ci: (f64, f64),
    pairs: usize,
) -> Option<Verdict> {
    let threshold = threshold?;
    if pairs < MIN_GATED_PAIRS {
        return Some(Verdict::Inconclusive);
    }
    Some(threshold.judge(ci.0, ci.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[f64::NAN, 5.0, 1.0, 9.0]), Some(5.0));
    }

    #[test]
    fn quantiles_interpolate() {
        let s = [0.0, 10.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile_sorted(&s, 0.0), Some(0.0));
        assert_eq!(quantile_sorted(&s, 1.0), Some(40.0));
        assert_eq!(quantile_sorted(&s, 0.5), Some(20.0));
        assert_eq!(quantile_sorted(&s, 0.125), Some(5.0));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }

    #[test]
    fn bootstrap_of_constant_is_zero_width() {
        let v = vec![1.25; 60];
        let (lo, hi) = bootstrap_median_ci(&v, BOOTSTRAP_RESAMPLES, 7).unwrap();
        assert_eq!(lo, 1.25);
        assert_eq!(hi, 1.25);
    }

    #[test]
    fn bootstrap_brackets_median_and_shifts_with_data() {
        // 1.00, 1.01, ..., 1.00 + 0.01*(n-1) shuffled deterministically.
        let base: Vec<f64> = (0..61).map(|i| 1.0 + f64::from(i) * 0.001).collect();
        let (lo, hi) = bootstrap_median_ci(&base, BOOTSTRAP_RESAMPLES, 1).unwrap();
        let m = median(&base).unwrap();
        assert!((m - 1.03).abs() < 1e-12);
        assert!(lo < m && m < hi, "{lo} < {m} < {hi}");
        assert!(lo > 1.0 && hi < 1.06, "interval [{lo}, {hi}] too wide");

        // Shifting every ratio by +0.5 shifts the interval by exactly +0.5
        // (same seed, same resampling indices).
        let shifted: Vec<f64> = base.iter().map(|v| v + 0.5).collect();
        let (lo2, hi2) = bootstrap_median_ci(&shifted, BOOTSTRAP_RESAMPLES, 1).unwrap();
        assert!((lo2 - lo - 0.5).abs() < 1e-9);
        assert!((hi2 - hi - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bootstrap_is_reproducible_and_handles_edge_cases() {
        let v: Vec<f64> = (0..50).map(|i| f64::from(i % 7)).collect();
        assert_eq!(
            bootstrap_median_ci(&v, 1_000, 42),
            bootstrap_median_ci(&v, 1_000, 42)
        );
        assert_eq!(bootstrap_median_ci(&[], 1_000, 1), None);
        assert_eq!(bootstrap_median_ci(&[1.0], 0, 1), None);
        assert_eq!(bootstrap_median_ci(&[2.0], 1_000, 1), Some((2.0, 2.0)));
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(seed_for("a"), seed_for("a"));
        assert_ne!(
            seed_for("driver/reqwest/c16"),
            seed_for("driver/reqwest/c64")
        );
    }

    #[test]
    fn abba_order_is_counterbalanced() {
        use Side::{A, B};
        assert!(abba_order(0).is_empty());
        let order = abba_order(2);
        let flat: Vec<Side> = order.into_iter().flatten().collect();
        assert_eq!(flat, vec![A, B, B, A, A, B, B, A]);
        for pair in abba_order(51) {
            // Two slices per side, with equal mean position (linear drift
            // cancels): A at 0 and 3, B at 1 and 2.
            let pos = |s: Side| -> usize {
                pair.iter()
                    .enumerate()
                    .filter(|(_, x)| **x == s)
                    .map(|(i, _)| i)
                    .sum()
            };
            assert_eq!(pair.iter().filter(|x| **x == A).count(), 2);
            assert_eq!(pos(A), pos(B));
        }
    }

    #[test]
    fn threshold_judges_intervals() {
        let t = Threshold::AtLeast(0.97);
        assert_eq!(t.judge(0.98, 1.02), Verdict::Pass);
        assert_eq!(t.judge(0.97, 0.99), Verdict::Pass);
        assert_eq!(t.judge(0.90, 0.96), Verdict::Fail);
        assert_eq!(t.judge(0.95, 1.01), Verdict::Inconclusive);
        assert_eq!(t.judge(f64::NAN, 1.0), Verdict::Inconclusive);

        let t = Threshold::AtMost(64.0);
        assert_eq!(t.judge(10.0, 10.0), Verdict::Pass);
        assert_eq!(t.judge(65.0, 65.0), Verdict::Fail);
        assert_eq!(t.judge(60.0, 70.0), Verdict::Inconclusive);

        let t = Threshold::Within(0.98, 1.02);
        assert_eq!(t.judge(0.99, 1.01), Verdict::Pass);
        assert_eq!(t.judge(1.03, 1.05), Verdict::Fail);
        assert_eq!(t.judge(0.97, 1.01), Verdict::Inconclusive);
        // Reversed bounds are normalised.
        assert_eq!(t.judge(1.01, 0.99), Verdict::Pass);
    }

    #[test]
    fn control_gate() {
        assert!(control_is_tight(0.99, 1.01));
        assert!(control_is_tight(0.98, 1.02));
        assert!(!control_is_tight(0.979, 1.0));
        assert!(!control_is_tight(1.0, 1.021));
    }

    #[test]
    fn ratio_verdict_needs_threshold_and_pairs() {
        let th = Some(Threshold::AtLeast(0.97));
        assert_eq!(ratio_verdict(None, (0.5, 0.6), 100), None);
        assert_eq!(
            ratio_verdict(th, (0.99, 1.01), 12),
            Some(Verdict::Inconclusive)
        );
        assert_eq!(ratio_verdict(th, (0.99, 1.01), 50), Some(Verdict::Pass));
        assert_eq!(ratio_verdict(th, (0.80, 0.90), 50), Some(Verdict::Fail));
    }
}
