//! Stats: exact definitions checked under the paused clock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{index_of, ms, secs, slow_mock, urls};
use httpclient_batch::BatchExecutor;
use httpclient_core::Driver;
use httpclient_core::testkit::{Behavior, MockDriver};

#[tokio::test(start_paused = true)]
async fn rates_are_zero_not_nan_before_any_request_and_after_reset() {
    let exec = BatchExecutor::new(MockDriver::new(), 4).unwrap();
    let s = exec.stats();
    assert_eq!(
        (s.requests, s.completed, s.errors, s.in_flight),
        (0, 0, 0, 0)
    );
    assert_eq!(s.throughput, 0.0);
    assert_eq!(s.error_rate, 0.0);
    assert_eq!(s.latency.p99, Duration::ZERO);
    exec.execute_batch(urls(3)).await;
    exec.reset_stats();
    let s = exec.stats();
    assert_eq!(s.requests, 0);
    assert_eq!((s.throughput, s.error_rate), (0.0, 0.0));
    assert_eq!(s.latency.count, 0);
}

#[tokio::test(start_paused = true)]
async fn latency_percentiles_come_from_a_real_histogram() {
    // Latencies 1..=100 ms, all started at once.
    let mock =
        MockDriver::new().handler(|req, _| Behavior::ok().after(ms(1 + index_of(req) as u64)));
    let exec = BatchExecutor::new(mock, 100).unwrap();
    exec.execute_batch(urls(100)).await;
    let s = exec.stats();
    let close = |got: Duration, want: Duration| {
        let (g, w) = (got.as_secs_f64(), want.as_secs_f64());
        assert!((g - w).abs() <= w * 0.01, "{got:?} vs {want:?}");
    };
    assert_eq!(s.latency.count, 100);
    close(s.latency.p50, ms(50));
    close(s.latency.p90, ms(90));
    close(s.latency.p99, ms(99));
    close(s.latency.max, ms(100));
    close(s.latency.mean, Duration::from_micros(50_500));
    // 100 finished over the 100 ms from first start to last finish.
    assert_eq!(s.active, ms(100));
    assert!((s.throughput - 1000.0).abs() < 1e-6, "{}", s.throughput);
}

#[tokio::test(start_paused = true)]
async fn status_classes_errors_and_rates() {
    let mock = MockDriver::new().handler(|req, _| match index_of(req) % 5 {
        0 => Behavior::status(200),
        1 => Behavior::status(302),
        2 => Behavior::status(404),
        3 => Behavior::status(503),
        _ => Behavior::refused(),
    });
    let exec = BatchExecutor::new(mock, 3).unwrap();
    let r = exec.execute_batch(urls(10)).await;
    assert_eq!(
        (r.succeeded, r.failed),
        (8, 2),
        "a 503 is a response, not a failure"
    );
    let s = exec.stats();
    assert_eq!((s.requests, s.completed, s.errors), (10, 8, 2));
    assert_eq!(s.status.success, 2);
    assert_eq!(s.status.redirection, 2);
    assert_eq!(s.status.client_error, 2);
    assert_eq!(s.status.server_error, 2);
    assert_eq!(s.status.total(), 8);
    assert_eq!(s.errors_by_kind.get("connect_refused"), Some(&2));
    assert!((s.error_rate - 0.2).abs() < 1e-12);
}

#[tokio::test(start_paused = true)]
async fn a_reset_leaves_requests_in_flight_out_of_the_new_window() {
    let exec = BatchExecutor::new(slow_mock(secs(2)), 2).unwrap();
    let resetter = async {
        tokio::time::sleep(secs(1)).await;
        assert_eq!(exec.stats().in_flight, 2);
        exec.reset_stats();
        let s = exec.stats();
        assert_eq!((s.requests, s.completed), (0, 0));
        assert_eq!(s.in_flight, 2, "the gauge is not reset");
        // A request started after the reset is in the new window.
        let r = exec
            .execute(
                httpclient_core::Request::get("http://h/late")
                    .build()
                    .unwrap(),
            )
            .await;
        assert!(r.is_ok());
    };
    let (batch, ()) = tokio::join!(exec.execute_batch(urls(2)), resetter);
    assert_eq!(batch.succeeded, 2);
    let s = exec.stats();
    // The two batch requests started in the old window: not counted.
    assert_eq!((s.requests, s.completed, s.errors), (1, 1, 0));
    assert_eq!(s.latency.count, 1);
    assert_eq!(s.latency.max, secs(2));
    assert_eq!(s.in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn stats_read_mid_flight_never_count_more_finishes_than_starts() {
    let exec = BatchExecutor::new(
        MockDriver::new()
            .handler(|req, _| Behavior::ok().after(ms(7 * (index_of(req) as u64 % 5)))),
        6,
    )
    .unwrap();
    let checks = Arc::new(AtomicUsize::new(0));
    let mut seen_mid_flight = Vec::new();
    let watcher = async {
        for _ in 0..40 {
            let s = exec.stats();
            assert!(s.requests >= s.completed + s.errors);
            assert!(s.requests - s.completed - s.errors <= s.in_flight as u64);
            seen_mid_flight.push(s.completed);
            checks.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(ms(3)).await;
        }
    };
    let (r, ()) = tokio::join!(exec.execute_batch(urls(200)), watcher);
    assert_eq!(r.succeeded, 200);
    assert_eq!(checks.load(Ordering::Relaxed), 40);
    // The batch published while it ran (it waits between responses here),
    // not only at its end: completions showed up step by step.
    assert!(seen_mid_flight.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        seen_mid_flight.iter().any(|&c| c > 0 && c < 200),
        "{seen_mid_flight:?}"
    );
    let s = exec.stats();
    assert_eq!(s.requests, s.completed + s.errors);
}
