//! Property test: random latencies, failure scripts, worker limits and stop
//! signals. Whatever happens, every input gets exactly one outcome, order is
//! kept, the counts add up, and the driver never sees more than `workers`
//! calls at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::index_of;
use futures::StreamExt;
use httpclient_batch::{
    BatchExecutor, BatchOptions, CancellationToken, FailFast, Outcome, StopReason,
};
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{Error, Request};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Ok,
    Status(u16),
    Refused,
    Reset,
    Panic,
    /// Hangs; the batch's request timeout ends it.
    Hang,
    /// A URL that does not parse: never reaches the driver.
    Invalid,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => Just(Kind::Ok),
        1 => prop_oneof![Just(404u16), Just(503u16)].prop_map(Kind::Status),
        1 => Just(Kind::Refused),
        1 => Just(Kind::Reset),
        1 => Just(Kind::Panic),
        1 => Just(Kind::Hang),
        1 => Just(Kind::Invalid),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    None,
    CancelAt(u64),
    Deadline(u64),
    FailFast { cancel: bool },
}

fn stop() -> impl Strategy<Value = Stop> {
    prop_oneof![
        2 => Just(Stop::None),
        1 => (0u64..200).prop_map(Stop::CancelAt),
        1 => (0u64..200).prop_map(Stop::Deadline),
        1 => any::<bool>().prop_map(|cancel| Stop::FailFast { cancel }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Batch,
    Unordered,
    Ordered(usize),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        2 => Just(Shape::Batch),
        1 => Just(Shape::Unordered),
        1 => (1usize..12).prop_map(Shape::Ordered),
    ]
}

/// Above every scripted latency (0..35 ms), so only `Hang` times out.
const TIMEOUT: Duration = Duration::from_millis(40);

fn run_case(workers: usize, script: Vec<(u64, Kind)>, stop: Stop, shape: Shape) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let script = Arc::new(script);
        let s = script.clone();
        let mock = MockDriver::new().handler(move |req, _| {
            let (lat, kind) = s[index_of(req)];
            let lat = Duration::from_millis(lat);
            match kind {
                Kind::Ok => Behavior::ok().after(lat),
                Kind::Status(c) => Behavior::status(c).after(lat),
                Kind::Refused => Behavior::refused().after(lat),
                Kind::Reset => Behavior::reset().after(lat),
                Kind::Panic => Behavior::panic("boom").after(lat),
                Kind::Hang | Kind::Invalid => Behavior::hang(),
            }
        });
        let exec = BatchExecutor::new(mock.clone(), workers).unwrap();
        let token = CancellationToken::new();
        let mut options = BatchOptions::builder().request_timeout(TIMEOUT);
        match stop {
            Stop::None => {}
            Stop::CancelAt(_) => options = options.cancel_token(token.clone()),
            Stop::Deadline(ms) => options = options.time_limit(Duration::from_millis(ms)),
            Stop::FailFast { cancel } => {
                options = options.fail_fast(FailFast::any_error().cancel_in_flight(cancel))
            }
        }
        let options = options.build().unwrap();
        let inputs: Vec<Result<Request, Error>> = script
            .iter()
            .enumerate()
            .map(|(i, (_, k))| match k {
                Kind::Invalid => Request::get(format!("bad url {i}")).build(),
                _ => Request::get(format!("http://h/{i}")).build(),
            })
            .collect();
        let n = inputs.len();
        let canceller = async {
            if let Stop::CancelAt(ms) = stop {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                token.cancel();
            }
        };

        // Run, then normalise to (index, outcome) in yield order.
        let (items, stopped): (Vec<(usize, Outcome)>, Option<StopReason>) = match shape {
            Shape::Batch => {
                let (r, ()) = tokio::join!(exec.execute_batch_with(inputs, options), canceller);
                assert_eq!(r.len(), n, "one item per input");
                assert_eq!(r.succeeded + r.failed + r.not_started, n);
                assert_eq!(r.duration, r.end - r.start);
                let stopped = r.stopped;
                (
                    r.into_iter().map(|i| (i.index, i.outcome)).collect(),
                    stopped,
                )
            }
            Shape::Unordered | Shape::Ordered(_) => {
                let source = futures::stream::iter(inputs);
                let mut stream = match shape {
                    Shape::Ordered(w) => exec
                        .execute_stream_ordered_with(source, w, options)
                        .unwrap(),
                    _ => exec.execute_stream_with(source, options),
                };
                let collect = async {
                    let mut v = Vec::new();
                    while let Some(i) = stream.next().await {
                        v.push((i.index, i.outcome));
                    }
                    v
                };
                let (v, ()) = tokio::join!(collect, canceller);
                let pulled = stream.pulled();
                assert_eq!(v.len(), pulled, "one item per pulled input");
                if stream.stop_reason().is_none() {
                    assert_eq!(pulled, n);
                }
                if let Shape::Ordered(w) = shape {
                    assert!(mock.max_in_flight() <= w, "window bounds concurrency");
                    let order: Vec<usize> = v.iter().map(|(i, _)| *i).collect();
                    assert_eq!(order, (0..pulled).collect::<Vec<_>>(), "input order kept");
                }
                (v, stream.stop_reason())
            }
        };

        // Every index exactly once.
        let mut seen = vec![false; n];
        for (i, _) in &items {
            assert!(!seen[*i], "index {i} twice");
            seen[*i] = true;
        }
        let mut by_index: Vec<Option<&Outcome>> = vec![None; n];
        for (i, o) in &items {
            by_index[*i] = Some(o);
        }
        if matches!(shape, Shape::Batch) {
            let order: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
            assert_eq!(order, (0..n).collect::<Vec<_>>(), "input order kept");
        }

        // Outcomes agree with the script.
        let mut first_unstarted = None;
        for (i, o) in by_index.iter().enumerate() {
            let Some(o) = o else { continue };
            let (_, kind) = script[i];
            match o {
                Outcome::NotStarted(r) => {
                    assert_eq!(Some(*r), stopped, "not started only after a stop");
                    first_unstarted.get_or_insert(i);
                }
                Outcome::Error(Error::Cancelled) => {
                    assert!(matches!(
                        stopped,
                        Some(StopReason::Cancelled | StopReason::FailFast { .. })
                    ));
                }
                Outcome::Error(Error::DeadlineExceeded) => {
                    assert_eq!(stopped, Some(StopReason::DeadlineExceeded));
                }
                Outcome::Response(r) => match kind {
                    Kind::Ok => assert_eq!(r.status(), 200),
                    Kind::Status(c) => assert_eq!(r.status(), c),
                    other => panic!("input {i} ({other:?}) got a response"),
                },
                Outcome::Error(e) => match kind {
                    Kind::Refused => assert!(e.is_connect()),
                    Kind::Reset => assert_eq!(e.kind_name(), "reset_before_response"),
                    Kind::Panic => assert_eq!(e.kind_name(), "panicked"),
                    Kind::Hang => assert!(e.is_timeout()),
                    Kind::Invalid => assert_eq!(e.kind_name(), "invalid_request"),
                    other => panic!("input {i} ({other:?}) failed: {e}"),
                },
            }
            // Inputs are taken and started in order, so nothing after an
            // unstarted one reached the driver (an invalid input after it
            // may have been looked at: it is what triggered a fail-fast).
            if let Some(f) = first_unstarted {
                let reached_driver = !o.is_not_started()
                    && !matches!(o, Outcome::Error(Error::InvalidRequest { .. }));
                assert!(
                    i <= f || !reached_driver,
                    "input {i} ran after {f} was skipped"
                );
            }
        }
        if stopped.is_none() {
            assert!(items.iter().all(|(_, o)| !o.is_not_started()));
        }

        // The driver never saw more than `workers` at once, nothing is left
        // running, and the stats add up.
        assert!(mock.max_in_flight() <= workers);
        assert_eq!(mock.in_flight(), 0);
        assert_eq!(exec.in_flight(), 0);
        let st = exec.stats();
        assert_eq!(st.requests, mock.call_count());
        assert_eq!(st.requests, st.completed + st.errors);
        let invalid_seen = items
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Error(Error::InvalidRequest { .. })))
            .count() as u64;
        assert_eq!(st.invalid_inputs, invalid_seen);
        let responses = items.iter().filter(|(_, o)| o.is_response()).count() as u64;
        assert_eq!(st.completed, responses);
        assert_eq!(st.status.total(), responses);
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_input_gets_exactly_one_outcome(
        workers in 1usize..8,
        script in prop::collection::vec((0u64..35, kind()), 0..48),
        stop in stop(),
        shape in shape(),
    ) {
        run_case(workers, script, stop, shape);
    }
}

