//! One regression test per defect in section d of the study of the Go
//! package (`go-batchclient-study.md`), named `dNN[x]_…` after the item
//! (sub-bullets that are distinct defects get a letter), each showing this
//! project does not have it.
//!
//! Timing claims run on the mock driver under tokio's paused clock, where
//! they are exact; defects that were about real I/O (retries resending the
//! body, connections left open, large batches to one host) run over real
//! sockets — the test server or wiremock — with generous bounds only.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Kind, driver, runtime, serial};
use httpclient_batch::{
    BatchExecutor, BatchOptions, CancellationToken, Outcome, ShutdownOutcome, StopReason,
};
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{ConnectKind, Driver, DriverExt, Error, Request};
use httpclient_pool::{
    ConnectionPool, HealthCheck, Jitter, MAX_RETRIES_LIMIT, MAX_WARMUP_PER_HOST, OutlierDetection,
    RetryBudget, RetryPolicy, Warmup,
};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};
use httpclient_testserver::TestServer;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mock_urls(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("http://mock.test/{i}"))
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Let aborted or finished tasks be reaped (paused-clock friendly).
async fn settle_tasks(target: usize) -> usize {
    for _ in 0..200 {
        if alive_tasks() <= target {
            break;
        }
        tokio::time::sleep(ms(5)).await;
    }
    alive_tasks()
}

fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(max_retries)
        .base_delay(ms(10))
        .max_delay(ms(50))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// 1. Retries with a real driver break (request recycled, cleared, body not
//    rewound).
// ---------------------------------------------------------------------------

/// Answers `503` the first time it sees an `x-id`, then echoes the body.
struct FailFirstPerId {
    seen: Mutex<HashSet<String>>,
}

impl Respond for FailFirstPerId {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let id = request
            .headers
            .get("x-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if self.seen.lock().unwrap().insert(id) {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(200).set_body_bytes(request.body.clone())
        }
    }
}

async fn received_by_id(server: &MockServer) -> HashMap<String, Vec<wiremock::Request>> {
    let mut by_id: HashMap<String, Vec<wiremock::Request>> = HashMap::new();
    for r in server.received_requests().await.expect("recording is on") {
        let id = r.headers.get("x-id").unwrap().to_str().unwrap().to_string();
        by_id.entry(id).or_default().push(r);
    }
    by_id
}

/// 1 (stdhttpclient + body): the retry of a POST marked retry-safe is a
/// fresh copy of the caller's request — same method, path, headers and the
/// whole body again — with both real drivers.
#[test]
fn d01a_retries_resend_a_fresh_replayable_request() {
    let _serial = serial();
    runtime().block_on(async {
        for kind in [Kind::Reqwest, Kind::Isahc] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/submit"))
                .respond_with(FailFirstPerId {
                    seen: Mutex::new(HashSet::new()),
                })
                .mount(&server)
                .await;
            let pool = ConnectionPool::builder(driver(kind))
                .retry_policy(quick_retries(3))
                .build()
                .unwrap();
            let body = "payload ".repeat(1_000);
            let resp = pool
                .send(
                    Request::post(format!("{}/submit", server.uri()))
                        .header("x-id", "only")
                        .header("x-trace", "keep-me")
                        .body(body.clone())
                        .retry_safe(true),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{kind:?}");
            assert_eq!(
                resp.text().unwrap(),
                body,
                "{kind:?}: the retry carried the body"
            );
            assert_eq!(resp.retry_info().unwrap().attempts, 2);
            let got = received_by_id(&server).await.remove("only").unwrap();
            assert_eq!(got.len(), 2, "{kind:?}");
            for r in &got {
                assert_eq!(r.method.as_str(), "POST", "{kind:?}");
                assert_eq!(r.url.path(), "/submit", "{kind:?}");
                assert_eq!(r.headers.get("x-trace").unwrap(), "keep-me", "{kind:?}");
                assert_eq!(r.body, body.as_bytes(), "{kind:?}: the body was rewound");
            }
        }
    });
}

/// 1 (stdhttpclient, pooled requests): a retry never sends another
/// caller's request — 100 concurrent POSTs, each retried once, each
/// retry carrying its own id and body.
#[test]
fn d01b_concurrent_retries_never_send_another_callers_request() {
    let _serial = serial();
    runtime().block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(FailFirstPerId {
                seen: Mutex::new(HashSet::new()),
            })
            .mount(&server)
            .await;
        let pool = ConnectionPool::builder(driver(Kind::Reqwest))
            .retry_policy(quick_retries(3))
            .retry_budget(RetryBudget::unlimited())
            .build()
            .unwrap();
        let exec = BatchExecutor::new(pool, 32).unwrap();
        let result = exec
            .execute_batch((0..100).map(|i| {
                Request::post(format!("{}/item/{i}", server.uri()))
                    .header("x-id", i.to_string())
                    .body(format!("body of {i}"))
                    .retry_safe(true)
            }))
            .await;
        for (i, item) in result.iter().enumerate() {
            let resp = item.outcome.response().expect("retried to success");
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().unwrap(), format!("body of {i}"));
        }
        let by_id = received_by_id(&server).await;
        assert_eq!(by_id.len(), 100);
        for (id, reqs) in by_id {
            assert_eq!(reqs.len(), 2, "id {id}: one attempt and one retry");
            for r in reqs {
                assert_eq!(r.url.path(), format!("/item/{id}"));
                assert_eq!(r.body, format!("body of {id}").as_bytes());
            }
        }
    });
}

/// 1 (stdhttpzeroclient): the retry after a real connection reset is the
/// same request, not a cleared one — `/echo` cut off mid-body 30 % of the
/// time returns the full body once retried.
#[test]
fn d01c_retry_after_a_reset_sends_the_same_request_again() {
    let _serial = serial();
    runtime().block_on(async {
        let server = TestServer::start().await.unwrap();
        for kind in [Kind::Reqwest, Kind::Isahc] {
            let pool = ConnectionPool::builder(driver(kind))
                .retry_policy(quick_retries(6))
                .retry_budget(RetryBudget::unlimited())
                .build()
                .unwrap();
            let mut retried = 0;
            for i in 0..20 {
                let body = format!("{i}:").repeat(200);
                let resp = pool
                    .send(
                        Request::put(server.url("/echo?faults=reset_mid_body:30"))
                            .header("x-case", i.to_string())
                            .body(body.clone()),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.text().unwrap(), body, "{kind:?}: case {i}");
                assert_eq!(resp.headers()["x-echo-method"], "PUT");
                assert_eq!(resp.headers()["x-echo-x-case"], i.to_string().as_str());
                if resp.retry_info().unwrap().attempts > 1 {
                    retried += 1;
                }
            }
            assert!(
                retried > 0,
                "{kind:?}: some attempts were reset and retried"
            );
        }
        server.shutdown().await;
    });
}

