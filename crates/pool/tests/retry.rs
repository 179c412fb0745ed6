//! The retry loop under tokio's paused clock with the mock driver: every
//! delay below is exact, and a run of minutes takes microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use httpclient_core::ext::RetryInfo;
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{
    BodyStream, Bytes, ConnectKind, Driver, DriverExt, Error, RateLimitReason, Request, RequestBody,
};
use httpclient_pool::{ConnectionPool, Jitter, RetryBudget, RetryPolicy};
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Gaps between consecutive calls the mock saw.
fn gaps(mock: &MockDriver) -> Vec<Duration> {
    let calls = mock.calls();
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn pool_with(mock: &MockDriver, policy: RetryPolicy) -> ConnectionPool<MockDriver> {
    ConnectionPool::builder(mock.clone())
        .retry_policy(policy)
        .retry_budget(RetryBudget::unlimited())
        .seed(42)
        .build()
        .unwrap()
}

fn info(resp: &httpclient_core::Response) -> RetryInfo {
    *resp.retry_info().expect("RetryInfo on every response")
}

#[tokio::test(start_paused = true)]
async fn backoff_without_jitter_doubles_and_caps_exactly() {
    let mock = MockDriver::new().default_behavior(Behavior::status(503));
    let policy = RetryPolicy::builder()
        .max_retries(8)
        .base_delay(ms(100))
        .max_delay(ms(2_000))
        .jitter(Jitter::Off)
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    let t0 = Instant::now();
    let resp = pool.send("http://api/x").await.unwrap();
    assert_eq!(resp.status(), 503, "the last response comes back as is");
    let expect: Vec<Duration> = [100, 200, 400, 800, 1600, 2000, 2000, 2000]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(gaps(&mock), expect);
    let total: Duration = expect.iter().sum();
    assert_eq!(t0.elapsed(), total);
    assert_eq!(
        info(&resp),
        RetryInfo {
            attempts: 9,
            backoff: total
        }
    );
    let st = pool.stats();
    assert_eq!((st.requests, st.attempts, st.retries), (1, 9, 8));
    assert_eq!(st.retries_exhausted, 1);
    assert_eq!(st.failed_statuses.get(&503), Some(&1));
    assert_eq!(st.backoff, total);
}

#[tokio::test(start_paused = true)]
async fn full_jitter_stays_within_bounds_and_replays_with_the_same_seed() {
    let policy = RetryPolicy::builder()
        .max_retries(12)
        .base_delay(ms(50))
        .max_delay(ms(1_000))
        .build()
        .unwrap();
    let mut schedules = Vec::new();
    for _ in 0..2 {
        let mock = MockDriver::new().default_behavior(Behavior::reset());
        let pool = pool_with(&mock, policy.clone());
        let err = pool.send("http://api/x").await.unwrap_err();
        assert!(
            matches!(&err, Error::RetriesExhausted { attempts: 13, last } if matches!(**last, Error::ResetBeforeResponse { .. })),
            "{err:?}"
        );
        let g = gaps(&mock);
        assert_eq!(g.len(), 12);
        for (i, gap) in g.iter().enumerate() {
            let (lo, hi) = policy.backoff_bounds(i as u32 + 1);
            assert!(
                lo <= *gap && *gap <= hi,
                "retry {}: {gap:?} not in [{lo:?}, {hi:?}]",
                i + 1
            );
        }
        schedules.push(g);
    }
    assert_eq!(schedules[0], schedules[1], "same seed, same schedule");
    assert!(
        schedules[0].windows(2).any(|w| w[0] != w[1]),
        "jitter varies the delays"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_waited_exactly() {
    let mock = MockDriver::new();
    mock.push(Behavior::status(429).header("retry-after", "2"));
    mock.push(Behavior::status(503).header("retry-after", "0"));
    let pool = pool_with(&mock, RetryPolicy::default());
    let t0 = Instant::now();
    let resp = pool.send("http://api/x").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gaps(&mock), vec![Duration::from_secs(2), Duration::ZERO]);
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert_eq!(
        info(&resp),
        RetryInfo {
            attempts: 3,
            backoff: Duration::from_secs(2)
        }
    );
    assert_eq!(pool.stats().succeeded, 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_waited_exactly_with_an_injected_wall_clock() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let date = httpdate::fmt_http_date(wall + Duration::from_secs(3));
    let past = httpdate::fmt_http_date(wall - Duration::from_secs(60));
    let mock = MockDriver::new();
    mock.push(Behavior::status(503).header("retry-after", &date));
    mock.push(Behavior::status(503).header("retry-after", &past));
    let policy = RetryPolicy::builder().jitter(Jitter::Off).build().unwrap();
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(policy)
        .wall_clock(move || wall)
        .build()
        .unwrap();
    let resp = pool.send("http://api/x").await.unwrap();
    assert_eq!(resp.status(), 200);
    // The date: exactly 3 s. The past date: ignored, backoff of retry 2.
    assert_eq!(gaps(&mock), vec![Duration::from_secs(3), ms(200)]);
}

#[tokio::test(start_paused = true)]
async fn garbage_retry_after_falls_back_to_backoff() {
    let mock = MockDriver::new();
    for bad in ["soon", "-5", "1.5", ""] {
        mock.push(Behavior::status(503).header("retry-after", bad));
    }
    let policy = RetryPolicy::builder()
        .max_retries(4)
        .jitter(Jitter::Off)
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    let resp = pool.send("http://api/x").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gaps(&mock), vec![ms(100), ms(200), ms(400), ms(800)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_cap_fails_fast_with_status_and_delay() {
    let mock =
        MockDriver::new().default_behavior(Behavior::status(503).header("retry-after", "86400"));
    let pool = pool_with(&mock, RetryPolicy::default());
    let t0 = Instant::now();
    let err = pool.send("http://api/x").await.unwrap_err();
    assert_eq!(t0.elapsed(), Duration::ZERO, "no sleeping for a day");
    match err {
        Error::HttpStatus {
            status,
            retry_after,
        } => {
            assert_eq!(status, 503);
            assert_eq!(retry_after, Some(Duration::from_secs(86_400)));
        }
        other => panic!("expected HttpStatus, got {other:?}"),
    }
    assert_eq!(mock.call_count(), 1);
    let st = pool.stats();
    assert_eq!(st.retry_after_too_long, 1);
    assert_eq!(st.failures_by_kind.get("http_status"), Some(&1));

    // After a retry, the same verdict comes wrapped with the attempt count.
    let mock = MockDriver::new();
    mock.push(Behavior::status(502));
    mock.push(Behavior::status(429).header("retry-after", "31"));
    let pool = pool_with(&mock, RetryPolicy::default());
    let err = pool.send("http://api/x").await.unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 2, last } if matches!(**last, Error::HttpStatus { retry_after: Some(d), .. } if d == Duration::from_secs(31))),
        "{err:?}"
    );
    assert!(err.to_string().contains("retry after"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_after_a_maybe_sent_failure() {
    for behavior in [Behavior::reset(), Behavior::reset_mid_body()] {
        let mock = MockDriver::new().default_behavior(behavior);
        let pool = pool_with(&mock, RetryPolicy::default());
        let err = pool
            .send(Request::post("http://api/orders").body("{}"))
            .await
            .unwrap_err();
        assert_eq!(mock.call_count(), 1, "exactly one attempt");
        assert!(err.may_have_been_sent());
        assert!(
            err.to_string().contains("may have been applied")
                || err.to_string().contains("was applied"),
            "{err}"
        );
        assert!(
            !matches!(err, Error::RetriesExhausted { .. }),
            "one attempt: unwrapped"
        );
        assert_eq!(pool.stats().not_retried_unsafe, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_after_connection_refused_and_when_marked_safe() {
    let mock = MockDriver::new();
    mock.push(Behavior::refused());
    mock.push(Behavior::fail(|| Error::Connect {
        kind: ConnectKind::Dns,
        source: None,
    }));
    let pool = pool_with(&mock, RetryPolicy::default());
    let resp = pool
        .send(Request::post("http://api/orders").body("payload"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(info(&resp).attempts, 3);
    let calls = mock.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.body.as_deref() == Some(&b"payload"[..])),
        "body replayed"
    );

    // Marked retry-safe (an idempotency key): retried after a reset too.
    mock.push(Behavior::reset());
    let resp = pool
        .send(
            Request::post("http://api/orders")
                .body("x")
                .retry_safe(true),
        )
        .await
        .unwrap();
    assert_eq!(info(&resp).attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_retryable_status_to_a_post_is_returned_unless_marked_safe() {
    let mock = MockDriver::new().default_behavior(Behavior::status(503));
    let pool = pool_with(
        &mock,
        RetryPolicy::builder().jitter(Jitter::Off).build().unwrap(),
    );
    let resp = pool
        .send(Request::post("http://api/p").body("b"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(info(&resp).attempts, 1);
    assert_eq!(mock.call_count(), 1);
    let resp = pool
        .send(Request::post("http://api/p").body("b").retry_safe(true))
        .await
        .unwrap();
    assert_eq!(info(&resp).attempts, 4);
    assert_eq!(mock.call_count(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_cannot_be_replayed_is_never_retried() {
    for (behavior, expected) in [
        (Behavior::refused(), "connect_refused"),
        (Behavior::reset(), "reset_before_response"),
        (Behavior::status(503), "503"),
    ] {
        let mock = MockDriver::new().default_behavior(behavior);
        let pool = pool_with(&mock, RetryPolicy::default());
        let stream: BodyStream = Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from("x"))]));
        let req = Request::put("http://api/blob")
            .body(RequestBody::from_stream(stream))
            .build()
            .unwrap();
        // The first attempt's own outcome comes back, unwrapped.
        let got = match pool.execute(req).await {
            Ok(resp) => resp.status().as_str().to_string(),
            Err(e) => e.kind_name().to_string(),
        };
        assert_eq!(got, expected);
        assert_eq!(mock.call_count(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let mock = MockDriver::new().default_behavior(Behavior::fail(|| Error::Connect {
        kind: ConnectKind::Tls,
        source: None,
    }));
    let pool = pool_with(&mock, RetryPolicy::default());
    let err = pool.send("https://api/x").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Connect {
            kind: ConnectKind::Tls,
            ..
        }
    ));
    assert_eq!(mock.call_count(), 1);
    let mock = MockDriver::new().default_behavior(Behavior::status(500));
    let pool = pool_with(&mock, RetryPolicy::default());
    assert_eq!(pool.send("http://api/x").await.unwrap().status(), 500);
    assert_eq!(mock.call_count(), 1, "500 is not in the retryable set");
}

#[tokio::test(start_paused = true)]
async fn an_inner_rate_limiters_retry_after_is_honoured() {
    let mock = MockDriver::new();
    mock.push(Behavior::fail(|| Error::RateLimited {
        reason: RateLimitReason::QueueFull,
        retry_after: Some(Duration::from_millis(750)),
    }));
    let pool = pool_with(&mock, RetryPolicy::default());
    let resp = pool
        .send(Request::post("http://api/x").body("b"))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "nothing was sent, so even a POST is retried"
    );
    assert_eq!(gaps(&mock), vec![ms(750)]);
}

#[tokio::test(start_paused = true)]
async fn budget_bounds_attempts_under_a_total_failure_storm() {
    const N: u64 = 1_000;
    let mock = MockDriver::new().default_behavior(Behavior::status(503).after(ms(5)));
    let budget = RetryBudget::new(0.2, 10, Duration::from_secs(10)).unwrap();
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(RetryPolicy::builder().max_retries(3).build().unwrap())
        .retry_budget(budget)
        .seed(1)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let results = join_all((0..N).map(|i| pool.send(format!("http://api/{i}")))).await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the storm fits one window"
    );
    assert_eq!(results.len() as u64, N);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(resp) if resp.status() == 503))
    );
    let st = pool.stats();
    let bound = N as f64 * (1.0 + budget.ratio()) + budget.reserve() as f64;
    assert!(
        st.attempts as f64 <= bound,
        "{} attempts > bound {bound}",
        st.attempts
    );
    assert_eq!(st.attempts, mock.call_count());
    assert_eq!(st.retries, st.attempts - N);
    // Without a budget it would be 4 000 attempts; the budget was what stopped it.
    assert!(st.budget_exhausted > 0);
    assert_eq!(st.retries, 200 + 100, "ratio × requests + floor, exactly");
    assert_eq!(st.requests, st.succeeded + st.failed + st.cancelled);
    assert_eq!(st.success_rate(), 0.0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_stops_the_backoff_at_once() {
    let mock = MockDriver::new();
    mock.push(Behavior::status(503));
    let policy = RetryPolicy::builder()
        .base_delay(Duration::from_secs(10))
        .jitter(Jitter::Off)
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    let r = tokio::time::timeout(Duration::from_secs(1), pool.send("http://api/x")).await;
    assert!(r.is_err(), "still sleeping when dropped");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mock.call_count(), 1, "the dropped request never retried");
    let st = pool.stats();
    assert_eq!(
        (st.cancelled, st.in_flight, st.failed, st.succeeded),
        (1, 0, 0, 0)
    );
    assert_eq!(st.retries, 0, "a retry that never happened is not counted");
}

#[tokio::test(start_paused = true)]
async fn stop_wakes_sleeping_retries_and_refuses_new_calls() {
    let mock = MockDriver::new().default_behavior(Behavior::status(503));
    let token = httpclient_pool::CancellationToken::new();
    let policy = RetryPolicy::builder()
        .base_delay(Duration::from_secs(10))
        .jitter(Jitter::Off)
        .build()
        .unwrap();
    let pool = Arc::new(
        ConnectionPool::builder(mock.clone())
            .retry_policy(policy)
            .cancellation_token(token.clone())
            .build()
            .unwrap(),
    );
    let p = Arc::clone(&pool);
    let t0 = Instant::now();
    let task = tokio::spawn(async move { p.send("http://api/x").await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    token.cancel();
    let resp = task.await.unwrap().unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "woke at once");
    assert_eq!(resp.status(), 503, "the last outcome, not a made-up one");
    assert_eq!(info(&resp).backoff, Duration::from_secs(1));
    assert!(pool.is_stopped());
    let err = pool.send("http://api/x").await.unwrap_err();
    assert!(matches!(
        err,
        Error::Stopped {
            layer: "ConnectionPool"
        }
    ));
    assert!(!err.may_have_been_sent());
    assert_eq!(mock.call_count(), 1);
    let st = pool.stats();
    assert!(st.stopped);
    assert_eq!(st.failures_by_kind.get("stopped"), Some(&1));
    assert_eq!(
        (st.attempts, st.retries),
        (1, 0),
        "a retry that never happened is not counted"
    );

    // stop() on a pool does not cancel the caller's own token.
    let parent = httpclient_pool::CancellationToken::new();
    let pool = ConnectionPool::builder(MockDriver::new())
        .cancellation_token(parent.clone())
        .build()
        .unwrap();
    pool.stop();
    assert!(pool.is_stopped() && !parent.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn total_deadline_bounds_attempts_and_skips_pointless_sleeps() {
    // A hanging attempt is dropped at the deadline.
    let mock = MockDriver::new().default_behavior(Behavior::hang());
    let policy = RetryPolicy::builder()
        .total_deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    let t0 = Instant::now();
    let err = pool.send("http://api/x").await.unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded), "{err:?}");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(mock.in_flight(), 0, "the attempt was abandoned");

    // A backoff that would end past the deadline is not slept.
    let mock = MockDriver::new().default_behavior(Behavior::status(503).after(ms(300)));
    let policy = RetryPolicy::builder()
        .base_delay(ms(400))
        .jitter(Jitter::Off)
        .total_deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    let t0 = Instant::now();
    let resp = pool.send("http://api/x").await.unwrap();
    // 300 (attempt) + 400 (sleep) + 300 (attempt) = 1000 ms; next sleep
    // would pass the deadline, so the 503 comes back at once.
    assert_eq!(resp.status(), 503);
    assert_eq!(t0.elapsed(), ms(1_000));
    assert_eq!(info(&resp).attempts, 2);
    assert_eq!(pool.stats().deadline_exceeded, 1);
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_is_a_default_the_request_can_override() {
    let mock = MockDriver::new()
        .route(
            "http://api/slow",
            Behavior::ok().after(Duration::from_secs(3)),
        )
        .default_behavior(Behavior::ok());
    let policy = RetryPolicy::builder()
        .attempt_timeout(Duration::from_secs(2))
        .jitter(Jitter::Off)
        .max_retries(1)
        .build()
        .unwrap();
    let pool = pool_with(&mock, policy);
    pool.send("http://api/fast").await.unwrap();
    pool.send(Request::get("http://api/fast").timeout(Duration::from_secs(9)))
        .await
        .unwrap();
    let calls = mock.calls();
    assert_eq!(calls[0].options.timeout, Some(Duration::from_secs(2)));
    assert_eq!(calls[1].options.timeout, Some(Duration::from_secs(9)));
    // The per-attempt timeout fires per attempt, and the timeout is retried.
    let t0 = Instant::now();
    let err = pool.send("http://api/slow").await.unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 2, last } if last.is_timeout()),
        "{err:?}"
    );
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2) + ms(100) + Duration::from_secs(2)
    );
}

#[tokio::test(start_paused = true)]
async fn first_try_success_records_retry_info_and_stats_stay_honest() {
    let mock = MockDriver::new()
        .route("http://api/missing", Behavior::status(404))
        .route("http://api/broken", Behavior::status(500));
    let pool = ConnectionPool::new(mock.clone());
    let st = pool.stats();
    assert_eq!(st.success_rate(), 1.0, "defined when nothing ran");
    assert_eq!(st.connections_opened, None, "the mock cannot count");
    let resp = pool.send("http://api/ok").await.unwrap();
    assert_eq!(
        info(&resp),
        RetryInfo {
            attempts: 1,
            backoff: Duration::ZERO
        }
    );
    pool.send("http://api/missing").await.unwrap();
    pool.send("http://api/broken").await.unwrap();
    let st = pool.stats();
    assert_eq!(
        (st.requests, st.attempts, st.succeeded, st.failed),
        (3, 3, 2, 1)
    );
    assert!((st.success_rate() - 2.0 / 3.0).abs() < 1e-12);
    pool.reset_stats();
    let st = pool.stats();
    assert_eq!((st.requests, st.attempts, st.failed), (0, 0, 0));
    assert_eq!(st.success_rate(), 1.0);
    assert!(st.failed_statuses.is_empty());
}

#[tokio::test(start_paused = true)]
async fn connections_opened_is_forwarded_and_counted_from_build() {
    let mock = MockDriver::new().with_connections_opened(Some(7));
    let pool = ConnectionPool::new(mock.clone());
    assert_eq!(httpclient_core::Driver::connections_opened(&pool), Some(7));
    assert_eq!(pool.stats().connections_opened, Some(0));
}

#[tokio::test(start_paused = true)]
async fn go_style_set_retry_policy_and_validation() {
    let mock = MockDriver::new().default_behavior(Behavior::reset());
    let pool = pool_with(
        &mock,
        RetryPolicy::builder().jitter(Jitter::Off).build().unwrap(),
    );
    pool.set_retry_policy(1, ms(30)).unwrap();
    assert_eq!(pool.policy().max_retries(), 1);
    assert_eq!(pool.policy().base_delay(), ms(30));
    let _ = pool.send("http://api/x").await;
    assert_eq!(gaps(&mock), vec![ms(30)]);
    let e = pool.set_retry_policy(5_000, ms(1)).unwrap_err();
    assert_eq!(e.field, "max_retries");
    let e = pool
        .set_retry_policy(3, Duration::from_secs(60))
        .unwrap_err();
    assert_eq!(e.field, "base_delay");
    assert_eq!(
        pool.policy().max_retries(),
        1,
        "a rejected change changes nothing"
    );
    pool.set_retry_policy(0, ms(1)).unwrap();
    let _ = pool.send("http://api/x").await;
    assert_eq!(mock.call_count(), 3, "max_retries 0 = one attempt");
}

#[tokio::test(start_paused = true)]
async fn per_host_limit_caps_in_flight_per_origin_only() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(1)));
    let pool = ConnectionPool::builder(mock.clone())
        .per_host_limit(2)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let a = join_all((0..6).map(|i| pool.send(format!("http://a/{i}"))));
    let b = join_all((0..2).map(|i| pool.send(format!("http://b/{i}"))));
    let (ra, rb) = tokio::join!(a, b);
    assert!(ra.iter().chain(rb.iter()).all(|r| r.is_ok()));
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(3),
        "6 to host a, 2 at a time"
    );
    assert_eq!(mock.max_in_flight(), 4, "2 to a + 2 to b");
    let at = |host: &str, secs: u64| {
        mock.calls()
            .iter()
            .filter(|c| c.origin.host() == host && c.at - t0 == Duration::from_secs(secs))
            .count()
    };
    assert_eq!((at("a", 0), at("a", 1), at("a", 2)), (2, 2, 2));
    assert_eq!(at("b", 0), 2, "host b is not held up by host a");
    assert_eq!(pool.stats().host_limit_waits, 4);

    // Dropped holders free their slots, and a dropped waiter its place in
    // the queue: two hold host a's slots, the third waits, all are dropped.
    let held =
        tokio::time::timeout(ms(500), join_all((0..3).map(|_| pool.send("http://a/x")))).await;
    assert!(held.is_err());
    assert_eq!(pool.stats().host_limit_waits, 5, "the third one waited");
    let t1 = Instant::now();
    pool.send("http://a/y").await.unwrap();
    assert_eq!(t1.elapsed(), Duration::from_secs(1), "no slot leaked");
    let st = pool.stats();
    let host = st.hosts.iter().find(|h| h.origin.host() == "a").unwrap();
    assert_eq!(host.in_flight, Some(0));
}

#[tokio::test(start_paused = true)]
async fn many_concurrent_requests_each_end_exactly_once() {
    // A mixed script: every request ends with one outcome and the counters add up.
    let n = Arc::new(AtomicU64::new(0));
    let n2 = Arc::clone(&n);
    let mock = MockDriver::new().handler(move |_, i| {
        n2.fetch_add(1, Ordering::Relaxed);
        match i % 5 {
            0 => Behavior::reset_mid_body(),
            1 => Behavior::status(503),
            2 => Behavior::refused(),
            _ => Behavior::ok().after(ms(i % 7)),
        }
    });
    let pool = ConnectionPool::builder(mock.clone())
        .retry_budget(RetryBudget::new(0.5, 10, Duration::from_secs(10)).unwrap())
        .seed(3)
        .build()
        .unwrap();
    let reqs = (0..2_000).map(|i| {
        if i % 3 == 0 {
            Request::post(format!("http://h/{i}")).body("b").build()
        } else {
            Request::get(format!("http://h/{i}")).build()
        }
    });
    let results = join_all(reqs.map(|r| pool.send(r))).await;
    let st = pool.stats();
    assert_eq!(results.len(), 2_000);
    assert_eq!(st.requests, 2_000);
    assert_eq!(st.succeeded + st.failed, 2_000);
    assert_eq!(st.attempts, mock.call_count());
    assert_eq!(st.attempts, n.load(Ordering::Relaxed));
    assert_eq!(st.attempts, st.requests + st.retries);
    let ok = results
        .iter()
        .filter(|r| matches!(r, Ok(resp) if resp.status() == 200))
        .count() as u64;
    assert_eq!(ok, st.succeeded);
    assert!((0.0..=1.0).contains(&st.success_rate()));
}

#[tokio::test(start_paused = true)]
async fn host_state_is_bounded_and_idle_hosts_are_forgotten() {
    let mock = MockDriver::new()
        .route("http://slow", Behavior::ok().after(Duration::from_secs(5)))
        .default_behavior(Behavior::ok());
    let pool = ConnectionPool::builder(mock.clone())
        .per_host_limit(1)
        .max_hosts(2)
        .build()
        .unwrap();
    // Two hosts busy: a third cannot get a slot map entry.
    let busy = join_all([pool.send("http://slow1/"), pool.send("http://slow2/")]);
    let third = async {
        tokio::time::sleep(ms(10)).await;
        pool.send("http://c/").await
    };
    let (busy, third) = tokio::join!(busy, third);
    assert!(busy.iter().all(|r| r.is_ok()));
    let err = third.unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                reason: RateLimitReason::TooManyKeys,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.may_have_been_sent());
    // Once idle, old hosts are forgotten and new ones fit.
    for h in ["http://d/", "http://e/", "http://f/"] {
        pool.send(h).await.unwrap();
    }
    assert!(pool.stats().hosts.len() <= 2);
    assert!(
        ConnectionPool::builder(MockDriver::new())
            .max_hosts(0)
            .build()
            .is_err()
    );
}