/// Cases proptest once found, kept as plain tests (the property test does
/// not persist failures, so these are what reruns them): a fail-fast that
/// cancels in flight, triggered by an invalid input right after a request
/// that was handed to the driver but not yet polled.
#[test]
fn fail_fast_on_an_invalid_input_right_after_an_unpolled_request() {
    for shape in [
        Shape::Batch,
        Shape::Unordered,
        Shape::Ordered(1),
        Shape::Ordered(2),
    ] {
        for workers in [1, 2] {
            run_case(
                workers,
                vec![(0, Kind::Ok), (0, Kind::Invalid)],
                Stop::FailFast { cancel: true },
                shape,
            );
            run_case(
                workers,
                vec![(5, Kind::Ok), (0, Kind::Invalid), (0, Kind::Ok)],
                Stop::FailFast { cancel: true },
                shape,
            );
        }
    }
}

#[test]
fn two_batches_on_one_executor_never_exceed_the_limit() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockDriver::new().handler(|req, _| {
            Behavior::ok().after(Duration::from_millis(1 + (index_of(req) as u64 * 7) % 23))
        });
        let exec = BatchExecutor::new(mock.clone(), 5).unwrap();
        let urls = |n: usize| (0..n).map(|i| format!("http://h/{i}")).collect::<Vec<_>>();
        let (a, b, c) = tokio::join!(
            exec.execute_batch(urls(300)),
            exec.execute_iter(urls(200)).count(),
            exec.execute_stream_ordered(futures::stream::iter(urls(100)), 3)
                .unwrap()
                .count(),
        );
        assert_eq!((a.succeeded, b, c), (300, 200, 100));
        assert_eq!(mock.max_in_flight(), 5);
        assert_eq!(exec.stats().completed, 600);
    });
}