/// 1 (every error retried, the same `req` resent blindly): a POST that is
/// not marked retry-safe is sent exactly once even when the server answers
/// `503` — it may have been applied — and comes back as is; marked
/// retry-safe, it is retried. wiremock checks the counts.
#[test]
fn d01d_a_post_that_may_have_been_applied_is_not_resent() {
    let _serial = serial();
    runtime().block_on(async {
        for kind in [Kind::Reqwest, Kind::Isahc] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/unsafe"))
                .respond_with(ResponseTemplate::new(503))
                .expect(1)
                .named("unsafe POST: one attempt only")
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .and(path("/safe"))
                .respond_with(ResponseTemplate::new(503))
                .expect(3)
                .named("retry-safe POST: one attempt and two retries")
                .mount(&server)
                .await;
            let pool = ConnectionPool::builder(driver(kind))
                .retry_policy(quick_retries(2))
                .build()
                .unwrap();
            let url = |p: &str| format!("{}{p}", server.uri());
            let resp = pool
                .send(Request::post(url("/unsafe")).body("charge 10 EUR"))
                .await
                .unwrap();
            assert_eq!(resp.status(), 503, "{kind:?}: returned as is");
            assert_eq!(pool.stats().not_retried_unsafe, 1, "{kind:?}");
            let resp = pool
                .send(
                    Request::post(url("/safe"))
                        .body("idempotent")
                        .retry_safe(true),
                )
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                503,
                "{kind:?}: the last answer after the retries"
            );
            assert_eq!(resp.retry_info().unwrap().attempts, 3);
            server.verify().await;
        }
    });
}

// ---------------------------------------------------------------------------
// 2. The integration benchmark reuses requests after closing responses.
// ---------------------------------------------------------------------------

/// The same requests can be run again and again: a request is a value the
/// caller keeps (a cheap clone per run), never recycled under it.
#[test]
fn d02_the_same_requests_can_be_run_again_after_their_responses_are_dropped() {
    let _serial = serial();
    runtime().block_on(async {
        let server = TestServer::start().await.unwrap();
        let exec = BatchExecutor::new(driver(Kind::Reqwest), 16).unwrap();
        let requests: Vec<Request> = (0..100)
            .map(|i| {
                Request::post(server.url("/echo"))
                    .body(format!("r{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        for round in 0..3 {
            let result = exec
                .execute_batch(requests.iter().map(|r| r.try_clone().unwrap()))
                .await;
            for (i, resp) in result.successes() {
                assert_eq!(resp.text().unwrap(), format!("r{i}"), "round {round}");
            }
            assert_eq!(result.succeeded, 100, "round {round}");
            drop(result); // the responses go; the requests stay usable
        }
        assert_eq!(server.stats().requests, 300);
        server.shutdown().await;
    });
}

// ---------------------------------------------------------------------------
// 3–8. Stats that lie.
// ---------------------------------------------------------------------------

/// 3: attempts and failures are counted on one scale (per attempt /
/// per request), so the success rate stays in `[0, 1]` — here 0, not −3 —
/// and failed health probes are counted apart.
#[tokio::test(start_paused = true)]
async fn d03_success_rate_never_negative() {
    let mock = MockDriver::new()
        .route("http://down.test", Behavior::refused())
        .route("http://up.test", Behavior::ok());
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(quick_retries(3))
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    pool.enable_health_check_with(
        HealthCheck::builder(["http://down.test"], Duration::from_secs(1))
            .thresholds(100, 1)
            .build()
            .unwrap(),
    )
    .unwrap();
    for _ in 0..10 {
        let err = pool.send("http://down.test/x").await.unwrap_err();
        assert!(
            matches!(err, Error::RetriesExhausted { attempts: 4, .. }),
            "{err}"
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = pool.stats();
    assert_eq!((s.requests, s.attempts, s.failed), (10, 40, 10));
    assert!(s.probe_failures >= 5, "{s:?}");
    assert_eq!(s.success_rate(), 0.0);
    for _ in 0..30 {
        pool.send("http://up.test/x").await.unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.success_rate(), 30.0 / 40.0);
    assert!((0.0..=1.0).contains(&s.success_rate()));
    assert_eq!(s.attempts_per_request(), 70.0 / 40.0);
}

/// 4 (ActiveConnections only grows): the in-flight gauge goes up while
/// requests run and back to zero when they end.
#[tokio::test(start_paused = true)]
async fn d04a_in_flight_gauge_goes_back_down() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(1)));
    let exec = BatchExecutor::new(ConnectionPool::new(mock), 5).unwrap();
    let (result, during) = tokio::join!(exec.execute_batch(mock_urls(5)), async {
        tokio::time::sleep(ms(500)).await;
        (exec.in_flight(), exec.driver().stats().in_flight)
    });
    assert_eq!(during, (5, 5));
    assert_eq!(result.succeeded, 5);
    assert_eq!((exec.in_flight(), exec.driver().stats().in_flight), (0, 0));
}

/// 4 (TotalConnections counts warm-ups only): connection counts are real —
/// what the driver opened, equal to what the server accepted, warm-up and
/// traffic alike.
#[test]
fn d04b_connections_opened_counts_real_connections() {
    let _serial = serial();
    runtime().block_on(async {
        let server = TestServer::start().await.unwrap();
        let pool = ConnectionPool::new(driver(Kind::Reqwest));
        let report = pool
            .warmup_connections([server.base_url()], 4)
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(
            report.connections_opened,
            Some(server.stats().connections_accepted)
        );
        let exec = BatchExecutor::new(pool, 8).unwrap();
        let result = exec
            .execute_batch((0..200).map(|i| server.url(&format!("/c/{i}?delay_ms=2"))))
            .await;
        assert_eq!(result.succeeded, 200);
        let s = exec.driver().stats();
        assert_eq!(
            s.connections_opened,
            Some(server.stats().connections_accepted)
        );
        // About the workers (hyper may open a few extra when a request
        // starts connecting just before an idle connection frees up), far
        // from one per request.
        assert!(
            server.stats().connections_accepted <= 2 * 8,
            "{:?}",
            server.stats()
        );
        assert_eq!(s.warmup_requests, 4);
        assert_eq!(s.requests, 200, "warm-ups are not traffic");
        server.shutdown().await;
    });
}

/// 5: a request that had to wait is counted as throttled, and the queue
/// length is the number of waiters (not the tokens left).
#[tokio::test(start_paused = true)]
async fn d05_throttled_and_queue_len_are_counted() {
    let mock = MockDriver::new();
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(10).unwrap());
    let exec = BatchExecutor::new(limited, 5).unwrap();
    let (result, queued) = tokio::join!(exec.execute_batch(mock_urls(5)), async {
        tokio::time::sleep(ms(50)).await;
        exec.driver().stats().limiter.queue_len
    });
    assert_eq!(result.succeeded, 5);
    assert_eq!(queued, 4, "four requests were waiting for a permit");
    let s = exec.driver().stats().limiter;
    assert_eq!(
        (s.requests, s.granted, s.throttled, s.queue_len),
        (5, 5, 4, 0)
    );
    assert_eq!(s.peak_queue_len, 4);
    assert_eq!(s.throttle_rate(), 0.8);
    assert_eq!(s.max_wait, ms(400));
}

/// 6: every rate is 0 (or the documented neutral value), never NaN, when
/// nothing has happened — before any request and right after a reset.
#[tokio::test(start_paused = true)]
async fn d06_error_rate_not_nan_after_reset() {
    let limited = RateLimitedExecutor::new(MockDriver::new(), Quota::per_second(100).unwrap());
    let exec = BatchExecutor::new(ConnectionPool::new(limited), 4).unwrap();
    let check = |when: &str| {
        let b = exec.stats();
        assert_eq!((b.error_rate, b.throughput), (0.0, 0.0), "{when}");
        let p = exec.driver().stats();
        assert_eq!(p.success_rate(), 1.0, "{when}");
        assert_eq!(p.attempts_per_request(), 1.0, "{when}");
        let l = exec.driver().inner().stats().limiter;
        assert_eq!(l.throttle_rate(), 0.0, "{when}");
        assert_eq!(l.mean_wait(), Duration::ZERO, "{when}");
    };
    check("fresh");
    exec.execute_batch(mock_urls(10)).await;
    assert!(exec.stats().throughput > 0.0);
    exec.reset_stats();
    exec.driver().reset_stats();
    exec.driver().inner().reset_stats();
    check("after reset");
}

/// 7 (AverageDuration is not a latency): latency is measured per request —
/// ten 100 ms requests in parallel have a mean latency of 100 ms, not the
/// batch's wall time divided by ten.
#[tokio::test(start_paused = true)]
async fn d07a_latency_is_measured_per_request() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(ms(100)));
    let exec = BatchExecutor::new(mock, 10).unwrap();
    let result = exec.execute_batch(mock_urls(10)).await;
    assert_eq!(result.duration, ms(100));
    let lat = exec.stats().latency;
    assert_eq!(lat.count, 10);
    assert_eq!((lat.mean, lat.max), (ms(100), ms(100)));
    assert!(lat.p50 >= ms(99) && lat.p50 <= ms(101), "{lat:?}");
}