// `execute` picks a request's path (first attempt inline, or the full loop
// with its deadline timer) from the configuration at the time of the call;
// the policy is read when the request starts. A policy installed in between
// must still be kept in full.
#[tokio::test(start_paused = true)]
async fn a_deadline_installed_between_execute_and_the_first_poll_still_bounds_the_request() {
    // The driver answers only after 60 s, so a deadline that was lost
    // shows up as a late 200 (a failure) rather than a hang.
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(ms(60_000)));
    let pool = pool_with(&mock, RetryPolicy::default());
    let fut = pool.execute(Request::get("http://api/x").build().unwrap());
    pool.set_policy(
        RetryPolicy::builder()
            .total_deadline(ms(1_500))
            .build()
            .unwrap(),
    );
    let t0 = Instant::now();
    let err = fut
        .await
        .expect_err("the deadline installed before the first poll ends the request");
    assert!(matches!(err, Error::DeadlineExceeded), "{err}");
    assert_eq!(t0.elapsed(), ms(1_500));
    let st = pool.stats();
    assert_eq!((st.requests, st.attempts, st.deadline_exceeded), (1, 1, 1));

    // And the other way round: a deadline removed before the first poll is
    // gone for that request too.
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(ms(5_000)));
    let pool = pool_with(
        &mock,
        RetryPolicy::builder()
            .total_deadline(ms(1_000))
            .build()
            .unwrap(),
    );
    let fut = pool.execute(Request::get("http://api/x").build().unwrap());
    pool.set_policy(RetryPolicy::default());
    let resp = fut.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(info(&resp).attempts, 1);
}

