//! Cancel a busy chain mid-run, stop every layer, drop it: it returns
//! promptly with partial results, and afterwards nothing is left behind —
//! no connection the server still sees open, no extra file descriptor in
//! the process, no live tokio task.
//!
//! The run is busy in every layer at the moment of the cancel: requests
//! wait in the limiter's queue (300/s for 64 workers), sleep out a
//! `Retry-After: 1` in the pool (`status503:10`), or sit at the driver on a
//! slow answer (`slow:10`, 600 ms; the server holds such a connection for
//! that long, so it is kept short enough to close within the 2 s bound).
//!
//! Each scenario owns its runtime, so the task count is its own, and the
//! scenarios of this binary run one at a time, so the descriptor count (a
//! process-wide figure) is not disturbed by a neighbour.

mod common;

use std::time::{Duration, Instant};

use common::{Kind, driver, eventually, open_fds, runtime, serial};
use httpclient_batch::{BatchExecutor, BatchOptions, CancellationToken, Outcome, StopReason};
use httpclient_core::{Driver, Error, Request};
use httpclient_pool::{ConnectionPool, HealthCheck, RetryPolicy};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};
use httpclient_testserver::TestServer;

const N: usize = 5_000;
/// Cancel once the server has seen this many requests.
const CANCEL_AFTER: u64 = 300;
/// What "promptly" means here, on a loaded 2-core machine.
const PROMPT: Duration = Duration::from_secs(5);
/// How long everything may take to be released after the drop.
const RELEASE: Duration = Duration::from_secs(2);

async fn cancel_and_stop_every_layer(kind: Kind) {
    let label = format!("{kind:?}");
    let server = TestServer::start().await.expect("server");
    // Let the runtime settle (server accept loop up) before the baseline.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handle = tokio::runtime::Handle::current();
    let fds_before = open_fds();
    let tasks_before = handle.metrics().num_alive_tasks();

    {
        let limited = RateLimitedExecutor::new(driver(kind), Quota::per_second(300).unwrap());
        let pool = ConnectionPool::builder(limited)
            .retry_policy(
                RetryPolicy::builder()
                    .max_retries(3)
                    .attempt_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let exec = BatchExecutor::new(pool, 64).unwrap();
        let pool = exec.driver();
        let limited = pool.inner();
        pool.enable_health_check_with(
            // The probe timeout covers the wait for a permit (the limiter is
            // inside the pool), so it must exceed the limiter's queueing
            // time; the default, min(interval, 5 s), would not here.
            HealthCheck::builder([server.base_url()], Duration::from_millis(100))
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .unwrap();
        assert!(pool.health_checker_running());

        let token = CancellationToken::new();
        let options = BatchOptions::builder()
            .cancel_token(token.clone())
            .build()
            .unwrap();
        let inputs = (0..N).map(|i| {
            Request::get(server.url(&format!("/s/{i}?faults=status503:10,slow:10&slow_ms=600")))
        });
        let canceller = async {
            let busy = eventually(Duration::from_secs(60), || {
                server.stats().requests >= CANCEL_AFTER
            })
            .await;
            assert!(busy, "{label}: the run got going");
            token.cancel();
            Instant::now()
        };
        let (result, cancelled_at) =
            tokio::join!(exec.execute_batch_with(inputs, options), canceller);
        let returned_after = cancelled_at.elapsed();
        assert!(
            returned_after < PROMPT,
            "{label}: the batch returned {returned_after:?} after the cancel"
        );

        // Stop every layer; each returns at once.
        let stopping = Instant::now();
        limited.stop();
        pool.stop();
        tokio::time::timeout(PROMPT, exec.shutdown())
            .await
            .unwrap_or_else(|_| panic!("{label}: batch shutdown drains promptly"));
        assert!(stopping.elapsed() < PROMPT, "{label}");
        let checker_gone = Instant::now();
        while pool.health_checker_running() && checker_gone.elapsed() < PROMPT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !pool.health_checker_running(),
            "{label}: stop ends the checker task"
        );

        // Partial results, each input accounted for exactly once.
        assert_eq!(result.len(), N, "{label}");
        assert_eq!(result.stopped, Some(StopReason::Cancelled), "{label}");
        let (mut responses, mut cancelled, mut other_errors, mut not_started) = (0, 0, 0, 0);
        for (i, item) in result.iter().enumerate() {
            assert_eq!(item.index, i, "{label}");
            match &item.outcome {
                Outcome::Response(_) => responses += 1,
                Outcome::Error(Error::Cancelled) => cancelled += 1,
                Outcome::Error(_) => other_errors += 1,
                Outcome::NotStarted(reason) => {
                    assert_eq!(*reason, StopReason::Cancelled, "{label}");
                    not_started += 1;
                }
            }
        }
        assert_eq!(
            responses + cancelled + other_errors + not_started,
            N,
            "{label}"
        );
        assert_eq!(
            (result.succeeded, result.failed, result.not_started),
            (responses, cancelled + other_errors, not_started),
            "{label}"
        );
        eprintln!(
            "{label}: cancelled after {} server requests; {responses} responses, {cancelled} \
             cancelled in flight, {other_errors} other errors, {not_started} not started; \
             returned {returned_after:?} after the cancel",
            server.stats().requests
        );
        assert!(
            responses >= 1,
            "{label}: work done before the cancel is kept"
        );
        assert!(cancelled >= 1, "{label}: requests in flight were cancelled");
        assert!(not_started >= N / 2, "{label}: most inputs never started");

        // Stopped layers refuse new work at once, without sending.
        let sent = server.stats().requests;
        let late = exec.execute_batch([server.url("/late")]).await;
        assert_eq!(
            late.not_started, 1,
            "{label}: a shut-down executor starts nothing"
        );
        assert!(matches!(
            pool.execute(Request::get(server.url("/late")).build().unwrap())
                .await,
            Err(Error::Stopped { .. })
        ));
        assert!(matches!(
            limited
                .execute(Request::get(server.url("/late")).build().unwrap())
                .await,
            Err(Error::Stopped { .. })
        ));
        assert_eq!(
            server.stats().requests,
            sent,
            "{label}: nothing sent after the stop"
        );

        let ps = pool.stats();
        assert_eq!(ps.in_flight, 0, "{label}: {ps:?}");
        assert_eq!(limited.stats().in_flight, 0, "{label}");
        assert_eq!(exec.in_flight(), 0, "{label}");
    } // the chain (and its driver) is dropped here

    assert!(
        server.wait_connections_closed(RELEASE).await,
        "{label}: the server still sees {} connections open",
        server.stats().connections_open
    );
    let fds_ok = eventually(RELEASE, || open_fds() <= fds_before).await;
    assert!(
        fds_ok,
        "{label}: {} descriptors open, {fds_before} before",
        open_fds()
    );
    let tasks_ok = eventually(RELEASE, || {
        handle.metrics().num_alive_tasks() <= tasks_before
    })
    .await;
    assert!(
        tasks_ok,
        "{label}: {} tokio tasks alive, {tasks_before} before",
        handle.metrics().num_alive_tasks()
    );
    server.shutdown().await;
}

#[test]
fn cancel_mid_run_and_stop_every_layer_reqwest() {
    let _serial = serial();
    runtime().block_on(cancel_and_stop_every_layer(Kind::Reqwest));
}

#[test]
fn cancel_mid_run_and_stop_every_layer_isahc() {
    let _serial = serial();
    runtime().block_on(cancel_and_stop_every_layer(Kind::Isahc));
}