/// 7 (`Do` never counted): single calls through the executor are counted
/// like batch items.
#[tokio::test(start_paused = true)]
async fn d07b_single_calls_are_counted() {
    let exec = BatchExecutor::new(MockDriver::new(), 4).unwrap();
    exec.send("http://mock.test/one").await.unwrap();
    exec.execute_batch(mock_urls(2)).await;
    let s = exec.stats();
    assert_eq!((s.requests, s.completed), (3, 3));
}

/// 8: after `stop`, health checks cannot be re-enabled behind the stats'
/// back; the stats say no checker runs, and none does.
#[tokio::test(start_paused = true)]
async fn d08_health_check_state_is_truthful_after_stop() {
    let pool = ConnectionPool::new(MockDriver::new());
    pool.enable_health_check(["http://mock.test"], Duration::from_secs(1))
        .unwrap();
    assert!(pool.health_checker_running());
    assert!(pool.stats().health_check.is_some());
    pool.stop();
    let again = pool.enable_health_check(["http://mock.test"], Duration::from_secs(1));
    assert!(matches!(again, Err(Error::Stopped { .. })), "{again:?}");
    tokio::time::sleep(ms(10)).await;
    assert!(!pool.health_checker_running());
    let s = pool.stats();
    assert_eq!(s.health_check, None);
    assert!(s.stopped);
}

// ---------------------------------------------------------------------------
// 9–10. Rate limiter.
// ---------------------------------------------------------------------------

/// 9 (waiters stranded): changing the quota while requests wait for
/// permits reschedules them at the new rate; nobody hangs.
#[tokio::test(start_paused = true)]
async fn d09a_set_quota_does_not_strand_waiters() {
    let mock = MockDriver::new();
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(1).unwrap());
    let exec = BatchExecutor::new(limited, 20).unwrap();
    let t0 = Instant::now();
    let (result, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), exec.execute_batch(mock_urls(20))),
        async {
            tokio::time::sleep(ms(2_500)).await;
            exec.driver().set_quota(Quota::per_second(10).unwrap());
        }
    );
    let result = result.expect("nobody is stranded");
    assert_eq!(result.succeeded, 20);
    let calls: Vec<Duration> = mock.calls().iter().map(|c| c.at - t0).collect();
    assert_eq!(&calls[..3], &[ms(0), ms(1_000), ms(2_000)]);
    // The other 17 follow the new period from the change on: 1.7 s, not 17.
    assert!(calls[3] >= ms(2_500), "{calls:?}");
    for pair in calls[3..].windows(2) {
        assert!(
            pair[1] - pair[0] >= ms(100),
            "no burst after the change: {calls:?}"
        );
    }
    assert!(
        result.duration <= ms(2_500 + 1_800),
        "{:?}",
        result.duration
    );
}

