//! Property test: for any rate, burst and arrival pattern, the grant
//! instants are exactly those of the reference GCRA served in FIFO order,
//! so no window holds more than `burst + ⌊W / T⌋` grants; nobody is released
//! before their grant.

use std::time::Duration;

use httpclient_ratelimit::{Limiter, Quota};
use proptest::prelude::*;

/// (arrival, grant, release) of every request, in arrival order.
fn run(quota: Quota, pattern: &[(u64, usize)]) -> Vec<(u64, u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let limiter = Limiter::new(quota);
        let mut tasks = Vec::new();
        for &(gap_us, count) in pattern {
            tokio::time::sleep(Duration::from_micros(gap_us)).await;
            for _ in 0..count {
                let l = limiter.clone();
                tasks.push(tokio::spawn(async move {
                    let arrived = l.clock().now();
                    let p = l.acquire().await.expect("no queue bound, never stopped");
                    (arrived, p.granted_at(), l.clock().now())
                }));
            }
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn quota() -> impl Strategy<Value = Quota> {
    (
        prop_oneof![1.0..5_000.0f64, Just(1000.0), Just(0.5), Just(333.0)],
        1u32..8,
    )
        .prop_map(|(rate, burst)| Quota::per_second(rate).unwrap().burst(burst).unwrap())
}

fn pattern() -> impl Strategy<Value = Vec<(u64, usize)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u64), 0..3_000u64, 0..200_000u64],
            1usize..6,
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn grants_match_reference_gcra_fifo(quota in quota(), pattern in pattern()) {
        let out = run(quota, &pattern);
        let t = quota.period_nanos();
        let tau = quota.tolerance_nanos();

        // Reference: FIFO service of the same arrivals by a textbook GCRA.
        let mut tat = 0u64;
        for (i, &(arrived, grant, released)) in out.iter().enumerate() {
            let expect = arrived.max(tat.saturating_sub(tau));
            tat = tat.max(expect) + t;
            prop_assert_eq!(grant, expect, "grant {} of {:?}", i, quota);
            prop_assert!(released >= grant, "released early: {}", i);
            // tokio rounds deadlines up and the paused clock advances in
            // whole ticks from a rounded-down "now": under two ticks late.
            prop_assert!(released - grant < 2_000_000, "released {} ns late", released - grant);
        }

        // Conformance, checked directly: between grants i and j (inclusive)
        // there are at most burst + ⌊(g_j − g_i) / T⌋ grants.
        let grants: Vec<u64> = out.iter().map(|o| o.1).collect();
        for i in 0..grants.len() {
            prop_assert!(i == 0 || grants[i] >= grants[i - 1], "FIFO");
            for j in i..grants.len() {
                let n = (j - i + 1) as u64;
                let bound = u64::from(quota.burst_size()) + (grants[j] - grants[i]) / t;
                prop_assert!(n <= bound, "{} grants in {} ns", n, grants[j] - grants[i]);
            }
        }
    }
}
