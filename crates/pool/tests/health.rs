//! Health checks and outlier detection under tokio's paused clock with the
//! mock driver: state flips at exact probe rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use httpclient_core::http::Method;
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{DriverExt, Error, Origin};
use httpclient_pool::{
    ConnectionPool, DownCause, HealthCheck, HostState, Jitter, OutlierDetection, RetryBudget,
    RetryPolicy,
};
use tokio::time::{Instant, sleep};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A mock whose answer flips with `up`: 200 when up, connection refused
/// when down.
fn flappy(up: &Arc<AtomicBool>) -> MockDriver {
    let up = Arc::clone(up);
    MockDriver::new().handler(move |_, _| {
        if up.load(Ordering::SeqCst) {
            Behavior::ok()
        } else {
            Behavior::refused()
        }
    })
}

fn probes(mock: &MockDriver, since: Instant) -> usize {
    mock.calls()
        .iter()
        .filter(|c| c.method == Method::HEAD && c.at >= since)
        .count()
}

fn state(pool: &ConnectionPool<MockDriver>, url: &str) -> HostState {
    pool.host_health(&Origin::parse(url).unwrap())
        .expect("tracked host")
        .state
}

#[tokio::test(start_paused = true)]
async fn probes_mark_a_host_down_then_up_at_the_thresholds() {
    let up = Arc::new(AtomicBool::new(false));
    let mock = flappy(&up);
    let pool = ConnectionPool::new(mock.clone());
    let check = HealthCheck::builder(["http://db:8080"], Duration::from_secs(1))
        .jitter(0.0)
        .thresholds(3, 2)
        .build()
        .unwrap();
    let t0 = Instant::now();
    pool.enable_health_check_with(check).unwrap();

    // Probes at t = 0, 1, 2: the third failure marks it down.
    sleep(secs(1.5)).await;
    let h = pool
        .host_health(&Origin::parse("http://db:8080").unwrap())
        .unwrap();
    assert_eq!((h.state, h.probe_failures), (HostState::Up, 2));
    assert!(
        h.last_error
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    sleep(secs(1.0)).await;
    assert_eq!(
        state(&pool, "http://db:8080"),
        HostState::Down(DownCause::Probes)
    );
    assert_eq!(
        probes(&mock, t0),
        3,
        "first probe at once, then one per interval"
    );

    // While down: fail fast, nothing sent.
    let before = mock.call_count();
    let t = Instant::now();
    let err = pool.send("http://db:8080/query").await.unwrap_err();
    assert!(
        matches!(&err, Error::UnhealthyHost { origin } if origin.to_string() == "http://db:8080"),
        "{err:?}"
    );
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(mock.call_count(), before);
    assert!(!err.may_have_been_sent());

    // Back up: probes at t = 3 and 4 succeed; up after the second.
    up.store(true, Ordering::SeqCst);
    sleep(secs(1.0)).await; // t = 3.5
    assert_eq!(
        state(&pool, "http://db:8080"),
        HostState::Down(DownCause::Probes)
    );
    sleep(secs(1.0)).await; // t = 4.5
    assert_eq!(state(&pool, "http://db:8080"), HostState::Up);
    assert_eq!(
        pool.send("http://db:8080/query").await.unwrap().status(),
        200
    );

    let st = pool.stats();
    assert_eq!(st.probes, 5);
    assert_eq!(st.probe_failures, 3);
    assert_eq!(st.unhealthy_rejected, 1);
    assert_eq!((st.requests, st.attempts), (2, 1), "probes are not traffic");
    assert_eq!(st.health_check, Some((1, Duration::from_secs(1))));
    let h = &st.hosts[0];
    assert!(h.health_checked);
    assert!(matches!(h.last_check, Some((_, true))));
}

#[tokio::test(start_paused = true)]
async fn exactly_one_checker_after_repeated_enable_and_disable() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(mock.clone());
    let cfg = || {
        HealthCheck::builder(["http://a", "http://b"], Duration::from_secs(1))
            .jitter(0.0)
            .build()
            .unwrap()
    };
    for _ in 0..5 {
        pool.enable_health_check_with(cfg()).unwrap();
        sleep(secs(0.25)).await;
        pool.disable_health_check();
        sleep(secs(0.25)).await;
        pool.enable_health_check_with(cfg()).unwrap();
        pool.enable_health_check_with(cfg()).unwrap();
        sleep(secs(0.1)).await;
    }
    assert!(pool.health_checker_running());
    let t0 = Instant::now();
    pool.enable_health_check_with(cfg()).unwrap();
    sleep(secs(10.5)).await;
    // One loop: 2 hosts × rounds at t0, t0+1, …, t0+10 = 22. Two loops
    // would give 44.
    assert_eq!(probes(&mock, t0), 22);

    // Disabled: the task idles, no probes.
    pool.disable_health_check();
    let t1 = Instant::now();
    sleep(secs(10.0)).await;
    assert_eq!(probes(&mock, t1), 0);
    assert!(
        pool.health_checker_running(),
        "idle, not a new task per enable"
    );
    assert_eq!(pool.stats().health_check, None);

    // stop() ends it.
    pool.enable_health_check_with(cfg()).unwrap();
    pool.stop();
    sleep(secs(0.01)).await;
    assert!(!pool.health_checker_running());
    let t2 = Instant::now();
    sleep(secs(5.0)).await;
    assert_eq!(probes(&mock, t2), 0);
    assert!(matches!(
        pool.enable_health_check_with(cfg()),
        Err(Error::Stopped { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_builder_token_ends_the_checker_and_its_stats_say_so() {
    let mock = MockDriver::new();
    let token = tokio_util::sync::CancellationToken::new();
    let pool = ConnectionPool::builder(mock.clone())
        .cancellation_token(token.clone())
        .build()
        .unwrap();
    pool.enable_health_check(["http://a"], Duration::from_secs(1))
        .unwrap();
    sleep(secs(1.5)).await;
    assert!(pool.stats().health_check.is_some());
    token.cancel();
    sleep(secs(0.01)).await;
    assert!(!pool.health_checker_running());
    let seen = mock.call_count();
    sleep(secs(5.0)).await;
    assert_eq!(mock.call_count(), seen, "no probe after the token");
    let st = pool.stats();
    assert!(st.stopped);
    assert_eq!(st.health_check, None, "no checker runs: the stats say none");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_pool_ends_its_checker() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(mock.clone());
    pool.enable_health_check(["http://a"], Duration::from_secs(1))
        .unwrap();
    sleep(secs(2.5)).await;
    let seen = mock.call_count();
    assert!(seen >= 3);
    drop(pool);
    sleep(secs(10.0)).await;
    assert_eq!(mock.call_count(), seen, "no task outlives the pool");
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_probe_rounds_within_bounds() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::builder(mock.clone())
        .seed(9)
        .build()
        .unwrap();
    let check = HealthCheck::builder(["http://a"], Duration::from_secs(10))
        .jitter(0.2)
        .build()
        .unwrap();
    pool.enable_health_check_with(check).unwrap();
    sleep(Duration::from_secs(200)).await;
    let calls = mock.calls();
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.len() >= 15);
    assert!(
        gaps.iter().all(|g| *g >= secs(8.0) && *g <= secs(12.0)),
        "{gaps:?}"
    );
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "jittered");
}

#[tokio::test(start_paused = true)]
async fn probe_status_predicate_decides_health() {
    let mock = MockDriver::new()
        .route("http://five/", Behavior::status(503))
        .route("http://four/", Behavior::status(404));
    let pool = ConnectionPool::new(mock.clone());
    let check = HealthCheck::builder(["http://five", "http://four"], Duration::from_secs(1))
        .thresholds(1, 1)
        .jitter(0.0)
        .build()
        .unwrap();
    pool.enable_health_check_with(check).unwrap();
    sleep(secs(0.5)).await;
    assert_eq!(
        state(&pool, "http://five"),
        HostState::Down(DownCause::Probes)
    );
    assert_eq!(
        state(&pool, "http://four"),
        HostState::Up,
        "404 < 500: the host answers"
    );
    // A stricter predicate, a probe path and a GET: reconfigures the same checker.
    let check = HealthCheck::builder(["http://four"], Duration::from_secs(1))
        .thresholds(1, 1)
        .jitter(0.0)
        .method(Method::GET)
        .path("/healthz")
        .healthy_when(|r| r.status().is_success())
        .build()
        .unwrap();
    pool.enable_health_check_with(check).unwrap();
    sleep(secs(0.5)).await;
    assert_eq!(
        state(&pool, "http://four"),
        HostState::Down(DownCause::Probes)
    );
    let last = mock.calls().last().cloned().unwrap();
    assert_eq!((last.method, last.uri.path()), (Method::GET, "/healthz"));
    // `five` left the probe set: probes alone had marked it down, so it is
    // up again rather than down forever.
    assert_eq!(state(&pool, "http://five"), HostState::Up);
    // Disabling does the same for `four`.
    pool.disable_health_check();
    assert_eq!(state(&pool, "http://four"), HostState::Up);
}

#[tokio::test(start_paused = true)]
async fn outlier_detection_ejects_then_recovers_through_a_half_open_trial() {
    let up = Arc::new(AtomicBool::new(false));
    let mock = flappy(&up);
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::never())
        .outlier_detection(OutlierDetection::new(3, Duration::from_secs(10)).unwrap())
        .build()
        .unwrap();
    let url = "http://svc/x";
    for _ in 0..3 {
        assert!(pool.send(url).await.unwrap_err().is_connect());
    }
    assert_eq!(state(&pool, url), HostState::Down(DownCause::Traffic));
    assert!(matches!(
        pool.send(url).await,
        Err(Error::UnhealthyHost { .. })
    ));
    assert_eq!(mock.call_count(), 3);

    // Cool-down over: one trial; it fails → down again for 2 × 10 s.
    sleep(Duration::from_secs(10)).await;
    assert!(pool.send(url).await.unwrap_err().is_connect());
    assert_eq!(mock.call_count(), 4);
    assert_eq!(state(&pool, url), HostState::Down(DownCause::Traffic));
    sleep(secs(19.9)).await;
    assert!(matches!(
        pool.send(url).await,
        Err(Error::UnhealthyHost { .. })
    ));
    sleep(secs(0.1)).await;
    // Cool-down over: the next request would go through as a trial, and the
    // snapshot says so (it said `Down` until that request arrived).
    assert_eq!(state(&pool, url), HostState::HalfOpen);

    // The next trial succeeds → up; traffic flows again.
    up.store(true, Ordering::SeqCst);
    assert_eq!(pool.send(url).await.unwrap().status(), 200);
    assert_eq!(state(&pool, url), HostState::Up);
    assert_eq!(pool.send(url).await.unwrap().status(), 200);
    let h = pool.host_health(&Origin::parse(url).unwrap()).unwrap();
    assert_eq!((h.consecutive_failures, h.ejections), (0, 0));
    assert_eq!(pool.stats().unhealthy_rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn only_one_trial_at_a_time_and_a_cancelled_trial_hands_over() {
    let up = Arc::new(AtomicBool::new(false));
    let up2 = Arc::clone(&up);
    let mock = MockDriver::new().handler(move |_, _| {
        if up2.load(Ordering::SeqCst) {
            Behavior::ok().after(Duration::from_secs(1))
        } else {
            Behavior::refused()
        }
    });
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::never())
        .outlier_detection(OutlierDetection::new(1, Duration::from_secs(5)).unwrap())
        .build()
        .unwrap();
    let url = "http://svc/x";
    assert!(pool.send(url).await.is_err());
    assert_eq!(state(&pool, url), HostState::Down(DownCause::Traffic));
    sleep(Duration::from_secs(5)).await;
    up.store(true, Ordering::SeqCst);

    // The trial is slow (1 s); a second request meanwhile fails fast.
    let trial = pool.send(url);
    let other = async {
        sleep(secs(0.5)).await;
        assert_eq!(state(&pool, url), HostState::HalfOpen);
        pool.send(url).await
    };
    // Cancel the trial after 0.7 s.
    let (trial_result, other_result) = tokio::join!(tokio::time::timeout(secs(0.7), trial), other);
    assert!(trial_result.is_err(), "trial cancelled");
    assert!(matches!(other_result, Err(Error::UnhealthyHost { .. })));

    // The cancelled trial handed the turn over: the next request is the trial.
    assert_eq!(state(&pool, url), HostState::HalfOpen);
    assert_eq!(pool.send(url).await.unwrap().status(), 200);
    assert_eq!(state(&pool, url), HostState::Up);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_host_is_ejected_mid_request() {
    let mock = MockDriver::new().default_behavior(Behavior::reset());
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::builder().max_retries(5).build().unwrap())
        .outlier_detection(OutlierDetection::new(2, Duration::from_secs(30)).unwrap())
        .build()
        .unwrap();
    let err = pool.send("http://svc/x").await.unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 2, last } if matches!(**last, Error::ResetBeforeResponse { .. })),
        "the last real error, not a made-up one: {err:?}"
    );
    assert_eq!(mock.call_count(), 2);
    let st = pool.stats();
    assert_eq!(st.unhealthy_rejected, 1);
    // No phantom retry: the second failure ejected the host, so the pool
    // gave up at once instead of sleeping and counting a retry it never sent.
    assert_eq!((st.attempts, st.retries), (2, 1), "{st:?}");
    assert_eq!(st.attempts, st.requests + st.retries);
}