/// 9 (each `UpdateRate` grants a fresh burst): re-applying a quota any
/// number of times hands out no new permits.
#[tokio::test(start_paused = true)]
async fn d09b_set_quota_does_not_grant_a_fresh_burst() {
    let mock = MockDriver::new();
    let quota = Quota::per_second(10).unwrap().burst(5).unwrap();
    let limited = RateLimitedExecutor::new(mock.clone(), quota);
    let exec = BatchExecutor::new(limited, 20).unwrap();
    let t0 = Instant::now();
    exec.execute_batch(mock_urls(5)).await; // spends the burst at t0
    for _ in 0..10 {
        exec.driver().set_quota(quota);
        exec.driver()
            .set_quota(Quota::per_second(10).unwrap().burst(5).unwrap());
    }
    let result = exec.execute_batch(mock_urls(10)).await;
    assert_eq!(result.succeeded, 10);
    let calls: Vec<Duration> = mock.calls().iter().map(|c| c.at - t0).collect();
    let expected: Vec<Duration> = [0; 5]
        .into_iter()
        .chain((1..=10).map(|k| k * 100))
        .map(ms)
        .collect();
    assert_eq!(calls, expected, "after the burst, one permit per 100 ms");
    assert_eq!(exec.driver().stats().limiter.granted, 15);
}

/// 10: nothing runs in the background that could leak. The limiter has no
/// task at all; the only task in the chain is the pool's health checker,
/// and dropping the chain (without calling `stop`) ends it.
#[tokio::test(start_paused = true)]
async fn d10_no_background_task_leaks() {
    let base = alive_tasks();
    {
        let mock = MockDriver::new();
        let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(100).unwrap());
        let exec = BatchExecutor::new(ConnectionPool::new(limited), 8).unwrap();
        let (result, during) = tokio::join!(exec.execute_batch(mock_urls(50)), async {
            tokio::time::sleep(ms(100)).await;
            alive_tasks()
        });
        assert_eq!(result.succeeded, 50);
        assert_eq!(
            during, base,
            "batch, pool and limiter run no task of their own"
        );
        exec.driver()
            .enable_health_check(["http://mock.test"], Duration::from_secs(1))
            .unwrap();
        exec.driver()
            .enable_health_check(["http://mock.test"], Duration::from_secs(2))
            .unwrap();
        assert_eq!(
            alive_tasks(),
            base + 1,
            "one checker, however often enabled"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    } // dropped without stop()
    assert_eq!(settle_tasks(base).await, base);
}

// ---------------------------------------------------------------------------
// 11. Health-check races and leaks.
// ---------------------------------------------------------------------------

fn probes_of(mock: &MockDriver, host: &str) -> Vec<Duration> {
    let t0 = mock.calls().first().map(|c| c.at);
    mock.calls()
        .iter()
        .filter(|c| c.uri.host() == Some(host))
        .map(|c| c.at - t0.unwrap())
        .collect()
}

/// 11 (Disable + Enable leaves two loops): one checker loop per pool, so
/// enable / disable / enable probes at one interval, not twice as often.
#[tokio::test(start_paused = true)]
async fn d11a_enable_disable_enable_runs_one_checker_loop() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(mock.clone());
    let base = alive_tasks();
    let check = || {
        HealthCheck::builder(["http://a.test"], Duration::from_secs(1))
            .jitter(0.0)
            .build()
            .unwrap()
    };
    pool.enable_health_check_with(check()).unwrap();
    pool.disable_health_check();
    pool.enable_health_check_with(check()).unwrap();
    assert_eq!(alive_tasks(), base + 1);
    tokio::time::sleep(ms(10_500)).await;
    let probes = probes_of(&mock, "a.test");
    let expected: Vec<Duration> = (0..=10).map(|s| ms(s * 1_000)).collect();
    assert_eq!(probes, expected, "one probe per second from one loop");
    assert_eq!(pool.stats().probes, 11);
}

/// 11 (hosts and interval read without the lock): reconfiguring a running
/// checker switches hosts and interval together, at once.
#[tokio::test(start_paused = true)]
async fn d11b_reconfiguring_switches_hosts_and_interval_together() {
    let mock = MockDriver::new();
    let pool = ConnectionPool::new(mock.clone());
    let check = |host: &str, secs: u64| {
        HealthCheck::builder([host], Duration::from_secs(secs))
            .jitter(0.0)
            .build()
            .unwrap()
    };
    pool.enable_health_check_with(check("http://a.test", 1))
        .unwrap();
    tokio::time::sleep(ms(2_500)).await;
    pool.enable_health_check_with(check("http://b.test", 2))
        .unwrap();
    tokio::time::sleep(ms(6_600)).await; // until t = 9.1 s
    assert_eq!(probes_of(&mock, "a.test"), [ms(0), ms(1_000), ms(2_000)]);
    let t0 = mock.calls()[0].at;
    let b: Vec<Duration> = mock
        .calls()
        .iter()
        .filter(|c| c.uri.host() == Some("b.test"))
        .map(|c| c.at - t0)
        .collect();
    assert_eq!(b, [ms(2_500), ms(4_500), ms(6_500), ms(8_500)]);
    assert_eq!(pool.stats().health_check, Some((1, Duration::from_secs(2))));
}

/// 11 (`interval <= 0` panics in a goroutine): a zero interval is a
/// configuration error returned to the caller; nothing starts.
#[tokio::test(start_paused = true)]
async fn d11c_zero_interval_is_a_config_error() {
    let pool = ConnectionPool::new(MockDriver::new());
    let err = pool
        .enable_health_check(["http://a.test"], Duration::ZERO)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(c) if c.field == "interval"),
        "{err}"
    );
    assert!(!pool.health_checker_running());
    let err = HealthCheck::builder(["http://a.test"], Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field, "interval");
}

// ---------------------------------------------------------------------------
// 12. Cancellation.
// ---------------------------------------------------------------------------

/// 12 (in-flight calls cannot be stopped): cancelling a batch abandons the
/// requests at the driver — the server sees their connections close while
/// the chain is still alive. reqwest against a server that never answers;
/// isahc (which notices cancellation on curl's next callback, see its docs)
/// against one that drips its body.
#[test]
fn d12a_cancel_stops_requests_in_flight_at_the_driver() {
    let _serial = serial();
    runtime().block_on(async {
        for (kind, fault) in [
            (Kind::Reqwest, "fault=never"),
            (Kind::Isahc, "fault=drip&drip_ms=50&body_size=100000"),
        ] {
            let server = TestServer::start().await.unwrap();
            let exec = BatchExecutor::new(ConnectionPool::new(driver(kind)), 8).unwrap();
            let token = CancellationToken::new();
            let options = BatchOptions::builder()
                .cancel_token(token.clone())
                .request_timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let urls = (0..8).map(|i| server.url(&format!("/hang/{i}?{fault}")));
            let (result, ()) = tokio::join!(exec.execute_batch_with(urls, options), async {
                let all_in =
                    common::eventually(Duration::from_secs(20), || server.stats().requests == 8)
                        .await;
                assert!(all_in, "{kind:?}: {:?}", server.stats());
                token.cancel();
            });
            assert_eq!(result.failed, 8, "{kind:?}");
            assert!(
                result
                    .failures()
                    .all(|(_, e)| matches!(e, Error::Cancelled))
            );
            assert!(
                server.wait_connections_closed(Duration::from_secs(2)).await,
                "{kind:?}: connections still open: {:?}",
                server.stats()
            );
            assert_eq!(exec.driver().stats().in_flight, 0);
            drop(exec);
            server.shutdown().await;
        }
    });
}

