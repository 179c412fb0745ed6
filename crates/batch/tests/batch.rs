//! `execute_batch` under tokio's paused clock with the mock driver: every
//! timing below is exact, not "roughly".

mod common;

use std::time::Duration;

use common::{index_of, input_differs, ms, secs, slow_mock, urls};
use httpclient_batch::{
    BatchExecutor, BatchOptions, CancellationToken, FailFast, Outcome, StopReason,
};
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{Driver, Error, Request};
use tokio::time::Instant;

#[test]
fn bad_configuration_is_a_typed_error() {
    let e = BatchExecutor::new(MockDriver::new(), 0).unwrap_err();
    assert_eq!(e.field, "workers");
    let e = BatchExecutor::builder(MockDriver::new())
        .request_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "request_timeout");
    let e = BatchExecutor::new(MockDriver::new(), usize::MAX).unwrap_err();
    assert_eq!(e.field, "workers");
    // A deadline and a time limit would silently override each other.
    let e = BatchOptions::builder()
        .deadline(Instant::now())
        .time_limit(Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "deadline");
    let e = BatchOptions::builder()
        .time_limit(Duration::from_secs(1))
        .time_limit(Duration::from_secs(2))
        .build()
        .unwrap_err();
    assert_eq!(e.field, "deadline");
    let e = BatchOptions::builder()
        .request_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e.field, "request_timeout");
    let exec = BatchExecutor::new(MockDriver::new(), 1).unwrap();
    let e = exec
        .execute_stream_ordered(futures::stream::iter(urls(1)), 0)
        .err()
        .expect("window 0 must be rejected");
    assert_eq!(e.field, "window");
}

#[tokio::test(start_paused = true)]
async fn empty_batch_returns_at_once_and_spawns_nothing() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 8).unwrap();
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let t0 = Instant::now();
    let result = exec.execute_batch(Vec::<Request>::new()).await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(result.is_empty());
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (0, 0, 0)
    );
    assert_eq!(result.duration, Duration::ZERO);
    assert_eq!(result.throughput(), 0.0);
    assert_eq!(mock.call_count(), 0);
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks
    );
    let stats = exec.stats();
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.throughput, 0.0);
    assert_eq!(stats.error_rate, 0.0);
}

#[tokio::test(start_paused = true)]
async fn results_keep_input_order_and_workers_bound_concurrency() {
    // Later inputs finish first: output must still be in input order.
    let mock = MockDriver::new().handler(|req, _| {
        let i = index_of(req) as u64;
        Behavior::status(200 + i as u16).after(ms(1000 - 100 * i))
    });
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let spawned = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let result = exec.execute_batch(urls(10)).await;
    assert_eq!(result.len(), 10);
    for (i, item) in result.iter().enumerate() {
        assert_eq!(item.index, i);
        let resp = item.outcome.response().expect("response");
        assert_eq!(resp.status().as_u16(), 200 + i as u16);
        assert_eq!(resp.url().unwrap().path(), format!("/{i}"));
        assert_eq!(item.elapsed, ms(1000 - 100 * i as u64));
    }
    assert!(result.all_succeeded());
    assert_eq!(mock.max_in_flight(), 3);
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        spawned,
        "no task was spawned"
    );
    // Arrival order equals input order: one input pulled per freed slot.
    let arrived: Vec<usize> = mock
        .calls()
        .iter()
        .map(|c| c.uri.path()[1..].parse().unwrap())
        .collect();
    assert_eq!(arrived, (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn makespan_is_exact_for_equal_latencies() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let result = exec.execute_batch(urls(10)).await;
    assert_eq!(result.duration, secs(4)); // ceil(10 / 3) waves
    assert_eq!(result.end - result.start, secs(4));
    assert_eq!(result.succeeded, 10);
    assert_eq!(result.throughput(), 2.5);
}

#[tokio::test(start_paused = true)]
async fn invalid_inputs_fail_in_their_own_slot() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let inputs = vec![
        Request::get("http://h/0"),
        Request::get("not a url"),
        Request::get("ftp://h/2"),
        Request::get("http://h/3").header("bad header", "x"),
        Request::get("http://h/4"),
    ];
    let result = exec.execute_batch(inputs).await;
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (2, 3, 0)
    );
    for i in [1, 2, 3] {
        let e = result.items[i].outcome.error().expect("error");
        assert!(matches!(e, Error::InvalidRequest { .. }), "{e:?}");
        assert_eq!(result.items[i].elapsed, Duration::ZERO);
    }
    assert_eq!(mock.call_count(), 2, "the driver never sees a bad input");
    let failures: Vec<usize> = result.failures().map(|(i, _)| i).collect();
    assert_eq!(failures, vec![1, 2, 3]);
    let stats = exec.stats();
    assert_eq!((stats.requests, stats.completed, stats.errors), (2, 2, 0));
    assert_eq!(stats.invalid_inputs, 3);
}