#[tokio::test(start_paused = true)]
async fn a_retry_turned_away_after_its_backoff_is_not_counted_and_its_budget_comes_back() {
    // Two failures eject `svc`. Request A fails first and sleeps 100 ms;
    // meanwhile request B fails, which ejects the host (B fails fast). A
    // wakes to a closed gate: its retry is never sent — not counted as a
    // retry, and its budget grant comes back, so request C to another host
    // may still retry (the budget allows one retry in its window).
    let mock = MockDriver::new().handler(|req, n| match (req.uri().host(), n) {
        (Some("other"), 2) => Behavior::status(503),
        (Some("other"), _) => Behavior::ok(),
        _ => Behavior::status(503),
    });
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(
            RetryPolicy::builder()
                .max_retries(3)
                .base_delay(Duration::from_millis(100))
                .max_delay(Duration::from_millis(100))
                .jitter(Jitter::Off)
                .build()
                .unwrap(),
        )
        .retry_budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap())
        .outlier_detection(OutlierDetection::new(2, Duration::from_secs(60)).unwrap())
        .build()
        .unwrap();
    let a = pool.send("http://svc/a");
    let b = async {
        sleep(Duration::from_millis(50)).await;
        pool.send("http://svc/b").await
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.unwrap().status(), 503, "A: its own answer");
    assert_eq!(b.unwrap().status(), 503, "B: its own answer");
    let st = pool.stats();
    assert_eq!(
        (st.attempts, st.retries, st.unhealthy_rejected),
        (2, 0, 2),
        "{st:?}"
    );
    let c = pool.send("http://other/c").await.unwrap();
    assert_eq!(c.status(), 200, "C retried with the refunded budget");
    let st = pool.stats();
    assert_eq!((st.retries, st.budget_exhausted), (1, 0), "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_probed_host_fails_fast_only_while_the_probes_cannot_lift_it_in_time() {
    // Probes every 10 s (no jitter), 2 successes to come back up. Real
    // traffic ejects the host (outlier detection): from then on it needs
    // two rounds, so a 10 s backoff is surely in vain, but a 30 s
    // Retry-After is worth the wait.
    let slow_served = Arc::new(AtomicBool::new(false));
    let served = Arc::clone(&slow_served);
    let mock = MockDriver::new().handler(move |req, _| {
        if req.method() == Method::HEAD {
            Behavior::ok()
        } else if req.uri().path() == "/slow-retry" {
            if served.swap(true, Ordering::SeqCst) {
                Behavior::ok()
            } else {
                Behavior::status(503).header("retry-after", "30")
            }
        } else {
            Behavior::status(503)
        }
    });
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(ten_second_backoff())
        .retry_budget(RetryBudget::unlimited())
        .outlier_detection(OutlierDetection::new(1, Duration::from_secs(5)).unwrap())
        .build()
        .unwrap();
    pool.enable_health_check_with(
        HealthCheck::builder(["http://svc"], Duration::from_secs(10))
            .jitter(0.0)
            .thresholds(3, 2)
            .build()
            .unwrap(),
    )
    .unwrap();
    sleep(Duration::from_millis(100)).await; // the first round ran
    let t0 = Instant::now();
    let resp = pool.send("http://svc/x").await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(t0.elapsed(), Duration::ZERO, "no 10 s sleep in vain");
    assert_eq!(pool.stats().unhealthy_rejected, 1);
    // Down now; wait for the probes to bring it back (rounds at 10 s, 20 s).
    sleep(Duration::from_secs(21)).await;
    assert_eq!(state(&pool, "http://svc/"), HostState::Up);
    // Ejected again; a 30 s Retry-After outlasts the two rounds it needs.
    let t0 = Instant::now();
    let resp = pool.send("http://svc/slow-retry").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(30),
        "waited for the server's time"
    );
    let info = *resp.retry_info().unwrap();
    assert_eq!(
        info.attempts, 2,
        "the retry went out once the probes lifted the host"
    );
}