/// 12 (the batch ctx never reaches the token wait): cancelling a batch
/// reaches requests waiting for a permit — they leave the queue at once and
/// are never sent afterwards.
#[tokio::test(start_paused = true)]
async fn d12b_cancellation_reaches_the_permit_wait() {
    let mock = MockDriver::new();
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(10).unwrap());
    let exec = BatchExecutor::new(ConnectionPool::new(limited), 4).unwrap();
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let (result, ()) = tokio::join!(exec.execute_batch_with(mock_urls(40), options), async {
        tokio::time::sleep(ms(1_050)).await;
        token.cancel();
    });
    assert_eq!(result.duration, ms(1_050), "returned at the cancel");
    assert_eq!(result.succeeded, 11, "grants at 0, 100, …, 1000 ms");
    assert_eq!(result.failed, 4, "the four waiting for a permit");
    assert!(
        result
            .failures()
            .all(|(_, e)| matches!(e, Error::Cancelled))
    );
    assert_eq!(result.not_started, 25);
    let limiter = exec.driver().inner().stats().limiter;
    assert_eq!((limiter.queue_len, limiter.cancelled), (0, 4));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(mock.call_count(), 11, "nothing is sent after the cancel");
    assert!(mock.calls().iter().all(|c| c.at - t0 <= ms(1_000)));
}

/// 12 (a worker's `select` picks at random between a closed ctx and ready
/// work): cancellation wins every time — a batch whose token is already
/// cancelled sends nothing, run after run.
#[tokio::test(start_paused = true)]
async fn d12c_cancellation_wins_over_ready_work_every_time() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 64).unwrap();
    let token = CancellationToken::new();
    token.cancel();
    for _ in 0..200 {
        let options = BatchOptions::builder()
            .cancel_token(token.clone())
            .build()
            .unwrap();
        let result = exec.execute_batch_with(mock_urls(50), options).await;
        assert_eq!(result.not_started, 50);
        assert!(result.unstarted().all(|(_, r)| r == StopReason::Cancelled));
    }
    assert_eq!(mock.call_count(), 0);
}

/// 12 (a finished response dropped without Close leaks its connection):
/// responses finished before a cancel are kept with their bodies read, and
/// the connections go back to the driver — the next batch reuses them
/// instead of opening more.
#[test]
fn d12d_finished_responses_keep_their_bodies_and_free_their_connections() {
    let _serial = serial();
    runtime().block_on(async {
        let server = TestServer::start().await.unwrap();
        let exec = BatchExecutor::new(driver(Kind::Reqwest), 4).unwrap();
        let token = CancellationToken::new();
        let options = BatchOptions::builder()
            .cancel_token(token.clone())
            .build()
            .unwrap();
        let urls = (0..400).map(|i| server.url(&format!("/d/{i}?body_size=65536&delay_ms=5")));
        let (result, ()) = tokio::join!(exec.execute_batch_with(urls, options), async {
            assert!(
                common::eventually(Duration::from_secs(30), || server.stats().requests >= 40).await,
                "40 requests reached the server before the cancel"
            );
            token.cancel();
        });
        assert!(
            result.succeeded >= 36 && result.not_started > 0,
            "{} succeeded, {} failed, {} not started",
            result.succeeded,
            result.failed,
            result.not_started
        );
        for (_, resp) in result.successes() {
            assert_eq!(resp.bytes().len(), 65_536, "bodies were read in full");
        }
        let after_cancel = server.stats().connections_accepted;
        let again = exec
            .execute_batch((0..200).map(|i| server.url(&format!("/e/{i}?body_size=65536"))))
            .await;
        assert_eq!(again.succeeded, 200);
        let s = server.stats();
        // Leaked connections would mean one new connection per request
        // (200); reuse means a handful (4 workers, plus hyper's occasional
        // extra connect).
        assert!(
            s.connections_accepted <= after_cancel + 2 * 4,
            "connections were reused, not leaked: {after_cancel} then {s:?}"
        );
        drop(exec);
        assert!(server.wait_connections_closed(Duration::from_secs(2)).await);
        server.shutdown().await;
    });
}

// ---------------------------------------------------------------------------
// 13. Stop does not drain.
// ---------------------------------------------------------------------------

/// 13 (`ConnectionPool.Stop` affects neither `Do` nor the retry sleeps):
/// stopping the pool wakes a request sleeping out a `Retry-After` at once
/// (it returns its last outcome), and later calls are refused.
#[tokio::test(start_paused = true)]
async fn d13a_pool_stop_wakes_retry_sleeps_and_refuses_new_calls() {
    let mock =
        MockDriver::new().default_behavior(Behavior::status(503).header("retry-after", "10"));
    let exec = BatchExecutor::new(ConnectionPool::new(mock.clone()), 4).unwrap();
    let t0 = Instant::now();
    let (result, ()) = tokio::join!(exec.execute_batch(mock_urls(2)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        exec.driver().stop();
    });
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "woken at the stop");
    for (_, resp) in result.successes() {
        assert_eq!(resp.status(), 503, "the last outcome comes back");
    }
    assert_eq!(result.succeeded, 2);
    assert_eq!(mock.call_count(), 2, "no retry after the stop");
    let late = exec.send("http://mock.test/late").await;
    assert!(matches!(late, Err(Error::Stopped { .. })), "{late:?}");
    assert_eq!(mock.call_count(), 2);
}

/// 13 (the limiter's `Stop` neither drains nor wakes): stopping the
/// limiter wakes every waiter with `Stopped` at once.
#[tokio::test(start_paused = true)]
async fn d13b_limiter_stop_wakes_every_waiter() {
    let mock = MockDriver::new();
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(1).unwrap());
    let exec = BatchExecutor::new(limited, 10).unwrap();
    let (result, ()) = tokio::join!(exec.execute_batch(mock_urls(10)), async {
        tokio::time::sleep(ms(500)).await;
        exec.driver().stop();
    });
    assert_eq!(result.duration, ms(500));
    assert_eq!(result.succeeded, 1);
    assert_eq!(result.failed, 9);
    assert!(
        result
            .failures()
            .all(|(_, e)| matches!(e, Error::Stopped { .. }))
    );
    assert_eq!(exec.driver().stats().limiter.stopped, 9);
    assert_eq!(mock.call_count(), 1);
}