#[tokio::test(start_paused = true)]
async fn cancellation_reports_in_flight_as_cancelled_and_the_rest_as_not_started() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let canceller = async {
        tokio::time::sleep(ms(1500)).await;
        token.cancel();
    };
    let (result, ()) = tokio::join!(exec.execute_batch_with(urls(10), options), canceller);
    assert_eq!(
        result.duration,
        ms(1500),
        "partial results come back at once"
    );
    assert_eq!(result.stopped, Some(StopReason::Cancelled));
    assert!(result.items[0].outcome.is_response());
    assert!(result.items[1].outcome.is_response());
    for i in [2, 3] {
        assert!(
            matches!(result.items[i].outcome, Outcome::Error(Error::Cancelled)),
            "{:?}",
            result.items[i]
        );
        assert_eq!(result.items[i].elapsed, ms(500));
    }
    for i in 4..10 {
        assert_eq!(
            result.items[i].outcome.not_started(),
            Some(StopReason::Cancelled)
        );
    }
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (2, 2, 6)
    );
    assert_eq!(mock.call_count(), 4);
    assert_eq!(mock.in_flight(), 0, "in-flight futures were dropped");
    let stats = exec.stats();
    assert_eq!((stats.requests, stats.completed, stats.errors), (4, 2, 2));
    assert_eq!(stats.errors_by_kind.get("cancelled"), Some(&2));
    assert_eq!(stats.not_started, 6);
    assert_eq!(stats.in_flight, 0);
    assert_eq!(
        stats.latency.count, 2,
        "cancelled requests are not latencies"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_cancelled_before_the_batch_sends_nothing() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let token = CancellationToken::new();
    token.cancel();
    let options = BatchOptions::builder().cancel_token(token).build().unwrap();
    let result = exec.execute_batch_with(urls(5), options).await;
    assert_eq!(result.not_started, 5);
    assert_eq!(mock.call_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_stops_the_batch_exactly_on_time() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let options = BatchOptions::builder()
        .time_limit(ms(1500))
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(10), options).await;
    assert_eq!(result.duration, ms(1500));
    assert_eq!(result.stopped, Some(StopReason::DeadlineExceeded));
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (2, 2, 6)
    );
    for i in [2, 3] {
        assert!(matches!(
            result.items[i].outcome,
            Outcome::Error(Error::DeadlineExceeded)
        ));
    }
    assert_eq!(
        result.items[9].outcome.not_started(),
        Some(StopReason::DeadlineExceeded)
    );
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(
        exec.stats().errors_by_kind.get("deadline_exceeded"),
        Some(&2)
    );

    // An absolute deadline already past: nothing is sent.
    let options = BatchOptions::builder()
        .deadline(Instant::now())
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(3), options).await;
    assert_eq!(result.not_started, 3);
    assert_eq!(result.duration, Duration::ZERO);
    assert_eq!(mock.call_count(), 4);
}

fn fail_at_two() -> MockDriver {
    input_differs(
        2,
        Behavior::refused().after(ms(500)),
        Behavior::ok().after(secs(1)),
    )
}

