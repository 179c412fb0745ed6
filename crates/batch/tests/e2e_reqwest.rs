//! End to end over loopback sockets: `ReqwestDriver` under the executor,
//! against `httpclient-testserver`. Real clock, bounded in count and time,
//! generous polls instead of wall-clock asserts.

use std::time::{Duration, Instant};

use httpclient_batch::{BatchExecutor, BatchOptions, CancellationToken, Outcome, StopReason};
use httpclient_core::{Driver, Error};
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_testserver::TestServer;

fn driver() -> ReqwestDriver {
    ReqwestDriver::builder()
        .timeout(Duration::from_secs(20))
        .connect_timeout(Duration::from_secs(5))
        .count_connections(true)
        .build()
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Polls `cond` every 10 ms for at most `limit`.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_requests_to_one_host_all_succeed() {
    // The Go executor keeps every response open until the batch ends and
    // stalls past its driver's 200 connections per host; bodies are read
    // inside the driver here, so connections are reused at once.
    let server = TestServer::start().await.unwrap();
    let exec = BatchExecutor::new(driver(), 250).unwrap();
    let url = server.url("/items?body_size=2048");
    let inputs = (0..500).map(|_| url.as_str());
    let result = tokio::time::timeout(Duration::from_secs(60), exec.execute_batch(inputs))
        .await
        .expect("bounded in time");
    assert_eq!(result.len(), 500);
    assert!(result.all_succeeded(), "{:?}", result.failures().next());
    assert!(
        result
            .responses()
            .all(|r| r.status() == 200 && r.bytes().len() == 2048)
    );
    let server_stats = server.stats();
    assert_eq!(server_stats.requests, 500);
    // (How many connections carry them is the driver's business: hyper may
    // open a new one while a finished one is still on its way back to the
    // idle pool.)
    let stats = exec.stats();
    assert_eq!(
        (stats.requests, stats.completed, stats.errors),
        (500, 500, 0)
    );
    assert_eq!(stats.status.success, 500);
    assert_eq!(
        exec.connections_opened(),
        Some(server_stats.connections_accepted),
        "the driver's count is forwarded"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_run_closes_every_connection_and_leaks_no_descriptor() {
    let server = TestServer::start().await.unwrap();
    let baseline = open_fds();
    let exec = BatchExecutor::new(driver(), 40).unwrap();
    let url = server.url("/hang?fault=never");
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let inputs: Vec<&str> = (0..200).map(|_| url.as_str()).collect();
    let canceller = async {
        // Cancel once the server holds 40 requests it will never answer.
        assert!(
            eventually(Duration::from_secs(10), || server.stats().requests >= 40).await,
            "the server saw {} requests",
            server.stats().requests
        );
        token.cancel();
        Instant::now()
    };
    let (result, cancelled_at) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(exec.execute_batch_with(inputs, options), canceller)
    })
    .await
    .expect("bounded in time");
    assert!(
        // Generous for a loaded 2-core CI machine; the never-answering
        // route would otherwise hold the batch for its 30 s bound.
        cancelled_at.elapsed() < Duration::from_secs(5),
        "the batch returned promptly after the cancel"
    );
    assert_eq!(result.len(), 200);
    assert_eq!(result.stopped, Some(StopReason::Cancelled));
    let in_flight = result
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Error(Error::Cancelled)))
        .count();
    assert_eq!(in_flight, 40);
    assert_eq!(result.not_started, 160);
    assert_eq!(
        server.stats().requests,
        40,
        "nothing was sent after the cancel"
    );
    assert_eq!(exec.in_flight(), 0);

    drop(exec); // and with it the driver and its connection pool
    assert!(
        server.wait_connections_closed(Duration::from_secs(2)).await,
        "the server still sees {} open connections",
        server.stats().connections_open
    );
    assert!(
        eventually(Duration::from_secs(2), || open_fds() <= baseline).await,
        "descriptors: {} now, {baseline} before",
        open_fds()
    );
    server.shutdown().await;
}