// The first attempt runs inline and the loop takes over only when its
// outcome may be retried: that hand-over must keep the request (for the
// copy the retry sends), the attempt count and the backoff.
#[tokio::test(start_paused = true)]
async fn a_retry_after_the_inline_first_attempt_resends_the_same_request() {
    let mock = MockDriver::new();
    mock.push(Behavior::reset());
    mock.push(Behavior::status(503));
    let pool = pool_with(
        &mock,
        RetryPolicy::builder()
            .jitter(Jitter::Off)
            .base_delay(ms(10))
            .build()
            .unwrap(),
    );
    let req = Request::put("http://api/items/7")
        .header("x-id", "abc")
        .body("payload")
        .build()
        .unwrap();
    let resp = pool.execute(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        info(&resp),
        RetryInfo {
            attempts: 3,
            backoff: ms(30)
        }
    );
    let calls = mock.calls();
    assert_eq!(calls.len(), 3);
    for c in &calls {
        assert_eq!(c.uri.to_string(), "http://api/items/7");
        assert_eq!(c.headers.get("x-id").unwrap(), "abc");
        assert_eq!(c.body.as_deref(), Some(&b"payload"[..]));
    }
    let st = pool.stats();
    assert_eq!(
        (st.requests, st.attempts, st.retries, st.succeeded),
        (1, 3, 2, 1)
    );
}

