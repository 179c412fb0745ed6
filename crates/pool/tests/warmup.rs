//! Warm-up with the mock driver under the paused clock.

use std::time::Duration;

use httpclient_core::Error;
use httpclient_core::http::Method;
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_pool::{ConnectionPool, Warmup};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn sends_per_host_requests_concurrently_and_reports_per_host() {
    let mock = MockDriver::new()
        .route("http://down/", Behavior::refused())
        .default_behavior(Behavior::ok().after(Duration::from_millis(100)))
        .with_connections_opened(Some(0));
    let pool = ConnectionPool::new(mock.clone());
    let t0 = Instant::now();
    let report = pool
        .warmup_connections(
            ["http://a:81", "http://b/ping", "not a url", "http://down"],
            4,
        )
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(100), "all at once");
    assert_eq!(report.hosts.len(), 4);
    let [a, b, bad, down] = &report.hosts[..] else {
        unreachable!()
    };
    assert_eq!((a.succeeded, a.failed), (4, 0));
    assert_eq!(a.origin.as_ref().unwrap().port(), 81);
    assert_eq!((b.succeeded, b.failed), (4, 0));
    assert_eq!(
        (bad.succeeded, bad.failed, bad.origin.is_some()),
        (0, 4, false)
    );
    assert!(matches!(bad.errors[..], [Error::InvalidRequest { .. }]));
    assert_eq!((down.succeeded, down.failed), (0, 4));
    assert_eq!(down.errors.len(), 4);
    assert!(
        down.errors.iter().all(|e| e.is_connect()),
        "typed, not flattened"
    );
    assert_eq!((report.succeeded(), report.failed()), (8, 8));
    assert!(!report.is_complete());
    assert_eq!(report.connections_opened, Some(0), "the mock counts none");

    let calls = mock.calls();
    assert_eq!(calls.len(), 12);
    assert!(calls.iter().all(|c| c.method == Method::HEAD));
    assert_eq!(calls.iter().filter(|c| c.uri == "http://a:81/").count(), 4);
    assert_eq!(calls.iter().filter(|c| c.uri == "http://b/ping").count(), 4);
    let st = pool.stats();
    assert_eq!((st.warmup_requests, st.requests, st.attempts), (12, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn bounded_by_its_timeout_and_configurable() {
    let mock = MockDriver::new()
        .route("http://slow/", Behavior::hang())
        .default_behavior(Behavior::ok());
    let pool = ConnectionPool::new(mock.clone());
    let t0 = Instant::now();
    let report = pool
        .warmup_connections_with(
            ["http://slow", "http://fast"],
            Warmup::new(2)
                .method(Method::GET)
                .path("/warm")
                .timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!((report.hosts[0].succeeded, report.hosts[0].failed), (0, 2));
    assert!(report.hosts[0].errors.iter().all(|e| e.is_timeout()));
    assert_eq!(report.hosts[1].succeeded, 2);
    assert!(
        mock.calls()
            .iter()
            .all(|c| c.method == Method::GET && c.uri.path() == "/warm")
    );
    assert_eq!(mock.in_flight(), 0, "nothing left running");
}

#[tokio::test(start_paused = true)]
async fn respects_the_per_host_limit() {
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_secs(1)));
    let pool = ConnectionPool::builder(mock.clone())
        .per_host_limit(3)
        .build()
        .unwrap();
    let report = pool.warmup_connections(["http://a"], 6).await.unwrap();
    assert_eq!(report.succeeded(), 6);
    assert_eq!(mock.max_in_flight(), 3);
}

#[tokio::test(start_paused = true)]
async fn bad_arguments_are_typed_errors() {
    let pool = ConnectionPool::new(MockDriver::new());
    for (w, field) in [
        (Warmup::new(0), "per_host"),
        (Warmup::new(100_000), "per_host"),
        (Warmup::new(1).timeout(Duration::ZERO), "timeout"),
        // Would overflow `Instant + timeout` (a panic before this check).
        (Warmup::new(1).timeout(Duration::MAX), "timeout"),
        (Warmup::new(1).path("x"), "path"),
    ] {
        match pool.warmup_connections_with(["http://a"], w).await {
            Err(Error::Config(c)) => assert_eq!(c.field, field),
            other => panic!("{other:?}"),
        }
    }
    pool.stop();
    assert!(matches!(
        pool.warmup_connections(["http://a"], 1).await,
        Err(Error::Stopped { .. })
    ));
}
