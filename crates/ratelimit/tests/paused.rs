//! Timing behaviour under tokio's paused clock (single-threaded runtime):
//! every instant is exact, so the assertions are equalities, not ranges.

use std::sync::Arc;
use std::time::Duration;

use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{Driver, DriverExt, Error, RateLimitReason, Request};
use httpclient_ratelimit::{
    KeyedRateLimitedExecutor, Limiter, Permit, Quota, RateLimitedExecutor, Spacing,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const MS: u64 = 1_000_000;

fn q(rate: f64, burst: u32) -> Quota {
    Quota::per_second(rate).unwrap().burst(burst).unwrap()
}

/// Let every runnable task run (no time passes under a paused clock).
async fn settle() {
    for _ in 0..2_000 {
        tokio::task::yield_now().await;
    }
}

/// (index, arrival, permit result, release instant on the limiter's clock)
type WaiterOutcome = (usize, u64, Result<Permit, Error>, u64);

/// Spawn `n` acquirers now, in order; each returns (index, arrival, permit
/// result, release instant on the limiter's clock).
fn spawn_waiters(limiter: &Limiter, n: usize) -> Vec<JoinHandle<WaiterOutcome>> {
    (0..n)
        .map(|i| {
            let l = limiter.clone();
            tokio::spawn(async move {
                let arrived = l.clock().now();
                let r = l.acquire().await;
                (i, arrived, r, l.clock().now())
            })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn ten_seconds_at_1000_per_second_is_exactly_10_001_grants() {
    let mock = MockDriver::new();
    let exec = Arc::new(RateLimitedExecutor::new(mock.clone(), q(1000.0, 1)));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for c in 0..64 {
        let exec = exec.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while Instant::now() <= end {
                let resp = exec
                    .send(format!("http://api.test/{c}"))
                    .await
                    .expect("no error");
                assert!(resp.permit_wait().is_some());
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let calls = mock.calls();
    assert_eq!(calls.len() as u32, total);
    let in_window = calls.iter().filter(|c| c.at <= end).count();
    // Grants at 0, 1, …, 10,000 ms: 10,000 periods plus the burst of 1.
    assert_eq!(in_window, 10_001);
    // k-th release at exactly k ms: never early, never late (T is a whole
    // number of timer ticks), in FIFO order.
    for (k, c) in calls.iter().enumerate() {
        assert_eq!(c.at - t0, Duration::from_millis(k as u64), "release {k}");
    }
    let s = exec.stats();
    assert_eq!(s.executed, calls.len() as u64);
    assert_eq!(s.limiter.granted, calls.len() as u64);
    assert_eq!(s.limiter.release_lag.max, Duration::ZERO);
    // 63 queued at the start; a released caller re-queues at once.
    assert_eq!(s.limiter.peak_queue_len, 64);
}

#[tokio::test(start_paused = true)]
async fn releases_are_never_early_and_at_most_one_tick_late() {
    // 700/s: a period of 1,428,572 ns, not a whole number of timer ticks.
    let limiter = Limiter::new(q(700.0, 1));
    let t = limiter.quota().period_nanos();
    let tasks = spawn_waiters(&limiter, 2_000);
    for (k, h) in tasks.into_iter().enumerate() {
        let (i, _, r, released) = h.await.unwrap();
        let p = r.unwrap();
        assert_eq!(i, k);
        let grant = k as u64 * t;
        assert_eq!(p.granted_at(), grant, "grant {k}");
        assert!(released >= grant, "early release {k}");
        assert!(
            released - grant <= MS,
            "release {k} late by {}",
            released - grant
        );
        assert_eq!(p.release_lag(), Duration::from_nanos(released - grant));
    }
    let s = limiter.stats();
    assert!(s.release_lag.max <= Duration::from_millis(1));
    assert_eq!(s.release_lag.samples, 1_999);
    assert_eq!(s.throttled, 1_999);
    assert_eq!(s.granted, 2_000);
}

#[tokio::test(start_paused = true)]
async fn fifo_order_and_burst() {
    let limiter = Limiter::new(q(10.0, 3));
    let tasks = spawn_waiters(&limiter, 8);
    let mut last = 0;
    for (k, h) in tasks.into_iter().enumerate() {
        let (i, _, r, released) = h.await.unwrap();
        let p = r.unwrap();
        assert_eq!(i, k);
        // Three at once, then one per 100 ms.
        let expect = if k < 3 { 0 } else { (k as u64 - 2) * 100 * MS };
        assert_eq!(p.granted_at(), expect);
        assert_eq!(released, expect);
        assert!(released >= last);
        last = released;
        assert_eq!(p.was_throttled(), k >= 3);
    }
}

#[tokio::test(start_paused = true)]
async fn dropped_and_timed_out_waiters_give_their_place_back() {
    let limiter = Limiter::new(q(10.0, 1));
    let t0 = Instant::now();
    let mut tasks = spawn_waiters(&limiter, 10);
    settle().await;
    assert_eq!(limiter.queue_len(), 9);
    // Waiter 5 gives up through its own timeout at 250 ms; waiter 3 is
    // aborted at 50 ms.
    let l = limiter.clone();
    let timed =
        tokio::spawn(
            async move { tokio::time::timeout(Duration::from_millis(250), l.acquire()).await },
        );
    tokio::time::sleep(Duration::from_millis(50)).await;
    tasks.remove(3).abort();
    settle().await;
    assert_eq!(limiter.queue_len(), 9);
    assert!(timed.await.unwrap().is_err(), "the late-comer times out");
    assert_eq!(Instant::now() - t0, Duration::from_millis(250));
    let mut grants = Vec::new();
    for h in tasks {
        let (_, _, r, released) = h.await.unwrap();
        assert_eq!(r.unwrap().granted_at(), released);
        grants.push(released / MS);
    }
    // Nine waiters left of ten: they move up into the freed place.
    assert_eq!(grants, vec![0, 100, 200, 300, 400, 500, 600, 700, 800]);
    let s = limiter.stats();
    assert_eq!(s.cancelled, 2);
    assert_eq!(s.requests, s.granted + s.cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_head_hands_its_instant_to_the_next() {
    let limiter = Limiter::new(q(1.0, 1));
    limiter.acquire().await.unwrap(); // t = 0; next due at 1 s
    let head = tokio::spawn({
        let l = limiter.clone();
        async move { l.acquire().await }
    });
    let second = spawn_waiters(&limiter, 1).pop().unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    head.abort();
    let (_, _, r, released) = second.await.unwrap();
    assert_eq!(r.unwrap().granted_at(), 1_000 * MS);
    assert_eq!(released, 1_000 * MS);
}

#[tokio::test(start_paused = true)]
async fn queue_full_is_rejected_at_once_with_retry_after() {
    let limiter = Limiter::builder(q(10.0, 1)).max_queue(2).build();
    let tasks = spawn_waiters(&limiter, 3); // one at once, two queued
    settle().await;
    assert_eq!(limiter.queue_len(), 2);
    let t0 = Instant::now();
    let err = limiter.acquire().await.unwrap_err();
    assert_eq!(Instant::now(), t0, "rejected without waiting");
    match err {
        Error::RateLimited {
            reason: RateLimitReason::QueueFull,
            retry_after,
        } => assert_eq!(retry_after, Some(Duration::from_millis(100))),
        other => panic!("{other:?}"),
    }
    // try_acquire never waits; it says when this caller would be served
    // (behind the two queued).
    match limiter.try_acquire().unwrap_err() {
        Error::RateLimited {
            reason: RateLimitReason::WouldWait,
            retry_after,
        } => assert_eq!(retry_after, Some(Duration::from_millis(300))),
        other => panic!("{other:?}"),
    }
    // acquire_within: refused at once when the schedule cannot make it…
    let err = limiter
        .acquire_within(Duration::from_millis(299))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::RateLimited {
            reason: RateLimitReason::WouldWait,
            ..
        }
    ));
    for h in tasks {
        h.await.unwrap().2.unwrap();
    }
    // …and served when it can.
    let p = limiter
        .acquire_within(Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(p.granted_at(), 300 * MS);
    let s = limiter.stats();
    assert_eq!(s.rejected_queue_full, 1);
    assert_eq!(s.rejected_would_wait, 2);
    assert_eq!(s.rejected(), 3);
    assert_eq!(s.peak_queue_len, 2);
    assert_eq!(s.max_queue, Some(2));
    assert_eq!(
        s.requests,
        s.granted + s.rejected() + s.cancelled + s.stopped + s.queue_len as u64
    );
}

#[tokio::test(start_paused = true)]
async fn zero_queue_never_waits() {
    let limiter = Limiter::builder(q(10.0, 2)).max_queue(0).build();
    limiter.acquire().await.unwrap();
    limiter.acquire().await.unwrap();
    let err = limiter.acquire().await.unwrap_err();
    assert!(matches!(
        err,
        Error::RateLimited {
            reason: RateLimitReason::QueueFull,
            retry_after: Some(d)
        } if d == Duration::from_millis(100)
    ));
}

#[tokio::test(start_paused = true)]
async fn set_quota_with_1000_waiters_reschedules_everyone() {
    let limiter = Limiter::new(q(100.0, 1));
    let tasks = spawn_waiters(&limiter, 1_000);
    // Grants at 0, 10, 20, … ms. Speed up at 1,005 ms (101 granted so far).
    tokio::time::sleep(Duration::from_micros(1_005_000)).await;
    let change = limiter.clock().now();
    assert_eq!(change, 1_005 * MS);
    assert_eq!(limiter.stats().granted, 101);
    limiter.set_quota(q(1000.0, 1));
    let mut grants = Vec::new();
    for (k, h) in tasks.into_iter().enumerate() {
        let (i, _, r, released) = h.await.unwrap();
        assert_eq!(i, k);
        let p = r.expect("nobody stranded");
        assert!(released >= p.granted_at());
        grants.push(p.granted_at());
    }
    for (k, g) in grants.iter().enumerate().take(101) {
        assert_eq!(*g, k as u64 * 10 * MS);
    }
    // The last old-rate permit (at 1,000 ms) had 5 ms of its 10 ms period
    // left: half a period of the new rate. From then on, exactly 1 ms apart:
    // no fresh burst, nobody skipped.
    for (j, g) in grants[101..].iter().enumerate() {
        assert_eq!(*g, change + MS / 2 + j as u64 * MS, "grant {}", 101 + j);
    }
}

#[tokio::test(start_paused = true)]
async fn slowing_down_applies_to_queued_waiters_too() {
    let limiter = Limiter::new(q(1000.0, 1));
    let tasks = spawn_waiters(&limiter, 20);
    // (Sleep to 4 ms, then step half a tick: tokio timers fire on whole
    // milliseconds.)
    tokio::time::sleep(Duration::from_millis(4)).await;
    settle().await;
    tokio::time::advance(Duration::from_micros(500)).await; // 5 granted
    assert_eq!(limiter.stats().granted, 5);
    limiter.set_quota(q(10.0, 1));
    let mut grants = Vec::new();
    for h in tasks {
        grants.push(h.await.unwrap().2.unwrap().granted_at());
    }
    assert_eq!(&grants[..5], &[0, MS, 2 * MS, 3 * MS, 4 * MS]);
    // The permit at 4 ms had 0.5 ms left = half of the new 100 ms period.
    for (j, g) in grants[5..].iter().enumerate() {
        assert_eq!(*g, 4_500_000 + 50 * MS + j as u64 * 100 * MS);
    }
}

#[tokio::test(start_paused = true)]
async fn reapplying_the_quota_never_refills_the_bucket() {
    // Go's UpdateRate handed out a full new bucket on every call.
    let limiter = Limiter::new(q(10.0, 5));
    for _ in 0..5 {
        limiter.try_acquire().unwrap();
    }
    for _ in 0..100 {
        limiter.set_quota(q(10.0, 5));
        assert!(limiter.try_acquire().is_err());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    limiter.set_quota(q(10.0, 5));
    limiter.try_acquire().unwrap();
    assert!(limiter.try_acquire().is_err());
    assert_eq!(limiter.stats().granted, 6);
}

#[tokio::test(start_paused = true)]
async fn stop_wakes_1000_waiters_and_lets_in_flight_requests_finish() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(5)));
    let exec = Arc::new(RateLimitedExecutor::new(mock.clone(), q(1.0, 1)));
    let t0 = Instant::now();
    let in_flight = tokio::spawn({
        let e = exec.clone();
        async move { e.send("http://api.test/first").await }
    });
    let waiters: Vec<_> = (0..1_000)
        .map(|i| {
            let e = exec.clone();
            tokio::spawn(async move { e.send(format!("http://api.test/{i}")).await })
        })
        .collect();
    settle().await;
    assert_eq!(exec.stats().limiter.queue_len, 1_000);
    assert_eq!(exec.stats().in_flight, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    exec.stop();
    for w in waiters {
        let err = w.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Stopped {
                    layer: "RateLimitedExecutor"
                }
            ),
            "{err:?}"
        );
        assert!(!err.may_have_been_sent());
    }
    assert_eq!(
        Instant::now() - t0,
        Duration::from_millis(500),
        "woken at once"
    );
    // New calls fail at once.
    let err = exec.send("http://api.test/late").await.unwrap_err();
    assert!(matches!(err, Error::Stopped { .. }));
    // The request already sent finishes normally.
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    assert_eq!(mock.call_count(), 1);
    let s = exec.stats();
    assert_eq!(s.limiter.stopped, 1_001);
    assert_eq!(s.limiter.queue_len, 0);
    assert_eq!(s.executed, 1);
    assert_eq!(s.in_flight, 0);
    assert!(exec.limiter().is_stopped());
}

#[tokio::test(start_paused = true)]
async fn permit_wait_is_recorded_on_every_response() {
    let exec = RateLimitedExecutor::new(MockDriver::new(), q(4.0, 1));
    for k in 0..4u64 {
        // Sequential calls: each waits one full period except the first.
        let r = exec.send("http://api.test/").await.unwrap();
        let pw = r.permit_wait().copied().unwrap();
        let expect = if k == 0 { 0 } else { 250 };
        assert_eq!(pw.wait, Duration::from_millis(expect));
        assert_eq!(pw.total, pw.wait);
    }
    // Chained limiters add up in `total`.
    let outer = RateLimitedExecutor::new(
        RateLimitedExecutor::new(MockDriver::new(), q(2.0, 1)),
        q(4.0, 1),
    );
    outer.send("http://api.test/").await.unwrap();
    let r = outer.send("http://api.test/").await.unwrap();
    let pw = r.permit_wait().copied().unwrap();
    assert_eq!(pw.wait, Duration::from_millis(250)); // outer (4/s)
    assert_eq!(pw.total, Duration::from_millis(500)); // + 250 ms more inside (2/s)
}

#[tokio::test(start_paused = true)]
async fn try_execute_never_waits_and_sends_nothing_when_refused() {
    let mock = MockDriver::new();
    let exec = RateLimitedExecutor::new(mock.clone(), q(10.0, 1));
    exec.try_execute(Request::get("http://api.test/").build().unwrap())
        .await
        .unwrap();
    let err = exec
        .try_execute(Request::get("http://api.test/").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::RateLimited { reason: RateLimitReason::WouldWait, retry_after: Some(d) }
            if d == Duration::from_millis(100)
    ));
    assert!(err.is_retryable() && !err.may_have_been_sent());
    assert_eq!(mock.call_count(), 1);
    // Driver errors pass through untouched, after the permit was spent.
    let failing = RateLimitedExecutor::new(
        MockDriver::new().default_behavior(Behavior::refused()),
        q(10.0, 1),
    );
    assert!(
        failing
            .send("http://api.test/")
            .await
            .unwrap_err()
            .is_connect()
    );
    assert_eq!(failing.stats().executed, 1);
}

#[tokio::test(start_paused = true)]
async fn scheduled_spacing_keeps_the_rate_after_a_late_wake_up() {
    let limiter = Limiter::new(q(1000.0, 1));
    let tasks = spawn_waiters(&limiter, 10);
    settle().await;
    // The runtime "stalls" for 5.5 ms: waiters due at 1..5 ms run late.
    tokio::time::advance(Duration::from_micros(5_500)).await;
    let mut out = Vec::new();
    for h in tasks {
        let (_, _, r, released) = h.await.unwrap();
        out.push((r.unwrap().granted_at(), released));
    }
    for (k, (grant, released)) in out.iter().enumerate() {
        // Grants stay on the schedule; the late ones go together at 5.5 ms
        // and the rest within a timer tick of theirs: no rate lost.
        assert_eq!(*grant, k as u64 * MS);
        if (1..=5).contains(&k) {
            assert_eq!(*released, 5_500_000, "release {k}");
        } else {
            assert!(
                *released >= *grant && *released - *grant <= MS,
                "release {k}"
            );
        }
    }
    assert!(out[9].1 <= 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn strict_spacing_never_releases_closer_than_the_period() {
    let limiter = Limiter::builder(q(1000.0, 1))
        .spacing(Spacing::Strict)
        .build();
    let tasks = spawn_waiters(&limiter, 10);
    settle().await;
    tokio::time::advance(Duration::from_micros(5_500)).await;
    let mut releases = Vec::new();
    for h in tasks {
        let (_, _, r, released) = h.await.unwrap();
        assert!(released >= r.unwrap().granted_at());
        releases.push(released);
    }
    assert_eq!(releases[0], 0);
    assert_eq!(releases[1], 5_500_000, "late, once");
    for w in releases.windows(2) {
        assert!(w[1] - w[0] >= MS, "{releases:?}");
    }
    // After the stall the schedule restarts from each actual release, so
    // every late wake-up (here the stall, then tokio's tick rounding) is
    // lost from the rate, by design: the scheduled limiter was done by 10 ms.
    assert!(releases[9] >= 5_500_000 + 8 * MS);
}

#[tokio::test(start_paused = true)]
async fn strict_spacing_still_allows_the_burst() {
    let limiter = Limiter::builder(q(10.0, 3))
        .spacing(Spacing::Strict)
        .build();
    let tasks = spawn_waiters(&limiter, 5);
    let mut releases = Vec::new();
    for h in tasks {
        releases.push(h.await.unwrap().3 / MS);
    }
    assert_eq!(releases, vec![0, 0, 0, 100, 200]);
}

#[tokio::test(start_paused = true)]
async fn fractional_rates_are_exact() {
    let limiter = Limiter::new(Quota::per_second(0.2).unwrap());
    let t0 = Instant::now();
    for _ in 0..4 {
        limiter.acquire().await.unwrap();
    }
    assert_eq!(Instant::now() - t0, Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn keyed_limits_are_independent_with_overrides() {
    let mock = MockDriver::new();
    let exec = KeyedRateLimitedExecutor::builder(mock.clone(), q(10.0, 1))
        .quota_for("http://b.test".parse().unwrap(), q(2.0, 1))
        .build();
    let t0 = Instant::now();
    let calls = futures::future::join_all(
        [
            "http://a.test/1",
            "http://b.test/1",
            "http://a.test/2",
            "http://b.test/2",
        ]
        .into_iter()
        .map(|u| exec.send(u)),
    )
    .await;
    assert!(calls.iter().all(Result::is_ok));
    let at: Vec<_> = mock
        .calls()
        .iter()
        .map(|c| (c.uri.to_string(), (c.at - t0).as_millis()))
        .collect();
    assert!(at.contains(&("http://a.test/2".to_string(), 100)), "{at:?}");
    assert!(at.contains(&("http://b.test/2".to_string(), 500)), "{at:?}");
    let a = exec.key_stats(&"http://a.test".parse().unwrap()).unwrap();
    assert_eq!((a.granted, a.throttled), (2, 1));
    assert_eq!(a.quota, q(10.0, 1));
    assert_eq!(a.release_lag.p50, None, "per-key stats stay small");
    let s = exec.stats();
    assert_eq!((s.keys, s.granted, s.throttled, s.executed), (2, 4, 2, 4));
}

#[tokio::test(start_paused = true)]
async fn keyed_cap_refuses_then_evicts_idle_keys() {
    let exec = KeyedRateLimitedExecutor::builder(MockDriver::new(), q(10.0, 1))
        .max_keys(2)
        .unwrap()
        .build();
    exec.send("http://a.test/").await.unwrap();
    exec.send("http://b.test/").await.unwrap();
    // Both keys used their bucket just now: neither is idle for 100 ms.
    let err = exec.send("http://c.test/").await.unwrap_err();
    match err {
        Error::RateLimited {
            reason: RateLimitReason::TooManyKeys,
            retry_after,
        } => assert_eq!(retry_after, Some(Duration::from_millis(100))),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    exec.send("http://c.test/").await.unwrap();
    let s = exec.stats();
    assert_eq!(s.rejected_too_many_keys, 1);
    assert!(s.evicted_keys >= 1);
    assert!(s.keys <= 2);
    // Totals survive eviction.
    assert_eq!(s.granted, 3);
    assert_eq!(s.executed, 3);
    // An evicted key starts fresh, which is what it would have been anyway.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(exec.evict_idle(), s.keys);
    let t = Instant::now();
    exec.send("http://a.test/").await.unwrap();
    assert_eq!(Instant::now(), t);
}

#[tokio::test(start_paused = true)]
async fn keyed_never_evicts_a_key_with_waiters() {
    let exec = Arc::new(
        KeyedRateLimitedExecutor::builder(MockDriver::new(), q(1.0, 1))
            .max_keys(1)
            .unwrap()
            .build(),
    );
    exec.send("http://a.test/").await.unwrap();
    let waiter = tokio::spawn({
        let e = exec.clone();
        async move { e.send("http://a.test/again").await }
    });
    settle().await;
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert!(exec.send("http://b.test/").await.is_err());
    assert_eq!(exec.evict_idle(), 0);
    waiter.await.unwrap().unwrap();
    assert_eq!(exec.stats().queue_len, 0);
}

#[tokio::test(start_paused = true)]
async fn keyed_custom_key_and_runtime_quota_changes() {
    let exec =
        KeyedRateLimitedExecutor::builder_with_key(MockDriver::new(), q(10.0, 1), |r: &Request| {
            r.headers()
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("anonymous")
                .to_string()
        })
        .build();
    let req = |tenant: &str| {
        Request::get("http://api.test/")
            .header("x-tenant", tenant)
            .build()
            .unwrap()
    };
    exec.execute(req("t1")).await.unwrap();
    exec.set_quota_for("t1".into(), q(1.0, 1));
    let t = Instant::now();
    exec.execute(req("t1")).await.unwrap();
    // The 10/s permit at 0 weighs a full period of the new 1/s quota.
    assert_eq!(Instant::now() - t, Duration::from_secs(1));
    assert_eq!(exec.quota_for(&"t1".into()), q(1.0, 1));
    assert_eq!(exec.quota_for(&"t2".into()), q(10.0, 1));
    exec.set_default_quota(q(20.0, 1));
    assert_eq!(exec.quota_for(&"t2".into()), q(20.0, 1));
    exec.stop();
    assert!(matches!(
        exec.execute(req("t3")).await.unwrap_err(),
        Error::Stopped {
            layer: "KeyedRateLimitedExecutor"
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn fine_precision_works_under_the_paused_clock() {
    let limiter = Limiter::builder(q(700.0, 1))
        .precision(httpclient_ratelimit::Precision::Fine)
        .build();
    let t = limiter.quota().period_nanos();
    for (k, h) in spawn_waiters(&limiter, 50).into_iter().enumerate() {
        let (_, _, r, released) = h.await.unwrap();
        let g = r.unwrap().granted_at();
        assert_eq!(g, k as u64 * t);
        assert!(released >= g && released - g <= MS);
    }
}

#[tokio::test(start_paused = true)]
async fn driver_trait_object_and_connections_are_forwarded() {
    let mock = MockDriver::new().with_connections_opened(Some(7));
    let exec: Arc<dyn Driver> = Arc::new(RateLimitedExecutor::new(mock, q(5.0, 1)));
    assert_eq!(exec.connections_opened(), Some(7));
    let keyed = KeyedRateLimitedExecutor::new(
        MockDriver::new().with_connections_opened(Some(3)),
        q(5.0, 1),
    );
    assert_eq!(keyed.connections_opened(), Some(3));
}

#[tokio::test(start_paused = true)]
async fn stats_reset_and_accounting_identity() {
    let limiter = Limiter::builder(q(100.0, 1)).max_queue(5).build();
    let mut ok = 0;
    let tasks = spawn_waiters(&limiter, 10); // 1 granted, 5 queued, 4 rejected
    settle().await;
    let s = limiter.stats();
    assert_eq!(
        (s.requests, s.granted, s.queue_len, s.rejected_queue_full),
        (10, 1, 5, 4)
    );
    assert_eq!(
        s.requests,
        s.granted + s.rejected() + s.cancelled + s.stopped + s.queue_len as u64
    );
    for h in tasks {
        ok += usize::from(h.await.unwrap().2.is_ok());
    }
    let s = limiter.stats();
    assert_eq!(s.granted, 6);
    assert_eq!(s.throttled, 5);
    assert!((s.throttle_rate() - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(s.max_wait, Duration::from_millis(50));
    assert_eq!(s.total_wait, Duration::from_millis(10 + 20 + 30 + 40 + 50));
    assert_eq!(s.mean_wait(), Duration::from_millis(150) / 6);
    assert_eq!(ok, 6);
    limiter.reset_stats();
    let s = limiter.stats();
    assert_eq!((s.requests, s.granted, s.peak_queue_len), (0, 0, 0));
    assert_eq!(s.throttle_rate(), 0.0);
    assert_eq!(s.quota, q(100.0, 1));
}

#[tokio::test(start_paused = true)]
async fn keyed_try_and_bounded_waits_follow_each_keys_schedule() {
    let mock = MockDriver::new();
    let exec = KeyedRateLimitedExecutor::new(mock.clone(), q(10.0, 1));
    let get = |u: &str| Request::get(u).build().unwrap();
    exec.try_execute(get("http://a.test/")).await.unwrap();
    // Another key is untouched by a's schedule.
    exec.try_execute(get("http://b.test/")).await.unwrap();
    let err = exec.try_execute(get("http://a.test/")).await.unwrap_err();
    assert!(matches!(
        err,
        Error::RateLimited { reason: RateLimitReason::WouldWait, retry_after: Some(d) }
            if d == Duration::from_millis(100)
    ));
    // Zero means "do not wait", as on the plain limiter.
    assert!(
        exec.execute_within(get("http://a.test/"), Duration::ZERO)
            .await
            .is_err()
    );
    assert!(
        exec.execute_within(get("http://a.test/"), Duration::from_millis(99))
            .await
            .is_err()
    );
    let t = Instant::now();
    exec.execute_within(get("http://a.test/"), Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(Instant::now() - t, Duration::from_millis(100));
    assert_eq!(mock.call_count(), 3);
    let s = exec.stats();
    assert_eq!((s.rejected_would_wait, s.granted, s.executed), (3, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn twenty_thousand_per_second_is_exact_too() {
    // 50 µs periods: twenty grants per timer tick, released together at
    // the tick, each on its own exact instant of the schedule.
    let limiter = Limiter::new(q(20_000.0, 1));
    let end = limiter.clock().now() + 1_000 * MS;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let l = limiter.clone();
            tokio::spawn(async move {
                let mut grants = Vec::new();
                while l.clock().now() <= end {
                    let p = l.acquire().await.unwrap();
                    let released = l.clock().now();
                    assert!(released >= p.granted_at() && released - p.granted_at() <= MS);
                    grants.push(p.granted_at());
                }
                grants
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    for (k, g) in all.iter().enumerate() {
        assert_eq!(*g, k as u64 * 50_000, "grant {k}");
    }
    assert_eq!(all.iter().filter(|g| **g <= end).count(), 20_001);
}

#[test]
fn fine_precision_cannot_livelock_a_paused_clock() {
    // Real time overtakes the simulated grant instants, so the helper's
    // real deadlines are already past when the waiters arm them: its early
    // wake-ups must not release anyone before the simulated instant, nor
    // keep the paused runtime from going idle and advancing its clock. A
    // real-time watchdog bounds the test.
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let limiter = Limiter::builder(q(10.0, 1))
                .precision(httpclient_ratelimit::Precision::Fine)
                .build();
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            for _ in 0..3 {
                limiter.acquire().await.unwrap();
            }
            assert_eq!(Instant::now() - t0, Duration::from_millis(200));
        });
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the paused clock kept advancing");
    worker.join().unwrap();
}