#[tokio::test(start_paused = true)]
async fn fail_fast_stops_scheduling_and_lets_in_flight_finish() {
    let mock = fail_at_two();
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::any_error())
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(10), options).await;
    let stop = StopReason::FailFast { trigger: 2 };
    assert_eq!(result.stopped, Some(stop));
    assert_eq!(
        result.duration,
        secs(1),
        "in-flight requests ran to the end"
    );
    assert!(result.items[0].outcome.is_response());
    assert!(result.items[1].outcome.is_response());
    assert!(result.items[2].outcome.error().unwrap().is_connect());
    for i in 3..10 {
        assert_eq!(result.items[i].outcome.not_started(), Some(stop));
    }
    assert_eq!(mock.call_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_can_cancel_in_flight() {
    let mock = fail_at_two();
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::any_error().cancel_in_flight(true))
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(10), options).await;
    assert_eq!(result.duration, ms(500));
    for i in [0, 1] {
        assert!(matches!(
            result.items[i].outcome,
            Outcome::Error(Error::Cancelled)
        ));
    }
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (0, 3, 7)
    );
    assert_eq!(mock.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_predicates_choose_what_stops() {
    // Errors that do not match are kept and the batch goes on.
    let mock = fail_at_two();
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::on_error(|e| e.is_timeout()))
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(6), options).await;
    assert_eq!(result.stopped, None);
    assert_eq!((result.succeeded, result.failed), (5, 1));

    // A status can stop the batch: bad credentials stay bad.
    let mock = input_differs(1, Behavior::status(401), Behavior::ok().after(secs(1)));
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::on_status(|s| s == 401))
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(6), options).await;
    assert_eq!(result.stopped, Some(StopReason::FailFast { trigger: 1 }));
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (2, 0, 4)
    );
    assert_eq!(
        result.status_failures().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![1]
    );

    // Invalid inputs are errors too.
    let exec = BatchExecutor::new(MockDriver::new(), 1).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::any_error())
        .build()
        .unwrap();
    let result = exec
        .execute_batch_with(["http://h/0", "bad url", "http://h/2"], options)
        .await;
    assert_eq!(result.stopped, Some(StopReason::FailFast { trigger: 1 }));
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn driver_panics_become_errors_and_the_executor_stays_usable() {
    let mock = MockDriver::new().handler(|req, _| match index_of(req) {
        3 | 7 => Behavior::panic("driver bug").after(ms(10)),
        _ => Behavior::ok().after(ms(20)),
    });
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let result = exec.execute_batch(urls(10)).await;
    assert_eq!((result.succeeded, result.failed), (8, 2));
    for i in [3, 7] {
        match &result.items[i].outcome {
            Outcome::Error(Error::Panicked { message }) => assert_eq!(message, "driver bug"),
            other => panic!("slot {i}: {other:?}"),
        }
    }
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(exec.in_flight(), 0);
    assert_eq!(exec.stats().errors_by_kind.get("panicked"), Some(&2));
    // Usable afterwards, with every worker slot back.
    let again = exec.execute_batch(urls(3)).await;
    assert_eq!(again.succeeded, 3);
    let single = exec
        .execute(Request::get("http://h/7").build().unwrap())
        .await;
    assert!(single.unwrap_err().is_panic());
}

/// A driver that panics while *creating* its future, before any poll.
struct PanicsEagerly;

impl Driver for PanicsEagerly {
    fn execute<'a, 'b>(
        &'a self,
        _request: Request,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<httpclient_core::Response, Error>> + Send + 'b>,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        panic!("eager panic")
    }
}

#[tokio::test(start_paused = true)]
async fn eager_driver_panics_are_caught_too() {
    let exec = BatchExecutor::new(PanicsEagerly, 2).unwrap();
    let result = exec.execute_batch(urls(3)).await;
    assert_eq!(result.failed, 3);
    assert!(result.failures().all(|(_, e)| e.is_panic()));
    assert_eq!(exec.in_flight(), 0);
}