fn ten_second_backoff() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .base_delay(Duration::from_secs(10))
        .max_delay(Duration::from_secs(10))
        .jitter(Jitter::Off)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_host_ejected_by_this_failure_fails_fast_without_a_phantom_backoff() {
    let mock = MockDriver::new().default_behavior(Behavior::status(503));
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(ten_second_backoff())
        .retry_budget(RetryBudget::unlimited())
        .outlier_detection(OutlierDetection::new(1, Duration::from_secs(60)).unwrap())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let resp = pool.send("http://svc/x").await.unwrap();
    assert_eq!(resp.status(), 503, "the real answer comes back");
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "no 10 s sleep for a retry that cannot be sent"
    );
    let info = *resp.retry_info().unwrap();
    assert_eq!((info.attempts, info.backoff), (1, Duration::ZERO));
    let st = pool.stats();
    assert_eq!(
        (st.attempts, st.retries, st.unhealthy_rejected),
        (1, 0, 1),
        "{st:?}"
    );
    assert_eq!(mock.call_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_cool_down_is_still_waited_for() {
    // Ejected for 5 s, told to come back in 30: by then the host is out of
    // its cool-down and the retry is the half-open trial — worth the wait.
    let mock = MockDriver::new();
    mock.push(Behavior::status(503).header("retry-after", "30"));
    let pool = ConnectionPool::builder(mock.clone())
        .retry_budget(RetryBudget::unlimited())
        .outlier_detection(OutlierDetection::new(1, Duration::from_secs(5)).unwrap())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let resp = pool.send("http://svc/x").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(mock.call_count(), 2);
    assert_eq!(state(&pool, "http://svc/"), HostState::Up);
}

#[tokio::test(start_paused = true)]
async fn a_down_host_does_not_spend_the_retry_budget_of_healthy_ones() {
    // The bad host answers 503 (and is ejected for it); the good one is
    // refused once by an inner limiter — retryable, and no mark against the
    // host — then answers.
    let mock = MockDriver::new().handler(|_, n| match n {
        0 => Behavior::status(503),
        1 => Behavior::fail(|| Error::RateLimited {
            reason: httpclient_core::RateLimitReason::WouldWait,
            retry_after: None,
        }),
        _ => Behavior::ok(),
    });
    // Ratio 0 and a floor of 1 per second: exactly one retry per window.
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(
            RetryPolicy::builder()
                .base_delay(Duration::from_millis(10))
                .jitter(Jitter::Off)
                .build()
                .unwrap(),
        )
        .retry_budget(RetryBudget::new(0.0, 1, Duration::from_secs(1)).unwrap())
        .outlier_detection(OutlierDetection::new(1, Duration::from_secs(300)).unwrap())
        .build()
        .unwrap();
    let bad = pool.send("http://bad/x").await.unwrap(); // ejected at its first failure
    assert_eq!(bad.status(), 503);
    let good = pool.send("http://good/x").await.unwrap(); // its one budgeted retry
    assert_eq!(good.status(), 200);
    assert_eq!(mock.call_count(), 3, "{:?}", mock.calls());
    let st = pool.stats();
    assert_eq!((st.retries, st.unhealthy_rejected), (1, 1), "{st:?}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_gives_no_verdict_and_keeps_the_checker_alive() {
    let probe_no = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = Arc::clone(&probe_no);
    let mock = MockDriver::new().handler(move |req, _| {
        if req.method() == Method::HEAD {
            match p.fetch_add(1, Ordering::SeqCst) {
                0 => Behavior::refused(),
                1 => Behavior::panic("driver bug in a probe"),
                _ => Behavior::ok(),
            }
        } else {
            Behavior::ok()
        }
    });
    let pool = ConnectionPool::new(mock.clone());
    pool.enable_health_check_with(
        HealthCheck::builder(["http://db"], Duration::from_secs(1))
            .jitter(0.0)
            .thresholds(1, 1)
            .build()
            .unwrap(),
    )
    .unwrap();
    // Probes at 0 s (refused: down) and 1 s (panics: no verdict, so still
    // down); the one at 2 s succeeds.
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(probe_no.load(Ordering::SeqCst), 2);
    assert!(matches!(state(&pool, "http://db/"), HostState::Down { .. }));
    sleep(Duration::from_millis(8500)).await;
    assert!(
        pool.health_checker_running(),
        "a probe's panic ended the checker"
    );
    assert!(probe_no.load(Ordering::SeqCst) >= 5, "probing went on");
    assert_eq!(
        state(&pool, "http://db/"),
        HostState::Up,
        "back up after the panic"
    );
    let st = pool.stats();
    // A driver's panic says nothing about the host: only the refusal
    // failed a probe, and the panic left the host down (no verdict) until
    // the next probe succeeded.
    assert_eq!(st.probe_failures, 1, "{st:?}");
    let t_up = probe_no.load(Ordering::SeqCst);
    assert!(t_up >= 5);
    assert_eq!(pool.send("http://db/q").await.unwrap().status(), 200);

    // A panic in the user's `healthy_when` predicate is caught as well.
    let pool = ConnectionPool::new(MockDriver::new());
    pool.enable_health_check_with(
        HealthCheck::builder(["http://db"], Duration::from_secs(1))
            .jitter(0.0)
            .healthy_when(|_| panic!("bug in the predicate"))
            .build()
            .unwrap(),
    )
    .unwrap();
    sleep(Duration::from_secs(5)).await;
    assert!(
        pool.health_checker_running(),
        "the predicate's panic ended the checker"
    );
    assert_eq!(state(&pool, "http://db/"), HostState::Up);
    assert_eq!(pool.stats().probe_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn neutral_errors_do_not_eject() {
    // 4xx and refusals by an inner layer say nothing about the host.
    let mock = MockDriver::new()
        .route("http://svc/missing", Behavior::status(404))
        .route(
            "http://svc/limited",
            Behavior::fail(|| Error::RateLimited {
                reason: httpclient_core::RateLimitReason::WouldWait,
                retry_after: None,
            }),
        );
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::never())
        .outlier_detection(OutlierDetection::new(2, Duration::from_secs(30)).unwrap())
        .build()
        .unwrap();
    // Each kind five times in a row on its own (a 404 between two
    // refusals would reset the count and hide a refusal blamed on the host).
    for path in ["missing", "limited"] {
        for _ in 0..5 {
            let _ = pool.send(format!("http://svc/{path}")).await;
        }
        assert_eq!(state(&pool, "http://svc/"), HostState::Up, "{path}");
    }
    assert_eq!(mock.call_count(), 10, "every request reached the mock");
}

#[tokio::test(start_paused = true)]
async fn bad_health_check_input_is_a_typed_error() {
    let pool = ConnectionPool::new(MockDriver::new());
    let field = |r: Result<(), Error>| match r {
        Err(Error::Config(c)) => c.field,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(
        field(pool.enable_health_check(["http://a"], Duration::ZERO)),
        "interval"
    );
    assert_eq!(
        field(pool.enable_health_check(Vec::<String>::new(), Duration::from_secs(1))),
        "hosts"
    );
    assert_eq!(
        field(pool.enable_health_check(["not a url"], Duration::from_secs(1))),
        "hosts"
    );
    assert_eq!(
        field(pool.enable_health_check(["ftp://a"], Duration::from_secs(1))),
        "hosts"
    );
    let bad = [
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).thresholds(0, 1),
            "unhealthy_threshold",
        ),
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).thresholds(1, 0),
            "healthy_threshold",
        ),
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).jitter(1.0),
            "jitter",
        ),
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).jitter(f64::NAN),
            "jitter",
        ),
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).timeout(Duration::ZERO),
            "timeout",
        ),
        (
            HealthCheck::builder(["http://a"], Duration::from_secs(1)).path("health"),
            "path",
        ),
    ];
    for (b, f) in bad {
        assert_eq!(b.build().unwrap_err().field, f);
    }
    assert!(
        !pool.health_checker_running(),
        "no task started by a rejected call"
    );
    assert_eq!(
        OutlierDetection::new(0, Duration::from_secs(1))
            .unwrap_err()
            .field,
        "consecutive_failures"
    );
    assert_eq!(
        OutlierDetection::new(1, Duration::ZERO).unwrap_err().field,
        "cool_down"
    );
    assert_eq!(
        OutlierDetection::new(1, Duration::from_secs(5))
            .unwrap()
            .with_max_cool_down(Duration::from_secs(1))
            .unwrap_err()
            .field,
        "max_cool_down"
    );
}

