//! Real clock, multi-threaded runtime: many tasks hammering one limiter
//! never get more permits than the GCRA bound for the elapsed time. The
//! bound is an upper bound on admissions, so scheduling noise can only make
//! the test pass more easily, never flake it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use httpclient_ratelimit::{Limiter, Precision, Quota};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_hammering_try_acquire_never_over_admit() {
    let quota = Quota::per_second(5_000).unwrap().burst(10).unwrap();
    let limiter = Limiter::new(quota);
    let admitted = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let l = limiter.clone();
            let admitted = admitted.clone();
            tokio::spawn(async move {
                // Bounded in time and in count.
                for i in 0..5_000_000u32 {
                    if l.try_acquire().is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    if i % 64 == 0 {
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = limiter.clock().now();
    let n = admitted.load(Ordering::Relaxed);
    let bound = u64::from(quota.burst_size()) + elapsed / quota.period_nanos();
    assert!(n <= bound, "{n} admitted, bound {bound} after {elapsed} ns");
    assert!(
        n >= u64::from(quota.burst_size()),
        "the burst at least: {n}"
    );
    let s = limiter.stats();
    assert_eq!(s.granted, n);
    assert_eq!(s.requests, s.granted + s.rejected_would_wait);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_tasks_on_many_threads_stay_fifo_exact_and_never_early() {
    for precision in [Precision::Timer, Precision::Fine] {
        let quota = Quota::per_second(2_000).unwrap();
        let limiter = Limiter::builder(quota).precision(precision).build();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    let mut grants = Vec::new();
                    for _ in 0..50 {
                        let p = l.acquire().await.unwrap();
                        let released = l.clock().now();
                        assert!(released >= p.granted_at(), "released early");
                        grants.push(p.granted_at());
                    }
                    grants
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            // Generous bound: 400 permits at 2,000/s take 0.2 s.
            let g = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("bounded")
                .unwrap();
            all.extend(g);
        }
        all.sort_unstable();
        // Never two grants closer than one period (burst 1), however the
        // threads interleave. (That they are exactly one period apart is
        // proven under the paused clock; a wall-clock bound here would flake
        // on a loaded machine.)
        assert_eq!(all.len(), 400);
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= quota.period_nanos(), "{precision:?}: {w:?}");
        }
    }
}