trait IsPanic {
    fn is_panic(&self) -> bool;
}
impl IsPanic for Error {
    fn is_panic(&self) -> bool {
        matches!(self, Error::Panicked { .. })
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_batches_share_one_worker_limit_fairly() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let a: Vec<String> = (0..20).map(|i| format!("http://a/{i}")).collect();
    let b: Vec<String> = (0..20).map(|i| format!("http://b/{i}")).collect();
    let (ra, rb) = tokio::join!(exec.execute_batch(a), exec.execute_batch(b));
    assert_eq!((ra.succeeded, rb.succeeded), (20, 20));
    assert_eq!(
        mock.max_in_flight(),
        4,
        "the limit is the executor's, not per batch"
    );
    // 40 one-second requests through 4 slots: 10 s, whoever asks.
    assert_eq!(ra.end.max(rb.end) - ra.start.min(rb.start), secs(10));
    // Shared, not serial: b starts within a second and a does not get to
    // finish alone first (alone it would take 5 s).
    let b_first = mock
        .calls()
        .iter()
        .find(|c| c.uri.host() == Some("b"))
        .map(|c| c.at)
        .unwrap();
    assert!(b_first - ra.start <= secs(1));
    assert!(ra.duration > secs(5), "{:?}", ra.duration);
}

#[tokio::test(start_paused = true)]
async fn single_executes_take_worker_slots_and_are_counted() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let singles = futures::future::join_all(
        (0..6).map(|i| exec.execute(Request::get(format!("http://h/{i}")).build().unwrap())),
    );
    let (singles, batch) = tokio::join!(singles, exec.execute_batch(urls(6)));
    assert!(singles.iter().all(|r| r.is_ok()));
    assert_eq!(batch.succeeded, 6);
    assert_eq!(mock.max_in_flight(), 3);
    let stats = exec.stats();
    assert_eq!((stats.requests, stats.completed), (12, 12));
    assert_eq!(exec.connections_opened(), None);
    let counted =
        BatchExecutor::new(MockDriver::new().with_connections_opened(Some(7)), 1).unwrap();
    assert_eq!(counted.connections_opened(), Some(7), "forwarded");
}

#[tokio::test(start_paused = true)]
async fn executors_chain_as_drivers() {
    let mock = slow_mock(secs(1));
    let inner = BatchExecutor::new(mock.clone(), 2).unwrap();
    let outer = BatchExecutor::new(inner.clone(), 8).unwrap();
    let result = outer.execute_batch(urls(8)).await;
    assert_eq!(result.succeeded, 8);
    assert_eq!(mock.max_in_flight(), 2, "the inner limit still holds");
    assert_eq!(result.duration, secs(4));
    assert_eq!(inner.stats().requests, 8);
    assert_eq!(outer.stats().requests, 8);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_finish_and_refuses_new_work() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let stopper = async {
        tokio::time::sleep(ms(500)).await;
        let t = Instant::now();
        exec.shutdown().await;
        t.elapsed()
    };
    let (result, waited) = tokio::join!(exec.execute_batch(urls(10)), stopper);
    assert_eq!(
        waited,
        ms(500),
        "shutdown returned when the in-flight pair finished"
    );
    assert_eq!(result.stopped, Some(StopReason::Shutdown));
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (2, 0, 8)
    );
    assert_eq!(result.duration, secs(1));
    assert!(exec.is_shutdown());

    let err = exec
        .execute(Request::get("http://h/x").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Stopped {
            layer: "BatchExecutor"
        }
    ));
    assert!(!err.may_have_been_sent());
    let late = exec.execute_batch(urls(3)).await;
    assert_eq!(late.not_started, 3);
    assert!(late.unstarted().all(|(_, r)| r == StopReason::Shutdown));
    assert_eq!(mock.call_count(), 2);
    assert_eq!(exec.stats().not_started, 8 + 1 + 3);
    // Idempotent.
    exec.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_a_grace_period_cancels_what_is_still_running() {
    let mock = MockDriver::new().default_behavior(Behavior::hang());
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let single = exec.execute(Request::get("http://h/single").build().unwrap());
    let stopper = async {
        tokio::time::sleep(secs(1)).await;
        exec.shutdown_timeout(secs(2)).await
    };
    // The single call is polled first, so it gets one of the two slots.
    let (single, result, outcome) = tokio::join!(single, exec.execute_batch(urls(5)), stopper);
    assert_eq!(
        outcome,
        httpclient_batch::ShutdownOutcome::Aborted {
            cancelled: 2,
            unfinished: 0
        }
    );
    assert!(matches!(single, Err(Error::Cancelled)), "{single:?}");
    assert_eq!(result.duration, secs(3));
    let cancelled = result
        .failures()
        .filter(|(_, e)| matches!(e, Error::Cancelled))
        .count();
    assert_eq!(cancelled + 1, 2, "one slot went to the single call");
    assert_eq!(result.failed + result.not_started, 5);
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(exec.in_flight(), 0);

    // Nothing in flight: a token shutdown drains at once.
    let exec = BatchExecutor::new(MockDriver::new(), 2).unwrap();
    let outcome = exec.shutdown_with(CancellationToken::new()).await;
    assert_eq!(outcome, httpclient_batch::ShutdownOutcome::Drained);
}