/// 13 (no graceful drain): the batch executor's shutdown lets requests in
/// flight finish normally, starts nothing new, and returns when they are
/// done.
#[tokio::test(start_paused = true)]
async fn d13c_batch_shutdown_drains_requests_in_flight() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(1)));
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let t0 = Instant::now();
    let (result, drained_at) = tokio::join!(exec.execute_batch(mock_urls(10)), async {
        tokio::time::sleep(ms(500)).await;
        exec.shutdown().await;
        t0.elapsed()
    });
    assert_eq!(drained_at, Duration::from_secs(1));
    assert_eq!(
        result.succeeded, 4,
        "in flight at the shutdown: finished normally"
    );
    assert_eq!(result.not_started, 6);
    assert_eq!(result.stopped, Some(StopReason::Shutdown));
    assert_eq!(mock.call_count(), 4);
    let again = exec.shutdown_timeout(ms(10)).await;
    assert_eq!(again, ShutdownOutcome::Drained);
}

// ---------------------------------------------------------------------------
// 14–15. Batch execution.
// ---------------------------------------------------------------------------

/// 14: a batch of far more than 200 requests to one host finishes — bodies
/// are read inside the driver, so no held response pins a connection.
/// 1,000 requests on 300 workers, both drivers.
#[test]
fn d14_batch_over_200_to_one_host_does_not_stall() {
    let _serial = serial();
    runtime().block_on(async {
        for kind in [Kind::Reqwest, Kind::Isahc] {
            let server = TestServer::start().await.unwrap();
            let exec = BatchExecutor::builder(driver(kind))
                .workers(300)
                .request_timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let result = tokio::time::timeout(
                Duration::from_secs(60),
                exec.execute_batch(
                    (0..1_000).map(|i| server.url(&format!("/big/{i}?body_size=4096&delay_ms=5"))),
                ),
            )
            .await
            .unwrap_or_else(|_| panic!("{kind:?}: the batch stalled"));
            assert_eq!(
                result.succeeded,
                1_000,
                "{kind:?}: {:?}",
                exec.stats().errors_by_kind
            );
            assert!(result.responses().all(|r| r.bytes().len() == 4_096));
            // All 1,000 responses are held here and no connection is: the
            // connections opened number about the workers (300), never the
            // responses held (pinned connections would need 1,000). hyper
            // opens some more than the workers — 10–35 % here — when a
            // request starts connecting just before a finished connection
            // is back in its idle pool; hence the bound of twice the workers.
            let s = server.stats();
            eprintln!("{kind:?}: {s:?}");
            assert!(s.connections_accepted < 600, "{kind:?}: {s:?}");
            if kind == Kind::Reqwest {
                assert_eq!(
                    exec.driver().connections_opened(),
                    Some(s.connections_accepted)
                );
            }
            drop(exec);
            server.shutdown().await;
        }
    });
}

/// 15 (`maxWorkers` goroutines for any batch): a batch spawns no task at
/// all, whatever the worker limit.
#[tokio::test(start_paused = true)]
async fn d15a_a_tiny_batch_spawns_no_workers() {
    let base = alive_tasks();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let mock = MockDriver::new().handler(move |_, _| {
        seen2.lock().unwrap().push(alive_tasks());
        Behavior::ok()
    });
    let exec = BatchExecutor::new(mock, 10_000).unwrap();
    for n in [1, 3] {
        assert_eq!(exec.execute_batch(mock_urls(n)).await.succeeded, n);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![base; 4]);
}

/// 15 (a panic in `Do` kills the process): caught, reported in its slot,
/// the rest of the batch runs.
#[tokio::test(start_paused = true)]
async fn d15b_a_driver_panic_is_contained_in_its_slot() {
    // Keep this expected panic out of the output; others print as usual.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<String>().map(String::as_str) != Some("d15b boom") {
                default(info);
            }
        }));
    });
    let mock = MockDriver::new().route("http://mock.test/3", Behavior::panic("d15b boom"));
    let exec = BatchExecutor::new(ConnectionPool::new(mock), 4).unwrap();
    let result = exec.execute_batch(mock_urls(6)).await;
    assert_eq!(result.succeeded, 5);
    assert!(
        matches!(result.items[3].outcome.error(), Some(Error::Panicked { message }) if message == "d15b boom")
    );
    assert_eq!(exec.stats().errors_by_kind.get("panicked"), Some(&1));
    assert_eq!(exec.execute_batch(mock_urls(2)).await.succeeded, 2);
}

/// 15 (a `nil` request panics): an input that is not a request — an
/// error, a bad URL, an unsupported scheme — gets its own error slot; the
/// rest run.
#[tokio::test(start_paused = true)]
async fn d15c_nil_or_bad_request_gets_its_own_slot() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let inputs: Vec<Result<Request, Error>> = vec![
        Request::get("http://mock.test/0").build(),
        Err(Error::invalid_request("no request here (Go: nil)")),
        Request::get("not a url").build(),
        Request::get("ftp://mock.test/3").build(),
        Request::get("http://mock.test/4").build(),
    ];
    let result = exec.execute_batch(inputs).await;
    assert_eq!(result.len(), 5);
    for i in [1, 2, 3] {
        assert!(
            matches!(
                result.items[i].outcome,
                Outcome::Error(Error::InvalidRequest { .. })
            ),
            "slot {i}: {:?}",
            result.items[i].outcome
        );
    }
    assert_eq!(result.succeeded, 2);
    assert_eq!(exec.stats().invalid_inputs, 3);
    assert_eq!(mock.call_count(), 2);
}