#[test]
fn enabling_outside_a_runtime_is_an_error_not_a_panic() {
    let pool = ConnectionPool::new(MockDriver::new());
    match pool.enable_health_check(["http://a"], Duration::from_secs(1)) {
        Err(Error::Config(c)) => assert_eq!(c.field, "runtime"),
        other => panic!("{other:?}"),
    }
}

/// An inner layer that holds every request for `queue` before passing it
/// on (or forever, with `None`): a rate limiter's FIFO as the pool sees it.
struct Queued {
    inner: MockDriver,
    queue: Option<Duration>,
}

#[httpclient_core::async_trait]
impl httpclient_core::Driver for Queued {
    async fn execute(
        &self,
        request: httpclient_core::Request,
    ) -> Result<httpclient_core::Response, Error> {
        match self.queue {
            Some(d) => sleep(d).await,
            None => std::future::pending::<()>().await,
        }
        self.inner.execute(request).await
    }
}

/// A health check of `http://db:8080` every `interval`, no jitter, one
/// failure down and one success up.
fn db_check(interval: Duration) -> HealthCheck {
    HealthCheck::builder(["http://db:8080"], interval)
        .jitter(0.0)
        .thresholds(1, 1)
        .build()
        .unwrap()
}

fn probed(pool: &ConnectionPool<Queued>) -> httpclient_pool::HostHealth {
    pool.host_health(&Origin::parse("http://db:8080").unwrap())
        .expect("tracked host")
}