#[tokio::test(start_paused = true)]
async fn request_timeout_defaults_apply_only_when_a_request_has_none() {
    let mock = MockDriver::new();
    let exec = BatchExecutor::builder(mock.clone())
        .workers(4)
        .request_timeout(secs(3))
        .build()
        .unwrap();
    exec.execute_batch(vec![
        Request::get("http://h/0"),
        Request::get("http://h/1").timeout(secs(1)),
    ])
    .await;
    let options = BatchOptions::builder()
        .request_timeout(secs(2))
        .build()
        .unwrap();
    exec.execute_batch_with(
        vec![
            Request::get("http://h/2"),
            Request::get("http://h/3").timeout(secs(1)),
        ],
        options,
    )
    .await;
    exec.execute(Request::get("http://h/4").build().unwrap())
        .await
        .unwrap();
    let timeouts: Vec<_> = mock.calls().iter().map(|c| c.options.timeout).collect();
    assert_eq!(
        timeouts,
        vec![
            Some(secs(3)),
            Some(secs(1)),
            Some(secs(2)),
            Some(secs(1)),
            Some(secs(3))
        ]
    );

    // And the driver enforces it: a hanging call fails at exactly 2 s.
    let hang = MockDriver::new().default_behavior(Behavior::hang());
    let exec = BatchExecutor::new(hang, 1).unwrap();
    let options = BatchOptions::builder()
        .request_timeout(secs(2))
        .build()
        .unwrap();
    let result = exec.execute_batch_with(urls(2), options).await;
    assert_eq!(result.duration, secs(4));
    assert!(result.failures().all(|(_, e)| e.is_timeout()));
    assert_eq!(exec.stats().errors_by_kind.get("timeout"), Some(&2));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_batch_future_drops_its_requests() {
    // The first three calls hang; later ones answer after 1 s.
    let mock = MockDriver::new().handler(|_, n| {
        if n < 3 {
            Behavior::hang()
        } else {
            Behavior::ok().after(secs(1))
        }
    });
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let timed_out = tokio::time::timeout(secs(1), exec.execute_batch(urls(10))).await;
    assert!(timed_out.is_err());
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(exec.in_flight(), 0);
    let stats = exec.stats();
    assert_eq!((stats.requests, stats.errors), (3, 3));
    assert_eq!(stats.errors_by_kind.get("cancelled"), Some(&3));
    // Every worker slot came back: three requests run side by side.
    let again = exec.execute_batch(urls(3)).await;
    assert_eq!(again.succeeded, 3);
    assert_eq!(again.duration, secs(1));
}

#[tokio::test(start_paused = true)]
async fn result_helpers_agree_with_the_items() {
    let mock = MockDriver::new().handler(|req, _| match index_of(req) {
        1 => Behavior::status(503),
        2 => Behavior::reset(),
        _ => Behavior::ok(),
    });
    let exec = BatchExecutor::new(mock, 2).unwrap();
    let result = exec.execute_batch(urls(4)).await;
    assert_eq!(
        result.successes().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![0, 1, 3]
    );
    assert_eq!(
        result.status_failures().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(
        result.failures().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(result.responses().count(), 3);
    assert_eq!(
        result.get(2).unwrap().outcome.error().unwrap().kind_name(),
        "reset_before_response"
    );
    let responses = result.into_responses();
    assert_eq!(responses.len(), 4);
    assert!(responses[2].is_none());
    assert_eq!(responses[1].as_ref().unwrap().status(), 503);
}

/// Answers at once and cancels `token` on its 10th call: a batch over it
/// never waits, so only the between-items check can notice the token.
struct CancelsOnTenth {
    token: CancellationToken,
    calls: std::sync::atomic::AtomicUsize,
}

#[httpclient_core::async_trait]
impl Driver for CancelsOnTenth {
    async fn execute(&self, _request: Request) -> Result<httpclient_core::Response, Error> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 9 {
            self.token.cancel();
        }
        Ok(httpclient_core::Response::new(
            httpclient_core::http::StatusCode::OK,
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_never_waits_still_notices_its_token() {
    let token = CancellationToken::new();
    let driver = CancelsOnTenth {
        token: token.clone(),
        calls: Default::default(),
    };
    let exec = BatchExecutor::new(driver, 4).unwrap();
    let options = BatchOptions::builder().cancel_token(token).build().unwrap();
    let result = exec.execute_batch_with(urls(10_000), options).await;
    assert_eq!(result.stopped, Some(StopReason::Cancelled));
    // Checked every 32 loop turns: the stop lands within a few dozen items.
    assert!(
        result.succeeded >= 10 && result.succeeded <= 10 + 64,
        "{}",
        result.succeeded
    );
    assert_eq!(result.succeeded + result.not_started, 10_000);
}

#[tokio::test(start_paused = true)]
async fn an_endless_iterator_batch_ends_on_its_deadline() {
    let exec = BatchExecutor::new(slow_mock(secs(1)), 3).unwrap();
    let options = BatchOptions::builder()
        .time_limit(ms(2500))
        .build()
        .unwrap();
    let result = exec
        .execute_batch_with(std::iter::repeat("http://h/x"), options)
        .await;
    assert_eq!(result.stopped, Some(StopReason::DeadlineExceeded));
    // Two rounds of three answered, the third round was cut off; an
    // endless source is not drained for "not started" items.
    assert_eq!(
        (result.succeeded, result.failed, result.not_started),
        (6, 3, 0)
    );
    assert_eq!(result.len(), 9);
    assert!(
        result
            .failures()
            .all(|(_, e)| matches!(e, Error::DeadlineExceeded))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_batch_over_a_driver_that_never_waits_lets_other_tasks_run() {
    // On a single-threaded runtime the task that cancels the batch runs
    // only when the batch's task yields. (The mock would not do: its
    // zero-length sleep spends tokio's cooperative budget and yields.)
    let exec = BatchExecutor::new(AnswersAtOnce, 8).unwrap();
    let token = CancellationToken::new();
    let canceller = tokio::spawn({
        let token = token.clone();
        async move { token.cancel() }
    });
    let options = BatchOptions::builder().cancel_token(token).build().unwrap();
    let result = exec.execute_batch_with(urls(100_000), options).await;
    canceller.await.unwrap();
    assert_eq!(result.stopped, Some(StopReason::Cancelled));
    assert!(result.succeeded <= 1_000, "{}", result.succeeded);
    // Those in flight at the cancel end as cancelled errors.
    assert!(result.failed <= 8);
    assert_eq!(
        result.succeeded + result.failed + result.not_started,
        100_000
    );
}

/// Answers at once, without ever returning `Pending`.
struct AnswersAtOnce;

#[httpclient_core::async_trait]
impl Driver for AnswersAtOnce {
    async fn execute(&self, _request: Request) -> Result<httpclient_core::Response, Error> {
        Ok(httpclient_core::Response::new(
            httpclient_core::http::StatusCode::OK,
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn latency_excludes_the_time_a_batch_lets_other_tasks_run() {
    // While the batch yields to the runtime (every few hundred ready items),
    // another task moves the clock on by 20 ms: requests handed over just
    // before must not count that as their latency.
    let ticker = tokio::spawn(async {
        loop {
            tokio::time::advance(ms(20)).await;
            tokio::task::yield_now().await;
        }
    });
    let exec = BatchExecutor::new(AnswersAtOnce, 8).unwrap();
    let result = exec.execute_batch(urls(3_000)).await;
    ticker.abort();
    assert_eq!(result.succeeded, 3_000);
    assert!(result.duration >= ms(20), "the other task did run");
    let slowest = result.iter().map(|i| i.elapsed).max().unwrap();
    assert_eq!(slowest, Duration::ZERO);
    assert_eq!(exec.stats().latency.max, Duration::ZERO);
}

/// A driver whose requests never answer and which notes, when a request's
/// future is dropped, how many requests the executor still counted in
/// flight at that moment (read through `GAUGE`, set once the executor is
/// built).
struct NotesGaugeOnDrop {
    seen: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

static GAUGE: std::sync::OnceLock<Box<dyn Fn() -> usize + Send + Sync>> =
    std::sync::OnceLock::new();

struct Noting(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

impl Drop for Noting {
    fn drop(&mut self) {
        let gauge = GAUGE.get().map_or(usize::MAX, |g| g());
        self.0.lock().unwrap().push(gauge);
    }
}

#[httpclient_core::async_trait]
impl Driver for NotesGaugeOnDrop {
    async fn execute(&self, _request: Request) -> Result<httpclient_core::Response, Error> {
        let _noting = Noting(self.seen.clone());
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_is_gone_before_it_leaves_the_in_flight_gauge() {
    // A shutdown waits for the gauge to reach zero and promises the
    // cancelled requests' futures (their connections) are gone by then: each
    // must be dropped while it still counts. (The gauge went down first.)
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let exec = BatchExecutor::new(NotesGaugeOnDrop { seen: seen.clone() }, 2).unwrap();
    let watched = exec.clone();
    assert!(GAUGE.set(Box::new(move || watched.in_flight())).is_ok());
    let batch = exec.execute_batch(urls(2));
    let stopper = async {
        tokio::time::sleep(ms(10)).await;
        exec.shutdown_timeout(ms(10)).await
    };
    let (result, outcome) = tokio::join!(batch, stopper);
    assert_eq!(
        outcome,
        httpclient_batch::ShutdownOutcome::Aborted {
            cancelled: 2,
            unfinished: 0
        }
    );
    assert_eq!(result.failed, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "both futures were dropped");
    assert!(seen.iter().all(|&n| n >= 1), "gauge at each drop: {seen:?}");
    assert_eq!(exec.in_flight(), 0);
}

/// Requests never answer, and their futures panic when dropped.
struct PanicsOnDrop;

struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("driver future panicked in its destructor");
    }
}

#[httpclient_core::async_trait]
impl Driver for PanicsOnDrop {
    async fn execute(&self, _request: Request) -> Result<httpclient_core::Response, Error> {
        let _bomb = Bomb;
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_future_panics_on_drop_is_still_counted() {
    let exec = BatchExecutor::new(PanicsOnDrop, 1).unwrap();
    let batch = exec.execute_batch(urls(1));
    let mut batch = Box::pin(batch);
    // Started and in flight.
    assert!(tokio::time::timeout(ms(10), batch.as_mut()).await.is_err());
    assert_eq!(exec.in_flight(), 1);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(batch)));
    assert!(dropped.is_err(), "the destructor's panic came through");
    let st = exec.stats();
    assert_eq!((st.requests, st.errors), (1, 1));
    assert_eq!(st.errors_by_kind.get("cancelled"), Some(&1));
    assert_eq!(exec.in_flight(), 0, "its place in the gauge was given back");
}