/// 15 (after an error the slot's request belongs to someone else): every
/// slot holds the outcome of its own input — failures and successes
/// interleaved through the whole chain stay where they belong.
#[tokio::test(start_paused = true)]
async fn d15d_error_slots_belong_to_their_own_input() {
    let mock = MockDriver::new().handler(|req, _| {
        let i: usize = req.uri().path()[1..].parse().unwrap();
        if i % 3 == 0 {
            Behavior::refused().after(ms(i as u64 % 7))
        } else {
            Behavior::ok()
                .body(format!("answer {i}"))
                .after(ms(i as u64 % 5))
        }
    });
    let limited = RateLimitedExecutor::new(mock, Quota::per_second(1_000).unwrap());
    let pool = ConnectionPool::builder(limited)
        .retry_policy(quick_retries(1))
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let exec = BatchExecutor::new(pool, 16).unwrap();
    let result = exec.execute_batch(mock_urls(300)).await;
    for (i, item) in result.iter().enumerate() {
        if i % 3 == 0 {
            match item.outcome.error() {
                Some(Error::RetriesExhausted { attempts: 2, last }) => assert!(
                    matches!(
                        **last,
                        Error::Connect {
                            kind: ConnectKind::Refused,
                            ..
                        }
                    ),
                    "slot {i}: {last}"
                ),
                other => panic!("slot {i}: {other:?}"),
            }
        } else {
            let resp = item.outcome.response().expect("a response");
            assert_eq!(resp.text().unwrap(), format!("answer {i}"));
        }
    }
}

// ---------------------------------------------------------------------------
// 16. Edge cases.
// ---------------------------------------------------------------------------

/// 16 (`SetRetryPolicy(-1, …)` returns "failed after 0 attempts:
/// %!w(<nil>)"): the fewest retries there can be is zero, which means one
/// attempt and its real outcome, unwrapped.
#[tokio::test(start_paused = true)]
async fn d16a_zero_retries_means_one_attempt_with_the_real_outcome() {
    let mock = MockDriver::new().default_behavior(Behavior::refused());
    let pool = ConnectionPool::new(mock.clone());
    pool.set_retry_policy(0, ms(100)).unwrap();
    let err = pool.send("http://mock.test/x").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connect {
                kind: ConnectKind::Refused,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(mock.call_count(), 1);
    let s = pool.stats();
    assert_eq!((s.requests, s.attempts, s.failed), (1, 1, 1));
    // The Go call's -1 cannot even be written: the count is unsigned.
    let err = pool
        .set_retry_policy(MAX_RETRIES_LIMIT + 1, ms(100))
        .unwrap_err();
    assert_eq!(err.field, "max_retries");
}

/// 16 (Pool inside the limiter: one token becomes maxRetries+1 requests):
/// in the recommended order every attempt spends a permit; the Go order is
/// still possible and counts what it does honestly.
#[tokio::test(start_paused = true)]
async fn d16b_every_attempt_spends_a_permit_in_the_recommended_order() {
    let flaky = || {
        MockDriver::new().handler(|_, i| {
            if i % 3 == 2 {
                Behavior::ok()
            } else {
                Behavior::status(503)
            }
        })
    };
    let quota = Quota::per_second(100).unwrap();

    let mock = flaky();
    let limited = RateLimitedExecutor::new(mock.clone(), quota);
    let pool = ConnectionPool::builder(limited)
        .retry_policy(quick_retries(3))
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    // One worker, so every request sees exactly 503, 503, 200.
    let exec = BatchExecutor::new(pool, 1).unwrap();
    assert_eq!(exec.execute_batch(mock_urls(10)).await.succeeded, 10);
    assert_eq!(mock.call_count(), 30);
    assert_eq!(
        exec.driver().inner().stats().limiter.granted,
        30,
        "a permit per attempt"
    );

    let mock = flaky();
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(quick_retries(3))
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let exec = BatchExecutor::new(RateLimitedExecutor::new(pool, quota), 1).unwrap();
    assert_eq!(exec.execute_batch(mock_urls(10)).await.succeeded, 10);
    assert_eq!(mock.call_count(), 30);
    assert_eq!(
        exec.driver().stats().limiter.granted,
        10,
        "Go order: a permit per request"
    );
    assert_eq!(exec.driver().inner().stats().attempts, 30);
}

/// 16 (negative `connectionsPerHost` panics in `make`, and every other
/// nonsensical setting): zero, negative (where the type allows it), NaN
/// and out-of-range values are `ConfigError`s naming the field — never a
/// panic, never a silent default.
#[tokio::test(start_paused = true)]
async fn d16c_negative_or_zero_settings_are_config_errors() {
    fn field<T>(r: Result<T, httpclient_core::ConfigError>) -> &'static str {
        match r {
            Err(e) => e.field,
            Ok(_) => panic!("accepted a setting that cannot work"),
        }
    }
    let mock = MockDriver::new;
    // batch
    assert_eq!(field(BatchExecutor::new(mock(), 0)), "workers");
    assert_eq!(
        field(
            BatchExecutor::builder(mock())
                .request_timeout(Duration::ZERO)
                .build()
        ),
        "request_timeout"
    );
    assert_eq!(
        field(
            BatchOptions::builder()
                .request_timeout(Duration::ZERO)
                .build()
        ),
        "request_timeout"
    );
    let exec = BatchExecutor::new(mock(), 1).unwrap();
    assert_eq!(
        field(
            exec.execute_stream_ordered(futures::stream::iter(mock_urls(1)), 0)
                .map(|_| ())
        ),
        "window"
    );
    // rate limit
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(field(Quota::per_second(bad)), "rate", "{bad}");
    }
    assert_eq!(field(Quota::per_second(10).unwrap().burst(0)), "burst");
    assert_eq!(field(Quota::new(0, Duration::from_secs(1))), "count");
    assert_eq!(field(Quota::with_period(Duration::ZERO)), "period");
    // retry policy and budget
    let p = RetryPolicy::builder;
    assert_eq!(
        field(p().max_retries(MAX_RETRIES_LIMIT + 1).build()),
        "max_retries"
    );
    assert_eq!(
        field(p().base_delay(ms(500)).max_delay(ms(100)).build()),
        "base_delay"
    );
    for m in [0.5, -2.0, f64::NAN, f64::INFINITY] {
        assert_eq!(field(p().multiplier(m).build()), "multiplier", "{m}");
    }
    assert_eq!(
        field(p().total_deadline(Duration::ZERO).build()),
        "total_deadline"
    );
    assert_eq!(
        field(p().attempt_timeout(Duration::ZERO).build()),
        "attempt_timeout"
    );
    assert_eq!(field(p().retry_statuses([200]).build()), "retry_statuses");
    for r in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(
            RetryBudget::new(r, 10, Duration::from_secs(10)).is_err(),
            "{r}"
        );
    }
    assert!(RetryBudget::new(0.2, 10, Duration::ZERO).is_err());
    // pool
    assert_eq!(
        field(ConnectionPool::builder(mock()).per_host_limit(0).build()),
        "per_host_limit"
    );
    assert_eq!(
        field(OutlierDetection::new(0, Duration::from_secs(1))),
        "consecutive_failures"
    );
    assert_eq!(field(OutlierDetection::new(3, Duration::ZERO)), "cool_down");
    let pool = ConnectionPool::new(mock());
    for per_host in [0, MAX_WARMUP_PER_HOST + 1] {
        let err = pool
            .warmup_connections(["http://mock.test"], per_host)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config(c) if c.field == "per_host"),
            "{err}"
        );
    }
    let err = pool
        .warmup_connections_with(["http://mock.test"], Warmup::new(1).timeout(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(c) if c.field == "timeout"),
        "{err}"
    );
    for (b, f) in [
        (
            HealthCheck::builder(["http://h.test"], Duration::ZERO),
            "interval",
        ),
        (
            HealthCheck::builder(["http://h.test"], ms(100)).timeout(Duration::ZERO),
            "timeout",
        ),
        (
            HealthCheck::builder(["http://h.test"], ms(100)).thresholds(0, 1),
            "unhealthy_threshold",
        ),
        (
            HealthCheck::builder(["http://h.test"], ms(100)).jitter(f64::NAN),
            "jitter",
        ),
        (HealthCheck::builder(Vec::<String>::new(), ms(100)), "hosts"),
    ] {
        assert_eq!(field(b.build()), f);
    }
    // a request's own timeout and the drivers' settings
    let err = Request::get("http://mock.test/")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
    for r in [
        httpclient_driver_reqwest::ReqwestDriver::builder()
            .timeout(Duration::ZERO)
            .build()
            .map(drop),
        httpclient_driver_reqwest::ReqwestDriver::builder()
            .connect_timeout(Duration::ZERO)
            .build()
            .map(drop),
        httpclient_driver_isahc::IsahcDriver::builder()
            .timeout(Duration::ZERO)
            .build()
            .map(drop),
        httpclient_driver_isahc::IsahcDriver::builder()
            .connect_timeout(Duration::ZERO)
            .build()
            .map(drop),
    ] {
        assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
    }
}