#[tokio::test(start_paused = true)]
async fn time_queued_in_an_inner_layer_does_not_fail_a_probe() {
    // Probe timeout 100 ms (the default for a 100 ms interval), each probe
    // queued 500 ms inside the pool before it is sent: the host answers at
    // once, so it is healthy.
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(Queued {
        inner: mock.clone(),
        queue: Some(Duration::from_millis(500)),
    });
    let check = db_check(Duration::from_millis(100));
    assert_eq!(check.timeout(), Duration::from_millis(100));
    pool.enable_health_check_with(check).unwrap();
    sleep(secs(3.05)).await;

    let h = probed(&pool);
    assert_eq!(h.state, HostState::Up, "last_error: {:?}", h.last_error);
    assert_eq!(h.probe_failures, 0);
    assert!(h.probe_successes >= 5, "{h:?}");
    assert_eq!(h.last_error, None);
    let st = pool.stats();
    assert_eq!(st.probe_failures, 0);
    assert_eq!(st.probes, u64::from(h.probe_successes));
    assert_eq!(mock.call_count(), 6, "every probe reached the host");
    // Rounds of 500 ms each, the first at once: 0, 0.5, ... 3.0 → 6 done.
    assert_eq!(st.probes, 6);

    // The timeout still bites once the probe is really sent.
    let slow = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_millis(150)));
    let pool = ConnectionPool::new(Queued {
        inner: slow,
        queue: Some(Duration::from_millis(500)),
    });
    pool.enable_health_check_with(db_check(Duration::from_millis(100)))
        .unwrap();
    sleep(secs(0.65)).await; // queued 0.5, sent, timed out at 0.6
    let h = probed(&pool);
    assert_eq!(h.state, HostState::Down(DownCause::Probes));
    assert!(
        h.last_error.as_deref().unwrap().contains("probe failed"),
        "{h:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_held_forever_by_an_inner_layer_is_inconclusive() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(Queued {
        inner: mock.clone(),
        queue: None,
    });
    pool.enable_health_check_with(db_check(Duration::from_millis(100)))
        .unwrap();
    // Safety bound: 10 × max(100 ms, 100 ms) = 1 s per round.
    sleep(secs(5.5)).await;
    let h = probed(&pool);
    assert_eq!(
        h.state,
        HostState::Up,
        "a hung inner layer says nothing about the host"
    );
    assert_eq!((h.probe_failures, h.probe_successes), (0, 0));
    assert_eq!(h.last_check, None);
    let st = pool.stats();
    assert_eq!((st.probes, st.probe_failures), (0, 0));
    assert_eq!(mock.call_count(), 0);
    assert!(pool.health_checker_running());
}

