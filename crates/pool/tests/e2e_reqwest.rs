//! End to end over real loopback sockets: `ReqwestDriver` (which never
//! retries by itself) under the pool, against `httpclient-testserver`
//! injecting faults. Real clock; bounded in count and time; generous polls
//! instead of wall-clock asserts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use httpclient_core::{DriverExt, Error, Origin, Request};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_pool::{
    ConnectionPool, DownCause, HealthCheck, HostState, RetryBudget, RetryPolicy, Warmup,
};
use httpclient_testserver::{ServerConfig, TestServer};

fn driver() -> ReqwestDriver {
    ReqwestDriver::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .count_connections(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_gets_with_twenty_percent_mid_body_resets_lose_nothing() {
    const N: usize = 20_000;
    let server = TestServer::start().await.unwrap();
    let url = server.url("/items?fault=reset_mid_body&fault_pct=20&body_size=256");
    let pool = Arc::new(
        ConnectionPool::builder(driver())
            .retry_policy(
                RetryPolicy::builder()
                    .max_retries(5)
                    .base_delay(Duration::from_millis(5))
                    .max_delay(Duration::from_millis(100))
                    .build()
                    .unwrap(),
            )
            .retry_budget(RetryBudget::new(0.5, 10, Duration::from_secs(10)).unwrap())
            .seed(20)
            .build()
            .unwrap(),
    );
    let run = futures_util::stream::iter(0..N)
        .map(|_| {
            let pool = Arc::clone(&pool);
            let url = url.clone();
            async move { pool.send(url.as_str()).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("bounded in time");

    assert_eq!(results.len(), N, "every request has exactly one outcome");
    let ok = results
        .iter()
        .filter(|r| matches!(r, Ok(resp) if resp.status() == 200 && resp.bytes().len() == 256))
        .count();
    let st = pool.stats();
    let server_stats = server.stats();
    eprintln!(
        "ok {ok}/{N}, attempts {}, retries {}, budget_exhausted {}, server requests {}, faults {}, connections {:?}",
        st.attempts,
        st.retries,
        st.budget_exhausted,
        server_stats.requests,
        server_stats.faults_injected,
        st.connections_opened
    );
    assert!(ok as f64 >= 0.999 * N as f64, "only {ok} of {N} succeeded");
    assert_eq!(st.requests, N as u64);
    assert_eq!(st.succeeded + st.failed, N as u64);
    assert_eq!(st.succeeded, ok as u64);
    assert_eq!(
        server_stats.requests, st.attempts,
        "the server saw exactly the pool's attempts: no hidden retries"
    );
    assert!(
        st.attempts as f64 <= 1.3 * N as f64,
        "{} attempts for {N} requests",
        st.attempts
    );
    assert!(st.retries > 0 && server_stats.faults_injected > 0);
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::RetriesExhausted { .. }), "{e}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_posts_applied_then_reset_are_each_sent_once_and_reported_ambiguous() {
    const N: usize = 1_000;
    let server = TestServer::start().await.unwrap();
    let url = server.url("/orders?fault=reset_mid_body");
    let pool = Arc::new(ConnectionPool::builder(driver()).seed(1).build().unwrap());
    let results = futures_util::stream::iter(0..N)
        .map(|i| {
            let pool = Arc::clone(&pool);
            let req = Request::post(url.as_str()).body(format!("order {i}"));
            async move { pool.send(req).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let results = tokio::time::timeout(Duration::from_secs(120), results)
        .await
        .expect("bounded in time");
    assert_eq!(
        server.stats().requests,
        N as u64,
        "exactly one receipt per POST"
    );
    assert_eq!(results.len(), N);
    for r in &results {
        let e = r.as_ref().expect_err("every POST failed");
        assert!(e.may_have_been_sent(), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("applied"),
            "says it may have been applied: {text}"
        );
        assert!(
            !matches!(e, Error::RetriesExhausted { .. }),
            "not retried: {e:?}"
        );
    }
    let st = pool.stats();
    assert_eq!(
        (st.attempts, st.retries, st.not_retried_unsafe),
        (N as u64, 0, N as u64)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_real_server_stopped_and_restarted_on_the_same_port() {
    let server = TestServer::start().await.unwrap();
    let port = server.addr().port();
    let base = server.base_url();
    let origin = Origin::parse(&base).unwrap();
    let pool = ConnectionPool::builder(driver()).build().unwrap();
    let interval = Duration::from_millis(100);
    pool.enable_health_check_with(
        HealthCheck::builder([base.as_str()], interval)
            .thresholds(3, 2)
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pool.send(base.as_str()).await.unwrap().status(), 200);

    // Stop the server: marked down after 3 failed probes.
    server.shutdown().await;
    let down_after = poll(|| {
        matches!(
            pool.host_health(&origin).map(|h| h.state),
            Some(HostState::Down(DownCause::Probes))
        )
    })
    .await
    .expect("marked down within the bound");
    let h = pool.host_health(&origin).unwrap();
    assert!(h.probe_failures >= 3, "{h:?}");
    eprintln!("down after {down_after:?} ({h:?})");

    // Fail fast while down: no connect attempt, no timeout.
    let started = std::time::Instant::now();
    let err = pool.send(base.as_str()).await.unwrap_err();
    assert!(matches!(err, Error::UnhealthyHost { .. }), "{err:?}");
    assert!(
        // Far below any connect or request timeout (seconds), with room for
        // a loaded 2-core CI machine.
        started.elapsed() < Duration::from_secs(2),
        "no connect attempt, no timeout"
    );

    // Restart on the same port: back up after 2 good probes.
    let server = TestServer::start_with(ServerConfig::default().port(port))
        .await
        .unwrap();
    let up_after = poll(|| {
        matches!(
            pool.host_health(&origin).map(|h| h.state),
            Some(HostState::Up)
        )
    })
    .await
    .expect("back up within the bound");
    eprintln!("up after {up_after:?}");
    assert_eq!(pool.send(base.as_str()).await.unwrap().status(), 200);
    let h = pool.host_health(&origin).unwrap();
    assert!(h.probe_successes >= 2);
    pool.stop();
    server.shutdown().await;
}

/// Poll `cond` every 10 ms for up to 3 s; how long it took.
async fn poll(mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_really_opens_connections_that_traffic_then_reuses() {
    const PER_HOST: usize = 8;
    let server = TestServer::start().await.unwrap();
    let pool = Arc::new(ConnectionPool::new(driver()));
    // The server takes 100 ms per answer, as a remote host would: the warm-up
    // requests really overlap. (Against a host that answers faster than the
    // requests start, some share a connection; `connections_opened` says so.)
    let report = pool
        .warmup_connections_with(
            [server.base_url(), "http://".to_string()],
            Warmup::new(PER_HOST).path("/?delay_ms=100"),
        )
        .await
        .unwrap();
    let host = &report.hosts[0];
    assert_eq!(
        (host.succeeded, host.failed),
        (PER_HOST, 0),
        "{:?}",
        host.errors
    );
    assert_eq!(
        report.hosts[1].failed, PER_HOST,
        "the bad host has its own error"
    );
    assert!(matches!(
        report.hosts[1].errors[..],
        [Error::InvalidRequest { .. }]
    ));
    assert_eq!(
        report.connections_opened,
        Some(PER_HOST as u64),
        "counted by the driver"
    );
    assert_eq!(server.stats().connections_accepted, PER_HOST as u64);

    // Later traffic of the same concurrency finds the connections warm.
    // (hyper hands a connection back to its pool just after the response, so
    // allow one straggler; without a warm-up all 8 would be new.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = server.url("/?delay_ms=20");
    let results = futures_util::future::join_all((0..PER_HOST).map(|_| {
        let pool = Arc::clone(&pool);
        let url = url.clone();
        async move { pool.send(url.as_str()).await }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_ok()));
    let fresh = server.stats().connections_accepted - PER_HOST as u64;
    assert!(
        fresh <= 1,
        "{fresh} new connections after warming {PER_HOST}"
    );
    assert_eq!(pool.stats().warmup_requests, PER_HOST as u64);
    server.shutdown().await;
}