// ---------------------------------------------------------------------------
// 17. The README overclaims.
// ---------------------------------------------------------------------------

/// 17 ("exponential backoff"): the delays between attempts double, up to
/// the cap; with jitter each stays within its exponential ceiling.
#[tokio::test(start_paused = true)]
async fn d17a_backoff_is_exponential() {
    let mock = MockDriver::new().default_behavior(Behavior::refused());
    let policy = |jitter| {
        RetryPolicy::builder()
            .max_retries(6)
            .base_delay(ms(100))
            .max_delay(ms(1_600))
            .jitter(jitter)
            .build()
            .unwrap()
    };
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(policy(Jitter::Off))
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    pool.send("http://mock.test/x").await.unwrap_err();
    let at: Vec<Duration> = mock
        .calls()
        .iter()
        .map(|c| c.at - mock.calls()[0].at)
        .collect();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [100, 200, 400, 800, 1_600, 1_600].map(ms));

    let mock = MockDriver::new().default_behavior(Behavior::refused());
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(policy(Jitter::Full))
        .retry_budget(RetryBudget::unlimited())
        .seed(7)
        .build()
        .unwrap();
    for _ in 0..20 {
        pool.send("http://mock.test/x").await.unwrap_err();
    }
    let calls = mock.calls();
    for attempt in calls.chunks(7) {
        for (k, w) in attempt.windows(2).enumerate() {
            let ceiling = pool.policy().backoff_ceiling(k as u32 + 1);
            assert!(
                w[1].at - w[0].at <= ceiling,
                "retry {} waited {:?}",
                k + 1,
                w[1].at - w[0].at
            );
        }
    }
}

/// 17 ("full context cancellation"): one cancel reaches every layer at
/// once — requests at the driver, in a backoff sleep, and queued for a
/// permit all end at the cancel instant, and nothing is sent after it.
#[tokio::test(start_paused = true)]
async fn d17b_cancellation_reaches_every_layer() {
    let mock = MockDriver::new().handler(|req, _| match req.uri().path() {
        "/0" | "/1" => Behavior::hang(),
        "/2" | "/3" => Behavior::status(503).header("retry-after", "30"),
        _ => Behavior::ok(),
    });
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(2).unwrap());
    let pool = ConnectionPool::builder(limited)
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let exec = BatchExecutor::new(pool, 8).unwrap();
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let (result, ()) = tokio::join!(exec.execute_batch_with(mock_urls(20), options), async {
        tokio::time::sleep(ms(2_100)).await;
        token.cancel();
    });
    assert_eq!(t0.elapsed(), ms(2_100), "returned at the cancel");
    assert_eq!(result.len(), 20);
    assert_eq!(mock.in_flight(), 0, "driver calls dropped");
    let pool = exec.driver();
    assert_eq!(pool.stats().in_flight, 0);
    assert!(pool.stats().cancelled >= 6, "{:?}", pool.stats());
    assert_eq!(pool.inner().stats().limiter.queue_len, 0);
    let sent = mock.call_count();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(mock.call_count(), sent, "nothing is sent after the cancel");
}

/// 17 ("graceful shutdown"): stopping the whole chain in order — batch
/// shutdown, then pool and limiter — lets work in flight finish, sends
/// nothing new, and returns as soon as the in-flight work is done.
#[tokio::test(start_paused = true)]
async fn d17c_shutdown_is_graceful() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(ms(300)));
    let limited = RateLimitedExecutor::new(mock.clone(), Quota::per_second(10).unwrap());
    let exec = BatchExecutor::new(ConnectionPool::new(limited), 4).unwrap();
    let counter = AtomicU64::new(0);
    let (result, ()) = tokio::join!(exec.execute_batch(mock_urls(20)), async {
        tokio::time::sleep(ms(350)).await;
        exec.shutdown().await;
        counter.store(1, Ordering::SeqCst);
        exec.driver().stop();
        exec.driver().inner().stop();
    });
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    assert_eq!(result.stopped, Some(StopReason::Shutdown));
    assert_eq!(result.failed, 0, "nothing in flight was cut off");
    assert_eq!(result.succeeded + result.not_started, 20);
    assert_eq!(result.succeeded as u64, mock.call_count());
    assert!(result.unstarted().all(|(_, r)| r == StopReason::Shutdown));
    let late = exec.send("http://mock.test/late").await;
    assert!(matches!(late, Err(Error::Stopped { .. })));
}