/// A panic out of the inner driver is a failed request of kind
/// `"panicked"` (what a `BatchExecutor` above reports in its slot), not a
/// cancellation, and the pool stays usable.
#[tokio::test(start_paused = true)]
async fn a_driver_panic_counts_as_a_panicked_failure_not_a_cancellation() {
    use futures_util::FutureExt as _;
    let mock = MockDriver::new().default_behavior(Behavior::ok());
    mock.push(Behavior::panic("driver bug"));
    let pool = pool_with(&mock, RetryPolicy::default());

    let caught = std::panic::AssertUnwindSafe(pool.send("http://api/x"))
        .catch_unwind()
        .await;
    assert!(caught.is_err(), "the panic propagates to the caller");
    let s = pool.stats();
    assert_eq!(
        (s.requests, s.failed, s.cancelled, s.in_flight),
        (1, 1, 0, 0)
    );
    assert_eq!(s.failures_by_kind.get("panicked"), Some(&1));

    let resp = pool.send("http://api/x").await.unwrap();
    assert_eq!(resp.status(), 200);
    let s = pool.stats();
    assert_eq!(
        (s.requests, s.succeeded, s.failed, s.cancelled),
        (2, 1, 1, 0)
    );
}

/// A status an inner layer turned into `Error::HttpStatus` is judged by the
/// policy's retryable statuses, like the same status in a response.
#[tokio::test(start_paused = true)]
async fn an_inner_http_status_error_follows_the_policys_retry_statuses() {
    let status_error = |status: u16| {
        let status = httpclient_core::http::StatusCode::from_u16(status).unwrap();
        Behavior::fail(move || Error::HttpStatus {
            status,
            retry_after: None,
        })
    };
    let only = |statuses: [u16; 1]| {
        RetryPolicy::builder()
            .retry_statuses(statuses)
            .jitter(Jitter::Off)
            .build()
            .unwrap()
    };
    // 502 is retryable by default, but not under a policy of [503] alone.
    let mock = MockDriver::new().default_behavior(Behavior::ok());
    mock.push(status_error(502));
    let pool = pool_with(&mock, only([503]));
    let err = pool.send("http://api/x").await.unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status, .. } if status == 502),
        "{err:?}"
    );
    assert_eq!(mock.call_count(), 1);
    // 500 is not retryable by default, but is under a policy of [500].
    let mock = MockDriver::new().default_behavior(Behavior::ok());
    mock.push(status_error(500));
    let pool = pool_with(&mock, only([500]));
    assert_eq!(pool.send("http://api/x").await.unwrap().status(), 200);
    assert_eq!(mock.call_count(), 2);
}