#[tokio::test(start_paused = true)]
async fn a_probe_dropped_mid_round_is_not_counted() {
    let pool = ConnectionPool::new(Queued {
        inner: MockDriver::new(),
        queue: Some(Duration::from_millis(500)),
    });
    pool.enable_health_check_with(
        HealthCheck::builder(["http://db:8080"], Duration::from_secs(1))
            .jitter(0.0)
            .build()
            .unwrap(),
    )
    .unwrap();
    sleep(secs(0.2)).await; // the first probe is queued
    pool.disable_health_check();
    sleep(secs(2.0)).await;
    let st = pool.stats();
    assert_eq!((st.probes, st.probe_failures), (0, 0));
}

/// Durations that would overflow `Instant + Duration` on a later code path
/// (a panic inside the request or the checker task) are refused up front.
#[test]
fn durations_beyond_a_year_are_config_errors() {
    let huge = Duration::MAX;
    assert!(RetryPolicy::builder().total_deadline(huge).build().is_err());
    assert!(
        RetryPolicy::builder()
            .attempt_timeout(huge)
            .build()
            .is_err()
    );
    assert!(
        HealthCheck::builder(["http://127.0.0.1:1"], huge)
            .build()
            .is_err()
    );
    assert!(
        HealthCheck::builder(["http://127.0.0.1:1"], Duration::from_secs(1))
            .timeout(huge)
            .build()
            .is_err()
    );
    assert!(OutlierDetection::new(3, huge).is_err());
    let od = OutlierDetection::new(3, Duration::from_secs(30)).unwrap();
    assert!(od.clone().with_max_cool_down(huge).is_err());
    // The default cap (10 × cool-down) stays within a year too.
    let long = OutlierDetection::new(3, Duration::from_secs(300 * 24 * 3600)).unwrap();
    assert!(long.max_cool_down() <= httpclient_core::MAX_RETRY_AFTER);
}

// `execute` sends a request down the inline first-attempt path when the pool
// tracks no host; health checks enabled before that request first runs must
// still gate it.
#[tokio::test(start_paused = true)]
async fn health_checks_enabled_between_execute_and_the_first_poll_still_gate_the_request() {
    let up = Arc::new(AtomicBool::new(false));
    let mock = flappy(&up);
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();
    let request = httpclient_core::Request::get("http://db:8080/query")
        .build()
        .unwrap();
    let fut = httpclient_core::Driver::execute(&pool, request);
    let check = db_check(Duration::from_secs(1));
    pool.enable_health_check_with(check).unwrap();
    sleep(secs(0.5)).await;
    assert_eq!(
        state(&pool, "http://db:8080"),
        HostState::Down(DownCause::Probes)
    );
    let before = mock.call_count();
    assert!(matches!(fut.await, Err(Error::UnhealthyHost { .. })));
    assert_eq!(mock.call_count(), before, "nothing sent to a down host");
    assert_eq!(pool.stats().unhealthy_rejected, 1);
}
