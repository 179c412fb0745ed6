//! Property tests: backoff bounds for any valid policy, and the budget's
//! bound for any traffic pattern.

use std::time::Duration;

use httpclient_core::DriverExt;
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_pool::{ConnectionPool, Jitter, RetryBudget, RetryPolicy};
use proptest::prelude::*;

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Off)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For any valid policy and any retry number: low ≤ high ≤ max_delay,
    /// the ceiling never decreases, and it is exact before the cap.
    #[test]
    fn backoff_bounds_hold_for_any_policy(
        base_ms in 0u64..5_000,
        extra_ms in 0u64..100_000,
        multiplier in 1.0f64..10.0,
        jitter in jitter(),
        retry in any::<u32>(),
    ) {
        let base = Duration::from_millis(base_ms);
        let max = base + Duration::from_millis(extra_ms);
        let p = RetryPolicy::builder()
            .base_delay(base)
            .max_delay(max)
            .multiplier(multiplier)
            .jitter(jitter)
            .build()
            .unwrap();
        let (lo, hi) = p.backoff_bounds(retry);
        prop_assert!(lo <= hi && hi <= max);
        prop_assert_eq!(hi, p.backoff_ceiling(retry));
        prop_assert!(p.backoff_ceiling(retry.saturating_add(1)) >= p.backoff_ceiling(retry));
        if (1..8).contains(&retry) {
            let exact = base.as_secs_f64() * multiplier.powi(retry as i32 - 1);
            let expect = exact.min(max.as_secs_f64());
            prop_assert!((p.backoff_ceiling(retry).as_secs_f64() - expect).abs() < 1e-6);
        }
    }

    /// Invalid multipliers and inverted bounds are always rejected.
    #[test]
    fn invalid_policies_are_rejected(m in prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), -1e9f64..0.999], base in 1u64..1000) {
        prop_assert!(RetryPolicy::builder().multiplier(m).build().is_err());
        let inverted = RetryPolicy::builder()
            .base_delay(Duration::from_millis(base + 1))
            .max_delay(Duration::from_millis(base));
        prop_assert!(inverted.build().is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the failure pattern, a burst of requests inside one window
    /// never makes more than requests × (1 + ratio) + floor attempts.
    #[test]
    fn attempts_stay_within_the_budget(
        n in 1usize..300,
        ratio in 0.0f64..1.0,
        floor in 0u32..5,
        fail_mask in any::<u64>(),
        max_retries in 0u32..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mock = MockDriver::new().handler(move |_, i| {
                if fail_mask >> (i % 64) & 1 == 1 { Behavior::status(503) } else { Behavior::ok() }
            });
            let budget = RetryBudget::new(ratio, floor, Duration::from_secs(60)).unwrap();
            let pool = ConnectionPool::builder(mock.clone())
                .retry_policy(RetryPolicy::builder().max_retries(max_retries).build().unwrap())
                .retry_budget(budget)
                .seed(5)
                .build()
                .unwrap();
            let results = futures_util::future::join_all((0..n).map(|i| pool.send(format!("http://h/{i}")))).await;
            let st = pool.stats();
            prop_assert_eq!(results.len(), n);
            prop_assert_eq!(st.requests, n as u64);
            prop_assert_eq!(st.attempts, mock.call_count());
            let bound = n as f64 * (1.0 + ratio) + budget.reserve() as f64;
            prop_assert!(st.attempts as f64 <= bound, "{} > {}", st.attempts, bound);
            prop_assert!(st.attempts <= n as u64 * (u64::from(max_retries) + 1));
            prop_assert_eq!(st.succeeded + st.failed, n as u64);
            Ok(())
        })?;
    }
}
